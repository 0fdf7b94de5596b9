package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trackline/trackline/configs"
	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

func TestWriteAtomically(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	db, err := store.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	good, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("connection reset")
	tests := []struct {
		name    string
		copyTo  func(w io.Writer) (int64, error)
		wantErr bool
	}{
		{"a store", func(w io.Writer) (int64, error) { n, err := w.Write(good); return int64(n), err }, false},
		{"not a store", func(w io.Writer) (int64, error) {
			n, err := w.Write([]byte("<html>login</html>"))
			return int64(n), err
		}, true},
		{"cut short", func(w io.Writer) (int64, error) { n, _ := w.Write(good[:len(good)/2]); return int64(n), boom }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			dst := filepath.Join(out, "backup.db")
			_, err := writeAtomically(dst, tt.copyTo)
			if (err != nil) != tt.wantErr {
				t.Fatalf("writeAtomically: %v, want error %v", err, tt.wantErr)
			}
			entries, _ := os.ReadDir(out)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			want := "backup.db"
			if tt.wantErr {
				want = "" // neither the file nor a temporary one is left
			}
			if got := strings.Join(names, ","); got != want {
				t.Errorf("directory holds %q, want %q", got, want)
			}
		})
	}
}

func TestReadinessHelpers(t *testing.T) {
	dir := t.TempDir()
	if err := dirWritable(dir); err != nil {
		t.Errorf("dirWritable(%s): %v", dir, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("dirWritable left %d files", len(entries))
	}
	if err := dirWritable(filepath.Join(dir, "missing")); err == nil {
		t.Errorf("dirWritable of a missing directory: nil, want an error")
	}
	free, err := diskFree(dir)
	if err != nil || free == 0 {
		t.Errorf("diskFree = %d, %v", free, err)
	}
}

func TestToggleDebugOnHUP(t *testing.T) {
	lv := new(slog.LevelVar)
	lv.Set(slog.LevelWarn)
	hup := make(chan os.Signal)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { toggleDebugOnHUP(ctx, hup, lv, slog.LevelWarn, slog.New(slog.DiscardHandler)); close(done) }()
	for i, want := range []slog.Level{slog.LevelDebug, slog.LevelWarn, slog.LevelDebug} {
		hup <- os.Interrupt // any signal value: the channel is SIGHUP's
		deadline := time.Now().Add(time.Second)
		for lv.Level() != want && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if lv.Level() != want {
			t.Fatalf("after SIGHUP %d: level %v, want %v", i+1, lv.Level(), want)
		}
	}
	cancel()
	<-done
}

// A node configured for PostgreSQL opens it once the backend does every store operation
// (store.PostgresMissing is empty; until then it names what is missing and opens nothing).
// The DSN here reaches no server: the open fails, naming the server, not the backend.
func TestOpenStoreRefusesIncompletePostgres(t *testing.T) {
	missing := store.PostgresMissing()
	cfg := &configs.Config{DataDir: t.TempDir(), Store: configs.Store{Driver: configs.StorePostgres, DSN: "postgres://trackline@127.0.0.1:1/trackline"}}
	db, err := openStore(context.Background(), cfg, slog.New(slog.DiscardHandler), nil, nil)
	if err == nil {
		db.Close()
		t.Fatal("opened a store on PostgreSQL with no server")
	}
	switch {
	case len(missing) > 0 && (!strings.Contains(err.Error(), "store.driver postgres is not complete yet") || !strings.Contains(err.Error(), missing[0])):
		t.Fatalf("error = %v, want the missing operations named", err)
	case len(missing) == 0 && (strings.Contains(err.Error(), "not complete") || !strings.Contains(err.Error(), "127.0.0.1:1")):
		t.Fatalf("error = %v, want the unreachable server named", err)
	}
	cfg.Store = configs.Store{Driver: configs.StoreBbolt}
	db, err = openStore(context.Background(), cfg, slog.New(slog.DiscardHandler), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.Driver() != "bbolt" || db.Ready(context.Background()) != nil {
		t.Fatalf("bbolt store: driver %s, ready %v", db.Driver(), db.Ready(context.Background()))
	}
}

// The keyring's field keys reach the store: made on a write, ErrNoFieldKey once destroyed.
func TestKeyringFields(t *testing.T) {
	keys, err := keyring.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := keyringFields{keys}
	if _, err := f.FieldKey("acme", false); !errors.Is(err, store.ErrNoFieldKey) {
		t.Fatalf("read of a customer without a key: %v", err)
	}
	made, err := f.FieldKey("acme", true)
	if err != nil || len(made) != 32 {
		t.Fatalf("write: %x %v", made, err)
	}
	if again, err := f.FieldKey("acme", false); err != nil || !bytes.Equal(again, made) {
		t.Fatalf("read: %x %v", again, err)
	}
	if err := keys.Destroy("acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.FieldKey("acme", false); !errors.Is(err, store.ErrNoFieldKey) {
		t.Fatalf("read after Destroy: %v", err)
	}
}
