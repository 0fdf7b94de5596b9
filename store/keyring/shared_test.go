package keyring

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/trackline/trackline/internal/weedtest"
)

// The shared keys' tests run against a real SeaweedFS (internal/weedtest), one server for
// the package, each test under a prefix of its own.

var weed struct {
	once sync.Once
	dir  string
	s    *weedtest.Server
	err  error
}

func sharedWeed(t *testing.T) *weedtest.Server {
	t.Helper()
	weed.once.Do(func() {
		weed.dir, weed.err = os.MkdirTemp("", "keyring-weed-")
		if weed.err == nil {
			weed.s, weed.err = weedtest.Run(weed.dir)
		}
	})
	if weed.err != nil {
		t.Fatal(weed.err)
	}
	return weed.s
}

func TestMain(m *testing.M) {
	code := m.Run()
	if weed.s != nil {
		weed.s.Close()
	}
	if weed.dir != "" {
		os.RemoveAll(weed.dir)
	}
	os.Exit(code)
}

var testMaster = bytes.Repeat([]byte{0x42}, MasterKeySize)

// flakyTransport fails every request while down is set.
type flakyTransport struct {
	down atomic.Bool
}

func (f *flakyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if f.down.Load() {
		return nil, errors.New("object store unreachable (test)")
	}
	return http.DefaultTransport.RoundTrip(r)
}

// sharedNode is one node's keyring on the test's prefix of the weed server.
func sharedNode(t *testing.T, s *weedtest.Server, dir string, tr http.RoundTripper) *Keyring {
	t.Helper()
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "keys")
	}
	k, err := Open(dir, WithMasterKey(testMaster), WithObjects(Objects{
		Endpoint: s.Endpoint, Bucket: s.Bucket, AccessKey: s.AccessKey, SecretKey: s.SecretKey,
		Prefix: t.Name() + "/", Revalidate: 200 * time.Millisecond, Transport: tr,
	}))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// same tells whether two keys are one secret's.
func same(a, b *Key) bool {
	return bytes.Equal(a.FieldKey(), b.FieldKey()) && a.Pseudonym("+31612345678") == b.Pseudonym("+31612345678")
}

func TestSharedKeysTwoNodesSeeOneKey(t *testing.T) {
	s := sharedWeed(t)
	a, b := sharedNode(t, s, "", nil), sharedNode(t, s, "", nil)
	if err := a.Check(context.Background()); err != nil {
		t.Fatalf("check: %v", err)
	}
	if _, err := b.Lookup("acme"); !errors.Is(err, ErrNoKey) {
		t.Fatalf("lookup before any key: %v, want ErrNoKey", err)
	}
	ka, err := a.Get("acme")
	if err != nil {
		t.Fatal(err)
	}
	kb, err := b.Lookup("acme")
	if err != nil {
		t.Fatal(err)
	}
	if !same(ka, kb) {
		t.Fatal("two nodes hold two keys for one customer")
	}
	if kb2, err := b.Get("acme"); err != nil || !same(ka, kb2) {
		t.Fatalf("get on the other node: %v, or another key", err)
	}
	other, err := b.Get("bakery")
	if err != nil || same(ka, other) {
		t.Fatalf("a second customer: %v, or the first one's key", err)
	}

	// The object is sealed with the master key, and no file is left in the keys directories.
	obj, err := s.Client(t).GetObject(context.Background(), s.Bucket, t.Name()+"/acme.key", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(obj)
	obj.Close()
	if err != nil || len(raw) != sealedSize || raw[len(magic)] != modeSealed {
		t.Fatalf("key object: %d bytes, err %v; want %d sealed", len(raw), err, sealedSize)
	}
	for _, k := range []*Keyring{a, b} {
		if _, err := os.Stat(filepath.Join(k.Dir(), "acme.key")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a key file in %s: %v", k.Dir(), err)
		}
	}
	// A node with another master key cannot open it.
	wrong, err := Open(filepath.Join(t.TempDir(), "keys"), WithMasterKey(bytes.Repeat([]byte{1}, MasterKeySize)),
		WithObjects(Objects{Endpoint: s.Endpoint, Bucket: s.Bucket, AccessKey: s.AccessKey, SecretKey: s.SecretKey, Prefix: t.Name() + "/"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wrong.Lookup("acme"); !errors.Is(err, ErrMasterKey) {
		t.Errorf("another master key: %v, want ErrMasterKey", err)
	}
}

func TestSharedKeysNeedAMasterKey(t *testing.T) {
	_, err := Open(t.TempDir(), WithObjects(Objects{Endpoint: "127.0.0.1:1", Bucket: "b"}))
	if err == nil {
		t.Fatal("shared keys opened without a master key")
	}
}

func TestSharedKeysDestroyedForEveryNode(t *testing.T) {
	s := sharedWeed(t)
	a, b := sharedNode(t, s, "", nil), sharedNode(t, s, "", nil)
	c := sharedNode(t, s, "", nil)
	ka, err := a.Get("acme")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []*Keyring{b, c} { // cached on both
		if _, err := k.Lookup("acme"); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Destroy("acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Lookup("acme"); !errors.Is(err, ErrNoKey) {
		t.Fatalf("destroying node: %v, want ErrNoKey", err)
	}
	if a.PendingDestroys() != 0 {
		t.Errorf("%d destructions pending after a confirmed one", a.PendingDestroys())
	}
	// b hears of the customer's change; c finds out at its next revalidation.
	b.Forget("acme")
	if _, err := b.Lookup("acme"); !errors.Is(err, ErrNoKey) {
		t.Fatalf("node told of the change: %v, want ErrNoKey", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := c.Lookup("acme")
		if errors.Is(err, ErrNoKey) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node not told still has the destroyed key after 5 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A key made after the destruction is a new one.
	kn, err := c.Get("acme")
	if err != nil || same(ka, kn) {
		t.Fatalf("a key made after the destruction: %v, or the destroyed one", err)
	}
}

func TestSharedKeysRaceAgrees(t *testing.T) {
	s := sharedWeed(t)
	nodes := []*Keyring{sharedNode(t, s, "", nil), sharedNode(t, s, "", nil), sharedNode(t, s, "", nil)}
	const customers, perNode = 10, 4
	for i := range customers {
		id := fmt.Sprintf("c%02d", i)
		start := make(chan struct{})
		keys := make(chan *Key, len(nodes)*perNode)
		errs := make(chan error, len(nodes)*perNode)
		var wg sync.WaitGroup
		for _, n := range nodes {
			for range perNode {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					k, err := n.Get(id)
					if err != nil {
						errs <- err
						return
					}
					keys <- k
				}()
			}
		}
		close(start)
		wg.Wait()
		close(keys)
		close(errs)
		for err := range errs {
			t.Fatalf("%s: %v", id, err)
		}
		var first *Key
		for k := range keys {
			if first == nil {
				first = k
			} else if !same(first, k) {
				t.Fatalf("%s: the nodes made different keys at once", id)
			}
		}
		// And a node started later reads that one.
		late := sharedNode(t, s, "", nil)
		if k, err := late.Lookup(id); err != nil || !same(first, k) {
			t.Fatalf("%s: a later node: %v, or another key", id, err)
		}
	}
}

func TestSharedKeysDestroyKeptUntilConfirmed(t *testing.T) {
	s := sharedWeed(t)
	tr := &flakyTransport{}
	dir := filepath.Join(t.TempDir(), "keys")
	a := sharedNode(t, s, dir, tr)
	b := sharedNode(t, s, "", nil)
	if _, err := a.Get("acme"); err != nil {
		t.Fatal(err)
	}
	tr.down.Store(true)
	if err := a.Destroy("acme"); err == nil {
		t.Fatal("destroy answered done with the object store down")
	}
	if _, err := a.Lookup("acme"); !errors.Is(err, ErrNoKey) || !errors.Is(err, ErrDestroying) {
		t.Fatalf("lookup during an unconfirmed destruction: %v", err)
	}
	if _, err := a.Get("acme"); !errors.Is(err, ErrDestroying) {
		t.Fatalf("get during an unconfirmed destruction: %v (it must make no key)", err)
	}
	if _, err := b.Lookup("acme"); err != nil {
		t.Fatalf("the object is still there for now: %v", err)
	}
	// A restart keeps the destruction.
	a2 := sharedNode(t, s, dir, tr)
	if a2.PendingDestroys() != 1 {
		t.Fatalf("after a restart %d destructions pending, want 1", a2.PendingDestroys())
	}
	if _, err := a2.Get("acme"); !errors.Is(err, ErrDestroying) {
		t.Fatalf("get after a restart: %v", err)
	}
	// The store is back: Run completes it.
	tr.down.Store(false)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a2.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for a2.PendingDestroys() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("destruction not completed 10 s after the object store came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Forget("acme")
	if _, err := b.Lookup("acme"); !errors.Is(err, ErrNoKey) {
		t.Fatalf("other node after the completed destruction: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, destroyDir)); len(entries) != 0 {
		t.Errorf("markers left: %v", entries)
	}
}

func TestSharedKeysCheckRefusesUnconditionalStore(t *testing.T) {
	s := sharedWeed(t)
	tr := &flakyTransport{}
	k := sharedNode(t, s, "", tr)
	if err := k.Check(context.Background()); err != nil {
		t.Fatalf("check against SeaweedFS: %v", err)
	}
	k.shared.unconditional = true // as an object store that ignores If-None-Match answers
	if err := k.Check(context.Background()); !errors.Is(err, ErrUnconditional) {
		t.Fatalf("check of an object store that ignores If-None-Match: %v", err)
	}
	k.shared.unconditional = false
	tr.down.Store(true)
	if err := k.Check(context.Background()); !errors.Is(err, ErrObjectStore) {
		t.Fatalf("check of an unreachable store: %v", err)
	}
}

// A node that kept its keys in files moves to shared keys: each key file is the customer's
// key, put in the bucket at its first use, so the recordings it encrypted stay readable and
// other nodes get the same key; a destruction removes the file as well as the object.
func TestSharedKeysTakeOverKeyFiles(t *testing.T) {
	s := sharedWeed(t)
	dir := filepath.Join(t.TempDir(), "keys")
	files, err := Open(dir, WithMasterKey(testMaster))
	if err != nil {
		t.Fatal(err)
	}
	before, err := files.Get("acme")
	if err != nil {
		t.Fatal(err)
	}
	a := sharedNode(t, s, dir, nil)
	b := sharedNode(t, s, "", nil)
	ka, err := a.Lookup("acme") // Lookup too: the key exists, in the file
	if err != nil || !same(before, ka) {
		t.Fatalf("shared keyring on the old directory: %v, or another key", err)
	}
	if kb, err := b.Lookup("acme"); err != nil || !same(before, kb) {
		t.Fatalf("another node: %v, or another key", err)
	}
	if err := a.Destroy("acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "acme.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("key file after the destruction: %v", err)
	}
	a2 := sharedNode(t, s, dir, nil)
	if _, err := a2.Lookup("acme"); !errors.Is(err, ErrNoKey) {
		t.Errorf("the destroyed key came back: %v", err)
	}
}
