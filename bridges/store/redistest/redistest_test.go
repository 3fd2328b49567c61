package redistest

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// do sends one inline command and returns the first reply line.
func do(t *testing.T, addr, cmd string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(line, "$") && line != "$-1\r\n" {
		line, err = r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
	}
	return strings.TrimRight(line, "\r\n")
}

func TestStartStopRestart(t *testing.T) {
	s := StartServer(t)
	if !strings.HasPrefix(s.URL(), "redis://127.0.0.1:") {
		t.Fatalf("URL = %q", s.URL())
	}
	if got := do(t, s.Addr(), "SET k v"); got != "+OK" {
		t.Fatalf("SET = %q", got)
	}
	s.Stop()
	if ping(s.Addr()) {
		t.Fatal("server answers after Stop")
	}
	s.Stop() // no-op
	s.Start()
	if got := do(t, s.Addr(), "GET k"); got != "v" {
		t.Fatalf("GET after graceful restart = %q, want v (append-only file)", got)
	}
	s.Start() // no-op
	if got := do(t, s.Addr(), "SET k2 v2"); got != "+OK" {
		t.Fatalf("SET = %q", got)
	}
	s.Kill()
	if ping(s.Addr()) {
		t.Fatal("server answers after Kill")
	}
	s.Start()
	if got := do(t, s.Addr(), "GET k"); got != "v" {
		t.Fatalf("GET after crash = %q, want v", got)
	}
}

func TestTwoServers(t *testing.T) {
	a, b := Start(t), Start(t)
	if a == b {
		t.Fatalf("two servers share %s", a)
	}
}

// TestMissingBinary checks the exact failure message when redis-server is
// not on PATH, by running this test binary again with an empty PATH.
func TestMissingBinary(t *testing.T) {
	if os.Getenv("REDISTEST_CHILD") == "1" {
		Start(t)
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestMissingBinary$", "-test.v")
	cmd.Env = append(os.Environ(), "REDISTEST_CHILD=1", "PATH="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("child passed without redis-server on PATH:\n%s", out)
	}
	if !strings.Contains(string(out), NotFoundMessage) || !strings.Contains(string(out), "--- FAIL") {
		t.Fatalf("child output lacks %q:\n%s", NotFoundMessage, out)
	}
	if strings.Contains(string(out), "SKIP") {
		t.Fatalf("child skipped:\n%s", out)
	}
}

func TestCluster(t *testing.T) {
	s := StartCluster(t)
	if !strings.HasPrefix(s.URL(), "redis+cluster://127.0.0.1:") {
		t.Fatalf("URL = %q", s.URL())
	}
	info, err := command(s.Addr(), "CLUSTER", "INFO")
	if err != nil || !strings.Contains(info, "cluster_state:ok") {
		t.Fatalf("CLUSTER INFO = %q, %v", info, err)
	}
	if got, err := command(s.Addr(), "SET", "{a}x", "1"); err != nil || got != "OK" {
		t.Fatalf("SET = %q, %v", got, err)
	}
	s.Stop()
	s.Start()
	if got, err := command(s.Addr(), "GET", "{a}x"); err != nil || got != "1" {
		t.Fatalf("GET after restart = %q, %v", got, err)
	}
}
