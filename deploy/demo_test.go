package deploy_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// freeLoopbackPorts returns n distinct free TCP ports on 127.0.0.1.
func freeLoopbackPorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// TestDemoScript runs the README's quick-start demo (deploy/demo/demo.sh,
// what `make demo` runs) on free loopback ports and checks that the gateway
// becomes ready against the demo's Prosody and that the demo's HTTP upload
// service answers, then stops the whole process group it started.
func TestDemoScript(t *testing.T) {
	if _, err := exec.LookPath("prosody"); err != nil {
		t.Fatal("prosody not found: install it with 'apt-get install prosody' (or 'make deps' as root)")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "jabbergate")
	build := exec.Command("go", "build", "-o", bin, "./cmd/jabbergate")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	p := freeLoopbackPorts(t, 4)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", p[3])
	logPath := filepath.Join(dir, "demo.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command("bash", filepath.Join(root, "deploy/demo/demo.sh"))
	cmd.Env = append(os.Environ(),
		fmt.Sprintf("C2S_PORT=%d", p[0]), fmt.Sprintf("COMPONENT_PORT=%d", p[1]),
		fmt.Sprintf("UPLOAD_PORT=%d", p[2]), "HTTP_LISTEN="+httpAddr,
		"DEMO_DIR="+filepath.Join(dir, "demo"), "JABBERGATE_BIN="+bin)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{}) // closed when the demo has exited
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		// The demo's own trap stops Prosody when the gateway exits; SIGTERM
		// goes to the process group we created, SIGKILL if it lingers.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}()
	demoLog := func() string { b, _ := os.ReadFile(logPath); return string(b) }

	client := &http.Client{Timeout: 2 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var last string
	for ready := false; !ready; {
		select {
		case <-exited:
			t.Fatalf("demo exited before becoming ready: %v\n%s", waitErr, demoLog())
		case <-ctx.Done():
			t.Fatalf("demo not ready within 60 s (last /readyz: %s)\n%s", last, demoLog())
		case <-time.After(200 * time.Millisecond):
		}
		resp, err := client.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			last = err.Error()
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		ready = resp.StatusCode == http.StatusOK
	}
	// The upload service answers (an unsigned PUT is refused, which proves
	// it is Prosody's file share that is listening).
	req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("http://127.0.0.1:%d/file_share/x/y.txt", p[2]), strings.NewReader("x"))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("demo upload service unreachable: %v\n%s", err, demoLog())
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
		t.Fatalf("unsigned PUT to the demo upload service: status %d, want 401 or 403 (404: the file share is not the default HTTP host)", resp.StatusCode)
	}
	for _, want := range []string{"demo@localhost", "echo.localhost"} {
		if !strings.Contains(demoLog(), want) {
			t.Errorf("demo banner does not mention %s:\n%s", want, demoLog())
		}
	}
}
