// Package weedtest runs a real S3-compatible object store for tests: SeaweedFS's
// `weed server -s3` (master, volume server, filer and S3 gateway in one process), in a
// temporary directory, on free 127.0.0.1 ports, killed by its PID when the test ends.
//
// The weed binary is built from SeaweedFS's Go module, outside trackline's go.mod, by
// scripts/deps.sh (`scripts/deps.sh weed`) into $(go env GOPATH)/bin/weed-<Version>; the
// environment variable WEED names another. make test starts that build in the background and
// Start waits for it (while it holds weed-<Version>.lock, up to 9 minutes). A test fails
// (never skips) without it.
//
// Deleted objects: SeaweedFS's filer deletes an object's chunks from the volume files
// asynchronously, and a volume file keeps deleted needles until it is vacuumed (compacted).
// Vacuum asks the master to compact every volume with any garbage at once, which a test
// that searches the data directory for deleted bytes must call (and wait for).
package weedtest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Version is the SeaweedFS module version scripts/deps.sh builds.
const Version = "v0.0.0-20261109003541-7506e5f91cd6"

// Server is a running weed server with one bucket.
type Server struct {
	Endpoint  string // host:port of the S3 gateway
	AccessKey string
	SecretKey string
	Bucket    string
	Dir       string // the data directory: volumes, filer store, logs
	master    string // host:port of the master's HTTP
	cmd       *exec.Cmd
	log       string // its output
}

// Binary is the weed binary: $WEED, else $(go env GOPATH)/bin/weed-<Version>, waiting up to
// 9 minutes for a build that scripts/deps.sh runs in the background.
func Binary() (string, error) { return binary(buildWait) }

func binary(wait time.Duration) (string, error) {
	if p := os.Getenv("WEED"); p != "" {
		return p, nil
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOPATH: %w", err)
	}
	p := filepath.Join(strings.TrimSpace(string(out)), "bin", "weed-"+Version)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if waitForBuild(p+".lock", wait) {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	_, err = os.Stat(p)
	return "", fmt.Errorf("%s: %w (run scripts/deps.sh weed, or make deps, which build it; see %s.log)", p, err, p)
}

// buildWait bounds the wait for a build that scripts/deps.sh runs in the background: less
// than the 12 minutes make test gives a package's tests.
const buildWait = 9 * time.Minute

// waitForBuild waits while the build of scripts/deps.sh holds the lock file, up to max, and
// tells whether it ended (false: there was no build, or it still runs).
func waitForBuild(lock string, max time.Duration) bool {
	f, err := os.Open(lock)
	if err != nil {
		return false
	}
	defer f.Close()
	deadline := time.Now().Add(max)
	for {
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
			syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Second)
	}
}

// Start starts a weed server for the test and makes the bucket "recordings"; it is killed
// and its directory removed when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	wait := buildWait
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if deadline, ok := d.Deadline(); ok {
			// Fail with the reason, not go test's timeout panic, if the build outlasts it.
			wait = max(0, min(wait, time.Until(deadline)-2*time.Minute))
		}
	}
	s, err := run(t.TempDir(), wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Run starts a weed server with its data in dir and makes the bucket "recordings": for a
// server that several tests share (a package's TestMain). Close kills it; the caller removes
// dir.
func Run(dir string) (*Server, error) { return run(dir, buildWait) }

func run(dir string, wait time.Duration) (*Server, error) {
	bin, err := binary(wait)
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(8)
	if err != nil {
		return nil, err
	}
	s := &Server{
		Endpoint:  net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[6])),
		AccessKey: "trackline-test",
		SecretKey: "trackline-test-secret",
		Bucket:    "recordings",
		Dir:       dir,
		master:    net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])),
		log:       filepath.Join(dir, "weed.log"),
	}
	args := []string{"server", "-s3", "-filer",
		"-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-dir=" + dir,
		"-master.port=" + strconv.Itoa(ports[0]), "-master.port.grpc=" + strconv.Itoa(ports[1]),
		"-volume.port=" + strconv.Itoa(ports[2]), "-volume.port.grpc=" + strconv.Itoa(ports[3]),
		"-filer.port=" + strconv.Itoa(ports[4]), "-filer.port.grpc=" + strconv.Itoa(ports[5]),
		"-s3.port=" + strconv.Itoa(ports[6]), "-s3.port.grpc=" + strconv.Itoa(ports[7]),
		"-s3.port.iceberg=0", "-s3.port.lance=0",
		"-filer.localSocket=" + filepath.Join(dir, "filer.sock"), "-s3.localSocket=" + filepath.Join(dir, "s3.sock"),
		"-master.telemetry=false", "-master.volumeSizeLimitMB=64", "-volume.max=16",
		"-master.vacuumIntervalSeconds=3600",
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Dir = dir
	s.cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+s.AccessKey, "AWS_SECRET_ACCESS_KEY="+s.SecretKey)
	logf, err := os.Create(s.log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	c, err := s.client()
	if err != nil {
		s.Close()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for {
		err := c.MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{})
		if err == nil {
			return s, nil
		}
		if ctx.Err() != nil {
			s.Close()
			return nil, fmt.Errorf("weed server not ready in 90 s: %w\n%s", err, s.tail())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Client is an S3 client of the server.
func (s *Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := s.client()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (s *Server) client() (*minio.Client, error) {
	return minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, "")})
}

// Vacuum asks the master to compact every volume holding any deleted needle, so that the
// bytes of deleted objects leave the volume files.
func (s *Server) Vacuum(t testing.TB) {
	t.Helper()
	resp, err := http.Get("http://" + s.master + "/vol/vacuum?garbageThreshold=0.000001")
	if err != nil {
		t.Fatalf("vacuum: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("vacuum: %s", resp.Status)
	}
}

// PID is the server's process id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

func (s *Server) tail() string {
	b, _ := os.ReadFile(s.log)
	return string(b[max(0, len(b)-4000):])
}

// Close kills the server (its process group, by PID) and waits for it.
func (s *Server) Close() {
	if s.cmd.Process == nil {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	s.cmd.Wait()
}

// freePorts finds n free TCP ports on 127.0.0.1 (held open together, so they differ).
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
