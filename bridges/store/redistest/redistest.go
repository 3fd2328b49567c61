// Package redistest runs a real redis-server (the Debian package) for tests:
// on a free 127.0.0.1 port, with its data and log in t.TempDir(), with the
// append-only file on, and stopped when the test ends.
//
// A missing redis-server binary fails the test — it is never skipped — with
// the message in NotFoundMessage.
package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// NotFoundMessage is how a test fails when redis-server is not on PATH.
const NotFoundMessage = "redis-server not found: install it with 'apt-get install redis-server' (or run 'make deps' as root)"

// Bounds on waiting for the server.
const (
	readyTimeout = 10 * time.Second // start until PING answers
	termTimeout  = 5 * time.Second  // SIGTERM until SIGKILL
)

// Start starts a redis-server for the test and returns its URL
// ("redis://127.0.0.1:PORT/0"). It is stopped by t.Cleanup.
func Start(t testing.TB) string {
	t.Helper()
	return StartServer(t).URL()
}

// Server is one redis-server process owned by a test. Its methods call
// t.Fatal on failure, so call them from the test's goroutine.
type Server struct {
	t       testing.TB
	bin     string
	dir     string
	port    int
	cluster bool

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// StartServer starts a redis-server for the test: bound to 127.0.0.1 on a
// free port, working directory t.TempDir(), no RDB snapshots, append-only
// file on. It returns once the server answers PING (at most 10 s) and
// registers a t.Cleanup that stops it. If redis-server is not on PATH the
// test fails with NotFoundMessage.
func StartServer(t testing.TB) *Server {
	t.Helper()
	return startServer(t, false)
}

// StartCluster is StartServer for a one-node Redis Cluster: cluster mode
// on, all 16384 slots assigned to the node. It returns once CLUSTER INFO
// reports cluster_state:ok. Its URL is a redis+cluster:// URL, which
// store/redis understands. A Cluster client rejects transactions spanning
// slots, as a real multi-node cluster does.
func StartCluster(t testing.TB) *Server {
	t.Helper()
	return startServer(t, true)
}

func startServer(t testing.TB, cluster bool) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal(NotFoundMessage)
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir(), cluster: cluster}
	t.Cleanup(s.stop)
	// Another process may take the free port between our probe and
	// redis-server's bind; try a few ports.
	var lastErr error
	for range 3 {
		if s.port, err = freePort(); err != nil {
			t.Fatalf("redistest: %v", err)
		}
		if lastErr = s.start(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("redistest: %v", lastErr)
	return nil
}

// URL returns the redis:// URL of the server (database 0), or for
// StartCluster its redis+cluster:// URL.
func (s *Server) URL() string {
	if s.cluster {
		return "redis+cluster://" + s.Addr()
	}
	return "redis://" + s.Addr() + "/0"
}

// Addr returns the host:port the server listens on.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// PID returns the process id of the running server (0 when stopped), for
// callers that measure its CPU or memory.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Dir returns the server's working directory (append-only file, log).
func (s *Server) Dir() string { return s.dir }

// Start starts the server again after Stop or Kill, on the same port and
// directory, so it reloads its append-only file. It returns once the
// server answers PING. Starting a running server is a no-op.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("redistest: %v", err)
	}
}

// Stop shuts the server down gracefully: SIGTERM (redis-server flushes its
// append-only file and exits), then SIGKILL after 5 s. Stopping a stopped
// server is a no-op.
func (s *Server) Stop() {
	s.t.Helper()
	if err := s.signal(syscall.SIGTERM); err != nil {
		s.t.Fatalf("redistest: %v", err)
	}
}

// Kill stops the server with SIGKILL, like a crash: writes not yet
// fsynced to the append-only file may be lost.
func (s *Server) Kill() {
	s.t.Helper()
	if err := s.signal(syscall.SIGKILL); err != nil {
		s.t.Fatalf("redistest: %v", err)
	}
}

// stop is the cleanup: like Stop, but reports with Errorf.
func (s *Server) stop() {
	if err := s.signal(syscall.SIGTERM); err != nil {
		s.t.Errorf("redistest: %v", err)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	logPath := filepath.Join(s.dir, "redis.log")
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	args := []string{
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(s.port),
		"--dir", s.dir,
		"--save", "",
		"--appendonly", "yes",
		"--daemonize", "no",
	}
	if s.cluster {
		args = append(args, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("starting %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		log.Close()
		close(done)
	}()
	s.cmd, s.done = cmd, done

	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-done:
			s.cmd = nil
			return fmt.Errorf("redis-server on port %d exited during start (%v); log:\n%s",
				s.port, cmd.ProcessState, tail(logPath))
		default:
		}
		if ping(s.Addr()) && (!s.cluster || s.clusterReady()) {
			return nil
		}
		if time.Now().After(deadline) {
			s.kill()
			return fmt.Errorf("redis-server on port %d did not answer PING within %v; log:\n%s",
				s.port, readyTimeout, tail(logPath))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// signal sends sig to the running server and waits for it to exit,
// escalating to SIGKILL after termTimeout.
func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	pid := s.cmd.Process.Pid
	if err := s.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signalling redis-server (pid %d): %w", pid, err)
	}
	select {
	case <-s.done:
		s.cmd = nil
		return nil
	case <-time.After(termTimeout):
	}
	s.kill()
	return fmt.Errorf("redis-server (pid %d) did not exit within %v of %v; killed", pid, termTimeout, sig)
}

// kill sends SIGKILL and waits; s.mu is held.
func (s *Server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// clusterReady assigns every slot to the node if none is assigned yet
// (nodes.conf keeps them across restarts) and reports whether the cluster
// state is ok.
func (s *Server) clusterReady() bool {
	info, err := command(s.Addr(), "CLUSTER", "INFO")
	if err != nil {
		return false
	}
	if strings.Contains(info, "cluster_slots_assigned:0\r\n") {
		if _, err := command(s.Addr(), "CLUSTER", "ADDSLOTSRANGE", "0", "16383"); err != nil {
			return false
		}
		return false // check the state on the next poll
	}
	return strings.Contains(info, "cluster_state:ok\r\n")
}

// command sends one command and returns a simple, integer or bulk string
// reply.
func command(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	req := fmt.Appendf(nil, "*%d\r\n", len(args))
	for _, a := range args {
		req = fmt.Appendf(req, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write(req); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	switch {
	case line == "":
		return "", errors.New("empty reply")
	case line[0] == '+' || line[0] == ':':
		return line[1:], nil
	case line[0] == '-':
		return "", errors.New(line[1:])
	case line[0] == '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("unexpected reply %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	default:
		return "", fmt.Errorf("unexpected reply %q", line)
	}
}

// ping reports whether a Redis server at addr answers PING with PONG.
func ping(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	// While loading the append-only file the answer is -LOADING.
	return err == nil && line == "+PONG\r\n"
}

// tail returns the end of the file at path.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}
