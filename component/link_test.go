package component

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/component/componenttest"
	"github.com/jabbergate/jabbergate/component/stanza"
)

func TestHandshakeVector(t *testing.T) {
	// XEP-0114 §3 example.
	if got, want := Handshake("3BF96D32", "secret"), "b09ea9b3b7f586be8a08d0a3dd7466f110aeb136"; got != want {
		t.Fatalf("Handshake = %s, want %s", got, want)
	}
}

func TestNewValidatesAndDefaults(t *testing.T) {
	good := Config{Addr: "127.0.0.1:5347", Domain: "echo.localhost", Secret: "x"}
	for name, mod := range map[string]func(*Config){
		"no addr":         func(c *Config) { c.Addr = "" },
		"bad addr":        func(c *Config) { c.Addr = "localhost" },
		"no domain":       func(c *Config) { c.Domain = "" },
		"jid domain":      func(c *Config) { c.Domain = "a@echo.localhost" },
		"no secret":       func(c *Config) { c.Secret = "" },
		"single label":    func(c *Config) { c.Domain = "echo" },
		"quoted domain":   func(c *Config) { c.Domain = "echo'.localhost" },
		"trailing dot":    func(c *Config) { c.Domain = "echo.localhost." },
		"space in domain": func(c *Config) { c.Domain = "echo localhost" },
	} {
		c := good
		mod(&c)
		if _, err := New(c, nil); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	l, err := New(good, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := l.cfg
	if c.PingTo != "localhost" || c.MaxStanzaSize != 256*1024 || c.PingInterval != 30*time.Second ||
		c.PingTimeout != 30*time.Second || c.DialTimeout != 10*time.Second || c.MinBackoff != 500*time.Millisecond ||
		c.MaxBackoff != 60*time.Second || c.AuthBackoff != 30*time.Second || c.WriteQueue != 1024 ||
		c.Logger == nil || c.Observer == nil {
		t.Errorf("defaults not applied: %+v", c)
	}
	// A dead link is detected within 90s with the defaults: the next ping
	// is at most PingInterval after the last answer, plus its timeout.
	if c.PingInterval+c.PingTimeout > 90*time.Second {
		t.Errorf("dead link detection takes up to %v", c.PingInterval+c.PingTimeout)
	}
	if l.Domain() != "echo.localhost" || l.Up() {
		t.Error("Domain/Up wrong before Run")
	}
	if err := l.Send(context.Background(), msg("echo.localhost", "a@localhost", "x")); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Send before Run = %v, want ErrNotConnected", err)
	}
	if err := l.Barrier(context.Background()); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Barrier before Run = %v, want ErrNotConnected", err)
	}
	good.PingTo = "ping.example"
	good.Domain = "echo"
	if l, err := New(good, nil); err != nil || l.cfg.PingTo != "ping.example" {
		t.Errorf("explicit PingTo: %v", err)
	}
}

func TestBackoffBounds(t *testing.T) {
	l, err := New(Config{Addr: "127.0.0.1:1", Domain: "a.b", Secret: "x",
		MinBackoff: 100 * time.Millisecond, MaxBackoff: 1600 * time.Millisecond, AuthBackoff: 400 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		for fails := 1; fails < 70; fails++ {
			hi := min(100*time.Millisecond<<min(fails, 20), 1600*time.Millisecond)
			if d := l.backoff(fails, 0); d < 100*time.Millisecond || d > hi {
				t.Fatalf("backoff(%d, 0) = %v, want in [100ms, %v]", fails, d, hi)
			}
		}
		for auth, lo := range map[int]time.Duration{1: 400 * time.Millisecond, 2: 800 * time.Millisecond, 3: 1600 * time.Millisecond, 10: 1600 * time.Millisecond} {
			if d := l.backoff(1, auth); d < lo || d > lo+lo/4 {
				t.Fatalf("backoff(1, %d) = %v, want in [%v, %v]", auth, d, lo, lo+lo/4)
			}
		}
	}
}

func TestStanzasBothWays(t *testing.T) {
	hs := start(t, nil, nil)
	c := hs.up(t)
	if !hs.link.Up() {
		t.Fatal("Up() = false after WaitUp")
	}

	// Server -> component, in the component and the client namespace.
	in := msg("juliet@localhost/phone", "+1555@echo.localhost", "hello & <bye>")
	if err := hs.srv.Inject(in); err != nil {
		t.Fatal(err)
	}
	got := hs.rec.next(t)
	if got.Space != stanza.NSComponent || got.From() != "juliet@localhost/phone" || got.ChildText(stanza.NSComponent, "body") != "hello & <bye>" {
		t.Fatalf("handler got %s", got)
	}
	raw := `<message xmlns='jabber:client' from='juliet@localhost/phone' to='echo.localhost' id='m2'>` +
		`<body>client ns</body><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><body>inner</body></message></forwarded></message>`
	if err := hs.srv.InjectRaw(raw); err != nil {
		t.Fatal(err)
	}
	got = hs.rec.next(t)
	if got.Space != stanza.NSComponent || got.ChildText(stanza.NSComponent, "body") != "client ns" {
		t.Fatalf("not normalised: %s", got)
	}
	if inner := got.Child("urn:xmpp:forward:0", "forwarded").Child("", "message"); inner == nil || inner.Space != stanza.NSClient {
		t.Fatalf("forwarded message namespace changed: %s", got)
	}

	// Component -> server, via Conn and via Link; a jabber:client element
	// is sent in the component namespace without modifying the original.
	if err := c.Send(ctxT(t), msg("+1555@echo.localhost", "juliet@localhost", "one")); err != nil {
		t.Fatal(err)
	}
	cl := msg("+1555@echo.localhost/sms", "juliet@localhost", "two")
	cl.Space = stanza.NSClient
	cl.Nodes[0].El.Space = stanza.NSClient
	if err := hs.link.Send(ctxT(t), cl); err != nil {
		t.Fatal(err)
	}
	if cl.Space != stanza.NSClient {
		t.Error("Send modified the caller's element")
	}
	for _, body := range []string{"one", "two"} {
		if _, err := hs.srv.WaitFor(waitLong, isMsgBody(body)); err != nil {
			t.Fatal(err)
		}
	}
	if v := hs.srv.Violations(); len(v) > 0 {
		t.Fatalf("violations: %v", v)
	}
	// The writer reports a stanza after its Write returned, which may be
	// after the server recorded it.
	o := hs.obs.waitFor(t, func(o obsCounts) bool { return o.out["message"] == 2 })
	if o.ups != 1 || o.in["message"] != 2 || o.out["message"] != 2 || o.reconnected != 0 {
		t.Errorf("observer: %+v", o)
	}
	hs.logs.waitFor(t, "component link connected", "addr="+hs.srv.Addr(), "domain="+testDomain)
}

func TestNoStanzaBeforeHandshake(t *testing.T) {
	var onUp atomic.Int32
	hs := startWith(t, func(s *componenttest.Server) { s.SetHandshakeDelay(300 * time.Millisecond) }, func(c *Config) {
		c.OnUp = func(ctx context.Context, c *Conn) { onUp.Add(1) }
		c.PingInterval = 10 * time.Millisecond // the keepalive must not run before the handshake either
	}, nil)
	// The server's first handshake reply is delayed; in that window the link
	// is not up and refuses to send.
	if err := hs.srv.WaitAttempts(1, waitLong); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for i := 0; i < 10 && hs.srv.Handshakes() == 0; i++ {
		err := hs.link.Send(ctxT(t), msg(testDomain, "a@localhost", "early"))
		if hs.srv.Handshakes() != 0 {
			break // the window closed while we looked
		}
		if !errors.Is(err, ErrNotConnected) {
			t.Fatalf("Send during handshake = %v, want ErrNotConnected", err)
		}
		if onUp.Load() != 0 || hs.link.Up() {
			t.Fatal("link up before the handshake succeeded")
		}
		checked++
		time.Sleep(10 * time.Millisecond)
	}
	if checked == 0 {
		t.Fatal("the handshake delay window was never observed")
	}
	c := hs.up(t)
	if err := c.Send(ctxT(t), msg(testDomain, "a@localhost", "after")); err != nil {
		t.Fatal(err)
	}
	if _, err := hs.srv.WaitFor(waitLong, isMsgBody("after")); err != nil {
		t.Fatal(err)
	}
	if v := hs.srv.Violations(); len(v) > 0 {
		t.Fatalf("violations: %v", v)
	}
	deadline := time.Now().Add(waitLong)
	for onUp.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if onUp.Load() != 1 {
		t.Fatalf("OnUp called %d times", onUp.Load())
	}
}

// gatedConn counts Writes and can hold one until released.
type gatedConn struct {
	net.Conn
	writes atomic.Int32
	armed  atomic.Bool
	gate   chan struct{}
	held   chan struct{}
}

// dialGated makes l dial through gatedConns, handed over on the channel
// it returns as they are made.
func dialGated(l *Link) <-chan *gatedConn {
	conns := make(chan *gatedConn, 10)
	d := &net.Dialer{}
	l.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		g := &gatedConn{Conn: nc, gate: make(chan struct{}), held: make(chan struct{})}
		conns <- g
		return g, nil
	}
	return conns
}

func (g *gatedConn) Write(p []byte) (int, error) {
	g.writes.Add(1)
	if g.armed.CompareAndSwap(true, false) {
		close(g.held)
		<-g.gate
	}
	return g.Conn.Write(p)
}

func TestBatchingWrites(t *testing.T) {
	srv := componenttest.NewServer(t, testDomain, testSecret)
	logs := &logBuf{}
	cfg := testConfig(srv, logs)
	l, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	conns := dialGated(l)
	runLink(t, l)
	c, err := l.WaitUp(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	g := <-conns
	before := g.writes.Load() // stream header and handshake
	g.armed.Store(true)
	const n = 200
	if err := c.Send(ctxT(t), msg(testDomain, "a@localhost", "0")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.held: // the writer is now blocked in Write with stanza 0
	case <-time.After(waitLong):
		t.Fatal("writer did not write")
	}
	for i := 1; i < n; i++ {
		if err := c.Send(ctxT(t), msg(testDomain, "a@localhost", string(rune('0'+i%10))+"-"+itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	close(g.gate)
	last := string(rune('0'+(n-1)%10)) + "-" + itoa(n-1)
	if _, err := srv.WaitFor(waitLong, isMsgBody(last)); err != nil {
		t.Fatal(err)
	}
	writes := g.writes.Load() - before
	// Stanza 0 alone, then the other 199 (about 20 KB) in one Write.
	if writes != 2 {
		t.Errorf("%d stanzas took %d writes, want 2", n, writes)
	}
	got := srv.Received()
	if len(got) != n {
		t.Fatalf("server received %d stanzas, want %d", len(got), n)
	}
	for i, st := range got[1:] {
		if want := string(rune('0'+(i+1)%10)) + "-" + itoa(i+1); st.ChildText(stanza.NSComponent, "body") != want {
			t.Fatalf("stanza %d has body %q, want %q (order)", i+1, st.ChildText(stanza.NSComponent, "body"), want)
		}
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func TestWriteQueueBackPressure(t *testing.T) {
	srv := componenttest.NewServer(t, testDomain, testSecret)
	cfg := testConfig(srv, &logBuf{})
	cfg.WriteQueue = 2
	l, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	conns := dialGated(l)
	runLink(t, l)
	c, err := l.WaitUp(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	g := <-conns
	g.armed.Store(true)
	defer close(g.gate)
	if err := c.Send(ctxT(t), msg(testDomain, "a@localhost", "held")); err != nil {
		t.Fatal(err)
	}
	<-g.held
	for i := 0; i < 2; i++ { // fills the queue
		if err := c.Send(ctxT(t), msg(testDomain, "a@localhost", "q")); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.Send(ctx, msg(testDomain, "a@localhost", "blocked")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send on a full queue = %v, want context.DeadlineExceeded", err)
	}
}

// TestOversizedStanza: a stanza whose body or closing tags take it past the
// size limit is skipped and answered with a policy-violation error, and
// the link stays up; one whose start tag alone is past the limit cannot be
// skipped safely and closes the link with policy-violation, which then
// comes back.
func TestOversizedStanza(t *testing.T) {
	hs := start(t, func(c *Config) { c.MaxStanzaSize = 4096 }, nil)
	hs.up(t)
	// A stanza just under the limit passes.
	fits := msg("a@localhost", testDomain, strings.Repeat("x", 3900))
	if err := hs.srv.Inject(fits); err != nil {
		t.Fatal(err)
	}
	if got := hs.rec.next(t); len(got.ChildText(stanza.NSComponent, "body")) != 3900 {
		t.Fatal("stanza below the limit not delivered")
	}
	// Whitespace keepalives between stanzas (RFC 6120 §4.6.1), far more
	// than the limit in all, count against no stanza.
	if err := hs.srv.InjectRaw(strings.Repeat(" ", 3*4096) + strings.Repeat("\r\n\t", 4096)); err != nil {
		t.Fatal(err)
	}
	fits.SetAttr("id", "after-spaces")
	if err := hs.srv.Inject(fits); err != nil {
		t.Fatal(err)
	}
	if got := hs.rec.next(t); got.ID() != "after-spaces" {
		t.Fatalf("stanza after whitespace keepalives = %s", got)
	}
	// One huge text token: the limiter stops reading at the limit, the
	// rest of the stanza is skipped.
	big := msg("big@localhost/res", testDomain, strings.Repeat("y<&", 1<<18))
	big.SetAttr("id", "big1")
	if err := hs.srv.Inject(big); err != nil {
		t.Fatal(err)
	}
	if err := hs.srv.Inject(msg("a@localhost", testDomain, "after")); err != nil {
		t.Fatal(err)
	}
	if got := hs.rec.next(t); got.ChildText(stanza.NSComponent, "body") != "after" {
		t.Fatalf("the stanza after the oversized one = %s", got)
	}
	reply, err := hs.srv.WaitFor(waitLong, func(e *stanza.Element) bool { return e.ID() == "big1" })
	if err != nil {
		t.Fatalf("no error reply to the oversized stanza: %v", err)
	}
	if se := stanza.ParseError(reply); se == nil || se.Condition != stanza.PolicyViolation || reply.To() != "big@localhost/res" ||
		!strings.Contains(se.Text, "larger than the 4096 bytes") {
		t.Errorf("reply to the oversized stanza = %s", reply)
	}
	hs.logs.waitFor(t, "refused a stanza from the server; the link stays up", `from=big@localhost/res`,
		"larger than the 4096 bytes")
	if n := hs.srv.Handshakes(); n != 1 || len(hs.srv.StreamErrors()) != 0 {
		t.Errorf("handshakes = %d, stream errors %v: the link was dropped", n, hs.srv.StreamErrors())
	}
	hs.rec.none(t, 50*time.Millisecond)
	// A stanza just over the limit crosses it in its closing tags (the
	// common case for a message padded to the client limit, which the
	// server's own from and xml:lang then push over): skipped too.
	open := "<message from='c@localhost/res' to='" + testDomain + "' id='big2' type='chat'><body>"
	closing := "</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>"
	if err := hs.srv.InjectRaw(open + strings.Repeat("q", 4096+10-len(open)-len(closing)) + closing); err != nil {
		t.Fatal(err)
	}
	if err := hs.srv.Inject(msg("a@localhost", testDomain, "after closing tags")); err != nil {
		t.Fatal(err)
	}
	if got := hs.rec.next(t); got.ChildText(stanza.NSComponent, "body") != "after closing tags" {
		t.Fatalf("the stanza after the one cut in its closing tags = %s", got)
	}
	if reply, err := hs.srv.WaitFor(waitLong, func(e *stanza.Element) bool { return e.ID() == "big2" }); err != nil ||
		stanza.ParseError(reply) == nil || stanza.ParseError(reply).Condition != stanza.PolicyViolation {
		t.Fatalf("reply to the stanza cut in its closing tags: %v %v", reply, err)
	}
	if n := hs.srv.Handshakes(); n != 1 || len(hs.srv.StreamErrors()) != 0 {
		t.Errorf("handshakes = %d, stream errors %v: the link was dropped", n, hs.srv.StreamErrors())
	}
	// Huge start tag: from/to unknown, the link is closed and comes back.
	if err := hs.srv.InjectRaw("<message from='" + strings.Repeat("z", 8192) + "'>"); err != nil {
		t.Fatal(err)
	}
	if err := hs.srv.WaitHandshakes(2, waitLong); err != nil {
		t.Fatal(err)
	}
	hs.logs.waitFor(t, "exceeds the size limit of 4096 bytes", "stream_error_sent=policy-violation", "component link reconnecting")
	if e := hs.srv.StreamErrors(); len(e) == 0 || e[0] != "policy-violation" {
		t.Errorf("stream errors sent: %v, want policy-violation", e)
	}
}

// TestHugeStanzaSkipped: a stanza far larger than any skip budget — 40 MB
// of body text, then 20 MB of small child elements, as a server without a
// c2s size limit routes them (ejabberd's default) — is refused with
// policy-violation to its sender, the link stays up, and the stanza after
// each is read normally. The bytes are generated as they are written, so
// neither side holds a whole stanza.
func TestHugeStanzaSkipped(t *testing.T) {
	hs := start(t, nil, nil) // the default 256 KiB limit
	hs.up(t)
	for _, tc := range []struct {
		id, chunk string
		n         int
	}{
		{"text", strings.Repeat("body text &amp; &lt;more&gt; ", 1<<11), 40 << 20},
		{"tags", strings.Repeat("<b>x</b><br/><i a='&gt;'>y</i>", 1<<11), 20 << 20},
	} {
		open := "<message from='carol@localhost/xc' to='" + testDomain + "' id='" + tc.id + "' type='chat'><body>"
		if err := hs.srv.InjectRaw(open); err != nil {
			t.Fatal(err)
		}
		for sent := 0; sent < tc.n; sent += len(tc.chunk) {
			if err := hs.srv.InjectRaw(tc.chunk); err != nil {
				t.Fatal(err)
			}
		}
		if err := hs.srv.InjectRaw("</body></message>"); err != nil {
			t.Fatal(err)
		}
		if err := hs.srv.Inject(msg("a@localhost", testDomain, "after "+tc.id)); err != nil {
			t.Fatal(err)
		}
		if got := hs.rec.next(t); got.ChildText(stanza.NSComponent, "body") != "after "+tc.id {
			t.Fatalf("the stanza after the huge one (%s) = %s", tc.id, got)
		}
		reply, err := hs.srv.WaitFor(waitLong, func(e *stanza.Element) bool { return e.ID() == tc.id })
		if err != nil {
			t.Fatalf("no error reply to the huge stanza (%s): %v", tc.id, err)
		}
		if se := stanza.ParseError(reply); se == nil || se.Condition != stanza.PolicyViolation || reply.To() != "carol@localhost/xc" {
			t.Errorf("reply to the huge stanza (%s) = %s", tc.id, reply)
		}
		if n := hs.srv.Handshakes(); n != 1 || len(hs.srv.StreamErrors()) != 0 {
			t.Fatalf("handshakes = %d, stream errors %v: the link was dropped by the huge stanza (%s)", n, hs.srv.StreamErrors(), tc.id)
		}
	}
	hs.rec.none(t, 50*time.Millisecond)
}

func TestMalformedXMLReconnects(t *testing.T) {
	hs := start(t, nil, nil)
	hs.up(t)
	if err := hs.srv.InjectRaw("<message from='a@localhost' to='echo.localhost'><body>x</bod></message>"); err != nil {
		t.Fatal(err)
	}
	if err := hs.srv.WaitHandshakes(2, waitLong); err != nil {
		t.Fatal(err)
	}
	hs.logs.waitFor(t, "malformed XML from server", "stream_error_sent=not-well-formed")
	if e := hs.srv.StreamErrors(); len(e) == 0 || e[0] != "not-well-formed" {
		t.Errorf("stream errors sent: %v, want not-well-formed", e)
	}
	// The new connection works.
	c := hs.up(t)
	if err := c.Send(ctxT(t), msg(testDomain, "a@localhost", "again")); err != nil {
		t.Fatal(err)
	}
	if _, err := hs.srv.WaitFor(waitLong, isMsgBody("again")); err != nil {
		t.Fatal(err)
	}
}

func TestNotAuthorizedWaitsAuthBackoff(t *testing.T) {
	const authBackoff = 150 * time.Millisecond
	hs := start(t, func(c *Config) {
		c.Secret = "wrong"
		c.MinBackoff = time.Millisecond
		c.MaxBackoff = 5 * time.Millisecond
		c.AuthBackoff = authBackoff
	}, nil)
	if err := hs.srv.WaitAttempts(3, waitLong); err != nil {
		t.Fatal(err)
	}
	at := hs.srv.Attempts()
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < authBackoff {
			t.Errorf("attempt %d came %v after the previous one, want >= %v", i, gap, authBackoff)
		}
	}
	hs.logs.waitFor(t, "stream error from server", "condition=not-authorized",
		"the server rejected the secret for echo.localhost; check bridges[].secret matches the server's component config")
	if o := hs.obs.snapshot(); len(o.streamErrs) == 0 || o.streamErrs[0] != "not-authorized" || o.ups != 0 {
		t.Errorf("observer: %+v", o)
	}
	if hs.link.Up() {
		t.Error("link up with a wrong secret")
	}
}

func TestConfigStreamErrorsWaitAuthBackoff(t *testing.T) {
	for _, cond := range []string{"host-unknown", "conflict", "invalid-namespace"} {
		t.Run(cond, func(t *testing.T) {
			const authBackoff = 100 * time.Millisecond
			hs := startWith(t, func(s *componenttest.Server) { s.FailHandshakes(cond, "") }, func(c *Config) {
				c.MinBackoff = time.Millisecond
				c.MaxBackoff = 5 * time.Millisecond
				c.AuthBackoff = authBackoff
			}, nil)
			if err := hs.srv.WaitAttempts(3, waitLong); err != nil {
				t.Fatal(err)
			}
			at := hs.srv.Attempts()
			for i := 1; i < len(at); i++ {
				if gap := at[i].Sub(at[i-1]); gap < authBackoff {
					t.Errorf("attempts %v apart after %s, want >= %v", gap, cond, authBackoff)
				}
			}
			hs.logs.waitFor(t, "condition="+cond)
		})
	}
}

func TestStreamErrorDuringSession(t *testing.T) {
	hs := start(t, nil, nil)
	hs.up(t)
	if err := hs.srv.SendStreamError("system-shutdown", "restarting"); err != nil {
		t.Fatal(err)
	}
	if err := hs.srv.WaitHandshakes(2, waitLong); err != nil {
		t.Fatal(err)
	}
	hs.logs.waitFor(t, "condition=system-shutdown", "text=restarting", "the server is shutting down or restarting", "component link disconnected")
	o := hs.obs.waitFor(t, func(o obsCounts) bool { return o.reconnected > 0 })
	if o.reconnected != 1 || o.downs < 1 || len(o.streamErrs) != 1 {
		t.Errorf("observer: %+v", o)
	}
}

func TestDeadLinkDetected(t *testing.T) {
	hs := start(t, func(c *Config) {
		c.PingInterval = 20 * time.Millisecond
		c.PingTimeout = 100 * time.Millisecond
		c.DialTimeout = 200 * time.Millisecond
	}, nil)
	hs.up(t)
	// Keepalive pings are answered: the link stays up for several periods.
	if _, err := hs.srv.WaitFor(waitLong, func(st *stanza.Element) bool {
		return isPing(st) && st.To() == "localhost"
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	if hs.srv.Handshakes() != 1 || !hs.link.Up() {
		t.Fatal("link dropped although pings were answered")
	}
	hs.srv.SetUnresponsive(true)
	if err := hs.srv.WaitDisconnected(waitLong); err != nil {
		t.Fatal(err)
	}
	hs.logs.waitFor(t, "dead link: no answer to keepalive ping to localhost within 100ms")
	hs.srv.SetUnresponsive(false)
	if err := hs.srv.WaitHandshakes(2, waitLong); err != nil {
		t.Fatal(err)
	}
	hs.up(t)
}

func TestBarrier(t *testing.T) {
	hs := start(t, nil, nil)
	c := hs.up(t)
	const n = 50
	for i := 0; i < n; i++ {
		if err := c.Send(ctxT(t), msg(testDomain, "a@localhost", "b"+itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := hs.link.Barrier(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// The server records stanzas before it answers the ping that follows
	// them, so all of them are there now.
	got := 0
	for _, st := range hs.srv.Received() {
		if st.Local == "message" {
			got++
		}
	}
	if got != n {
		t.Fatalf("after Barrier the server has %d messages, want %d", got, n)
	}
	hs.rec.none(t, 20*time.Millisecond) // the ping result went to the Barrier, not the Handler
}

func TestBarrierWaitsForAnswer(t *testing.T) {
	hs := start(t, nil, nil)
	c := hs.up(t)
	hs.srv.SetAnswerPings(false)
	for _, typ := range []string{"result", "error"} {
		done := make(chan error, 1)
		go func() { done <- c.Barrier(ctxT(t)) }()
		ping, err := hs.srv.WaitFor(waitLong, func(st *stanza.Element) bool {
			return isPing(st) && !answered(hs, st.ID())
		})
		if err != nil {
			t.Fatal(err)
		}
		if ping.From() != testDomain || ping.To() != "localhost" || ping.Type() != "get" || ping.ID() == "" {
			t.Fatalf("barrier ping: %s", ping)
		}
		select {
		case err := <-done:
			t.Fatalf("Barrier returned %v before the answer", err)
		case <-time.After(50 * time.Millisecond):
		}
		var reply *stanza.Element
		if typ == "result" {
			reply = stanza.Result(ping, nil)
		} else {
			reply = stanza.ErrorReply(ping, stanza.NewError(stanza.ServiceUnavailable, ""))
		}
		markAnswered(hs, ping.ID())
		if err := hs.srv.Inject(reply); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Barrier after %s = %v", typ, err)
			}
		case <-time.After(waitLong):
			t.Fatal("Barrier did not return after the answer")
		}
	}
	hs.rec.none(t, 20*time.Millisecond)
}

// TestBarrierSharesPings: callers arriving while a barrier ping is in
// flight share the next ping, sent once the first is answered; a caller
// whose context ends stops waiting without disturbing the others.
func TestBarrierSharesPings(t *testing.T) {
	hs := start(t, nil, nil)
	c := hs.up(t)
	hs.srv.SetAnswerPings(false)
	pings := func() []*stanza.Element {
		var out []*stanza.Element
		for _, st := range hs.srv.Received() {
			if isPing(st) && st.From() == testDomain {
				out = append(out, st)
			}
		}
		return out
	}
	first := make(chan error, 1)
	go func() { first <- c.Barrier(ctxT(t)) }()
	ping1, err := hs.srv.WaitFor(waitLong, isPing)
	if err != nil {
		t.Fatal(err)
	}
	const n = 5
	rest := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() { rest <- c.Barrier(ctxT(t)) }()
	}
	gone, cancel := context.WithCancel(ctxT(t))
	left := make(chan error, 1)
	go func() { left <- c.Barrier(gone) }()
	time.Sleep(50 * time.Millisecond) // let them gather
	if got := len(pings()); got != 1 {
		t.Fatalf("%d pings while the first is unanswered, want 1", got)
	}
	cancel()
	select {
	case err := <-left:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("canceled Barrier = %v", err)
		}
	case <-time.After(waitLong):
		t.Fatal("canceled Barrier did not return")
	}
	// The message sent now comes before the shared second ping.
	if err := c.Send(ctxT(t), msg(testDomain, "a@localhost", "late")); err != nil {
		t.Fatal(err)
	}
	lateDone := make(chan error, 1)
	go func() { lateDone <- c.Barrier(ctxT(t)) }()
	time.Sleep(20 * time.Millisecond)
	markAnswered(hs, ping1.ID())
	if err := hs.srv.Inject(stanza.Result(ping1, nil)); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatalf("first Barrier = %v", err)
	}
	ping2, err := hs.srv.WaitFor(waitLong, func(st *stanza.Element) bool { return isPing(st) && st.ID() != ping1.ID() })
	if err != nil {
		t.Fatal(err)
	}
	sawLate := false
	for _, st := range hs.srv.Received() {
		if isMsgBody("late")(st) {
			sawLate = true
		}
		if st.ID() == ping2.ID() && !sawLate {
			t.Fatal("the second ping was sent before a message queued ahead of its Barrier call")
		}
	}
	select {
	case err := <-rest:
		t.Fatalf("a gathered Barrier returned %v before its ping was answered", err)
	case <-time.After(20 * time.Millisecond):
	}
	markAnswered(hs, ping2.ID())
	if err := hs.srv.Inject(stanza.Result(ping2, nil)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := <-rest; err != nil {
			t.Fatalf("gathered Barrier = %v", err)
		}
	}
	if err := <-lateDone; err != nil {
		t.Fatalf("late Barrier = %v", err)
	}
	if got := len(pings()); got != 2 {
		t.Fatalf("%d barrier pings for %d callers, want 2", got, n+3)
	}
}

// TestBarrierRetryAfterGivingUp: when every caller waiting for a barrier
// ping has given up (its answer may have gone to another instance of the
// domain), a caller retrying gets a new ping at once, not after the
// unanswered one's PingTimeout.
func TestBarrierRetryAfterGivingUp(t *testing.T) {
	hs := start(t, func(c *Config) { c.PingTimeout = time.Hour }, nil)
	c := hs.up(t)
	hs.srv.SetAnswerPings(false)
	short, cancel := context.WithTimeout(ctxT(t), 50*time.Millisecond)
	defer cancel()
	if err := c.Barrier(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Barrier past its deadline = %v", err)
	}
	ping1, err := hs.srv.WaitFor(waitLong, isPing)
	if err != nil {
		t.Fatal(err)
	}
	retry := make(chan error, 1)
	go func() { retry <- c.Barrier(ctxT(t)) }()
	ping2, err := hs.srv.WaitFor(waitLong, func(st *stanza.Element) bool { return isPing(st) && st.ID() != ping1.ID() })
	if err != nil {
		t.Fatalf("no new ping for the retry while the abandoned one is unanswered: %v", err)
	}
	markAnswered(hs, ping2.ID())
	if err := hs.srv.Inject(stanza.Result(ping2, nil)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-retry:
		if err != nil {
			t.Fatalf("retried Barrier = %v", err)
		}
	case <-time.After(waitLong):
		t.Fatal("retried Barrier did not return after its answer")
	}
}

var answeredIDs sync.Map

func answered(hs *harness, id string) bool {
	_, ok := answeredIDs.Load(hs.srv.Addr() + id)
	return ok
}

func markAnswered(hs *harness, id string) { answeredIDs.Store(hs.srv.Addr()+id, true) }

func TestBarrierConnClosed(t *testing.T) {
	hs := start(t, nil, nil)
	c := hs.up(t)
	hs.srv.SetAnswerPings(false)
	done := make(chan error, 1)
	go func() { done <- c.Barrier(ctxT(t)) }()
	if _, err := hs.srv.WaitFor(waitLong, isPing); err != nil {
		t.Fatal(err)
	}
	if err := hs.srv.CloseConn(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrConnClosed) {
			t.Fatalf("Barrier = %v, want ErrConnClosed", err)
		}
	case <-time.After(waitLong):
		t.Fatal("Barrier did not return when the connection died")
	}
	select {
	case <-c.Done():
	case <-time.After(waitLong):
		t.Fatal("Done not closed")
	}
	if err := c.Send(ctxT(t), msg(testDomain, "a@localhost", "late")); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("Send on an ended Conn = %v, want ErrConnClosed", err)
	}
	if _, err := c.Request(ctxT(t), stanza.New(stanza.NSComponent, "iq", "type", "get", "to", "localhost")); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("Request on an ended Conn = %v, want ErrConnClosed", err)
	}
	// The link reconnects with a new Conn.
	if err := hs.srv.WaitHandshakes(2, waitLong); err != nil {
		t.Fatal(err)
	}
	if c2 := hs.up(t); c2 == c {
		t.Fatal("WaitUp returned the dead Conn")
	}
	hs.logs.waitFor(t, "component link disconnected", "reason=")
}

func TestRequestRouting(t *testing.T) {
	hs := start(t, nil, nil)
	c := hs.up(t)
	const peer = "juliet@localhost/phone"
	type res struct {
		reply *stanza.Element
		err   error
	}
	ask := func(id string) (chan res, *stanza.Element) {
		ch := make(chan res, 1)
		iq := stanza.New(stanza.NSComponent, "iq", "type", "get", "to", peer, "id", id).
			Add(stanza.New("http://jabber.org/protocol/disco#info", "query"))
		go func() {
			r, err := c.Request(ctxT(t), iq)
			ch <- res{r, err}
		}()
		sent, err := hs.srv.WaitFor(waitLong, func(st *stanza.Element) bool {
			return st.Local == "iq" && st.To() == peer && (id == "" || st.ID() == id) && !answered(hs, st.ID())
		})
		if err != nil {
			t.Fatal(err)
		}
		markAnswered(hs, sent.ID())
		if iq.From() != "" || (id == "" && iq.ID() != "") {
			t.Fatal("Request modified the caller's iq")
		}
		return ch, sent
	}

	// A result is returned to Request, not passed to the Handler.
	ch, sent := ask("")
	if sent.ID() == "" || sent.From() != testDomain {
		t.Fatalf("request sent as %s, want an id and from=%s", sent, testDomain)
	}
	// A result from someone else with the same id is not the answer.
	spoof := stanza.Result(sent, nil)
	spoof.SetAttr("from", "mallory@localhost/x")
	if err := hs.srv.Inject(spoof); err != nil {
		t.Fatal(err)
	}
	if got := hs.rec.next(t); got.From() != "mallory@localhost/x" {
		t.Fatalf("handler got %s", got)
	}
	if err := hs.srv.Inject(stanza.Result(sent, stanza.New("http://jabber.org/protocol/disco#info", "query"))); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-ch:
		if r.err != nil || r.reply.Type() != "result" || r.reply.Child("http://jabber.org/protocol/disco#info", "query") == nil {
			t.Fatalf("Request = %v, %v", r.reply, r.err)
		}
	case <-time.After(waitLong):
		t.Fatal("Request did not return")
	}
	hs.rec.none(t, 20*time.Millisecond)

	// An error reply comes back with a *stanza.Error.
	ch, sent = ask("q2")
	if err := hs.srv.Inject(stanza.ErrorReply(sent, stanza.NewError(stanza.ItemNotFound, "gone"))); err != nil {
		t.Fatal(err)
	}
	r := <-ch
	var se *stanza.Error
	if !errors.As(r.err, &se) || se.Condition != stanza.ItemNotFound || r.reply == nil || r.reply.Type() != "error" {
		t.Fatalf("Request error reply = %v, %v", r.reply, r.err)
	}

	// A result nobody waits for goes to the Handler.
	stray := stanza.New(stanza.NSComponent, "iq", "type", "result", "id", "nobody", "from", peer, "to", testDomain)
	if err := hs.srv.Inject(stray); err != nil {
		t.Fatal(err)
	}
	if got := hs.rec.next(t); got.ID() != "nobody" {
		t.Fatalf("handler got %s", got)
	}

	// Bad requests are refused.
	if _, err := c.Request(ctxT(t), stanza.New(stanza.NSComponent, "iq", "type", "result", "to", peer)); err == nil {
		t.Error("Request accepted a result")
	}
	if _, err := c.Request(ctxT(t), msg(testDomain, peer, "x")); err == nil {
		t.Error("Request accepted a message")
	}
	// A request that is never answered ends with ctx.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := c.Request(ctx, stanza.New(stanza.NSComponent, "iq", "type", "get", "to", peer)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("unanswered Request = %v", err)
	}
}

func TestForeignFromRefused(t *testing.T) {
	hs := start(t, nil, nil)
	c := hs.up(t)
	for _, from := range []string{"", "someone@other.org", "localhost", "echo.localhost.evil.org", "evil.echo.localhost",
		"@echo.localhost", "echo.localhost/", "a@echo.localhost/", "a@b@echo.localhost.x", "sub.echo.localhost"} {
		if err := c.Send(ctxT(t), msg(from, "a@localhost", "bad "+from)); err == nil {
			t.Errorf("Send with from=%q accepted", from)
		} else if !strings.Contains(err.Error(), "from") {
			t.Errorf("Send with from=%q: error %q does not mention from", from, err)
		}
	}
	if err := c.Send(ctxT(t), stanza.New(stanza.NSComponent, "handshake", "from", testDomain)); err == nil {
		t.Error("Send accepted a non-stanza element")
	}
	if err := c.Send(ctxT(t), stanza.New("urn:example", "message", "from", testDomain)); err == nil {
		t.Error("Send accepted a message in a foreign namespace")
	}
	good := []string{testDomain, "a@echo.localhost", "+15551234567@echo.localhost/sms", "echo.localhost/bot", "A@ECHO.LOCALHOST"}
	for _, from := range good {
		if err := c.Send(ctxT(t), msg(from, "a@localhost", "good "+from)); err != nil {
			t.Errorf("Send with from=%q: %v", from, err)
		}
	}
	if err := hs.link.Barrier(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for _, st := range hs.srv.Received() {
		if st.Local == "message" {
			bodies = append(bodies, st.ChildText(stanza.NSComponent, "body"))
		}
	}
	if len(bodies) != len(good) {
		t.Fatalf("server received %q, want only the %d good ones", bodies, len(good))
	}
	if v := hs.srv.Violations(); len(v) > 0 || hs.srv.Handshakes() != 1 {
		t.Fatalf("violations %v, handshakes %d", v, hs.srv.Handshakes())
	}
}

func TestHandlerPanicSurvived(t *testing.T) {
	rec := newRecorder()
	var n atomic.Int32
	h := HandlerFunc(func(st *stanza.Element) {
		if n.Add(1) == 1 {
			panic("boom")
		}
		rec.HandleStanza(st)
	})
	hs := start(t, nil, h)
	hs.up(t)
	for _, body := range []string{"first", "second"} {
		if err := hs.srv.Inject(msg("a@localhost", testDomain, body)); err != nil {
			t.Fatal(err)
		}
	}
	if got := rec.next(t); got.ChildText(stanza.NSComponent, "body") != "second" {
		t.Fatalf("handler got %s", got)
	}
	hs.logs.waitFor(t, "component handler panicked", "panic=boom")
	if hs.srv.Handshakes() != 1 || !hs.link.Up() {
		t.Fatal("the panic cost the connection")
	}
}

func TestOnUpContextAndReconnected(t *testing.T) {
	ups := make(chan context.Context, 10)
	hs := start(t, func(c *Config) {
		c.OnUp = func(ctx context.Context, c *Conn) { ups <- ctx }
	}, nil)
	var ctx1 context.Context
	select {
	case ctx1 = <-ups:
	case <-time.After(waitLong):
		t.Fatal("OnUp not called")
	}
	if ctx1.Err() != nil {
		t.Fatal("OnUp ctx already done")
	}
	if err := hs.srv.CloseConn(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx1.Done():
	case <-time.After(waitLong):
		t.Fatal("OnUp ctx did not end with its connection")
	}
	select {
	case <-ups:
	case <-time.After(waitLong):
		t.Fatal("OnUp not called after reconnect")
	}
	o := hs.obs.waitFor(t, func(o obsCounts) bool { return o.reconnected > 0 })
	if o.ups != 2 || o.downs != 1 || o.reconnected != 1 {
		t.Errorf("observer: %+v", o)
	}
}

func TestGracefulShutdown(t *testing.T) {
	hs := start(t, nil, nil)
	c := hs.up(t)
	for i := 0; i < 20; i++ {
		if err := c.Send(ctxT(t), msg(testDomain, "a@localhost", "bye"+itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	hs.stop()
	if hs.link.Up() {
		t.Error("Up after Run returned")
	}
	if _, err := hs.srv.WaitFor(waitLong, isMsgBody("bye19")); err != nil {
		t.Fatal("queued stanzas not flushed before closing:", err)
	}
	if err := hs.srv.WaitDisconnected(waitLong); err != nil {
		t.Fatal(err)
	}
	if e := hs.srv.StreamErrors(); len(e) > 0 {
		t.Errorf("stream errors on graceful close: %v", e)
	}
	if err := c.Send(ctxT(t), msg(testDomain, "a@localhost", "x")); !errors.Is(err, ErrConnClosed) {
		t.Errorf("Send after shutdown = %v", err)
	}
	hs.logs.waitFor(t, "component link closed")
	if strings.Contains(hs.logs.String(), "reconnecting") {
		t.Error("link reconnected after shutdown")
	}
}

func TestRunTwiceRefused(t *testing.T) {
	hs := start(t, nil, nil)
	hs.up(t)
	if err := hs.link.Run(context.Background()); err == nil {
		t.Fatal("second concurrent Run accepted")
	}
}

func TestConnectFailureBacksOff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	logs := &logBuf{}
	l, err := New(Config{Addr: addr, Domain: testDomain, Secret: testSecret, MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 20 * time.Millisecond, Logger: testConfig(componenttest.NewServer(t, testDomain, testSecret), logs).Logger}, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runLink(t, l)
	logs.waitFor(t, "component link connect failed", "component link reconnecting", "attempt=2")
	stop()
}

func TestStreamErrorMeaning(t *testing.T) {
	e := &StreamError{Condition: "not-authorized", domain: "sms.example.org"}
	if want := "the server rejected the secret for sms.example.org; check bridges[].secret matches the server's component config"; e.Meaning() != want {
		t.Errorf("Meaning = %q", e.Meaning())
	}
	for _, c := range []string{"conflict", "host-unknown", "invalid-from", "improper-addressing", "invalid-namespace",
		"policy-violation", "system-shutdown", "connection-timeout", "see-other-host", "bad-format"} {
		if m := (&StreamError{Condition: c}).Meaning(); m == "" || m == "unknown stream error condition" {
			t.Errorf("no meaning for %s", c)
		}
	}
	if m := (&StreamError{Condition: "conflict"}).Meaning(); m != "another component is already connected for this domain (or this connection was replaced by a newer one)" {
		t.Errorf("conflict: %q", m)
	}
	var err error = &StreamError{Condition: "conflict", Text: "replaced"}
	var se *StreamError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "conflict: replaced") {
		t.Errorf("Error() = %q", err)
	}
}

// A barrier ping whose answer never comes on a link that stays alive is
// followed by a new ping after PingTimeout, and the answer to that one ends
// the barrier: a lost reply cannot block delivery forever.
func TestBarrierPingsAgainWhenTheAnswerIsLost(t *testing.T) {
	hs := start(t, func(c *Config) { c.PingTimeout = 200 * time.Millisecond }, nil)
	c := hs.up(t)
	hs.srv.SetAnswerPings(false)
	done := make(chan error, 1)
	go func() { done <- c.Barrier(ctxT(t)) }()
	first, err := hs.srv.WaitFor(waitLong, isPing)
	if err != nil {
		t.Fatal(err)
	}
	// The first ping is never answered; the next one is.
	second, err := hs.srv.WaitFor(waitLong, func(st *stanza.Element) bool { return isPing(st) && st.ID() != first.ID() })
	if err != nil {
		t.Fatalf("no second barrier ping after the first went unanswered: %v", err)
	}
	if err := hs.srv.Inject(stanza.Result(second, nil)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Barrier = %v after the second ping was answered", err)
		}
	case <-time.After(waitLong):
		t.Fatal("Barrier still waiting after the second ping was answered")
	}
}

// TestOversizedStanzaNotSent: a stanza whose serialisation is over
// MaxStanzaSize is refused by Send with ErrStanzaTooLarge (the server
// would close the stream over it, for every user of the link, and again
// after each reconnection if it were sent again); nothing is written and
// the link stays up. Escapes count: a body of '<' is five times its text.
func TestOversizedStanzaNotSent(t *testing.T) {
	hs := start(t, func(c *Config) { c.MaxStanzaSize = 4096 }, nil)
	c := hs.up(t)
	for _, body := range []string{strings.Repeat("x", 5000), strings.Repeat("<", 1100)} {
		err := c.Send(ctxT(t), msg(testDomain, "a@localhost", body))
		if !errors.Is(err, ErrStanzaTooLarge) || !strings.Contains(err.Error(), "the limit is 4096") {
			t.Errorf("Send of a %d-byte body = %v, want ErrStanzaTooLarge with the sizes", len(body), err)
		}
	}
	if err := c.Send(ctxT(t), msg(testDomain, "a@localhost", strings.Repeat("<", 700))); err != nil {
		t.Fatalf("a stanza under the limit after escaping: %v", err)
	}
	if _, err := hs.srv.WaitFor(waitLong, isMsgBody(strings.Repeat("<", 700))); err != nil {
		t.Fatal(err)
	}
	for _, e := range hs.srv.Received() {
		if len(e.ChildText("", "body")) >= 1100 {
			t.Errorf("an oversized stanza was written: %d bytes of body", len(e.ChildText("", "body")))
		}
	}
	if n := hs.srv.Handshakes(); n != 1 {
		t.Errorf("handshakes = %d: the link was dropped", n)
	}
}

// scriptedServer accepts one connection at a time on loopback and answers
// the component's stream header with script; what the component writes
// back is returned, per connection, on the channel.
func scriptedServer(t *testing.T, script string) (addr string, written <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	out := make(chan string, 16)
	go func() {
		for range 16 {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				nc.SetDeadline(time.Now().Add(waitLong))
				buf := make([]byte, 4096)
				n, _ := nc.Read(buf) // the component's stream header
				got := string(buf[:n])
				if hdr, rest, ok := strings.Cut(script, "<handshake/>"); ok {
					nc.Write([]byte(hdr))
					n, _ = nc.Read(buf) // its handshake
					got += string(buf[:n])
					nc.Write([]byte("<handshake/>" + rest))
				} else {
					nc.Write([]byte(script))
				}
				if tcp, ok := nc.(*net.TCPConn); ok && !strings.HasSuffix(script, "</stream:stream>") {
					tcp.CloseWrite() // the server goes away mid-stream
				}
				rest, _ := io.ReadAll(nc)
				out <- got + string(rest)
			}()
		}
	}()
	return ln.Addr().String(), out
}

// TestHandshakeFailuresExplained: a server that breaks the handshake gets
// the stream error the established stream would give, and the log says
// what was wrong, not only that the connection closed.
func TestHandshakeFailuresExplained(t *testing.T) {
	const header = "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' from='" + testDomain + "'"
	for _, c := range []struct {
		name, script, log, wrote string
	}{
		{"no id", header + ">", "stream header has no id", ""},
		{"doctype", "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>]>" + header[len("<?xml version='1.0'?>"):] + " id='x1'>", "reading stream header", "<restricted-xml"},
		{"cut stanza", header + " id='x2'><handshake/><message from='a@localhost' to='" + testDomain + "'><body>half", "in the middle of a <message>", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr, written := scriptedServer(t, c.script)
			logs := &logBuf{}
			cfg := testConfig(componenttest.NewServer(t, testDomain, testSecret), logs)
			cfg.Addr = addr
			l, err := New(cfg, newRecorder())
			if err != nil {
				t.Fatal(err)
			}
			stop := runLink(t, l)
			logs.waitFor(t, c.log)
			stop()
			select {
			case w := <-written:
				if c.wrote != "" && !strings.Contains(w, c.wrote) {
					t.Errorf("the component wrote %q, want %s", w, c.wrote)
				}
			case <-time.After(waitLong):
				t.Error("the connection did not end")
			}
		})
	}
}
