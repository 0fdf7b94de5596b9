package pool

import (
	"testing"

	"github.com/trackline/trackline/store"
)

func TestPreviewRules(t *testing.T) {
	channels := []store.Channel{
		{ID: "newsletter", Name: "Newsletter", Rules: []store.ChannelRule{{Param: "utm_source", Pattern: "news*"}}},
		{ID: "partners", Name: "Partners"},
	}
	draft := store.Channel{ID: "partners", Name: "Partners", Rules: []store.ChannelRule{
		{Param: "utm_source", Pattern: "NEWS*"},           // shadowed by Newsletter, which comes first
		{Param: "referrer_host", Pattern: "*.partner.nl"}, // takes the partner visits
		{Param: "landing_path", Pattern: "/partner/*"},    // matches one that the rule before took
	}}
	sessions := []store.Session{
		{ID: "1", UTMSource: "newsletter-dec"},
		{ID: "2", ReferrerHost: "www.partner.nl", LandingPage: "https://shop.example/partner/x"},
		{ID: "3", ReferrerHost: "shop.partner.nl"},
		{ID: "4", ReferrerHost: "www.google.com"},
	}
	got := PreviewRules(channels, draft, sessions)
	want := []struct{ matches, takes int }{{1, 0}, {2, 2}, {1, 0}}
	for i, w := range want {
		if got[i].Matches != w.matches || got[i].Takes != w.takes || len(got[i].Samples) != w.takes {
			t.Errorf("rule %d (%v): matches %d takes %d samples %d, want %d %d", i, got[i].Rule, got[i].Matches, got[i].Takes, len(got[i].Samples), w.matches, w.takes)
		}
	}
	if got[1].Samples[0].ID != "2" || got[1].Samples[1].ID != "3" {
		t.Errorf("samples of rule 1: %+v", got[1].Samples)
	}
}
