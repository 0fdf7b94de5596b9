package provision

import (
	"errors"
	"fmt"

	"github.com/trackline/trackline/configs"
	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/recordings"
	"github.com/trackline/trackline/store"
)

// Check reports what is wrong with the config's customers by the domain's rules (what the
// admin API would refuse, channel rule parameters, prompt files that do not load), in the
// config's own paths. configs.Config.Check has already checked the schema.
func Check(c *configs.Config) configs.Problems {
	var p configs.Problems
	add := func(path, f string, args ...any) { p = append(p, path+": "+fmt.Sprintf(f, args...)) }
	for i := range c.Customers {
		cu := &c.Customers[i]
		at := fmt.Sprintf("customers[%d]", i)
		rec, err := Record(cu)
		if err != nil {
			add(at+".status", "%v", err)
		} else if err := pool.CheckCustomer(&rec); err != nil {
			var inv *pool.InvalidError
			if errors.As(err, &inv) {
				add(at+"."+inv.Field, "%s", inv.Reason)
			} else {
				add(at, "%v", err)
			}
		}
		checkPrompts(at+".prompts", cu.Prompts, add)
		for n, np := range cu.NumberPrompts {
			checkPrompts(at+".number_prompts."+n, np, add)
		}
		for j, ch := range cu.Channels {
			for k, r := range ch.Rules {
				if !pool.ValidRuleParam(r.Param) {
					add(fmt.Sprintf("%s.channels[%d].rules[%d].param", at, j, k), "unknown parameter %q", r.Param)
				}
			}
		}
	}
	return p
}

// rules are a configured channel's rules as the store keeps them.
func rules(rs []configs.Rule) []store.ChannelRule {
	out := make([]store.ChannelRule, 0, len(rs))
	for _, r := range rs {
		out = append(out, store.ChannelRule{Param: r.Param, Pattern: r.Pattern})
	}
	return out
}

// Record is the store record of a configured customer.
func Record(cu *configs.Customer) (store.Customer, error) {
	st, err := store.ParseCustomerStatus(cu.Status)
	ra, _ := store.ParseRetentionAction(cu.RetentionAction) // Check reports a bad one
	return store.Customer{
		TrialEnds: cu.TrialEnds.UTC(), ContractEnds: cu.ContractEnds.UTC(),
		RetentionMonths: cu.RetentionMonths, RetentionAction: ra,
		ID: cu.ID, Name: cu.Name, Status: st, SiteKey: cu.SiteKey,
		AllowedOrigins: cu.AllowedOrigins, BusinessLines: cu.BusinessLines,
		DisplayNumbers: cu.DisplayNumbers, DisplayFormat: cu.DisplayFormat,
		RingTimeout: cu.RingTimeout, MaxCallDuration: cu.MaxCallDuration,
		Recording: store.RecordingPolicy{
			Enabled: cu.Recording.Enabled, Numbers: cu.Recording.Numbers, Channels: cu.Recording.Channels,
			ProfessionalSecrecy: cu.Recording.ProfessionalSecrecy, ConsentConfirmed: cu.Recording.ConsentConfirmed,
		},
		Prompts:             store.Prompts(cu.Prompts),
		NumberPrompts:       numberPrompts(cu.NumberPrompts),
		PseudonymousCallers: cu.PseudonymousCallers,
	}, err
}

func numberPrompts(m map[string]configs.Prompts) map[string]store.Prompts {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]store.Prompts, len(m))
	for k, v := range m {
		out[k] = store.Prompts(v)
	}
	return out
}

// checkPrompts loads each named prompt file, so a wrong file is reported at start.
func checkPrompts(at string, p configs.Prompts, add func(path, f string, args ...any)) {
	for _, x := range []struct{ key, name string }{{"disclaimer", p.Disclaimer}, {"whisper", p.Whisper}} {
		if x.name == "" || x.name == "default" {
			continue
		}
		if _, err := recordings.LoadPrompt(x.name); err != nil {
			add(at+"."+x.key, "%v", err)
		}
	}
}
