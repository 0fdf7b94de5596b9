package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The cluster's SIP front (docs/cluster.md): Kamailio with configs/kamailio/kamailio.cfg on
// 127.0.0.1, three trackline nodes on 127.0.0.2, .3 and .4 (each with its own bbolt store:
// the shared PostgreSQL store does not exist yet), sipp as the trunk (sending to Kamailio)
// and as the business line.

const (
	// clusterPing is the dispatcher's ping interval (PING_INTERVAL), seconds.
	clusterPing = 1
	// clusterFR is Kamailio's FR_TIMER: how long a node has to answer, milliseconds.
	clusterFR = 1000
	// clusterDetect bounds how long a dead or draining node stays in service: one ping
	// interval, one ping's timeout, and a margin for a loaded machine.
	clusterDetect = clusterPing*time.Second + clusterFR*time.Millisecond + 1500*time.Millisecond
)

// TestClusterKamailio runs four phases, each bounded in calls and time (about 40 s in all):
// calls spread over the three nodes with BYE through Kamailio both ways; an operator's drain
// (SIGUSR1: 503 to pings and INVITEs, failover, out of service; SIGUSR2: back in); kill -9
// of a node under load (detection within the bound, only its own calls lost, new calls
// failed over, no committed record lost on any node); a SIGTERM drain with a call in
// progress (503 to pings, no new call, its call completes, exit 0).
func TestClusterKamailio(t *testing.T) {
	sippBinary(t)
	kamailioBinary(t)

	// The business line: one sipp UAS after another on this port, one per phase.
	linePort := stableUDPPort(t, "127.0.0.1")
	cfg := testConfig{
		businessLines: []string{businessLine("+31852087972", linePort)},
		// Kamailio's address is the nodes' only trunk source.
		trunkSources: []string{"127.0.0.1/32"},
		flyerNumbers: []string{flyerNumber},
	}
	ips := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}
	nodes := make([]*server, len(ips))
	byIP := map[string]*server{}
	var addrs []string
	for i, ip := range ips {
		nodes[i] = startServer(t, cfg, "--sip", ip+":0")
		if h, _, _ := net.SplitHostPort(nodes[i].SIP); h != ip {
			t.Fatalf("node %d listens on %s, want %s", i, nodes[i].SIP, ip)
		}
		byIP[ip] = nodes[i]
		addrs = append(addrs, nodes[i].SIP)
	}
	// Round-robin (the config's default hashes the Call-ID): every node gets its share of a
	// few calls, so the phases below can count on it.
	kam := startKamailio(t, kamailioOpts{nodes: addrs, trunkNet: "127.0.0.1/32", pingInterval: clusterPing, frTimer: clusterFR,
		algorithm: "4"})
	for _, a := range addrs {
		if _, err := kam.waitNode(a, 'A', 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// Every node answers Kamailio's pings with 200: still in service after a few pings.
	time.Sleep(2 * clusterPing * time.Second)
	for _, a := range addrs {
		if _, err := kam.waitNode(a, 'A', 0); err != nil {
			t.Fatalf("a node out of service without cause: %v", err)
		}
	}

	// committed holds, per node, the calls the trunk saw complete there: its records must
	// hold each of them.
	committed := map[string]map[string]bool{} // node IP -> Call-IDs
	commit := func(calls map[string]*tracedCall) {
		for id, c := range calls {
			if c.ended && c.node != "" {
				if committed[c.node] == nil {
					committed[c.node] = map[string]bool{}
				}
				committed[c.node][id] = true
			}
		}
	}

	// Phase 1: calls spread over the three nodes; the trunk hangs up (its BYE goes through
	// Kamailio to the node), then the business line hangs up (the node's BYE goes through
	// Kamailio to the trunk).
	t.Run("spread", func(t *testing.T) {
		const n = 9
		line := runSipp(t, "line1", sippRun{scenario: "uas-answer.xml", port: linePort, calls: n, timeout: 40 * time.Second})
		trunk := runSipp(t, "trunk1", sippRun{scenario: "uac-answer.xml", remote: kam.addr, service: flyerNumber,
			calls: n, rate: 10, pauseMS: 300, timeout: 30 * time.Second})
		if code := trunk.waitFor(45 * time.Second); code != 0 {
			t.Fatalf("trunk sipp exited %d, want 0\n%s", code, trunk.diagnostics())
		}
		if code := line.waitFor(10 * time.Second); code != 0 {
			t.Errorf("line sipp exited %d, want 0\n%s", code, line.diagnostics())
		}
		calls := callsOf(trunk.trace())
		perNode := map[string]int{}
		for id, c := range calls {
			perNode[c.node]++
			if !c.ended {
				t.Errorf("call %s: no 200 to its BYE", id)
			}
			// The 200 names Kamailio in its Record-Route; the trunk's BYE follows it.
			if rr := strings.Join(c.answer.hdr["record-route"], ","); !strings.Contains(rr, kam.addr) {
				t.Errorf("call %s: 200 without Kamailio's Record-Route: %q", id, rr)
			}
			for _, b := range c.byes {
				if b.sent && !strings.Contains(b.first("route"), kam.addr) {
					t.Errorf("call %s: the trunk's BYE is not routed through Kamailio: Route %q", id, b.first("route"))
				}
			}
		}
		if len(calls) != n {
			t.Errorf("%d calls in the trunk's trace, want %d", len(calls), n)
		}
		for _, ip := range ips {
			if perNode[ip] == 0 {
				t.Errorf("node %s took no call: %v", ip, perNode)
			}
		}
		t.Logf("caller hangs up: calls per node %v", perNode)
		commit(calls)

		// The business line hangs up: the node sends BYE towards the trunk, through Kamailio.
		const m = 6
		line = runSipp(t, "line1b", sippRun{scenario: "uas-answer-hangup.xml", port: linePort, calls: m, pauseMS: 300, timeout: 40 * time.Second})
		trunk = runSipp(t, "trunk1b", sippRun{scenario: "uac-wait-bye.xml", remote: kam.addr, service: flyerNumber,
			calls: m, rate: 10, timeout: 30 * time.Second})
		if code := trunk.waitFor(45 * time.Second); code != 0 {
			t.Fatalf("trunk sipp exited %d, want 0\n%s", code, trunk.diagnostics())
		}
		if code := line.waitFor(10 * time.Second); code != 0 {
			t.Errorf("line sipp exited %d, want 0\n%s", code, line.diagnostics())
		}
		calls = callsOf(trunk.trace())
		perNode = map[string]int{}
		for id, c := range calls {
			perNode[c.node]++
			var got bool
			for _, b := range c.byes {
				if b.sent {
					continue
				}
				got = true
				// The node's BYE reached the trunk from Kamailio (its Via on top), not
				// straight from the node.
				if via := b.first("via"); !strings.Contains(via, kam.addr) {
					t.Errorf("call %s: the node's BYE did not come through Kamailio: top Via %q", id, via)
				}
			}
			if !got || !c.ended {
				t.Errorf("call %s: no BYE from the node answered", id)
			}
		}
		if len(calls) != m {
			t.Errorf("%d calls in the trunk's trace, want %d", len(calls), m)
		}
		t.Logf("business line hangs up: calls per node %v", perNode)
		commit(calls)
		for _, ip := range ips {
			checkRecords(t, ip, byIP[ip], committed[ip])
		}
	})
	if t.Failed() {
		return
	}

	// Phase 2: an operator drains a node (SIGUSR1) and lifts the drain (SIGUSR2): out of
	// service while it drains, back in after.
	t.Run("operator drain", func(t *testing.T) {
		held := ips[0]
		node := byIP[held]
		place := func(name string, n int) map[string]*tracedCall {
			t.Helper()
			line := runSipp(t, "line-"+name, sippRun{scenario: "uas-answer.xml", port: linePort, calls: n, timeout: 30 * time.Second})
			trunk := runSipp(t, "trunk-"+name, sippRun{scenario: "uac-answer.xml", remote: kam.addr, service: flyerNumber,
				calls: n, rate: 10, pauseMS: 200, timeout: 20 * time.Second})
			if code := trunk.waitFor(30 * time.Second); code != 0 {
				t.Fatalf("trunk sipp exited %d, want 0\n%s", code, trunk.diagnostics())
			}
			if code := line.waitFor(10 * time.Second); code != 0 {
				t.Errorf("line sipp exited %d, want 0\n%s", code, line.diagnostics())
			}
			calls := callsOf(trunk.trace())
			commit(calls)
			return calls
		}
		// Pings off for a moment: Kamailio still counts the node in service when the first
		// calls arrive, so they meet its 503 and fail over.
		if _, err := kam.rpc("dispatcher.ping_active", "0"); err != nil {
			t.Fatal(err)
		}
		if err := node.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		var res string
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if res = sipOptions(t, "127.0.0.1", node.SIP); strings.HasPrefix(res, "SIP/2.0 503") {
				break
			}
		}
		if !strings.HasPrefix(res, "SIP/2.0 503") || sipHeader(res, "Retry-After") == "" {
			t.Fatalf("drained node's answer to OPTIONS: want 503 with Retry-After, got:\n%s", res)
		}
		early := place("early", 6)
		failedOver := map[string]bool{}
		for _, id := range kam.loggedCalls("failover to node") {
			if early[id] != nil {
				failedOver[id] = true
			}
		}
		for id, c := range early {
			if c.node == held || !c.ended {
				t.Errorf("call %s as %s begins to drain: taken by %s, completed %v", id, held, c.node, c.ended)
			}
		}
		// Round-robin picked the draining node for a third of them: its 503 sent each to
		// the next node, and did not take the node out (the pings decide).
		if len(failedOver) < 2 {
			t.Errorf("%d of %d calls failed over from the draining node's 503, want 2 or more", len(failedOver), len(early))
		}
		if _, err := kam.waitNode(node.SIP, 'A', 0); err != nil {
			t.Errorf("a 503 took the node out of service: %v", err)
		}
		t.Logf("draining node, pings off: %d of %d calls failed over on its 503", len(failedOver), len(early))
		pingsOn := time.Now()
		if _, err := kam.rpc("dispatcher.ping_active", "1"); err != nil {
			t.Fatal(err)
		}
		if _, err := kam.waitNode(node.SIP, 'I', clusterDetect); err != nil {
			t.Fatalf("the drained node is still in service: %v", err)
		}
		t.Logf("drained node out of service %v after the pings resumed (bound %v)", time.Since(pingsOn).Round(time.Millisecond), clusterDetect)
		for id, c := range place("held", 6) {
			if c.node == held || !c.ended {
				t.Errorf("call %s while %s drains: taken by %s, completed %v", id, held, c.node, c.ended)
			}
		}

		if err := node.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
			t.Fatal(err)
		}
		back, err := kam.waitNode(node.SIP, 'A', clusterDetect)
		if err != nil {
			t.Fatalf("the node is not back in service after SIGUSR2: %v", err)
		}
		t.Logf("node back in service %v after SIGUSR2 (bound %v)", back.Round(time.Millisecond), clusterDetect)
		perNode := map[string]int{}
		for id, c := range place("lifted", 6) {
			perNode[c.node]++
			if !c.ended {
				t.Errorf("call %s on %s did not complete", id, c.node)
			}
		}
		if perNode[held] == 0 {
			t.Errorf("no call for the node after its drain was lifted: %v", perNode)
		}
		if !strings.Contains(node.Logs(), `"msg":"sip drain changed","draining":true,"by":"user defined signal 1"`) {
			t.Errorf("the node did not log its drain")
		}

		// The same drain through the admin API (PUT /v1/drain), on another node.
		other := byIP[ips[2]]
		setDrain := func(on bool) {
			t.Helper()
			body := fmt.Sprintf(`{"draining":%t}`, on)
			resp, err := do(context.Background(), httpClient, http.MethodPut, "http://"+other.Admin+"/v1/drain", "application/json",
				[]byte(body), http.Header{"Authorization": {"Bearer " + adminToken}})
			if err != nil || resp.Status != http.StatusOK || !strings.Contains(string(resp.Body), body) {
				t.Fatalf("PUT /v1/drain %s: %v %d %s", body, err, resp.Status, resp.Body)
			}
			var got struct{ Draining bool }
			other.adminGet(t, "/v1/drain", &got)
			if got.Draining != on {
				t.Fatalf("GET /v1/drain: draining %v, want %v", got.Draining, on)
			}
		}
		setDrain(true)
		if d, err := kam.waitNode(other.SIP, 'I', clusterDetect); err != nil {
			t.Fatalf("the node drained through the admin API is still in service: %v", err)
		} else {
			t.Logf("node drained by the admin API out of service in %v", d.Round(time.Millisecond))
		}
		setDrain(false)
		if _, err := kam.waitNode(other.SIP, 'A', clusterDetect); err != nil {
			t.Fatalf("the node is not back in service after PUT /v1/drain false: %v", err)
		}
		if !strings.Contains(other.Logs(), `"msg":"sip drain changed","draining":true,"by":"admin api"`) {
			t.Errorf("the node did not log its drain by the admin API")
		}
		for _, ip := range ips {
			checkRecords(t, ip, byIP[ip], committed[ip])
		}
	})
	if t.Failed() {
		return
	}

	// Phase 3: kill -9 one node while calls run on all three.
	dead := ips[2]
	t.Run("kill", func(t *testing.T) {
		const n, rate, talkMS = 40, 4, 4000
		line := runSipp(t, "line2", sippRun{scenario: "uas-answer.xml", port: linePort, calls: n, timeout: 60 * time.Second})
		trunk := runSipp(t, "trunk2", sippRun{scenario: "uac-answer.xml", remote: kam.addr, service: flyerNumber,
			calls: n, rate: rate, pauseMS: talkMS, timeout: 45 * time.Second})
		time.Sleep(4 * time.Second)
		killed := time.Now()
		byIP[dead].Kill()
		detected, err := kam.waitNode(byIP[dead].SIP, 'I', clusterDetect)
		if err != nil {
			t.Errorf("the dead node is still in service: %v", err)
		}
		t.Logf("dead node out of service %v after the kill (bound %v)", detected.Round(time.Millisecond), clusterDetect)
		trunk.waitFor(60 * time.Second) // calls on the dead node fail: the exit code says so
		line.kill()                     // it waits for the dead node's calls in vain

		calls := callsOf(trunk.trace())
		if len(calls) != n {
			t.Errorf("%d calls in the trunk's trace, want %d", len(calls), n)
		}
		// A message of the dead node may still be on its way when the kill is sent.
		inFlight := killed.Add(200 * time.Millisecond)
		// The new calls Kamailio sent to the dead node first: it logged each with its Call-ID.
		firstToDead := map[string]bool{}
		for _, id := range kam.loggedCalls("did not answer") {
			firstToDead[id] = true
		}
		var lostOnDead, onDeadAtKill, notAnswered int
		perNode := map[string]int{}
		for id, c := range calls {
			switch {
			case c.answered.IsZero():
				notAnswered++
				t.Errorf("call %s (invited %v after the kill) was never answered", id, c.invited.Sub(killed).Round(time.Millisecond))
				continue
			case c.node == dead && c.answered.After(inFlight):
				t.Errorf("call %s answered by the dead node %v after the kill", id, c.answered.Sub(killed))
			case c.node == dead && c.answered.After(killed.Add(-time.Duration(talkMS)*time.Millisecond)):
				onDeadAtKill++ // answered, and its talk time not over, when the node died
			}
			perNode[c.node]++
			if !c.ended {
				// Only a call in progress on the dead node may be lost.
				if c.node != dead || c.answered.After(inFlight) {
					t.Errorf("call %s on node %s did not complete", id, c.node)
				}
				lostOnDead++
			}
			if firstToDead[id] {
				// It waited FR_TIMER for the dead node, then a survivor took it: only
				// while the dead node was not yet detected.
				if c.node == dead || !c.ended {
					t.Errorf("call %s sent to the dead node first: taken by %s, completed %v", id, c.node, c.ended)
				}
				if c.invited.Before(killed) || c.invited.After(killed.Add(clusterDetect)) {
					t.Errorf("call %s invited %v after the kill was sent to the dead node, want within %v", id, c.invited.Sub(killed).Round(time.Millisecond), clusterDetect)
				}
				// Kamailio's timers tick in steps: FR_TIMER fires up to a step early.
				if setup := c.answered.Sub(c.invited); setup < clusterFR*time.Millisecond*8/10 {
					t.Errorf("call %s: sent to the dead node first but answered %v after its INVITE, want about FR_TIMER (%d ms) or more", id, setup, clusterFR)
				}
			}
		}
		for id := range firstToDead {
			if calls[id] == nil {
				t.Errorf("Kamailio logged call %s to the dead node, which the trunk did not place", id)
			}
		}
		// The bound on failures while the node is detected: the calls it held when it died,
		// and no more; new calls fail over (delayed by FR_TIMER, not lost), at most as many
		// as arrive within the detection bound.
		if lostOnDead > onDeadAtKill {
			t.Errorf("%d calls lost, more than the %d the dead node held", lostOnDead, onDeadAtKill)
		}
		if maxFailover := rate * int((clusterDetect+time.Second-1)/time.Second); len(firstToDead) > maxFailover {
			t.Errorf("%d new calls went to the dead node first, want at most %d (%d/s for %v)", len(firstToDead), maxFailover, rate, clusterDetect)
		}
		for _, ip := range ips[:2] {
			if perNode[ip] == 0 {
				t.Errorf("survivor %s took no call: %v", ip, perNode)
			}
		}
		t.Logf("kill -9: calls per node %v; %d lost (all in progress on the dead node, which held %d); %d new calls failed over; %d never answered",
			perNode, lostOnDead, onDeadAtKill, len(firstToDead), notAnswered)
		commit(calls)
		// No committed record lost on the survivors, this phase's and the earlier ones.
		for _, ip := range ips[:2] {
			checkRecords(t, ip, byIP[ip], committed[ip])
		}
		// Nor on the dead node: started again on its store, it holds every call it
		// completed, and completes the records of the calls it lost.
		byIP[dead].Restart()
		checkRecords(t, dead, byIP[dead], committed[dead])
		recovered := 0
		for _, r := range byIP[dead].calls(t, url.Values{"number": {flyerNumber}, "limit": {"1000"}}) {
			if c := calls[r.CallIDA]; c != nil && !c.ended {
				if r.EndReason != "switch restarted" || r.End.IsZero() {
					t.Errorf("lost call %s: record %+v, want completed as %q", r.CallIDA, r, "switch restarted")
				}
				recovered++
			}
		}
		if recovered != lostOnDead {
			t.Errorf("%d records of lost calls on the dead node, want %d", recovered, lostOnDead)
		}
		byIP[dead].Stop() // its new port is not in Kamailio's list: it stays out of service
	})
	if t.Failed() {
		return
	}

	// Phase 4: a node drains (SIGTERM) while it holds a call: it answers pings with 503 and
	// takes no new call; its call goes on to the end, then it exits.
	draining := ips[1]
	t.Run("drain", func(t *testing.T) {
		node := byIP[draining]
		line := runSipp(t, "line3", sippRun{scenario: "uas-answer.xml", port: linePort, calls: 20, timeout: 40 * time.Second})
		long := runSipp(t, "trunk3long", sippRun{scenario: "uac-answer.xml", remote: kam.addr, service: flyerNumber,
			calls: 4, rate: 20, pauseMS: 6000, timeout: 30 * time.Second})
		// Wait until the node holds a call in progress.
		deadline := time.Now().Add(5 * time.Second)
		for !holdsCall(t, node) {
			if time.Now().After(deadline) {
				t.Fatalf("node %s holds no call to drain", draining)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err := node.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		// Its answer to a ping (sent here from the trunk's address, as Kamailio does).
		var res string
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if res = sipOptions(t, "127.0.0.1", node.SIP); strings.HasPrefix(res, "SIP/2.0 503") {
				break
			}
		}
		if !strings.HasPrefix(res, "SIP/2.0 503") || sipHeader(res, "Retry-After") == "" {
			t.Errorf("draining node's answer to OPTIONS: want 503 with Retry-After, got:\n%s", res)
		}
		if detected, err := kam.waitNode(node.SIP, 'I', clusterDetect); err != nil {
			t.Errorf("the draining node is still in service: %v", err)
		} else {
			t.Logf("draining node out of service %v after SIGTERM (bound %v)", detected.Round(time.Millisecond), clusterDetect)
		}
		// New calls while it drains: none for it.
		short := runSipp(t, "trunk3", sippRun{scenario: "uac-answer.xml", remote: kam.addr, service: flyerNumber,
			calls: 6, rate: 10, pauseMS: 200, timeout: 20 * time.Second})
		if code := short.waitFor(30 * time.Second); code != 0 {
			t.Errorf("new calls while a node drains: sipp exited %d, want 0\n%s", code, short.diagnostics())
		}
		shortCalls := callsOf(short.trace())
		for id, c := range shortCalls {
			if c.node != ips[0] {
				t.Errorf("call %s went to %s, want the one node in service (%s)", id, c.node, ips[0])
			}
		}
		commit(shortCalls)
		// The calls in progress, the draining node's too, complete.
		if code := long.waitFor(30 * time.Second); code != 0 {
			t.Errorf("calls in progress while a node drains: sipp exited %d, want 0\n%s", code, long.diagnostics())
		}
		line.kill()
		longCalls := callsOf(long.trace())
		onDraining := 0
		for id, c := range longCalls {
			if c.node == draining {
				onDraining++
			}
			if !c.ended {
				t.Errorf("call %s on %s did not complete", id, c.node)
			}
		}
		if onDraining == 0 {
			t.Errorf("the draining node held none of the calls in progress")
		}
		// Its calls ended, the node exits, with status 0, well within its drain timeout.
		select {
		case <-node.exited:
			if node.err != nil {
				t.Errorf("draining node exited: %v, want status 0", node.err)
			}
		case <-time.After(stopTimeout):
			t.Errorf("draining node did not exit within %v of its last call", stopTimeout)
		}
		commit(longCalls)
		checkRecords(t, ips[0], byIP[ips[0]], committed[ips[0]])
		// The drained node's store, read after it stopped, holds every call it completed.
		node.Restart()
		checkRecords(t, draining, node, committed[draining])
	})
}

// checkRecords checks that node's records hold every call in want (Call-IDs of the trunk's
// leg), each completed and answered, and no call that is not in want.
func checkRecords(t *testing.T, ip string, node *server, want map[string]bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs := node.calls(t, url.Values{"number": {flyerNumber}, "limit": {"1000"}})
		got := map[string]callRecord{}
		for _, r := range recs {
			got[r.CallIDA] = r
		}
		var missing, open, extra []string
		for id := range want {
			r, ok := got[id]
			switch {
			case !ok:
				missing = append(missing, id)
			case r.End.IsZero() || r.Disposition != "answered":
				open = append(open, fmt.Sprintf("%s (%s)", id, r.Disposition))
			}
		}
		for id, r := range got {
			// A call lost with its node is completed when the node starts again: not by the trunk.
			if !want[id] && r.Disposition == "answered" && !r.End.IsZero() && r.EndReason != "switch restarted" {
				extra = append(extra, id)
			}
		}
		if len(missing)+len(open) == 0 {
			if len(extra) > 0 {
				// A call the trunk saw fail (lost with its node) cannot be completed in a
				// survivor's records.
				sort.Strings(extra)
				t.Errorf("node %s: completed records of calls the trunk did not complete: %v", ip, extra)
			}
			return
		}
		if time.Now().After(deadline) {
			sort.Strings(missing)
			t.Errorf("node %s: %d of %d completed calls missing from its records %v, %d not completed %v", ip, len(missing), len(want), missing, len(open), open)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// holdsCall reports whether node has a call in progress (a record without an end).
func holdsCall(t *testing.T, node *server) bool {
	t.Helper()
	for _, r := range node.calls(t, url.Values{"number": {flyerNumber}, "limit": {"1000"}}) {
		if r.End.IsZero() {
			return true
		}
	}
	return false
}
