// Package servertest starts real XMPP servers (Prosody, ejabberd) for
// integration tests: one private instance per call, listening only on free
// 127.0.0.1 ports, with its configuration, data and logs in t.TempDir(), and
// stopped by PID in t.Cleanup.
//
// The servers come from the Debian packages (prosody + prosody-modules,
// ejabberd); .ci/install-deps.sh installs them. A missing binary is a test
// failure, never a skip.
//
// Every instance gets
//   - a plain c2s listener (no TLS offered, PLAIN and SCRAM over plain TCP),
//   - an XEP-0114 component listener with one route per Options.Components
//     entry,
//   - the users of Options.Users, registered before Start returns,
//   - no s2s at all: nothing leaves loopback.
//
// Several instances (of either kind, in one test binary or in parallel
// package test binaries) can run at the same time: ports, Erlang node names,
// cookies and directories are all per instance.
package servertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
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

// Kinds lists the server kinds Start accepts.
var Kinds = []string{"prosody", "ejabberd"}

const (
	// readyTimeout bounds how long a server may take to accept connections.
	readyTimeout = 30 * time.Second
	// termGrace is how long a server gets after SIGTERM before SIGKILL.
	termGrace = 5 * time.Second
	// commandTimeout bounds helper commands (prosodyctl, ejabberdctl).
	commandTimeout = 30 * time.Second
	// logTailLines is how much of the server log failure messages include.
	logTailLines = 60
)

// Options configures a server instance.
type Options struct {
	// Domain is the virtual host; default "localhost".
	Domain string
	// Components maps component domain -> secret, e.g.
	// {"echo.localhost": "s3cret"}. Each becomes an XEP-0114 route.
	Components map[string]string
	// Users maps localpart -> password; registered before Start returns.
	Users map[string]string
	// Privileged grants XEP-0356 roster "both" and message "outgoing" to
	// every component (Prosody: mod_privilege from prosody-modules,
	// urn:xmpp:privilege:2; ejabberd 23.01: mod_privilege,
	// urn:xmpp:privilege:1).
	Privileged bool
}

// Server is one running (or stopped) server instance.
type Server struct {
	Kind          string // "prosody" or "ejabberd"
	Domain        string
	C2SAddr       string // 127.0.0.1:port, plain TCP, PLAIN auth allowed
	ComponentAddr string // 127.0.0.1:port, XEP-0114 listener
	Dir           string // configuration, data and logs

	opts    Options
	created time.Time

	mu sync.Mutex
	p  *proc // nil when stopped

	impl serverImpl
}

// serverImpl is what differs between the kinds.
type serverImpl interface {
	// prepare (re)writes per-start configuration, e.g. fresh internal ports.
	prepare() error
	// command builds the server process command (not started).
	command() *exec.Cmd
	// logFiles lists the log files Log concatenates, in order.
	logFiles() []string
	// startupError inspects the log for failures that leave the process
	// running (e.g. a port that could not be bound); "" when fine.
	startupError(log string) string
	// waitComponentPort reports whether the component port opens at all.
	waitComponentPort() bool
	// listening reports whether the log shows that the server itself bound
	// its ports: a port that accepts connections may be someone else's.
	listening(log string) bool
	// register adds a user; the server may or may not be running.
	register(ctx context.Context, user, password string) error
	// afterReady runs once the ports accept connections (e.g. registers
	// the initial users on ejabberd).
	afterReady(ctx context.Context) error
	// termPIDFile names a file holding the PID to send SIGTERM to when that
	// is not the process we started ("" = the started process).
	termPIDFile() string
}

// Start starts a server of the given kind ("prosody" or "ejabberd").
func Start(t testing.TB, kind string, o Options) *Server {
	t.Helper()
	switch kind {
	case "prosody":
		return StartProsody(t, o)
	case "ejabberd":
		return StartEjabberd(t, o)
	}
	t.Fatalf("servertest: unknown server kind %q (want one of %v)", kind, Kinds)
	return nil
}

// Start restarts a stopped server with the same ports, configuration and
// data (registered users, rosters). It is a no-op when the server runs.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p != nil {
		return
	}
	begin := time.Now()
	if err := s.launch(); err != nil {
		t.Fatalf("servertest: restarting %s: %v\n%s", s.Kind, err, s.logTail())
	}
	t.Logf("servertest: %s restarted in %v (c2s %s, component %s)", s.Kind, time.Since(begin).Round(time.Millisecond), s.C2SAddr, s.ComponentAddr)
}

// Stop stops the server (SIGTERM, SIGKILL after 5 s) and waits for its
// processes to exit. Data and ports are kept for Start. It is a no-op when
// the server is stopped; t.Cleanup calls it too.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p == nil {
		return
	}
	begin := time.Now()
	killed := s.p.stop()
	s.p = nil
	if killed {
		t.Logf("servertest: %s did not stop within %v of SIGTERM; killed it\n%s", s.Kind, termGrace, s.logTail())
	}
	t.Logf("servertest: %s stopped in %v", s.Kind, time.Since(begin).Round(time.Millisecond))
}

// Running reports whether the server process is running.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p != nil && !s.p.exited()
}

// Log returns the contents of the server's log files (for failure messages).
func (s *Server) Log() string {
	var b strings.Builder
	for _, f := range s.impl.logFiles() {
		data, err := os.ReadFile(f)
		if err != nil || len(data) == 0 {
			continue
		}
		fmt.Fprintf(&b, "==> %s <==\n", f)
		b.Write(data)
		if data[len(data)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// RegisterUser registers name@Domain with the given password. On ejabberd the
// server must be running; on Prosody it need not be.
func (s *Server) RegisterUser(t testing.TB, name, password string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	if err := s.impl.register(ctx, name, password); err != nil {
		t.Fatalf("servertest: registering %s@%s on %s: %v", name, s.Domain, s.Kind, err)
	}
}

// JID returns user@Domain (user unchanged when it already has a domain).
func (s *Server) JID(user string) string {
	if strings.Contains(user, "@") {
		return user
	}
	return user + "@" + s.Domain
}

// logMark records how long each log file is, so that a launch looks only at
// what its own process wrote: the console log is appended to across
// restarts and retries, and an "eaddrinuse" left by a failed attempt must not
// fail the next one.
func (s *Server) logMark() map[string]int64 {
	mark := make(map[string]int64)
	for _, f := range s.impl.logFiles() {
		if fi, err := os.Stat(f); err == nil {
			mark[f] = fi.Size()
		}
	}
	return mark
}

// logSince is Log restricted to what was written after mark was taken.
func (s *Server) logSince(mark map[string]int64) string {
	var b strings.Builder
	for _, f := range s.impl.logFiles() {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if off := mark[f]; off > 0 && off <= int64(len(data)) {
			data = data[off:]
		}
		if len(data) == 0 {
			continue
		}
		b.Write(data)
		if data[len(data)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func (s *Server) logTail() string {
	return "--- " + s.Kind + " log (tail) ---\n" + tail(s.Log(), logTailLines)
}

// newServer fills the common fields, the directory and the ports, and
// registers the cleanup. The caller sets impl and calls startInitial.
func newServer(t testing.TB, kind string, o Options) *Server {
	t.Helper()
	if o.Domain == "" {
		o.Domain = "localhost"
	}
	s := &Server{Kind: kind, Domain: o.Domain, Dir: t.TempDir(), opts: o, created: time.Now()}
	// Registered after t.TempDir, so it runs before the directory removal.
	t.Cleanup(func() { s.Stop(t) })
	return s
}

// startInitial picks ports and starts the server, retrying with new ports
// when a port turns out to be taken (another test binary may be picking
// ports at the same time).
func (s *Server) startInitial(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		ports, perr := freePorts(2)
		if perr != nil {
			t.Fatalf("servertest: %v", perr)
		}
		s.C2SAddr = fmt.Sprintf("127.0.0.1:%d", ports[0])
		s.ComponentAddr = fmt.Sprintf("127.0.0.1:%d", ports[1])
		err = s.launch()
		if err == nil || !errors.Is(err, errPortInUse) {
			break
		}
		t.Logf("servertest: %s: %v; retrying with new ports", s.Kind, err)
	}
	if err != nil {
		t.Fatalf("servertest: starting %s: %v\n%s", s.Kind, err, s.logTail())
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := s.impl.afterReady(ctx); err != nil {
		t.Fatalf("servertest: %s: %v\n%s", s.Kind, err, s.logTail())
	}
	t.Logf("servertest: %s ready in %v (c2s %s, component %s, dir %s)", s.Kind, time.Since(s.created).Round(time.Millisecond), s.C2SAddr, s.ComponentAddr, s.Dir)
}

var errPortInUse = errors.New("port already in use")

// launch starts the process and waits until it is ready. s.mu is held.
func (s *Server) launch() error {
	if err := s.impl.prepare(); err != nil {
		return err
	}
	if f := s.impl.termPIDFile(); f != "" {
		_ = os.Remove(f) // stale from a previous run
	}
	mark := s.logMark()
	p, err := startProc(s.impl.command(), filepath.Join(s.Dir, "console.log"))
	if err != nil {
		return err
	}
	p.termPIDFile = s.impl.termPIDFile()
	if err := s.waitReady(p, mark); err != nil {
		p.stop()
		return err
	}
	s.p = p
	return nil
}

func (s *Server) waitReady(p *proc, mark map[string]int64) error {
	deadline := time.Now().Add(readyTimeout)
	addrs := []string{s.C2SAddr}
	if s.impl.waitComponentPort() {
		addrs = append(addrs, s.ComponentAddr)
	}
	for {
		if msg := s.impl.startupError(s.logSince(mark)); msg != "" {
			return fmt.Errorf("%w: %s", errPortInUse, msg)
		}
		if p.exited() {
			err := fmt.Errorf("server process exited during startup: %v", p.waitErr)
			if strings.Contains(strings.ToLower(s.logSince(mark)), "eaddrinuse") {
				err = fmt.Errorf("%w: %v", errPortInUse, err)
			}
			return err
		}
		ready := true
		for _, a := range addrs {
			c, err := net.DialTimeout("tcp", a, 200*time.Millisecond)
			if err != nil {
				ready = false
				break
			}
			c.Close()
		}
		if ready && !s.impl.listening(s.logSince(mark)) {
			ready = false
		}
		if ready {
			// A bind failure of one port may be logged just after the
			// other port opened: look once more.
			if msg := s.impl.startupError(s.logSince(mark)); msg != "" {
				return fmt.Errorf("%w: %s", errPortInUse, msg)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %v do not all accept connections", readyTimeout, addrs)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// proc is one started server process, in its own process group.
type proc struct {
	cmd     *exec.Cmd
	pgid    int
	done    chan struct{} // closed when cmd.Wait returned
	waitErr error
	out     *os.File

	termPIDFile string // see serverImpl.termPIDFile
}

func startProc(cmd *exec.Cmd, consoleLog string) (*proc, error) {
	out, err := os.OpenFile(consoleLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdin = nil
	cmd.Stdout = out
	cmd.Stderr = out
	// Own process group: the final SIGKILL reaches the helpers the server
	// spawned (and only those). Pdeathsig: if the test binary dies without
	// running its cleanups, the server dies with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	p := &proc{cmd: cmd, pgid: cmd.Process.Pid, done: make(chan struct{}), out: out}
	go func() {
		p.waitErr = cmd.Wait()
		out.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the server process, SIGKILL (to it, its process
// group and its descendants) after termGrace, and waits until the process
// and its descendants are gone. It reports whether SIGKILL was needed.
//
// Descendants matter: Erlang's erl_child_setup calls setsid, so it and the
// port programs it spawns (memsup, eimp, inet_gethost) are in process groups
// of their own; they normally exit with beam.smp.
func (p *proc) stop() (killed bool) {
	// Snapshot before signalling: orphans get reparented.
	desc := descendants(p.cmd.Process.Pid)
	kill := func() {
		_ = syscall.Kill(-p.pgid, syscall.SIGKILL)
		for _, d := range desc {
			d.kill()
		}
	}
	if !p.exited() {
		_ = syscall.Kill(p.termPID(), syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(termGrace):
			killed = true
			kill()
			<-p.done
		}
	}
	// Wait for the descendants and the group; SIGKILL them after
	// termGrace, give up (unkillable, D state?) termGrace after that.
	deadline := time.Now().Add(termGrace)
	sentKill := false
	for anyAlive(desc) || syscall.Kill(-p.pgid, 0) == nil {
		if time.Now().After(deadline) {
			if sentKill {
				break
			}
			sentKill, killed = true, true
			kill()
			deadline = time.Now().Add(termGrace)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return killed
}

// procID identifies a process across PID reuse.
type procID struct {
	pid   int
	start string // starttime field of /proc/PID/stat
}

// readStat returns the parent PID, state and start time of pid.
func readStat(pid int) (ppid int, state byte, start string, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, "", false
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, "", false
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 20 {
		return 0, 0, "", false
	}
	ppid, err = strconv.Atoi(f[1])
	if err != nil || len(f[0]) == 0 {
		return 0, 0, "", false
	}
	return ppid, f[0][0], f[19], true
}

// descendants lists the live descendants of root (from /proc).
func descendants(root int) []procID {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]procID{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _, start, ok := readStat(pid); ok {
			children[ppid] = append(children[ppid], procID{pid, start})
		}
	}
	var out []procID
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			out = append(out, c)
			queue = append(queue, c.pid)
		}
	}
	return out
}

func (d procID) alive() bool {
	_, state, start, ok := readStat(d.pid)
	return ok && start == d.start && state != 'Z'
}

func (d procID) kill() {
	if d.alive() {
		_ = syscall.Kill(d.pid, syscall.SIGKILL)
	}
}

func anyAlive(ds []procID) bool {
	for _, d := range ds {
		if d.alive() {
			return true
		}
	}
	return false
}

// termPID is the PID to send SIGTERM to: the one in termPIDFile when that
// process belongs to our process group, else the started process.
func (p *proc) termPID() int {
	if p.termPIDFile != "" {
		if data, err := os.ReadFile(p.termPIDFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 0 {
				if pg, err := syscall.Getpgid(pid); err == nil && pg == p.pgid {
					return pid
				}
			}
		}
	}
	return p.cmd.Process.Pid
}

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// runCommand runs a helper command and returns its combined output.
func runCommand(ctx context.Context, cmd *exec.Cmd) (string, error) {
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return out.String(), ctx.Err()
	}
}

// findBinary looks name up in PATH and then in extra (absolute paths).
// It is a variable so that tests can simulate a missing server.
var findBinary = func(name string, extra ...string) (string, bool) {
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	for _, p := range extra {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// env returns os.Environ() without the variables whose names start with
// one of drop, plus add.
func env(drop []string, add ...string) []string {
	var out []string
outer:
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		for _, d := range drop {
			if strings.HasPrefix(name, d) {
				continue outer
			}
		}
		out = append(out, kv)
	}
	return append(out, add...)
}
