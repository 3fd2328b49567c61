package component

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/component/componenttest"
	"github.com/jabbergate/jabbergate/component/stanza"
)

const (
	testDomain = "echo.localhost"
	testSecret = "s3cret"
	waitLong   = 5 * time.Second // upper bound for any wait in these tests
)

// logBuf collects log output for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor polls until the log contains every substring, or waitLong.
func (l *logBuf) waitFor(t *testing.T, subs ...string) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for i := 0; ; i++ {
		s := l.String()
		ok := true
		for _, sub := range subs {
			if !strings.Contains(s, sub) {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log does not contain %q within %v", subs, waitLong)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recorder is a Handler that queues what it receives.
type recorder struct{ ch chan *stanza.Element }

func newRecorder() *recorder { return &recorder{ch: make(chan *stanza.Element, 1000)} }

func (r *recorder) HandleStanza(st *stanza.Element) {
	select {
	case r.ch <- st:
	default:
	}
}

func (r *recorder) next(t *testing.T) *stanza.Element {
	t.Helper()
	select {
	case st := <-r.ch:
		return st
	case <-time.After(waitLong):
		t.Fatal("handler received nothing")
		return nil
	}
}

// none asserts that the handler receives nothing within d.
func (r *recorder) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case st := <-r.ch:
		t.Fatalf("handler unexpectedly received %s", st)
	case <-time.After(d):
	}
}

// obs records Observer events.
type obs struct {
	mu sync.Mutex
	obsCounts
}

type obsCounts struct {
	ups, downs  int
	reconnected int
	in, out     map[string]int
	streamErrs  []string
}

func newObs() *obs { return &obs{obsCounts: obsCounts{in: map[string]int{}, out: map[string]int{}}} }

func (o *obs) LinkUp(up bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if up {
		o.ups++
	} else {
		o.downs++
	}
}

func (o *obs) Reconnected() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reconnected++
}

func (o *obs) Stanza(dir Direction, kind string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if dir == In {
		o.in[kind]++
	} else {
		o.out[kind]++
	}
}

func (o *obs) StreamError(c string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.streamErrs = append(o.streamErrs, c)
}

func (o *obs) snapshot() obsCounts {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := obsCounts{ups: o.ups, downs: o.downs, reconnected: o.reconnected, in: map[string]int{}, out: map[string]int{}}
	for k, v := range o.in {
		c.in[k] = v
	}
	for k, v := range o.out {
		c.out[k] = v
	}
	c.streamErrs = append(c.streamErrs, o.streamErrs...)
	return c
}

// testConfig returns a config for srv with test-sized durations.
func testConfig(srv *componenttest.Server, logs *logBuf) Config {
	return Config{
		Addr:         srv.Addr(),
		Domain:       testDomain,
		Secret:       testSecret,
		PingInterval: time.Hour,
		PingTimeout:  time.Second,
		DialTimeout:  time.Second,
		MinBackoff:   20 * time.Millisecond,
		MaxBackoff:   100 * time.Millisecond,
		AuthBackoff:  time.Second,
		Logger:       slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

type harness struct {
	srv  *componenttest.Server
	logs *logBuf
	link *Link
	rec  *recorder
	obs  *obs
	stop func() // cancels Run and waits for it
}

// start builds a server and a running link; mod adjusts the config before
// New, h replaces the recording handler.
func start(t *testing.T, mod func(*Config), h Handler) *harness {
	t.Helper()
	return startWith(t, nil, mod, h)
}

// startWith is start with setup applied to the server before Run starts.
func startWith(t *testing.T, setup func(*componenttest.Server), mod func(*Config), h Handler) *harness {
	t.Helper()
	hs := &harness{
		srv:  componenttest.NewServer(t, testDomain, testSecret),
		logs: &logBuf{},
		rec:  newRecorder(),
		obs:  newObs(),
	}
	if setup != nil {
		setup(hs.srv)
	}
	cfg := testConfig(hs.srv, hs.logs)
	cfg.Observer = hs.obs
	if mod != nil {
		mod(&cfg)
	}
	if h == nil {
		h = hs.rec
	}
	l, err := New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	hs.link = l
	hs.stop = runLink(t, l)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("link log:\n%s", hs.logs.String())
		}
	})
	return hs
}

// runLink runs l until the returned function is called (or the test ends).
func runLink(t *testing.T, l *Link) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v, want nil", err)
				}
			case <-time.After(waitLong):
				t.Errorf("Run did not return within %v after cancel", waitLong)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func (hs *harness) up(t *testing.T) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	c, err := hs.link.WaitUp(ctx)
	if err != nil {
		t.Fatalf("link not up: %v", err)
	}
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	t.Cleanup(cancel)
	return ctx
}

func msg(from, to, body string) *stanza.Element {
	return stanza.New(stanza.NSComponent, "message", "from", from, "to", to, "type", "chat").
		TextChild(stanza.NSComponent, "body", body)
}

func isMsgBody(body string) func(*stanza.Element) bool {
	return func(st *stanza.Element) bool {
		return st.Local == "message" && st.ChildText(stanza.NSComponent, "body") == body
	}
}

func isPing(st *stanza.Element) bool {
	return st.Local == "iq" && st.Child("urn:xmpp:ping", "ping") != nil
}

// waitFor polls the observer until cond holds or waitLong passes, and
// returns the last snapshot.
func (o *obs) waitFor(t *testing.T, cond func(obsCounts) bool) obsCounts {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		c := o.snapshot()
		if cond(c) || time.Now().After(deadline) {
			return c
		}
		time.Sleep(2 * time.Millisecond)
	}
}
