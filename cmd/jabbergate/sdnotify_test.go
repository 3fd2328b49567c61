package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/config"
	"github.com/jabbergate/jabbergate/bridges/store/bolt"
	"github.com/jabbergate/jabbergate/component/servertest"
)

// notifyListener is a fake service manager: a unixgram socket in a temp dir.
func notifyListener(t *testing.T, name string) (*net.UnixConn, string) {
	t.Helper()
	if name == "" {
		name = filepath.Join(t.TempDir(), "notify")
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, name
}

// nextDatagram reads one notification, failing after 10s.
func nextDatagram(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

// waitDatagram reads notifications until one contains want.
func waitDatagram(t *testing.T, conn *net.UnixConn, want string) string {
	t.Helper()
	for range 1000 {
		if d := nextDatagram(t, conn); strings.Contains(d, want) {
			return d
		}
	}
	t.Fatalf("no notification with %q", want)
	return ""
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestSdNotifyPathAndAbstractSocket(t *testing.T) {
	conn, path := notifyListener(t, "")
	n := sdNotifierFromEnv(env(map[string]string{"NOTIFY_SOCKET": path}), nil)
	if err := n.notify("READY=1", "STATUS=hello"); err != nil {
		t.Fatal(err)
	}
	if got := nextDatagram(t, conn); got != "READY=1\nSTATUS=hello" {
		t.Fatalf("got %q", got)
	}

	abstract := fmt.Sprintf("@jabbergate-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	aconn, _ := notifyListener(t, abstract)
	n = sdNotifierFromEnv(env(map[string]string{"NOTIFY_SOCKET": abstract}), nil)
	if err := n.notify("WATCHDOG=1"); err != nil {
		t.Fatal(err)
	}
	if got := nextDatagram(t, aconn); got != "WATCHDOG=1" {
		t.Fatalf("abstract socket got %q", got)
	}
}

func TestSdNotifyDisabledAndBadSocket(t *testing.T) {
	n := sdNotifierFromEnv(env(nil), nil)
	if n.enabled() || n.notify("READY=1") != nil {
		t.Fatal("without NOTIFY_SOCKET notify must be a silent no-op")
	}
	n = sdNotifierFromEnv(env(map[string]string{"NOTIFY_SOCKET": "relative/sock"}), nil)
	if n.notify("READY=1") == nil {
		t.Fatal("relative NOTIFY_SOCKET accepted")
	}
	n = sdNotifierFromEnv(env(map[string]string{"NOTIFY_SOCKET": filepath.Join(t.TempDir(), "none")}), nil)
	if n.notify("READY=1") == nil {
		t.Fatal("missing socket: no error")
	}
}

func TestSdNotifyWatchdogEnv(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		usec, pid string
		want      time.Duration
	}{
		{"", "", 0},
		{"junk", "", 0},
		{"30000000", "", 30 * time.Second},
		{"30000000", pid, 30 * time.Second},
		{"30000000", "1", 0}, // meant for another process
	} {
		n := sdNotifierFromEnv(env(map[string]string{"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": tc.usec, "WATCHDOG_PID": tc.pid}), nil)
		if n.watchdog != tc.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: watchdog %v, want %v", tc.usec, tc.pid, n.watchdog, tc.want)
		}
	}
}

// TestSdNotifyLifecycle: STATUS while waiting, READY=1 once the probe
// passes, WATCHDOG=1 while alive, STOPPING=1 on shutdown.
func TestSdNotifyLifecycle(t *testing.T) {
	conn, path := notifyListener(t, "")
	n := sdNotifierFromEnv(env(map[string]string{"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "40000"}), nil)
	n.poll = 5 * time.Millisecond
	n.readyAfter = time.Hour
	var up atomic.Bool
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.run(ctx, sdProbes{
			ready: func(context.Context) []string {
				if up.Load() {
					return nil
				}
				return []string{"link echo.localhost down"}
			},
			alive: func(context.Context) error { return errors.New("redis down is not a hang") },
		})
	}()
	first := nextDatagram(t, conn)
	if first != "STATUS=waiting: link echo.localhost down" {
		t.Fatalf("first notification %q", first)
	}
	waitDatagram(t, conn, "WATCHDOG=1")
	up.Store(true)
	if got := waitDatagram(t, conn, "READY=1"); got != "READY=1\nSTATUS=ready" {
		t.Fatalf("ready notification %q", got)
	}
	waitDatagram(t, conn, "WATCHDOG=1")
	cancel()
	if got := waitDatagram(t, conn, "STOPPING=1"); got != "STOPPING=1\nSTATUS=stopping" {
		t.Fatalf("stopping notification %q", got)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return")
	}
}

// TestSdNotifyReadyAfterTimeout: READY=1 is sent after readyAfter even
// with a link down, naming the problem.
func TestSdNotifyReadyAfterTimeout(t *testing.T) {
	conn, path := notifyListener(t, "")
	n := sdNotifierFromEnv(env(map[string]string{"NOTIFY_SOCKET": path}), nil)
	n.poll = time.Hour
	n.readyAfter = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.run(ctx, sdProbes{
		ready: func(context.Context) []string { return []string{"store unreachable"} },
		alive: func(context.Context) error { return nil },
	})
	got := waitDatagram(t, conn, "READY=1")
	if got != "READY=1\nSTATUS=started, but store unreachable" {
		t.Fatalf("got %q", got)
	}
}

// TestSdNotifyWatchdogStarves: a probe that hangs past half the period
// gets no WATCHDOG=1.
func TestSdNotifyWatchdogStarves(t *testing.T) {
	conn, path := notifyListener(t, "")
	n := sdNotifierFromEnv(env(map[string]string{"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000"}), nil)
	n.poll = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.run(ctx, sdProbes{
			ready: func(context.Context) []string { return nil },
			alive: func(ctx context.Context) error {
				calls.Add(1)
				<-ctx.Done() // hangs until the deadline
				return ctx.Err()
			},
		})
	}()
	if got := nextDatagram(t, conn); got != "READY=1\nSTATUS=ready" {
		t.Fatalf("got %q", got)
	}
	for i := 0; calls.Load() < 3; i++ {
		if i > 10000 {
			t.Fatal("watchdog probe not called")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if got := nextDatagram(t, conn); got != "STOPPING=1\nSTATUS=stopping" {
		t.Fatalf("a hung probe fed the watchdog: got %q", got)
	}
}

// TestGatewayNotifySystemd: the hook in run with a real store and no
// bridges is ready at once and sends STOPPING=1 from stop.
func TestGatewayNotifySystemd(t *testing.T) {
	conn, path := notifyListener(t, "")
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "")
	st, err := bolt.Open(filepath.Join(t.TempDir(), "jg.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	g := &gateway{store: st, log: newLogger(config.Log{Level: "warn"}, os.Stderr)}
	stop := g.notifySystemd(context.Background())
	if got := nextDatagram(t, conn); got != "READY=1\nSTATUS=ready" {
		t.Fatalf("got %q", got)
	}
	stop()
	if got := nextDatagram(t, conn); got != "STOPPING=1\nSTATUS=stopping" {
		t.Fatalf("got %q", got)
	}
	t.Setenv("NOTIFY_SOCKET", "")
	g.notifySystemd(context.Background())() // no-op without a socket
}

// TestSystemdNotifyEndToEnd runs the gateway against a real Prosody as
// systemd would: READY=1 with every link up, WATCHDOG=1, and STOPPING=1
// when the context ends (SIGTERM).
func TestSystemdNotifyEndToEnd(t *testing.T) {
	conn, path := notifyListener(t, "")
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", "")
	srv := servertest.Start(t, "prosody", servertest.Options{
		Components: map[string]string{gwDomain: gwSecret},
		Users:      map[string]string{"alice": "alicepw"},
	})
	gw := startGateway(t, srv, fmt.Sprintf("store:\n  backend: bolt\n  path: %s\n", filepath.Join(t.TempDir(), "jg.db")))
	if got := waitDatagram(t, conn, "READY=1"); got != "READY=1\nSTATUS=ready" {
		t.Fatalf("ready notification %q", got)
	}
	waitDatagram(t, conn, "WATCHDOG=1")
	gw.stop()
	if got := waitDatagram(t, conn, "STOPPING=1"); got != "STOPPING=1\nSTATUS=stopping" {
		t.Fatalf("stopping notification %q", got)
	}
}
