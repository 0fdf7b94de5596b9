package integrations

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trackline/trackline/internal/pgtest"
	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
)

// killedNodeEnv names the database of the node TestWebhookDeliveredAfterItsNodeIsKilled
// starts as a process of its own (this test binary, running TestWebhookNodeProcess).
const killedNodeEnv = "TRACKLINE_TEST_WEBHOOK_NODE_DSN"

// At least once across a kill -9 on PostgreSQL: a node (a process of its own) claims a
// call's event and sends it; the receiver holds that request unanswered, and the node is
// killed with SIGKILL while its attempt is in flight. Another node, started after the kill,
// leaves the delivery alone while the dead node's claim lasts (no second attempt while the
// first may still be answered), and delivers it once the claim has lapsed: the receiver gets
// the same message (webhook-id) a second time, answers it, and the store has it delivered.
func TestWebhookDeliveredAfterItsNodeIsKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and a node process")
	}
	srv, err := pgtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	ctx := context.Background()
	if err := srv.CreateDatabase(ctx, "hooks", ""); err != nil {
		t.Fatal(err)
	}
	dsn := srv.DSN("hooks")

	type arrival struct {
		id string
		at time.Time
	}
	var (
		mu       sync.Mutex
		arrivals []arrival
		first    = make(chan struct{})
		release  = make(chan struct{}) // the held request ends with the test
	)
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		arrivals = append(arrivals, arrival{r.Header.Get("webhook-id"), time.Now()})
		n := len(arrivals)
		mu.Unlock()
		if n == 1 {
			close(first)
			select { // the killed node's attempt: never answered
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rc.Close()
	defer close(release)

	db, err := store.OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	at := time.Now().UTC()
	call := store.Call{ID: pool.NewID(at), CustomerID: "acme", Dialled: "+31850000001", Start: at}
	if err := db.Write(ctx, func(tx *store.Tx) error {
		if err := tx.CreateCustomer(&store.Customer{ID: "acme", Status: store.StatusActive, SiteKey: "acme-key-0001"}); err != nil {
			return err
		}
		if err := tx.PutEndpoint(&store.Endpoint{ID: "crm", CustomerID: "acme", URL: rc.URL,
			EventTypes: []store.EventType{store.EventCallRinging}, Secret: secretA, Created: at}); err != nil {
			return err
		}
		return tx.PutCall(&call)
	}); err != nil {
		t.Fatal(err)
	}

	// Node A: this test binary as a process of its own, delivering with a 2 s timeout
	// (claims of 6 s).
	node := exec.Command(os.Args[0], "-test.run=^TestWebhookNodeProcess$", "-test.v")
	node.Env = append(os.Environ(), killedNodeEnv+"="+dsn)
	out, err := node.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	node.Stderr = node.Stdout
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			logged.WriteString(sc.Text() + "\n")
		}
	}()
	select {
	case <-first:
	case <-time.After(30 * time.Second):
		node.Process.Kill()
		node.Wait()
		<-logDone
		t.Fatalf("node A sent nothing in 30 s; its output:\n%s", logged.String())
	}
	if err := node.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	killed := time.Now()
	node.Wait()
	<-logDone

	// Node B: started after the kill, in this process.
	b, err := store.OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	hooks, err := New(b, nodeConfig())
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{})
	go func() { hooks.Run(runCtx); close(done) }()
	defer func() { stop(); <-done; hooks.Close() }()

	deadline := time.Now().Add(60 * time.Second)
	for {
		dels, _, err := b.Deliveries("acme", "crm", "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(dels) == 1 && dels[0].State == store.DeliveryDelivered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not delivered 60 s after the kill: %+v", dels)
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	got := append([]arrival(nil), arrivals...)
	mu.Unlock()
	if len(got) != 2 || got[0].id == "" || got[1].id != got[0].id {
		t.Fatalf("the receiver got %+v: want the same message twice (the killed node's attempt, then node B's)", got)
	}
	// Node B waited for node A's claim: its attempt came at least most of a claim (6 s)
	// after A's, which A made just before it sent.
	if gap := got[1].at.Sub(got[0].at); gap < 5*time.Second {
		t.Errorf("node B attempted %v after node A: within A's claim", gap)
	}
	t.Logf("node A's attempt at +0, killed at +%v, node B's delivery at +%v", killed.Sub(got[0].at).Round(time.Millisecond),
		got[1].at.Sub(got[0].at).Round(time.Millisecond))
}

// nodeConfig is the delivery config of the nodes of TestWebhookDeliveredAfterItsNodeIsKilled:
// the receiver on loopback allowed, attempts of 2 s (claims of 6 s).
func nodeConfig() Config {
	return Config{Timeout: 2 * time.Second, AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
}

// TestWebhookNodeProcess is node A of TestWebhookDeliveredAfterItsNodeIsKilled: it runs only
// in the process that test starts, and delivers until it is killed.
func TestWebhookNodeProcess(t *testing.T) {
	dsn := os.Getenv(killedNodeEnv)
	if dsn == "" {
		t.Skip("node A of TestWebhookDeliveredAfterItsNodeIsKilled: runs only in the process it starts")
	}
	db, err := store.OpenPostgres(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	hooks, err := New(db, nodeConfig())
	if err != nil {
		t.Fatal(err)
	}
	hooks.Run(context.Background()) // until killed
}
