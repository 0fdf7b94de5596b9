package pgtest

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestServer(t *testing.T) {
	s, err := Start()
	if errors.Is(err, ErrNotInstalled) {
		t.Fatal(err) // make test installs it: a missing server is a failure, not a skip
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Exec(ctx, "CREATE DATABASE tmpl", "CREATE DATABASE other"); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, s.DSN("tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (7)"); err != nil {
		t.Fatal(err)
	}
	var fsync string
	if err := conn.QueryRow(ctx, "SHOW fsync").Scan(&fsync); err != nil || fsync != "on" {
		t.Fatalf("fsync = %q %v, want on", fsync, err)
	}
	conn.Close(ctx)
	if err := s.CreateDatabase(ctx, "copy", "tmpl"); err != nil {
		t.Fatal(err)
	}
	conn, err = pgx.Connect(ctx, s.DSN("copy"))
	if err != nil {
		t.Fatal(err)
	}
	var id int
	if err := conn.QueryRow(ctx, "SELECT id FROM t").Scan(&id); err != nil || id != 7 {
		t.Fatalf("copy of the template: %d %v", id, err)
	}
	conn.Close(ctx)

	pid := s.cmd.Process.Pid
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("postmaster %d still there after Stop: %v", pid, err)
	}
	if _, err := os.Stat(s.Dir()); !os.IsNotExist(err) {
		t.Fatalf("directory left: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}
