package main

// End-to-end tests: the whole gateway, wired as `jabbergate run` wires it,
// attached to a real Prosody and a real ejabberd, driven by a real XMPP
// client library (go-xmpp) logged in as a user over c2s.

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppo/go-xmpp"

	"github.com/jabbergate/jabbergate/bridges/config"
	"github.com/jabbergate/jabbergate/bridges/store/redistest"
	"github.com/jabbergate/jabbergate/component/servertest"
)

const (
	gwDomain = "echo.localhost"
	gwSecret = "e2e-secret-0123456789"
	e2eWait  = 20 * time.Second
)

// xclient is a go-xmpp client with a reader goroutine, so tests can wait
// for any stanza matching a predicate without losing the others.
type xclient struct {
	t      *testing.T
	c      *xmpp.Client
	jid    string
	ch     chan any
	done   chan struct{}
	mu     sync.Mutex
	seen   []any
	closed bool
}

func dialClient(t *testing.T, s *servertest.Server, user, password, resource string) *xclient {
	t.Helper()
	opts := xmpp.Options{
		Host: s.C2SAddr, User: s.JID(user), Password: password, Resource: resource,
		NoTLS: true, InsecureAllowUnencryptedAuth: true, Mechanism: "PLAIN", DialTimeout: 10 * time.Second,
		Debug: testing.Verbose(), DebugWriter: &testWriter{t},
	}
	c, err := opts.NewClient()
	if err != nil {
		t.Fatalf("login %s on %s: %v\n%s", opts.User, s.Kind, err, s.Log())
	}
	x := &xclient{t: t, c: c, jid: opts.User, ch: make(chan any, 1024), done: make(chan struct{})}
	go func() {
		defer close(x.done)
		for {
			st, err := c.Recv()
			if err != nil {
				return
			}
			x.ch <- st
		}
	}()
	if _, err := c.SendOrg(`<presence/>`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.close)
	return x
}

// close ends the stream and waits for the reader before closing, so the
// reader and Close never read the connection at the same time.
func (x *xclient) close() {
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return
	}
	x.closed = true
	x.mu.Unlock()
	_, _ = x.c.SendOrg(`</stream:stream>`)
	select {
	case <-x.done:
		_ = x.c.Close()
	case <-time.After(10 * time.Second):
		x.t.Logf("client %s: server did not close the stream", x.jid)
	}
}

func (x *xclient) send(format string, args ...any) {
	x.t.Helper()
	if _, err := x.c.SendOrg(fmt.Sprintf(format, args...)); err != nil {
		x.t.Fatalf("send: %v", err)
	}
}

// wait returns the first stanza, received so far or within e2eWait, for
// which match is true; it is removed from the backlog.
func (x *xclient) wait(what string, match func(any) bool) any {
	x.t.Helper()
	deadline := time.After(e2eWait)
	for {
		x.mu.Lock()
		for i, st := range x.seen {
			if match(st) {
				x.seen = append(x.seen[:i], x.seen[i+1:]...)
				x.mu.Unlock()
				return st
			}
		}
		x.mu.Unlock()
		select {
		case st := <-x.ch:
			x.mu.Lock()
			x.seen = append(x.seen, st)
			x.mu.Unlock()
		case <-x.done:
			x.t.Fatalf("%s: stream closed while waiting for %s", x.jid, what)
		case <-deadline:
			x.mu.Lock()
			var got []string
			for _, st := range x.seen {
				got = append(got, fmt.Sprintf("%T%+v", st, st))
			}
			x.mu.Unlock()
			x.t.Fatalf("%s: no %s within %v; unmatched stanzas:\n%s", x.jid, what, e2eWait, strings.Join(got, "\n"))
		}
	}
}

// waitIQ waits for the answer to IQ id. go-xmpp decodes some results into
// their own types; they are turned back into an IQ with the query as
// readable text.
func (x *xclient) waitIQ(id string) xmpp.IQ {
	x.t.Helper()
	st := x.wait("iq "+id, func(st any) bool {
		switch v := st.(type) {
		case xmpp.IQ:
			return v.ID == id
		case xmpp.DiscoResult:
			return v.ID == id
		case xmpp.DiscoItems:
			return v.ID == id
		}
		return false
	})
	switch v := st.(type) {
	case xmpp.DiscoResult:
		return xmpp.IQ{ID: v.ID, From: v.From, To: v.To, Type: "result", Query: []byte(fmt.Sprintf("%+v", v))}
	case xmpp.DiscoItems:
		return xmpp.IQ{ID: v.ID, From: v.Jid, Type: "result", Query: []byte(fmt.Sprintf("%+v", v))}
	}
	return st.(xmpp.IQ)
}

func (x *xclient) waitPresence(what, from, typ string) xmpp.Presence {
	x.t.Helper()
	return x.wait(what, func(st any) bool {
		p, ok := st.(xmpp.Presence)
		return ok && bare(p.From) == from && p.Type == typ
	}).(xmpp.Presence)
}

func (x *xclient) waitChat(what string, match func(xmpp.Chat) bool) xmpp.Chat {
	x.t.Helper()
	return x.wait(what, func(st any) bool {
		m, ok := st.(xmpp.Chat)
		return ok && m.Type != "roster" && match(m)
	}).(xmpp.Chat)
}

func bare(j string) string {
	if i := strings.IndexByte(j, '/'); i >= 0 {
		return j[:i]
	}
	return j
}

// errorCondition digs the defined condition out of a message error.
func errorCondition(m xmpp.Chat) string {
	for _, el := range m.OtherElem {
		if el.XMLName.Local == "error" {
			d := xml.NewDecoder(strings.NewReader(el.InnerXML))
			for {
				tok, err := d.Token()
				if err != nil {
					return ""
				}
				if se, ok := tok.(xml.StartElement); ok && se.Name.Space == "urn:ietf:params:xml:ns:xmpp-stanzas" && se.Name.Local != "text" {
					return se.Name.Local
				}
			}
		}
	}
	return ""
}

// gateway runs the gateway in-process against s, as `jabbergate run`.
type gatewayProc struct {
	t      *testing.T
	cfg    *config.Config
	cancel context.CancelFunc
	done   chan error
	log    *lockedBuffer
	http   string
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startGateway(t *testing.T, s *servertest.Server, storeYAML string) *gatewayProc {
	t.Helper()
	g := &gatewayProc{t: t, log: &lockedBuffer{}, http: freeAddr(t)}
	yaml := fmt.Sprintf(`
xmpp:
  server: %s
  ping_interval: 5s
bridges:
  - network: echo
    domain: %s
    secret: %s
%s
http:
  listen: %s
access:
  allowed_domains: [localhost]
log:
  level: debug
`, s.ComponentAddr, gwDomain, gwSecret, storeYAML, g.http)
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "e2e.yaml"), []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	g.cfg = cfg
	g.start()
	t.Cleanup(func() {
		g.stop()
		if t.Failed() {
			t.Logf("gateway log:\n%s", g.log.String())
		}
	})
	return g
}

func (g *gatewayProc) start() {
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	g.done = make(chan error, 1)
	go func() { g.done <- run(ctx, g.cfg, g.log) }()
	deadline := time.Now().Add(e2eWait)
	for time.Now().Before(deadline) {
		if code, _ := g.get("/readyz"); code == http.StatusOK {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	g.t.Fatalf("gateway not ready within %v\n%s", e2eWait, g.log.String())
}

func (g *gatewayProc) stop() {
	if g.cancel == nil {
		return
	}
	g.cancel()
	g.cancel = nil
	select {
	case err := <-g.done:
		if err != nil {
			g.t.Errorf("gateway run: %v", err)
		}
	case <-time.After(e2eWait):
		g.t.Errorf("gateway did not stop")
	}
}

func (g *gatewayProc) get(path string) (int, string) {
	resp, err := http.Get("http://" + g.http + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEndToEnd(t *testing.T) {
	for _, tc := range []struct{ kind, backend string }{
		{"prosody", "bolt"},
		{"ejabberd", "redis"},
	} {
		t.Run(tc.kind+"-"+tc.backend, func(t *testing.T) {
			t.Parallel()
			srv := servertest.Start(t, tc.kind, servertest.Options{
				Components: map[string]string{gwDomain: gwSecret},
				Users:      map[string]string{"alice": "alicepw", "bob": "bobpw"},
			})
			storeYAML := fmt.Sprintf("store:\n  backend: bolt\n  path: %s\n", filepath.Join(t.TempDir(), "jg.db"))
			if tc.backend == "redis" {
				url := redistest.Start(t)
				storeYAML = fmt.Sprintf("store:\n  backend: redis\n  redis:\n    url: %s\n    prefix: e2e\nvault:\n  key_file: %s\n", url, filepath.Join(t.TempDir(), "k"))
			}
			gw := startGateway(t, srv, storeYAML)
			endToEnd(t, srv, gw)
		})
	}
}

func endToEnd(t *testing.T, srv *servertest.Server, gw *gatewayProc) {
	alice := dialClient(t, srv, "alice", "alicepw", "e2e")
	hello := "hello@" + gwDomain

	// Discovery.
	alice.send(`<iq type='get' id='d1' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, gwDomain)
	d := alice.waitIQ("d1")
	if d.Type != "result" || !bytes.Contains(d.Query, []byte(`Category:gateway`)) || !bytes.Contains(d.Query, []byte("jabber:iq:register")) {
		t.Fatalf("disco#info = %+v %s", d, d.Query)
	}
	// An IQ we do not speak: service-unavailable.
	alice.send(`<iq type='get' id='u1' to='%s'><query xmlns='urn:example:nothing'/></iq>`, gwDomain)
	if u := alice.waitIQ("u1"); u.Type != "error" || !strings.Contains(fmt.Sprintf("%+v%s", u.Error, u.Query), "service-unavailable") {
		t.Errorf("unknown iq = %+v", u)
	}

	// Messages before registering: registration-required.
	alice.send(`<message type='chat' id='early' to='%s'><body>too early</body></message>`, hello)
	early := alice.waitChat("error for unregistered", func(m xmpp.Chat) bool { return m.ID == "early" })
	if early.Type != "error" || errorCondition(early) != "registration-required" {
		t.Errorf("unregistered message = %+v", early)
	}

	// Registration with the form.
	alice.send(`<iq type='get' id='r1' to='%s'><query xmlns='jabber:iq:register'/></iq>`, gwDomain)
	if r := alice.waitIQ("r1"); r.Type != "result" || !bytes.Contains(r.Query, []byte("FORM_TYPE")) {
		t.Fatalf("register get = %+v %s", r, r.Query)
	}
	alice.send(`<iq type='set' id='r2' to='%s'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>jabber:iq:register</value></field></x></query></iq>`, gwDomain)
	if r := alice.waitIQ("r2"); r.Type != "result" {
		t.Fatalf("register set = %+v", r)
	}
	alice.waitPresence("subscribe from the gateway", gwDomain, "subscribe")
	alice.send(`<presence type='subscribed' to='%s'/>`, gwDomain)
	alice.send(`<presence type='subscribe' to='%s'/>`, gwDomain)
	alice.waitPresence("gateway presence", gwDomain, "")

	// Add an echo contact.
	alice.send(`<presence type='subscribe' to='%s'/>`, hello)
	alice.waitPresence("contact presence", hello, "")

	// The subscriptions are real: when alice logs in on a second device,
	// her server probes the gateway and the contact, and they answer.
	phone := dialClient(t, srv, "alice", "alicepw", "phone")
	phone.waitPresence("gateway presence on probe", gwDomain, "")
	phone.waitPresence("contact presence on probe", hello, "")

	// jabber:iq:gateway turns a word into a contact JID.
	alice.send(`<iq type='set' id='g1' to='%s'><query xmlns='jabber:iq:gateway'><prompt>Robot</prompt></query></iq>`, gwDomain)
	if g := alice.waitIQ("g1"); g.Type != "result" || !bytes.Contains(g.Query, []byte("robot@"+gwDomain)) {
		t.Errorf("iq:gateway = %+v %s", g, g.Query)
	}

	// Messages and their echoes, in order, with receipts.
	const n = 25
	for i := range n {
		alice.send(`<message type='chat' id='m%d' to='%s'><body>message %d ✓ &amp; é</body><request xmlns='urn:xmpp:receipts'/></message>`, i, hello, i)
	}
	var ids []string
	for i := range n {
		want := fmt.Sprintf("message %d ✓ & é", i)
		m := alice.waitChat("echo "+want, func(m xmpp.Chat) bool { return m.Text != "" && bare(m.Remote) == hello })
		if m.Text != want || m.Type != "chat" {
			t.Fatalf("echo %d = %+v, want text %q (order must be kept)", i, m, want)
		}
		ids = append(ids, m.ID)
	}
	seenIDs := map[string]bool{}
	for _, id := range ids {
		if !strings.HasPrefix(id, "jg-") || seenIDs[id] {
			t.Errorf("echo ids must be unique and ours: %v", ids)
			break
		}
		seenIDs[id] = true
	}
	for i := range n {
		want := fmt.Sprintf("m%d", i)
		alice.wait("receipt for "+want, func(st any) bool {
			m, ok := st.(xmpp.Chat)
			return ok && receiptFor(m) == want
		})
	}

	// Another user who is not registered gets registration-required.
	bob := dialClient(t, srv, "bob", "bobpw", "e2e")
	bob.send(`<message type='chat' id='b1' to='%s'><body>hi</body></message>`, hello)
	if m := bob.waitChat("error for bob", func(m xmpp.Chat) bool { return m.ID == "b1" }); m.Type != "error" || errorCondition(m) != "registration-required" {
		t.Errorf("bob's message = %+v", m)
	}

	// Metrics and readiness.
	code, body := gw.get("/metrics")
	if code != 200 || !strings.Contains(body, `jabbergate_link_up{bridge="echo.localhost"} 1`) || !strings.Contains(body, "jabbergate_stanzas_total") {
		t.Errorf("/metrics = %d\n%s", code, body)
	}
	if strings.Contains(body, "alice") {
		t.Errorf("/metrics leaks a JID")
	}

	// Restart the gateway: it says goodbye, comes back, and announces itself.
	gw.stop()
	alice.waitPresence("gateway goodbye", gwDomain, "unavailable")
	gw.start()
	alice.waitPresence("gateway back", gwDomain, "")
	alice.send(`<message type='chat' id='after' to='%s'><body>after restart</body></message>`, hello)
	alice.waitChat("echo after restart", func(m xmpp.Chat) bool { return m.Text == "after restart" })

	// Unregister.
	alice.send(`<iq type='set' id='r3' to='%s'><query xmlns='jabber:iq:register'><remove/></query></iq>`, gwDomain)
	if r := alice.waitIQ("r3"); r.Type != "result" {
		t.Fatalf("remove = %+v", r)
	}
	alice.send(`<message type='chat' id='late' to='%s'><body>gone</body></message>`, hello)
	if m := alice.waitChat("error after unregister", func(m xmpp.Chat) bool { return m.ID == "late" }); errorCondition(m) != "registration-required" {
		t.Errorf("message after unregister = %+v", m)
	}
}

// receiptFor returns the id an XEP-0184 <received/> acknowledges, if m is
// a receipt.
func receiptFor(m xmpp.Chat) string {
	for _, el := range m.OtherElem {
		if el.XMLName.Local == "received" {
			for _, a := range el.Attr {
				if a.Name.Local == "id" {
					return a.Value
				}
			}
		}
	}
	return ""
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Logf("xmpp: %s", p)
	return len(p), nil
}
