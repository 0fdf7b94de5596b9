//go:build cluster

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/trackline/trackline/g711"
	"github.com/trackline/trackline/internal/pgtest"
	"github.com/trackline/trackline/internal/weedtest"
	"github.com/trackline/trackline/store"
)

// Cluster mode on the shared store (issue 22, docs/cluster.md): three trackline nodes on
// 127.0.0.2, .3 and .4, one real PostgreSQL (internal/pgtest), one real SeaweedFS for the
// recordings and the customers' keys (internal/weedtest), and, for the SIP tests, Kamailio
// with configs/kamailio/kamailio.cfg on 127.0.0.1.
//
// Build tag "cluster": these tests need `trackline serve` on store.driver postgres, which
// refuses to start while the PostgreSQL backend lacks store operations
// (store.PostgresMissing); with such a backend they fail at the first node's start, naming
// the missing operations. They were written while it was incomplete, so they are kept out of
// `make test` by the tag until the lead moves them in (drop the tag). Run them with
//
//	go test -tags cluster -run TestClusterPG -v ./e2e/

// clusterMasterKey seals the shared keys (TRACKLINE_MASTER_KEY of every node).
const clusterMasterKey = "6b0a3c1f2e4d5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1"

// pgCluster is three nodes on one PostgreSQL and one object store.
type pgCluster struct {
	pg    *pgtest.Server
	dsn   string
	weed  *weedtest.Server
	ips   []string
	nodes []*server // A, B, C on ips[0..2]
	line  int       // the business line's UDP port on 127.0.0.1
	kam   *kamailio // nil without withKamailio
}

type clusterOpts struct {
	record       bool // the customer records its calls
	poolSize     int  // default 20
	withKamailio bool
}

// startPGCluster starts PostgreSQL, SeaweedFS and three nodes (one after another: the
// first migrates the database and seeds the config's customer, the next find them), and
// Kamailio in front if asked.
func startPGCluster(t *testing.T, o clusterOpts) *pgCluster {
	t.Helper()
	sippBinary(t)
	pg, err := pgtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Stop() })
	if err := pg.CreateDatabase(context.Background(), "trackline", ""); err != nil {
		t.Fatal(err)
	}
	c := &pgCluster{pg: pg, dsn: pg.DSN("trackline"), weed: weedtest.Start(t),
		ips: []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}, line: stableUDPPort(t, "127.0.0.1")}
	t.Setenv("TRACKLINE_MASTER_KEY", clusterMasterKey)        // inherited by the nodes
	t.Setenv("TRACKLINE_OBJECT_SECRET_KEY", c.weed.SecretKey) // likewise
	for i, ip := range c.ips {
		config := writeConfig(t, testConfig{
			businessLines: []string{businessLine("+31852087972", c.line)},
			trunkSources:  []string{"127.0.0.1/32"}, // Kamailio, or the test's sipp sending directly
			flyerNumbers:  []string{flyerNumber},
			record:        o.record,
			poolSize:      o.poolSize,
		})
		f, err := os.OpenFile(config, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "node_id: node-%c\nstore:\n  driver: postgres\n  dsn: %q\n", 'a'+i, c.dsn)
		fmt.Fprintf(f, "recordings:\n  object_store: {endpoint: %q, bucket: %s, access_key: %s, prefix: recordings/}\n",
			c.weed.Endpoint, c.weed.Bucket, c.weed.AccessKey)
		fmt.Fprintf(f, "keys:\n  shared: true\n  prefix: keys/\n")
		f.Close()
		n := startServerOn(t, config, t.TempDir(), "--sip", ip+":0")
		c.nodes = append(c.nodes, n)
	}
	if o.withKamailio {
		kamailioBinary(t)
		var addrs []string
		for _, n := range c.nodes {
			addrs = append(addrs, n.SIP)
		}
		c.kam = startKamailio(t, kamailioOpts{nodes: addrs, trunkNet: "127.0.0.1/32", pingInterval: clusterPing,
			frTimer: clusterFR, algorithm: "4"})
		for _, a := range addrs {
			if _, err := c.kam.waitNode(a, 'A', 10*time.Second); err != nil {
				t.Fatal(err)
			}
		}
	}
	return c
}

// clusterCall is a call record as GET /v1/calls shows it, with the node that took it.
type clusterCall struct {
	ID          string    `json:"id"`
	Node        string    `json:"node"`
	Dialled     string    `json:"dialled"`
	SessionID   string    `json:"session_id"`
	Channel     string    `json:"channel"`
	LandingPage string    `json:"landing_page"`
	CallIDA     string    `json:"call_id_a"`
	End         time.Time `json:"end"`
	Disposition string    `json:"disposition"`
	EndReason   string    `json:"end_reason"`
	RecordingID string    `json:"recording_id"`
}

// clusterCalls reads up to 1000 call records of number through node n (any node reads all).
func clusterCalls(t *testing.T, n *server, number string) []clusterCall {
	t.Helper()
	var resp struct {
		Calls []clusterCall `json:"calls"`
	}
	n.adminGet(t, "/v1/calls?"+url.Values{"number": {number}, "limit": {"1000"}}.Encode(), &resp)
	return resp.Calls
}

// TestClusterPGAttribution: a session made through node A is attributed to a call that
// arrives on node C; node B reads the record, with the landing page sealed on C and opened
// on B (the customer's shared key).
func TestClusterPGAttribution(t *testing.T) {
	c := startPGCluster(t, clusterOpts{})
	a, b, nc := c.nodes[0], c.nodes[1], c.nodes[2]
	landing := apiOrigin + "/spring-offer?utm_source=newsletter-march"
	sess := a.newSession(t, apiOrigin, map[string]string{"site_key": siteKey, "landing_url": landing})
	if sess.Channel != "Newsletter" {
		t.Errorf("session channel %q, want Newsletter", sess.Channel)
	}
	line := runSipp(t, "line", sippRun{scenario: "uas-answer.xml", port: c.line, calls: 1, timeout: 20 * time.Second})
	trunk := runSipp(t, "trunk", sippRun{scenario: "uac-answer.xml", remote: nc.SIP, service: sess.Number,
		calls: 1, pauseMS: 300, timeout: 15 * time.Second})
	if code := trunk.waitFor(20 * time.Second); code != 0 {
		t.Fatalf("call to node C: sipp exited %d\n%s", code, trunk.diagnostics())
	}
	line.waitFor(10 * time.Second)
	var rec clusterCall
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs := clusterCalls(t, b, sess.Number)
		if len(recs) == 1 && !recs[0].End.IsZero() {
			rec = recs[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no completed record of the call on node B: %+v", recs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The landing page is kept without its query (utm_* are the channel's).
	if rec.Node != "node-c" || rec.SessionID != sess.SessionID || rec.Channel != "Newsletter" || rec.LandingPage != apiOrigin+"/spring-offer" {
		t.Errorf("record read on B: node %q session %q channel %q landing %q; want node-c, %s, Newsletter, %s/spring-offer",
			rec.Node, rec.SessionID, rec.Channel, rec.LandingPage, sess.SessionID, apiOrigin)
	}
}

// TestClusterPGVisitorsNeverShare: 50 visitors made through all three nodes at once, each
// touched every second through another node for 60 s: no two hold one number while their
// leases are live, checked from the assignment records in PostgreSQL.
func TestClusterPGVisitorsNeverShare(t *testing.T) {
	const visitors, runFor = 50, 60 * time.Second
	c := startPGCluster(t, clusterOpts{poolSize: 60})
	ctx, cancel := context.WithTimeout(context.Background(), runFor)
	defer cancel()
	var mu sync.Mutex
	numberOf := map[string]string{} // session -> number, as the API answered it
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, visitors)
	for i := range visitors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			node := c.nodes[i%3]
			b, _ := json.Marshal(map[string]string{"site_key": siteKey, "landing_url": fmt.Sprintf("%s/page-%d", apiOrigin, i)})
			resp, err := do(ctx, httpClient, http.MethodPost, "http://"+node.HTTP+"/v1/sessions", "text/plain", b, http.Header{"Origin": {apiOrigin}})
			if err != nil || resp.Status != http.StatusCreated {
				errs <- fmt.Errorf("visitor %d on %s: %v %d %s", i, node.SIP, err, resp.Status, resp.Body)
				return
			}
			var a sessionAnswer
			if err := json.Unmarshal(resp.Body, &a); err != nil {
				errs <- err
				return
			}
			mu.Lock()
			numberOf[a.SessionID] = a.Number
			mu.Unlock()
			for k := 1; ; k++ {
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Duration(800+rand.IntN(400)) * time.Millisecond):
				}
				n := c.nodes[(i+k)%3]
				resp, err := n.touch(ctx, httpClient, a.SessionID)
				if ctx.Err() != nil {
					return
				}
				if err != nil || resp.Status >= 300 {
					errs <- fmt.Errorf("visitor %d touch %d on %s: %v %d %s", i, k, n.SIP, err, resp.Status, resp.Body)
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(numberOf) != visitors {
		t.Fatalf("%d of %d visitors got a session", len(numberOf), visitors)
	}
	holder := map[string]string{}
	for s, n := range numberOf {
		if o, ok := holder[n]; ok {
			t.Errorf("number %s given to %s and %s", n, o, s)
		}
		holder[n] = s
	}

	// From the records: on each number, the leases of two sessions never overlap.
	db, err := store.OpenPostgres(context.Background(), c.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var recs []store.Assignment
	if err := db.View(func(tx *store.Tx) error {
		return tx.Assignments(customerID, time.Time{}, time.Time{}, func(a store.Assignment) bool { recs = append(recs, a); return true })
	}); err != nil {
		t.Fatal(err)
	}
	byNumber := map[string][]store.Assignment{}
	sessions := map[string]bool{}
	for _, a := range recs {
		byNumber[a.Number] = append(byNumber[a.Number], a)
		sessions[a.SessionID] = true
	}
	if len(sessions) != visitors {
		t.Errorf("assignment records of %d sessions, want %d", len(sessions), visitors)
	}
	// Renewed through other nodes, each visitor kept the number it was given.
	for _, a := range recs {
		if want := numberOf[a.SessionID]; a.Number != want {
			t.Errorf("session %s: a record on %s, but it was given %s", a.SessionID, a.Number, want)
		}
	}
	for n, rs := range byNumber {
		sort.Slice(rs, func(i, j int) bool { return rs[i].From.Before(rs[j].From) })
		cutShort(rs)
		for i := 1; i < len(rs); i++ {
			for j := range i {
				if rs[i].SessionID != rs[j].SessionID && rs[i].From.Before(rs[j].Until) {
					t.Errorf("number %s: %s's lease %v-%v overlaps %s's from %v", n, rs[j].SessionID,
						rs[j].From, rs[j].Until, rs[i].SessionID, rs[i].From)
				}
			}
		}
	}
	t.Logf("%d visitors over 3 nodes for %v: %d assignment records on %d numbers", visitors, runFor, len(recs), len(byNumber))
}

// cutShort ends each record that a later one names as cut (store.Assignment.CutFrom) where
// that later one began, as package pool reads them.
func cutShort(rs []store.Assignment) {
	for i := range rs {
		if rs[i].CutFrom.IsZero() {
			continue
		}
		for j := range rs {
			if j != i && rs[j].From.Equal(rs[i].CutFrom) && rs[j].Until.After(rs[i].From) {
				rs[j].Until = rs[i].From
				break
			}
		}
	}
}

// TestClusterPGKill: calls through Kamailio on all three nodes; one node is killed (-9)
// mid-run: the calls on the others go on, new calls go to the survivors within the ping
// bound, and every call the trunk completed is in the shared store; the dead node, started
// again, completes only its own lost calls.
func TestClusterPGKill(t *testing.T) {
	c := startPGCluster(t, clusterOpts{withKamailio: true})
	const n, rate, talkMS = 40, 4, 4000
	line := runSipp(t, "line", sippRun{scenario: "uas-answer.xml", port: c.line, calls: n, timeout: 60 * time.Second})
	trunk := runSipp(t, "trunk", sippRun{scenario: "uac-answer.xml", remote: c.kam.addr, service: flyerNumber,
		calls: n, rate: rate, pauseMS: talkMS, timeout: 45 * time.Second})
	time.Sleep(4 * time.Second)
	dead := c.nodes[2]
	killed := time.Now()
	dead.Kill()
	detected, err := c.kam.waitNode(dead.SIP, 'I', clusterDetect)
	if err != nil {
		t.Errorf("the dead node is still in service: %v", err)
	}
	t.Logf("dead node out of service %v after the kill (bound %v)", detected.Round(time.Millisecond), clusterDetect)
	trunk.waitFor(60 * time.Second)
	line.kill()
	calls := callsOf(trunk.trace())
	if len(calls) != n {
		t.Errorf("%d calls in the trunk's trace, want %d", len(calls), n)
	}
	inFlight := killed.Add(200 * time.Millisecond)
	perNode := map[string]int{}
	completed := map[string]bool{}
	lost := map[string]bool{}
	for id, call := range calls {
		perNode[call.node]++
		switch {
		case call.answered.IsZero():
			t.Errorf("call %s (invited %v after the kill) never answered", id, call.invited.Sub(killed).Round(time.Millisecond))
		case call.ended:
			completed[id] = true
		case call.node == c.ips[2] && !call.answered.After(inFlight):
			lost[id] = true // in progress on the dead node
		default:
			t.Errorf("call %s on %s did not complete", id, call.node)
		}
		if call.node == c.ips[2] && call.answered.After(inFlight) {
			t.Errorf("call %s answered by the dead node %v after the kill", id, call.answered.Sub(killed))
		}
	}
	t.Logf("kill -9: calls per node %v, %d lost with the dead node", perNode, len(lost))
	// Every completed call is in the shared store, read through a survivor.
	checkClusterRecords(t, c.nodes[0], completed, nil)
	// The dead node starts again: it completes its own lost calls ("switch restarted"), and
	// no call of another node.
	dead.Restart()
	checkClusterRecords(t, c.nodes[1], completed, lost)
}

// checkClusterRecords checks that the shared store holds every call of completed
// (answered, ended) and each of lost completed as "switch restarted" by its node.
func checkClusterRecords(t *testing.T, n *server, completed, lost map[string]bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := map[string]clusterCall{}
		for _, r := range clusterCalls(t, n, flyerNumber) {
			got[r.CallIDA] = r
		}
		var bad []string
		for id := range completed {
			if r, ok := got[id]; !ok || r.End.IsZero() || r.Disposition != "answered" || r.EndReason == "switch restarted" {
				bad = append(bad, fmt.Sprintf("%s: %+v", id, r))
			}
		}
		for id := range lost {
			if r, ok := got[id]; !ok || r.End.IsZero() || r.EndReason != "switch restarted" || r.Node != "node-c" {
				bad = append(bad, fmt.Sprintf("lost %s: %+v", id, r))
			}
		}
		if len(bad) == 0 {
			return
		}
		if time.Now().After(deadline) {
			sort.Strings(bad)
			t.Errorf("%d records missing or wrong in the shared store:\n%s", len(bad), strings.Join(bad, "\n"))
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestClusterPGRestart: PostgreSQL restarted under load: the nodes report not ready, answer
// Kamailio's pings and new calls with 503 (so the trunk gets 503, not a call that cannot be
// recorded), and take calls again once it is back, without a restart of their own.
func TestClusterPGRestart(t *testing.T) {
	c := startPGCluster(t, clusterOpts{withKamailio: true})
	pids := map[*server]int{}
	for _, n := range c.nodes {
		pids[n] = n.cmd.Process.Pid
	}
	ready := func(n *server) int {
		resp, err := do(context.Background(), httpClient, http.MethodGet, "http://"+n.HTTP+"/readyz", "", nil, nil)
		if err != nil {
			return 0
		}
		return resp.Status
	}
	const calls, rate, talkMS = 60, 2, 1000
	line := runSipp(t, "line", sippRun{scenario: "uas-answer.xml", port: c.line, calls: calls, timeout: 90 * time.Second})
	trunk := runSipp(t, "trunk", sippRun{scenario: "uac-answer.xml", remote: c.kam.addr, service: flyerNumber,
		calls: calls, rate: rate, pauseMS: talkMS, timeout: 60 * time.Second})
	time.Sleep(5 * time.Second)
	down := time.Now()
	c.pg.Pause(false)
	for _, n := range c.nodes {
		deadline := time.Now().Add(10 * time.Second)
		for ready(n) != http.StatusServiceUnavailable {
			if time.Now().After(deadline) {
				t.Fatalf("node %s still ready 10 s after PostgreSQL stopped", n.SIP)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if res := sipOptions(t, "127.0.0.1", n.SIP); !strings.HasPrefix(res, "SIP/2.0 503") {
			// The watcher needs two failed pings: allow it a moment.
			time.Sleep(3 * time.Second)
			if res = sipOptions(t, "127.0.0.1", n.SIP); !strings.HasPrefix(res, "SIP/2.0 503") {
				t.Errorf("node %s answers OPTIONS while its store is down:\n%s", n.SIP, res)
			}
		}
		if _, err := c.kam.waitNode(n.SIP, 'I', clusterDetect+3*time.Second); err != nil {
			t.Errorf("node %s still in service with its store down: %v", n.SIP, err)
		}
	}
	outOfService := time.Now()
	time.Sleep(4 * time.Second) // calls arrive meanwhile: Kamailio has no node for them
	backAt := time.Now()
	if err := c.pg.Resume(); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.nodes {
		if _, err := c.kam.waitNode(n.SIP, 'A', 10*time.Second); err != nil {
			t.Errorf("node %s not back in service 10 s after PostgreSQL: %v", n.SIP, err)
		}
		if ready(n) != http.StatusOK {
			t.Errorf("node %s not ready after PostgreSQL came back", n.SIP)
		}
	}
	t.Logf("PostgreSQL down at %v, all nodes out of service %v later, back %v after it restarted",
		down.Format("15:04:05.000"), outOfService.Sub(down).Round(time.Millisecond), time.Since(backAt).Round(time.Millisecond))
	trunk.waitFor(90 * time.Second) // the calls refused during the outage fail sipp: expected
	line.kill()

	msgs := trunk.trace()
	traced := callsOf(msgs)
	refused := map[string]int{} // Call-ID -> the final status of a refused INVITE
	for _, m := range msgs {
		if !m.sent && strings.HasPrefix(m.start, "SIP/2.0 ") && strings.HasSuffix(m.first("cseq"), "INVITE") {
			var code int
			fmt.Sscanf(strings.TrimPrefix(m.start, "SIP/2.0 "), "%d", &code)
			if code >= 300 {
				refused[m.first("call-id")] = code
			}
		}
	}
	var before, during, after int
	completed := map[string]bool{}
	for id, call := range traced {
		switch {
		case call.invited.Before(down):
			before++
		case call.invited.After(outOfService) && call.invited.Before(backAt):
			during++
			if refused[id] != 503 || !call.answered.IsZero() {
				t.Errorf("call %s invited while no store: final %d, answered %v; want 503", id, refused[id], !call.answered.IsZero())
			}
		case call.invited.After(backAt.Add(10 * time.Second)):
			after++
			if !call.ended {
				t.Errorf("call %s invited after recovery did not complete (final %d)", id, refused[id])
			}
		}
		// A call that began and ended away from the outage is in the store.
		if call.ended && (call.invited.After(backAt) || call.invited.Add(time.Duration(talkMS)*time.Millisecond+time.Second).Before(down)) {
			completed[id] = true
		}
	}
	if during == 0 || after == 0 {
		t.Errorf("calls invited during the outage %d, after recovery %d: want some of each", during, after)
	}
	t.Logf("calls: %d before the outage, %d refused with 503 during it, %d after recovery", before, during, after)
	checkClusterRecords(t, c.nodes[0], completed, nil)
	for _, n := range c.nodes {
		if !n.running() || n.cmd.Process.Pid != pids[n] {
			t.Errorf("node %s restarted or stopped", n.SIP)
		}
		if !strings.Contains(n.Logs(), "store unreachable") || !strings.Contains(n.Logs(), "store reachable again") {
			t.Errorf("node %s did not log the store's outage and return", n.SIP)
		}
	}
}

// TestClusterPGRecordingAcrossNodes: a recording made on node B (uploaded to the object
// store, its file gone from B) plays from node A, byte for byte what B serves, with the key
// the nodes share.
func TestClusterPGRecordingAcrossNodes(t *testing.T) {
	c := startPGCluster(t, clusterOpts{record: true})
	a, b := c.nodes[0], c.nodes[1]
	audio := g711.Encode(nil, testSignal(3*8000, 11), g711.ULaw)
	line := startSipp(t, "line", sippSpec{scenario: "uas-media.xml", media: true,
		files: map[string][]byte{"callee.pcap": pcapOf(audio, 0xCA11EE)}})
	// The business line moves to that sipp, changed through node A: node B hears of it
	// through PostgreSQL's notifications.
	body := fmt.Sprintf(`{"business_lines":[%q]}`, businessLine("+31852087972", line.port))
	resp, err := do(context.Background(), httpClient, http.MethodPatch, "http://"+a.Admin+"/v1/customers/"+customerID,
		"application/json", []byte(body), http.Header{"Authorization": {"Bearer " + adminToken}})
	if err != nil || resp.Status != http.StatusOK {
		t.Fatalf("PATCH business_lines on A: %v %d %s", err, resp.Status, resp.Body)
	}
	time.Sleep(time.Second)
	trunk := startSipp(t, "trunk", sippSpec{scenario: "uac-media.xml", service: flyerNumber, remote: b.SIP,
		pauseMS: 2500, media: true, files: map[string][]byte{"caller.pcap": pcapOf(audio, 0xCA11E4)}})
	trunk.expectSuccess()
	line.expectSuccess()
	var rec clusterCall
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs := clusterCalls(t, a, flyerNumber)
		if len(recs) == 1 && recs[0].RecordingID != "" {
			rec = recs[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recorded call: %+v", recs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if rec.Node != "node-b" {
		t.Errorf("the call was taken by %q, want node-b", rec.Node)
	}
	s3 := c.weed.Client(t)
	deadline = time.Now().Add(30 * time.Second)
	for {
		var found bool
		for obj := range s3.ListObjects(context.Background(), c.weed.Bucket, minio.ListObjectsOptions{Prefix: "recordings/" + customerID + "/", Recursive: true}) {
			found = found || strings.HasSuffix(obj.Key, "/"+rec.ID+".wav.enc")
		}
		if found && b.metric(t, "trackline_recording_uploads_pending") == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("recording of %s not uploaded from B within 30 s", rec.ID)
		}
		time.Sleep(100 * time.Millisecond)
	}
	codeA, _, wavA := a.getRecording(t, rec.RecordingID, nil)
	codeB, _, wavB := b.getRecording(t, rec.RecordingID, nil)
	if codeA != 200 || codeB != 200 || !bytes.Equal(wavA, wavB) {
		t.Fatalf("recording from A: %d (%d bytes), from B: %d (%d bytes), equal %v", codeA, len(wavA), codeB, len(wavB), bytes.Equal(wavA, wavB))
	}
	if w := parseWAV(t, wavA); len(w.left) < 8000 {
		t.Fatalf("recording played from A: %d frames", len(w.left))
	}
	// The key is one object in the bucket, under keys/, sealed: no key file on any node.
	keys := 0
	for obj := range s3.ListObjects(context.Background(), c.weed.Bucket, minio.ListObjectsOptions{Prefix: "keys/", Recursive: true}) {
		if obj.Key == "keys/"+customerID+".key" {
			keys++
		}
	}
	if keys != 1 {
		t.Errorf("%d key objects of the customer, want 1", keys)
	}
}
