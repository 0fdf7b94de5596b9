package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"testing"
	"time"
)

// TestSessionsSurviveSIGKILL creates sessions concurrently, kills the binary
// with SIGKILL right after the last answer, restarts it on the same data
// directory and checks that every answered session is still there with its
// number: attribution finds it and a touch renews it without a new number.
func TestSessionsSurviveSIGKILL(t *testing.T) {
	const (
		sessions = 300
		workers  = 16
	)
	// A pool larger than the number of sessions: no number is given twice,
	// so a touch must keep each session's number.
	s := startServer(t, testConfig{poolSize: sessions + 100})

	type answered struct {
		id, number string
	}
	var (
		mu      sync.Mutex
		answers []answered
	)
	jobs := make(chan int)
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				body, _ := json.Marshal(map[string]string{
					"site_key":    siteKey,
					"landing_url": fmt.Sprintf("%s/durable/%d", apiOrigin, i),
					"referrer":    "https://www.google.com/",
				})
				resp, err := do(ctx, httpClient, http.MethodPost, "http://"+s.HTTP+"/v1/sessions",
					"text/plain", body, http.Header{"Origin": {apiOrigin}})
				if err != nil {
					t.Errorf("session %d: %v", i, err)
					continue
				}
				if resp.Status != http.StatusCreated {
					t.Errorf("session %d: status %d, want 201: %s", i, resp.Status, resp.Body)
					continue
				}
				var a sessionAnswer
				if err := json.Unmarshal(resp.Body, &a); err != nil || a.SessionID == "" || a.Number == "" {
					t.Errorf("session %d: bad answer %s (%v)", i, resp.Body, err)
					continue
				}
				mu.Lock()
				answers = append(answers, answered{a.SessionID, a.Number})
				mu.Unlock()
			}
		})
	}
	for i := range sessions {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	s.Kill()

	if len(answers) != sessions {
		t.Fatalf("%d of %d sessions answered", len(answers), sessions)
	}
	byNumber := map[string][]string{}
	for _, a := range answers {
		byNumber[a.number] = append(byNumber[a.number], a.id)
	}
	for n, ids := range byNumber {
		if len(ids) > 1 {
			t.Errorf("number %s given to %d sessions %v although the pool had free numbers", n, len(ids), ids)
		}
	}

	s.Restart()

	if got := s.sessionsTotal(t); got != sessions {
		t.Errorf("after restart sessions_total = %d, want %d", got, sessions)
	}

	t.Run("attribution", func(t *testing.T) {
		at := time.Now().UTC().Format(time.RFC3339Nano)
		numbers := make([]string, 0, len(byNumber))
		for n := range byNumber {
			numbers = append(numbers, n)
		}
		sort.Strings(numbers)
		failures := 0
		for _, n := range numbers {
			ids := byNumber[n]
			q := url.Values{"number": {n}, "at": {at}}
			var attr map[string]any
			s.adminGet(t, "/v1/customers/"+customerID+"/attribution?"+q.Encode(), &attr)
			// The most recent session given n is the last one answered.
			if got, want := sessionIDOf(attr), ids[len(ids)-1]; got != want {
				t.Errorf("attribution of %s = session %q, want %q: %v", n, got, want, attr)
				if failures++; failures > 10 {
					t.Fatalf("too many failures")
				}
			}
		}
	})

	t.Run("touch", func(t *testing.T) {
		failures := 0
		for _, a := range answers {
			resp, err := s.touch(ctx, httpClient, a.id)
			if err != nil {
				t.Fatalf("touch %s: %v", a.id, err)
			}
			var got sessionAnswer
			if resp.Status != http.StatusOK {
				t.Errorf("touch %s: status %d, want 200: %s", a.id, resp.Status, resp.Body)
			} else if err := json.Unmarshal(resp.Body, &got); err != nil {
				t.Errorf("touch %s: %v: %s", a.id, err, resp.Body)
			} else if got.SessionID != a.id || got.Number != a.number {
				t.Errorf("touch %s: session %s number %s, want the session's own number %s", a.id, got.SessionID, got.Number, a.number)
			} else {
				continue
			}
			if failures++; failures > 10 {
				t.Fatalf("too many failures")
			}
		}
	})
}

// TestAttributionFollowsReuseAcrossRestart exhausts a small pool so that
// numbers are given to several sessions in turn, kills the binary and checks
// after the restart that each number is attributed to the most recent session
// that was given it.
func TestAttributionFollowsReuseAcrossRestart(t *testing.T) {
	const (
		poolSize = 3
		sessions = 3*poolSize + 1
	)
	s := startServer(t, testConfig{poolSize: poolSize})
	latest := map[string]string{} // number -> the last session given it
	var order []string
	for i := range sessions {
		a := s.newSession(t, apiOrigin, map[string]string{
			"site_key": siteKey, "landing_url": fmt.Sprintf("%s/reuse/%d", apiOrigin, i),
		})
		latest[a.Number] = a.SessionID
		order = append(order, a.Number)
		// Distinct assignment times, so that "most recent" is well defined.
		time.Sleep(5 * time.Millisecond)
	}
	if len(latest) != poolSize {
		t.Fatalf("%d sessions used %d numbers %v, want all %d of the pool", sessions, len(latest), order, poolSize)
	}
	s.Kill()
	s.Restart()

	at := time.Now().UTC().Format(time.RFC3339Nano)
	for n, want := range latest {
		t.Run(n, func(t *testing.T) {
			var attr map[string]any
			s.adminGet(t, "/v1/customers/"+customerID+"/attribution?"+url.Values{"number": {n}, "at": {at}}.Encode(), &attr)
			if got := sessionIDOf(attr); got != want {
				t.Errorf("attribution of %s = session %q, want the most recent %q: %v", n, got, want, attr)
			}
			resp, err := s.touch(context.Background(), httpClient, want)
			if err != nil {
				t.Fatalf("touch: %v", err)
			}
			if resp.Status != http.StatusOK {
				t.Fatalf("touch of the number's current session %s: status %d, want 200: %s", want, resp.Status, resp.Body)
			}
			if a := decodeSession(t, resp); a.Number != n {
				t.Errorf("touch of %s: number %s, want %s", want, a.Number, n)
			}
		})
	}
}
