package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

// The calls of -calls: completed calls spread over the 365 days up to three hours ago, more
// on weekdays and in business hours, and a little more each month. Each goes to a customer
// at random and through store.Tx.PutCall as a new, completed record, so that the customer's
// daily rollups and usage counters are kept as the switch keeps them. They are written in
// time order (the rollups count a call as returning when its caller has a call with a lower
// id), many to a transaction.
//
//   - channel: eight online ones (the built-in channels and the seed's Newsletter and
//     Partners) and two offline ones (Flyer, Google Business Profile); see channelMix
//   - a call of an online channel dials a pool number of the customer and is attributed to
//     the visit that saw it: the seed writes that session (made 30 s to 25 min before the
//     call, with the channel's utm parameters, referrer and landing page) and its
//     assignment of the number, as the switch finds them; it takes the session's landing
//     page, keyword (utm_term), referrer and gclid. Such sessions are kept after the others
//     expire, so a store with a year of calls holds them for the whole year: they come on
//     top of -sessions. A call of an offline channel dials its static number.
//   - landing page: one of 300 paths of the customer's site (Zipf: a few pages get most
//     visits); keyword: one of 180, for paid search and campaigns
//   - disposition: about 70 % answered (talk time log-normal, median ~100 s, at most an
//     hour), 20 % no answer (rang 30 s), 10 % busy
//   - caller: one of 200,000 numbers, a tenth of which call more often, so that both first
//     time and returning callers occur; the pseudonym is made with the customer's key in
//     <data>/keys, as the switch makes it, so the privacy page finds a caller by number
//   - annotations: an eighth of the answered calls are tagged (lead, quote, appointment,
//     follow-up, complaint, wrong-number), with a lead status and sometimes a value
//   - no recording and no media statistics
//
// With -calls or -users the sessions of -sessions get visits of the same mix (online
// channels only), so that the rule editor's preview finds its channels among them.

// callBatch is how many calls one write transaction holds.
const callBatch = 10_000

// callerPool is how many distinct callers there are; regulars of them call more often.
const (
	callerPool = 200_000
	regulars   = 20_000
)

// A channel of the generated visits and calls and its share of the calls.
type channelShare struct {
	name   string
	share  float64
	static bool // an offline channel: its calls dial its static number and have no visit
}

var channelMix = []channelShare{
	{name: pool.ChannelPaidSearch, share: 0.30},
	{name: pool.ChannelOrganicSearch, share: 0.22},
	{name: pool.ChannelDirect, share: 0.10},
	{name: pool.ChannelSocial, share: 0.07},
	{name: pool.ChannelReferral, share: 0.06},
	{name: "Newsletter", share: 0.05},
	{name: "Partners", share: 0.04},
	{name: pool.ChannelCampaign, share: 0.04},
	{name: "Flyer", share: 0.06, static: true},
	{name: "Google Business Profile", share: 0.06, static: true},
}

// seedChannels gives customer c its channels: Newsletter and Partners with rules, Flyer and
// Google Business Profile offline. It answers the offline channels' static numbers by name.
func seedChannels(ctx context.Context, p *pool.Pool, c int) (map[string]string, error) {
	id := customerID(c)
	chs := []store.Channel{
		{Name: "Newsletter", Rules: []store.ChannelRule{{Param: "utm_source", Pattern: "news*"}, {Param: "utm_medium", Pattern: "email"}}},
		{Name: "Partners", Rules: []store.ChannelRule{{Param: "referrer_host", Pattern: "*partner*"}, {Param: "utm_source", Pattern: "partner*"},
			{Param: "landing_path", Pattern: "/partners/*"}}},
		{Name: "Flyer"},
		{Name: "Google Business Profile"},
	}
	for _, ch := range chs {
		if _, err := p.PutChannel(ctx, id, ch); err != nil {
			return nil, fmt.Errorf("channel %s of %s: %w", ch.Name, id, err)
		}
	}
	return map[string]string{
		"Flyer":                   fmt.Sprintf("+319%02d000001", c),
		"Google Business Profile": fmt.Sprintf("+319%02d000002", c),
	}, nil
}

// landingPaths are the paths of a customer's site that visits land on.
var landingPaths = func() []string {
	out := []string{"/", "/contact", "/offerte", "/over-ons", "/spoed", "/prijzen", "/reviews", "/vacatures"}
	cats := []string{"cv-ketel", "loodgieter", "dakgoot", "lekkage", "airco", "zonnepanelen", "warmtepomp", "badkamer",
		"keuken", "riolering", "isolatie", "vloerverwarming"}
	for _, c := range cats {
		out = append(out, "/diensten/"+c)
		for i := range 12 {
			out = append(out, fmt.Sprintf("/diensten/%s/%s-%d", c, []string{"storing", "onderhoud", "vervangen", "installeren"}[i%4], i/4+1))
		}
	}
	for i := len(out); i < 300; i++ {
		out = append(out, fmt.Sprintf("/blog/artikel-%03d", i))
	}
	return out[:300]
}()

// partnerPaths are where the Partners channel's visits land.
var partnerPaths = []string{"/partners/aanbieding", "/partners/korting", "/partners/actie"}

// keywords are the paid search and campaign keywords (utm_term).
var keywords = func() []string {
	services := []string{"loodgieter", "cv ketel storing", "lekkage", "dakdekker", "airco installeren", "zonnepanelen",
		"warmtepomp", "badkamer renovatie", "ontstoppingsdienst", "isolatie", "vloerverwarming", "spoed loodgieter"}
	cities := []string{"", " amsterdam", " rotterdam", " utrecht", " den haag", " eindhoven", " groningen", " tilburg",
		" almere", " breda", " nijmegen", " haarlem", " arnhem", " zwolle", " leiden"}
	var out []string
	for _, s := range services {
		for _, c := range cities {
			out = append(out, s+c)
		}
	}
	return out[:180]
}()

var (
	searchRefs   = []string{"www.google.com", "www.google.nl", "www.bing.com", "duckduckgo.com", "www.ecosia.org"}
	socialRefs   = []string{"www.facebook.com", "l.facebook.com", "www.instagram.com", "www.linkedin.com"}
	referralRefs = []string{"www.vergelijk.nl", "www.startpagina.nl", "forum.example.org", "www.werkspot.nl", "www.thuisbezorgd-klussen.example"}
	partnerRefs  = []string{"www.partner-one.example", "www.partner-two.example"}
	campaigns    = []string{"voorjaarsactie", "zomer-onderhoud", "winterklaar", "radio-spot", "abri-qr", "display-retargeting"}
	tagChoices   = []string{"lead", "lead", "lead", "quote", "appointment", "follow-up", "complaint", "wrong-number"}
)

// hourWeights is how calls spread over the UTC hours of a day (the customers are Dutch:
// business hours are 7-17 UTC).
var hourWeights = [24]float64{0.2, 0.1, 0.1, 0.1, 0.1, 0.3, 1, 3, 7, 9, 9, 8, 7, 8, 8, 7, 5, 3, 2, 1.5, 1.2, 1, 0.6, 0.3}

// generator makes visits and calls, from a fixed random sequence (the ids are random).
type generator struct {
	rng       *rand.Rand
	landing   *rand.Zipf
	keyword   *rand.Zipf
	nums      [][]string
	statics   []map[string]string
	hourCum   [24]float64
	mixCum    []float64 // over channelMix
	onlineCum []float64 // over the online channels of channelMix, the first ones
	hosts     []string  // each customer's site
}

func newGenerator(nums [][]string, statics []map[string]string) *generator {
	rng := rand.New(rand.NewPCG(18, 2026))
	g := &generator{rng: rng, nums: nums, statics: statics,
		landing: rand.NewZipf(rng, 1.2, 4, uint64(len(landingPaths)-1)),
		keyword: rand.NewZipf(rng, 1.1, 3, uint64(len(keywords)-1))}
	sum := 0.0
	for i, w := range hourWeights {
		sum += w
		g.hourCum[i] = sum
	}
	sum = 0
	for _, ch := range channelMix {
		sum += ch.share
		g.mixCum = append(g.mixCum, sum)
		if !ch.static {
			g.onlineCum = append(g.onlineCum, sum)
		}
	}
	for c := range nums {
		g.hosts = append(g.hosts, fmt.Sprintf("https://www.%s.example", customerID(c)))
	}
	return g
}

// pick returns the index of the first cumulative weight above a uniform draw.
func (g *generator) pick(cum []float64) int {
	x := g.rng.Float64() * cum[len(cum)-1]
	i, _ := slices.BinarySearch(cum, x)
	return min(i, len(cum)-1)
}

func (g *generator) oneOf(s []string) string { return s[g.rng.IntN(len(s))] }

// visit makes a session of customer c of an online channel, made at created: what the DNI
// snippet reports, stored as the pool stores it (landing page without its query, the
// referrer's host).
func (g *generator) visit(c int, ch string, created time.Time) store.Session {
	r := g.rng
	s := store.Session{ID: pool.NewID(created), CustomerID: customerID(c), Created: created, Channel: ch,
		LandingPage: g.hosts[c] + landingPaths[g.landing.Uint64()]}
	switch ch {
	case pool.ChannelPaidSearch:
		s.UTMSource, s.UTMMedium, s.UTMTerm = "google", "cpc", keywords[g.keyword.Uint64()]
		s.UTMCampaign = "search-" + strings.SplitN(s.UTMTerm, " ", 2)[0]
		s.Gclid, s.ReferrerHost = fmt.Sprintf("Cj0KCQiA%012x", r.Uint64()>>16), "www.google.com"
	case pool.ChannelOrganicSearch:
		s.ReferrerHost = g.oneOf(searchRefs)
	case pool.ChannelSocial:
		s.ReferrerHost = g.oneOf(socialRefs)
	case pool.ChannelReferral:
		s.ReferrerHost = g.oneOf(referralRefs)
	case "Newsletter":
		s.UTMSource, s.UTMMedium, s.UTMCampaign = "newsletter", "email", fmt.Sprintf("nieuwsbrief-%s", created.Format("2006-01"))
	case "Partners":
		s.ReferrerHost, s.LandingPage = g.oneOf(partnerRefs), g.hosts[c]+g.oneOf(partnerPaths)
	case pool.ChannelCampaign:
		s.UTMSource, s.UTMMedium, s.UTMCampaign = "campagne", "display", g.oneOf(campaigns)
		s.UTMTerm = keywords[g.keyword.Uint64()]
	}
	return s
}

// windowVisit is the visit of a session of -sessions: an online channel of the mix.
func (g *generator) windowVisit(c int, created time.Time) store.Session {
	return g.visit(c, channelMix[g.pick(g.onlineCum)].name, created)
}

// dayCounts spreads n calls over the days [first, first+days): weekdays 1, Saturday 0.45,
// Sunday 0.3, growing 40 % over the period; a day that ends after cut only for its part
// before cut.
func dayCounts(n int, first time.Time, days int, cut time.Time) []int {
	w := make([]float64, days)
	sum := 0.0
	for d := range w {
		day := first.AddDate(0, 0, d)
		f := 1.0
		switch day.Weekday() {
		case time.Saturday:
			f = 0.45
		case time.Sunday:
			f = 0.3
		}
		f *= 0.8 + 0.4*float64(d)/float64(days)
		if end := day.Add(24 * time.Hour); end.After(cut) {
			f *= max(0, float64(cut.Sub(day))/float64(24*time.Hour))
		}
		w[d] = f
		sum += f
	}
	out := make([]int, days)
	acc, given := 0.0, 0
	for d := range w {
		acc += w[d]
		target := int(math.Round(acc / sum * float64(n)))
		out[d] = target - given
		given = target
	}
	return out
}

// times draws k moments of the day that starts at day, before cut, sorted.
func (g *generator) times(day time.Time, k int, cut time.Time) []time.Time {
	out := make([]time.Time, 0, k)
	for range k {
		var t time.Time
		for try := 0; ; try++ {
			h := g.pick(g.hourCum[:])
			t = day.Add(time.Duration(h)*time.Hour + time.Duration(g.rng.Int64N(int64(time.Hour))))
			if t.Before(cut) {
				break
			}
			if try == 20 { // a day cut early: anywhere before cut
				t = day.Add(time.Duration(g.rng.Int64N(int64(max(cut.Sub(day), 1)))))
				break
			}
		}
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

func callerNumber(k int) string { return fmt.Sprintf("+3161%07d", k) }

// seededCall is a call with the session and assignment it is attributed to (none for a
// static number).
type seededCall struct {
	customer int
	call     store.Call
	session  *store.Session
	lease    store.Assignment
}

// call makes the call that starts at start.
func (g *generator) call(start, now time.Time, keys []*keyring.Key) seededCall {
	r := g.rng
	c := r.IntN(len(g.nums))
	ch := channelMix[g.pick(g.mixCum)]
	k := r.IntN(callerPool)
	if r.IntN(10) < 3 {
		k = r.IntN(regulars)
	}
	out := seededCall{customer: c}
	call := store.Call{ID: pool.NewID(start), CustomerID: customerID(c), Caller: callerNumber(k),
		CallerPseudonym: keys[c].Pseudonym(callerNumber(k)), BusinessLine: fmt.Sprintf("sip:+3120555%02d00@127.0.0.1:5090", c),
		Channel: ch.name, Start: start, Candidates: 1, CallIDA: fmt.Sprintf("%016x@trunk.example", r.Uint64())}
	if ch.static {
		call.Dialled = g.statics[c][ch.name]
	} else {
		call.Dialled = g.nums[c][r.IntN(len(g.nums[c]))]
		created := start.Add(-time.Duration(30+r.IntN(25*60)) * time.Second)
		s := g.visit(c, ch.name, created)
		out.session = &s
		out.lease = store.Assignment{CustomerID: s.CustomerID, Number: call.Dialled, SessionID: s.ID, From: created, Until: created.Add(30 * time.Minute)}
		call.SessionID, call.Keyword, call.LandingPage, call.ReferrerHost, call.Gclid = s.ID, s.UTMTerm, s.LandingPage, s.ReferrerHost, s.Gclid
		if r.IntN(10) == 0 {
			call.Candidates = 2
		}
	}
	call.Ringing = start.Add(time.Duration(200+r.IntN(600)) * time.Millisecond)
	switch x := r.IntN(100); {
	case x < 70:
		call.Disposition, call.FinalStatus = store.DispAnswered, 200
		call.CallIDB = fmt.Sprintf("%016x@127.0.0.1", r.Uint64())
		ring := time.Duration(2_000+r.IntN(18_000)) * time.Millisecond
		talk := math.Round(math.Exp(math.Log(100)+0.9*r.NormFloat64())*10) / 10
		talk = min(max(talk, 3), 3600)
		call.Answer = call.Ringing.Add(ring)
		call.TalkSeconds = talk
		call.End = call.Answer.Add(time.Duration(talk * float64(time.Second)))
		call.HangupBy = []store.Party{store.PartyCaller, store.PartyBusinessLine}[r.IntN(2)]
		if r.IntN(8) == 0 {
			g.annotate(&call, now)
		}
	case x < 90:
		call.Disposition, call.FinalStatus = store.DispNoAnswer, 480
		call.End = call.Ringing.Add(30 * time.Second)
		call.HangupBy, call.EndReason = store.PartySwitch, "ring_timeout"
	default:
		call.Disposition, call.FinalStatus = store.DispBusy, 486
		call.End = call.Ringing.Add(time.Duration(300+r.IntN(1_500)) * time.Millisecond)
		call.HangupBy = store.PartyBusinessLine
	}
	out.call = call
	return out
}

// annotate tags an answered call as its customer would have, some hours after it ended.
func (g *generator) annotate(c *store.Call, now time.Time) {
	r := g.rng
	c.Tags = []string{g.oneOf(tagChoices)}
	if r.IntN(4) == 0 {
		if t := g.oneOf(tagChoices); t != c.Tags[0] {
			c.Tags = append(c.Tags, t)
		}
	}
	switch {
	case slices.Contains(c.Tags, "wrong-number"):
		c.LeadStatus = store.LeadStatusNotALead
	case slices.Contains(c.Tags, "lead"):
		c.LeadStatus = []store.LeadStatus{store.LeadStatusLead, store.LeadStatusQualified, store.LeadStatusCustomer}[r.IntN(3)]
		if c.LeadStatus == store.LeadStatusCustomer {
			c.Value = float64(50 + r.IntN(2_000))
		}
	}
	if r.IntN(5) == 0 {
		c.Note = "Teruggebeld, offerte gestuurd."
	}
	c.Updated = c.End.Add(time.Duration(r.IntN(48*60)) * time.Minute)
	if c.Updated.After(now) {
		c.Updated = now
	}
}

// seedCalls writes n completed calls over the 365 days up to three hours before now, with
// the sessions and assignments of those that dialled a pool number. It answers how many
// sessions it wrote for each customer.
func seedCalls(ctx context.Context, db *store.DB, g *generator, dir string, n int, now time.Time) ([]uint64, error) {
	kr, err := keyring.Open(filepath.Join(dir, "keys"))
	if err != nil {
		return nil, err
	}
	keys := make([]*keyring.Key, len(g.nums))
	for c := range g.nums {
		if keys[c], err = kr.Get(customerID(c)); err != nil {
			return nil, err
		}
	}
	sessions := make([]uint64, len(g.nums))
	const days = 365
	today := now.Truncate(24 * time.Hour)
	first := today.AddDate(0, 0, -(days - 1))
	batch := make([]seededCall, 0, callBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := db.Write(ctx, func(tx *store.Tx) error {
			for i := range batch {
				b := &batch[i]
				if b.session != nil {
					s, a := *b.session, b.lease
					if err := tx.PutSession(&s); err != nil {
						return err
					}
					if err := tx.PutAssignment(&a); err != nil {
						return err
					}
				}
				c := b.call // PutCall may be run again on the same batch: keep it as made
				if err := tx.PutCall(&c); err != nil {
					return fmt.Errorf("call %s: %w", c.ID, err)
				}
			}
			return nil
		})
		for _, b := range batch {
			if b.session != nil {
				sessions[b.customer]++
			}
		}
		batch = batch[:0]
		return err
	}
	// Calls start at least three hours ago, so that every one has ended (talk time is at
	// most an hour) and their leases lie before the window the pool loads at start.
	cut := now.Add(-3 * time.Hour)
	for d, k := range dayCounts(n, first, days, cut) {
		day := first.AddDate(0, 0, d)
		for _, t := range g.times(day, k, cut) {
			batch = append(batch, g.call(t, now, keys))
			if len(batch) == callBatch {
				if err := flush(); err != nil {
					return nil, err
				}
			}
		}
	}
	return sessions, flush()
}
