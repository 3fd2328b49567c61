package main

// systemd integration (sd_notify(3)) with the standard library only: under
// Type=notify systemd passes the path of a datagram socket in NOTIFY_SOCKET
// (a file path, or an abstract socket name starting with "@") and, with
// WatchdogSec=, the watchdog period in WATCHDOG_USEC.
//
// What Jabbergate sends:
//
//   - READY=1 once every bridge's component link is up and the store
//     answered a ping. If that has not happened within readyTimeout (60s,
//     below systemd's default TimeoutStartSec of 90s) READY=1 is sent
//     anyway, with a STATUS= line naming what is still down: the links keep
//     reconnecting on their own, and a gateway whose XMPP server is down
//     should wait for it rather than be killed and restarted in a loop.
//     /readyz and the jabbergate_link_up metric keep telling the truth.
//   - STATUS=… whenever the set of problems changes ("ready", "link
//     sms.example.org down", …), shown by systemctl status.
//   - WATCHDOG=1 every WATCHDOG_USEC/2 while the process is responsive:
//     the store ping must return (with or without an error) within that
//     half period. An outage of the XMPP server or of Redis does not stop
//     the watchdog (restarting would not fix it; alert on it instead); a
//     wedged process or store client does, and systemd restarts the unit.
//   - STOPPING=1 when shutdown begins (SIGTERM).
//
// Without NOTIFY_SOCKET nothing is sent.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// readyTimeout is how long READY=1 waits for every link and the store.
const readyTimeout = 60 * time.Second

// sdNotifier sends state changes to the service manager.
type sdNotifier struct {
	socket     string        // NOTIFY_SOCKET; "" disables everything
	watchdog   time.Duration // WATCHDOG_USEC; 0 when the watchdog is off
	poll       time.Duration // how often readiness is checked
	readyAfter time.Duration // READY=1 at the latest after this
	log        *slog.Logger
}

// sdNotifierFromEnv reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID.
// The watchdog is off when WATCHDOG_PID names another process.
func sdNotifierFromEnv(getenv func(string) string, log *slog.Logger) *sdNotifier {
	n := &sdNotifier{socket: getenv("NOTIFY_SOCKET"), poll: time.Second, readyAfter: readyTimeout, log: log}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	usec, err := strconv.ParseInt(getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return n
	}
	if pid := getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return n
	}
	n.watchdog = time.Duration(usec) * time.Microsecond
	return n
}

// enabled reports whether a service manager listens.
func (n *sdNotifier) enabled() bool { return n.socket != "" }

// notify sends one datagram of newline-separated VAR=value assignments.
func (n *sdNotifier) notify(states ...string) error {
	if n.socket == "" {
		return nil
	}
	name := n.socket
	if name[0] != '@' && name[0] != '/' {
		return fmt.Errorf("NOTIFY_SOCKET %q: not an absolute path or an abstract socket", name)
	}
	// The net package maps a leading "@" to the abstract namespace.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(strings.Join(states, "\n"))); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// sdProbes are the checks run reports on.
type sdProbes struct {
	// ready returns what keeps the gateway from being ready (nothing when
	// it is).
	ready func(ctx context.Context) []string
	// alive returns when the process is responsive; its error is ignored.
	alive func(ctx context.Context) error
}

// run reports readiness, feeds the watchdog and sends STOPPING=1 when ctx
// ends.
func (n *sdNotifier) run(ctx context.Context, p sdProbes) {
	send := func(states ...string) {
		if err := n.notify(states...); err != nil {
			n.log.Warn("systemd notification failed", "err", err)
		}
	}
	poll := time.NewTicker(n.poll)
	defer poll.Stop()
	deadline := time.NewTimer(n.readyAfter)
	defer deadline.Stop()
	var wd <-chan time.Time
	if n.watchdog > 0 {
		t := time.NewTicker(n.watchdog / 2)
		defer t.Stop()
		wd = t.C
	}
	ready := false
	status := ""
	check := func(force bool) {
		pctx, cancel := context.WithTimeout(ctx, n.poll+2*time.Second)
		problems := p.ready(pctx)
		cancel()
		sort.Strings(problems)
		s := "ready"
		if len(problems) > 0 {
			s = strings.Join(problems, "; ")
			if !ready {
				s = "waiting: " + s
			}
		}
		var states []string
		if !ready && (len(problems) == 0 || force) {
			ready = true
			states = append(states, "READY=1")
			if len(problems) > 0 {
				s = "started, but " + strings.Join(problems, "; ")
			}
			n.log.Info("told systemd the gateway is ready", "problems", len(problems))
		}
		if s != status || len(states) > 0 {
			status = s
			states = append(states, "STATUS="+s)
		}
		if len(states) > 0 {
			send(states...)
		}
	}
	check(false)
	for {
		select {
		case <-ctx.Done():
			send("STOPPING=1", "STATUS=stopping")
			return
		case <-poll.C:
			check(false)
		case <-deadline.C:
			check(true)
		case <-wd:
			actx, cancel := context.WithTimeout(ctx, n.watchdog/2)
			_ = p.alive(actx)
			late := errors.Is(actx.Err(), context.DeadlineExceeded)
			cancel()
			if ctx.Err() != nil {
				continue
			}
			if late {
				n.log.Warn("store ping did not return within half the watchdog period: not feeding the watchdog")
				continue
			}
			send("WATCHDOG=1")
		}
	}
}

// notifySystemd starts the systemd notifier for g (a no-op without
// NOTIFY_SOCKET). The returned function sends STOPPING=1 if ctx has not
// ended yet, and waits for the notifier to finish.
func (g *gateway) notifySystemd(ctx context.Context) (stop func()) {
	n := sdNotifierFromEnv(os.Getenv, g.log)
	if !n.enabled() {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.run(ctx, g.sdProbes())
	}()
	return func() {
		cancel()
		<-done
	}
}

// sdProbes checks the links and the store.
func (g *gateway) sdProbes() sdProbes {
	return sdProbes{
		ready: func(ctx context.Context) []string {
			var problems []string
			for _, b := range g.bridgeList() {
				problems = append(problems, linkProblem(b)...)
			}
			if err := g.store.Ping(ctx); err != nil {
				problems = append(problems, "store unreachable")
			}
			return problems
		},
		alive: func(ctx context.Context) error { return g.store.Ping(ctx) },
	}
}
