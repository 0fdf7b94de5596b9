// Package pgtest runs a real PostgreSQL server for the tests of the PostgreSQL store: Debian's
// PostgreSQL 15 (package postgresql; scripts/deps.sh installs it), initialised into a
// temporary directory and listening on 127.0.0.1 on a free port, with its Unix socket in
// that directory. It needs none of the package's own cluster or service.
//
// One server serves a whole test binary (start it in TestMain, Stop it at the end); each test
// gets a fresh database copied from a template (Server.CreateDatabase), which takes
// milliseconds where a migration per test would take a second.
//
// The server runs with fsync on, as in production: the tests of durability test it. initdb
// and postgres refuse to run as root, so when the tests run as root the server runs as the
// "postgres" system user the package creates, and its directory is handed to that user. The
// postmaster is the test binary's own child, started from a thread locked for the server's
// life with a parent-death signal: if the test binary dies (a panic, go test's timeout), the
// server shuts down with it. Stop ends it by its PID and removes the directory.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// BinDir is where Debian's PostgreSQL 15 puts initdb and postgres.
const BinDir = "/usr/lib/postgresql/15/bin"

// ErrNotInstalled is returned by Start when PostgreSQL's programs are not there.
var ErrNotInstalled = errors.New("PostgreSQL 15 not installed (apt-get install postgresql, or scripts/deps.sh)")

// Server is a running PostgreSQL server of the tests.
type Server struct {
	dir  string // the temporary directory: data in dir/data, the socket in dir
	port int
	cmd  *exec.Cmd
	// exited is closed once the postmaster has exited; err is then its Wait error.
	exited chan struct{}
	err    error
	log    *os.File

	stopOnce sync.Once
	stopErr  error
}

// Start initialises a new cluster in a temporary directory and starts its server, ready for
// connections, with a database "postgres" and a superuser "postgres" (trust on loopback).
func Start() (*Server, error) {
	for _, p := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(BinDir, p)); err != nil {
			return nil, ErrNotInstalled
		}
	}
	removeStale()
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &Server{dir: dir}
	cred, err := credential()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("hand the directory to postgres: %w", err)
		}
	}
	initdb := exec.Command(filepath.Join(BinDir, "initdb"), "-D", filepath.Join(dir, "data"),
		"-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	if s.log, err = os.Create(filepath.Join(dir, "postgres.log")); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if cred != nil {
		if err := s.log.Chown(int(cred.Uid), int(cred.Gid)); err != nil {
			s.cleanup()
			return nil, err
		}
	}
	// A free port can be taken by someone else before the server binds it: try again.
	for attempt := 0; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			s.cleanup()
			return nil, err
		}
		if err = s.start(cred); err == nil {
			return s, nil
		}
		if attempt == 2 {
			s.cleanup()
			return nil, err
		}
	}
}

const (
	dirPrefix = "trackline-pg-"
	ownerFile = "owner.pid" // the test binary's PID
)

// removeStale removes the directories of servers whose test binary died without Stop (a
// panic, a timeout): their postmaster went with it (the parent-death signal), their files
// stayed. A directory whose owner or postmaster still runs is left.
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		if alive(filepath.Join(dir, ownerFile)) || alive(filepath.Join(dir, "data", "postmaster.pid")) {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, ownerFile)); err == nil {
			os.RemoveAll(dir)
		}
	}
}

// alive tells whether the process whose PID is on the first line of file runs.
func alive(file string) bool {
	raw, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	first, _, _ := strings.Cut(string(raw), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return false
	}
	return syscall.Kill(pid, 0) == nil
}

// credential is the user the server runs as: nil (the current one) unless that is root.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and no postgres user to run PostgreSQL as: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start starts the postmaster and waits until it takes connections.
func (s *Server) start(cred *syscall.Credential) error {
	started := make(chan error, 1)
	exited := make(chan struct{})
	s.exited, s.cmd = exited, nil
	go func() {
		// The parent-death signal is sent when the thread that started the child ends, not
		// the process: this thread stays locked, and this goroutine blocked, until the
		// postmaster exits.
		runtime.LockOSThread()
		cmd := exec.Command(filepath.Join(BinDir, "postgres"),
			"-D", filepath.Join(s.dir, "data"),
			"-p", strconv.Itoa(s.port),
			"-k", s.dir,
			"-c", "listen_addresses=127.0.0.1",
			"-c", "fsync=on",
			"-c", "synchronous_commit=on",
			"-c", "max_connections=300",
			"-c", "shared_buffers=64MB",
			"-c", "log_min_messages=warning",
		)
		cmd.Stdout, cmd.Stderr = s.log, s.log
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
		if err := cmd.Start(); err != nil {
			started <- err
			close(exited)
			return
		}
		s.cmd = cmd
		started <- nil
		s.err = cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.DSN("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("postgres exited: %v: %s", s.err, s.logTail())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.kill()
			return fmt.Errorf("postgres not ready after 30 s: %w: %s", err, s.logTail())
		}
	}
}

func (s *Server) logTail() string {
	raw, _ := os.ReadFile(s.log.Name())
	if len(raw) > 2000 {
		raw = raw[len(raw)-2000:]
	}
	return strings.TrimSpace(string(raw))
}

// kill ends the postmaster: a fast shutdown (SIGINT), then SIGKILL if it takes more than 10 s.
func (s *Server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		// The postmaster's children are in its process group.
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
}

// DSN is the connection string of database name, as the superuser, over TCP on loopback.
func (s *Server) DSN(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, name)
}

// Dir is the server's directory: its data directory is Dir()/data.
func (s *Server) Dir() string { return s.dir }

// Exec runs statements (CREATE DATABASE cannot run in a transaction: one at a time) in
// database "postgres".
func (s *Server) Exec(ctx context.Context, stmts ...string) error {
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// CreateDatabase creates database name, a copy of template ("" for PostgreSQL's own
// template1). The template must have no open connections.
func (s *Server) CreateDatabase(ctx context.Context, name, template string) error {
	q := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		q += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	return s.Exec(ctx, q)
}

// Pause stops the server and keeps its data: with crash, as a crash would (SIGKILL of its
// processes: what was committed is in the WAL, replayed at Resume); else a fast shutdown.
// Clients see their connections fail until Resume. For the tests of a database that goes
// away and comes back.
func (s *Server) Pause(crash bool) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	if crash {
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
		return
	}
	s.kill()
}

// Resume starts a paused server again, on the same port and data.
func (s *Server) Resume() error {
	cred, err := credential()
	if err != nil {
		return err
	}
	// A crashed postmaster leaves its pid file; postgres removes a stale one itself.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err = s.start(cred)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond) // the port may still be held a moment
	}
}

// Stop ends the server and removes its directory. It is idempotent.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		s.kill()
		s.cleanup()
	})
	return s.stopErr
}

func (s *Server) cleanup() {
	if s.log != nil {
		s.log.Close()
	}
	s.stopErr = os.RemoveAll(s.dir)
}
