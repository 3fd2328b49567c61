package redistest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// StartSentinel starts a Redis Sentinel for the test that monitors master
// under the name "mymaster" (quorum 1), on a free loopback port, and
// returns its host:port once it answers PING. The store URL is then
// redis+sentinel://HOST:PORT/mymaster. It is stopped by t.Cleanup.
func StartSentinel(t testing.TB, master *Server) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal(NotFoundMessage)
	}
	dir := t.TempDir()
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		conf := filepath.Join(dir, "sentinel.conf") // rewritten by the sentinel
		body := fmt.Sprintf("bind 127.0.0.1\nport %d\ndir %s\nsentinel monitor mymaster 127.0.0.1 %d 1\n", port, dir, master.port)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		log, err := os.Create(filepath.Join(dir, "sentinel.log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, conf, "--sentinel")
		cmd.Dir, cmd.Stdout, cmd.Stderr, cmd.SysProcAttr = dir, log, log, sysProcAttr()
		if err := cmd.Start(); err != nil {
			log.Close()
			t.Fatalf("redistest: starting the sentinel: %v", err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); log.Close(); close(done) }()
		t.Cleanup(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			select {
			case <-done:
			case <-time.After(termTimeout):
				_ = cmd.Process.Kill()
				<-done
			}
		})
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		deadline := time.Now().Add(readyTimeout)
		for {
			select {
			case <-done:
				lastErr = fmt.Errorf("the sentinel on port %d exited during start; log:\n%s", port, tail(filepath.Join(dir, "sentinel.log")))
			default:
				if ping(addr) {
					return addr
				}
				if time.Now().After(deadline) {
					t.Fatalf("redistest: the sentinel on port %d did not answer PING within %v", port, readyTimeout)
				}
				time.Sleep(20 * time.Millisecond)
				continue
			}
			break
		}
	}
	t.Fatalf("redistest: %v", lastErr)
	return ""
}
