package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runBinary runs the binary to completion and returns its exit code and stderr.
func runBinary(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(tracklineBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), stderr.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, stderr.String()
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("binary %v did not exit; stderr:\n%s", args, stderr.String())
		return 0, ""
	}
}

func TestBadConfigReportsEveryProblemAndExits2(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(cfg, []byte(`
country_code: "NL"
listen: {admin: "everywhere"}
customers:
  - id: demo
    name: Demo
    site_key: "short"
    pool: ["+31850000001", "085 000 0002"]
    channels: [{name: Flyer, numbers: ["+31850000001"]}]
`), 0o600)
	code, stderr := runBinary(t, nil, "serve", "--config", cfg, "--data", t.TempDir())
	if code != 2 {
		t.Fatalf("exit %d, want 2; stderr:\n%s", code, stderr)
	}
	for _, want := range []string{"country_code:", "listen.admin:", "customers[0].site_key:", "customers[0].pool[1]:", "customers[0].channels[0].numbers[0]:"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestAdminRefusesNonLoopbackWithoutToken(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "open.yaml")
	os.WriteFile(cfg, []byte("admin_token: \"\"\n"), 0o600)
	data := t.TempDir()
	code, stderr := runBinary(t, []string{"TRACKLINE_ADMIN_TOKEN="}, "serve", "--config", cfg, "--data", data,
		"--http", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--admin", "0.0.0.0:0")
	if code != 2 || !strings.Contains(stderr, "admin_token") {
		t.Fatalf("exit %d, want 2 naming admin_token; stderr:\n%s", code, stderr)
	}
	if entries, _ := os.ReadDir(data); len(entries) != 0 {
		t.Fatalf("refused start still wrote %v", entries)
	}
}

func TestVersion(t *testing.T) {
	code, _ := runBinary(t, nil, "version")
	if code != 0 {
		t.Fatalf("version exit %d", code)
	}
}
