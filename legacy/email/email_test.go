package email

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-smtp"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/legacytest"
)

func TestConformance(t *testing.T) {
	im := startIMAP(t, true)
	sm := startSMTP(t)
	legacytest.Run(t, legacytest.Suite{
		Network: testNetwork(t),
		Fields:  fields(im.addr, sm.addr),
		Chat:    "bob@example.org",
		CheckSent: func(t *testing.T, rec *legacytest.Recorder, text string) {
			ms := sm.mails()
			if len(ms) != 1 {
				t.Fatalf("SMTP server got %d mails, want 1", len(ms))
			}
			if ms[0].from != testAddr || len(ms[0].to) != 1 || ms[0].to[0] != "bob@example.org" {
				t.Errorf("envelope = %q → %q", ms[0].from, ms[0].to)
			}
			mr, err := mail.CreateReader(bytes.NewReader(ms[0].data))
			if err != nil {
				t.Fatal(err)
			}
			p, err := mr.NextPart()
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(p.Body)
			if strings.TrimSpace(string(body)) != text {
				t.Errorf("body = %q, want %q", body, text)
			}
		},
	})
}

func TestRegister(t *testing.T) {
	im := startIMAP(t, true)
	sm := startSMTP(t)
	n := testNetwork(t)
	ctx := context.Background()
	id, err := n.Register(ctx, fields(im.addr, sm.addr))
	if err != nil || id != testAddr {
		t.Fatalf("Register = %q, %v; want %q", id, err, testAddr)
	}
	f := fields(im.addr, sm.addr)
	f["password"] = "wrong"
	if _, err := n.Register(ctx, f); !isErr(err, legacy.ErrUnauthorized) || !strings.Contains(err.Error(), "rejected the username or password") {
		t.Errorf("Register with a wrong password = %v, want ErrUnauthorized with a clear text", err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	if _, err := n.Register(ctx, fields(closed, sm.addr)); !isErr(err, legacy.ErrUnavailable) {
		t.Errorf("Register with an unreachable server = %v, want ErrUnavailable", err)
	}
	f = fields(im.addr, sm.addr)
	f["imap_host"] = "imap.example.com"
	if _, err := n.Register(ctx, f); !isErr(err, legacy.ErrInvalidField) {
		t.Errorf("security none on a remote host = %v, want ErrInvalidField", err)
	}
	strict, _ := New(nil)
	if _, err := strict.Register(ctx, fields(im.addr, sm.addr)); !isErr(err, legacy.ErrInvalidField) {
		t.Errorf("security none without allow_insecure_loopback = %v, want ErrInvalidField", err)
	}
	f = fields(im.addr, sm.addr)
	f["address"] = "not an address"
	if _, err := n.Register(ctx, f); !isErr(err, legacy.ErrInvalidField) {
		t.Errorf("bad address = %v, want ErrInvalidField", err)
	}
}

// Registration checks the SMTP server too (connect, TLS, EHLO, AUTH,
// QUIT; no mail): a wrong SMTP port, security or password is refused
// with the field at fault, not found by every message later.
func TestRegisterChecksSMTP(t *testing.T) {
	im := startIMAP(t, true)
	sm := startSMTP(t)
	n := testNetwork(t)
	n.dialTimeout = 500 * time.Millisecond
	ctx := context.Background()
	if _, err := n.Register(ctx, fields(im.addr, sm.addr)); err != nil {
		t.Fatalf("Register: %v", err)
	}
	sm.mu.Lock()
	sessions := sm.sessions
	sm.mu.Unlock()
	if sessions != 1 || len(sm.mails()) != 0 {
		t.Errorf("SMTP server saw %d connections and %d mails, want 1 and none", sessions, len(sm.mails()))
	}

	field := func(err error) string {
		var fe *legacy.FieldError
		if errors.As(err, &fe) {
			return fe.Var
		}
		return ""
	}
	// A closed SMTP port (IMAP fine).
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	if _, err := n.Register(ctx, fields(im.addr, closed)); field(err) != "smtp_port" || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("closed SMTP port: %v, want a FieldError on smtp_port", err)
	}
	// SMTP refuses the password IMAP accepts.
	sm.mu.Lock()
	sm.password = "smtp-only"
	sm.mu.Unlock()
	if _, err := n.Register(ctx, fields(im.addr, sm.addr)); !isErr(err, legacy.ErrUnauthorized) || !strings.Contains(err.Error(), "SMTP") {
		t.Errorf("SMTP password refused: %v, want ErrUnauthorized naming SMTP", err)
	}
	sm.mu.Lock()
	sm.password = ""
	sm.mu.Unlock()
	// STARTTLS asked of a server that does not offer it; implicit TLS to a
	// plain-text server.
	f := fields(im.addr, sm.addr)
	f["smtp_security"] = SecurityStartTLS
	if _, err := n.Register(ctx, f); field(err) != "smtp_security" || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("STARTTLS not offered: %v, want a FieldError on smtp_security", err)
	}
	f["smtp_security"] = SecurityTLS
	if _, err := n.Register(ctx, f); field(err) != "smtp_security" {
		t.Errorf("implicit TLS to a plain server: %v, want a FieldError on smtp_security", err)
	}
	// The IMAP server's port given as the SMTP port.
	if _, err := n.Register(ctx, fields(im.addr, im.addr)); field(err) != "smtp_port" {
		t.Errorf("an IMAP server as SMTP server: %v, want a FieldError on smtp_port", err)
	}
	// A server that accepts and never greets: a timeout, transient.
	mute, _ := net.Listen("tcp", "127.0.0.1:0")
	t.Cleanup(func() { mute.Close() })
	go func() {
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	start := time.Now()
	if _, err := n.Register(ctx, fields(im.addr, mute.Addr().String())); !isErr(err, legacy.ErrUnavailable) || legacy.IsPermanent(err) || !strings.Contains(err.Error(), "did not answer") {
		t.Errorf("mute SMTP server: %v, want a transient ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the SMTP check took %s with a dial timeout of 500ms", d)
	}
}

func TestResolve(t *testing.T) {
	n := testNetwork(t)
	for in, want := range map[string]string{
		"Alice <Alice@Example.com>":               "alice@example.com",
		"mailto:Bob@Example.org":                  "bob@example.org",
		"MAILTO:bob@example.org?subject=hi":       "bob@example.org",
		"  carol@example.net ":                    "carol@example.net",
		`"Dan, Jr." <dan.jr+tag@sub.example.com>`: "dan.jr+tag@sub.example.com",
		"Jörg@Bücher.de":                          "jörg@bücher.de",
	} {
		got, err := n.Resolve(context.Background(), in)
		if err != nil || string(got) != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "alice", "alice@", "@example.com", "a b@example.com", "Alice <>", "mailto:"} {
		if got, err := n.Resolve(context.Background(), in); !isErr(err, legacy.ErrInvalidAddress) {
			t.Errorf("Resolve(%q) = %q, %v; want ErrInvalidAddress", in, got, err)
		}
	}
}

// A mail that was there before the first session is not imported; a mail
// arriving while idling is, with decoded headers and body.
func TestInboundIdle(t *testing.T) {
	im := startIMAP(t, true)
	im.deliver(t, simpleMail("old@example.com", "old", "old@x", "old mail"), time.Time{})
	n := testNetwork(t) // idleRefresh is an hour: only IDLE can bring the mail in
	r := runSession(t, n, fields(im.addr, ""), nil)
	r.waitState(t, 1)
	waitStatus(t, r.rec, legacy.StatusConnected)

	raw := "From: =?iso-8859-1?q?Fran=E7ois_M=FCller?= <Francois@Example.FR>\n" +
		"To: alice@example.com\n" +
		"Subject: =?iso-8859-1?q?Caf=E9_cr=E8me?=\n" +
		"Message-ID: <m2@example.fr>\n" +
		"In-Reply-To: <parent@example.com>\n" +
		"References: <root@example.com> <parent@example.com>\n" +
		"Date: Mon, 23 Nov 2026 08:30:00 +0100\n" +
		"MIME-Version: 1.0\n" +
		"Content-Type: text/plain; charset=windows-1252\n" +
		"Content-Transfer-Encoding: quoted-printable\n\n" +
		"Voil=E0 =80 5, =93quoted=94.\n\n" +
		"On Sun, 22 Nov 2026, Alice wrote:\n> earlier text\n> more\n"
	im.deliver(t, raw, time.Time{})
	in := r.waitIncoming(t, 1)
	if len(in) != 1 {
		t.Fatalf("got %d mails, want only the new one: %+v", len(in), in)
	}
	m := in[0]
	if m.ID != "m2@example.fr" || m.Chat != "francois@example.fr" || m.Subject != "Café crème" ||
		m.Text != "Voilà € 5, “quoted”." || m.Thread != "root@example.com" || m.ReplyTo != "parent@example.com" {
		t.Errorf("incoming = %+v", m)
	}
	if !m.Time.Equal(time.Date(2026, 11, 23, 7, 30, 0, 0, time.UTC)) {
		t.Errorf("time = %v", m.Time)
	}
	var contact *legacy.Contact
	for _, ev := range r.rec.Events() {
		if c, ok := ev.(legacy.Contact); ok {
			contact = &c
		}
	}
	if contact == nil || contact.Chat != "francois@example.fr" || contact.Name != "François Müller" {
		t.Errorf("contact = %+v", contact)
	}
	r.waitState(t, 2)
}

func waitStatus(t *testing.T, rec *legacytest.Recorder, st legacy.Status) legacy.StatusEvent {
	t.Helper()
	ev := rec.Wait(10*time.Second, func(ev legacy.Event) bool {
		s, ok := ev.(legacy.StatusEvent)
		return ok && s.Status == st
	})
	if ev == nil {
		t.Fatalf("no status %q; events: %+v", st, rec.Events())
	}
	return ev.(legacy.StatusEvent)
}

func TestInboundPolling(t *testing.T) {
	im := startIMAP(t, false)
	// go-imap's server offers IDLE with IMAP4rev1 whatever its Caps say:
	// only idle=false makes the session poll.
	n := testNetwork(t)
	n.noIdle = true
	r := runSession(t, n, fields(im.addr, ""), nil)
	r.waitState(t, 0)
	waitStatus(t, r.rec, legacy.StatusConnected)
	im.deliver(t, simpleMail("bob@example.org", "hi", "p1@x", "polled"), time.Time{})
	in := r.waitIncoming(t, 1)
	if in[0].Text != "polled" {
		t.Errorf("text = %q", in[0].Text)
	}
}

// A restart with the saved state imports nothing twice and skips nothing.
func TestRestartExactlyOnce(t *testing.T) {
	im := startIMAP(t, true)
	n := testNetwork(t)
	f := fields(im.addr, "")
	r := runSession(t, n, f, nil)
	r.waitState(t, 0)
	waitStatus(t, r.rec, legacy.StatusConnected)
	im.deliver(t, simpleMail("bob@example.org", "1", "a1@x", "one"), time.Time{})
	im.deliver(t, simpleMail("bob@example.org", "2", "a2@x", "two"), time.Time{})
	r.waitIncoming(t, 2)
	st := r.waitState(t, 2)
	r.close(t)

	im.deliver(t, simpleMail("bob@example.org", "3", "a3@x", "three"), time.Time{})
	im.deliver(t, simpleMail("bob@example.org", "4", "a4@x", "four"), time.Time{})
	r2 := runSession(t, n, f, st)
	r2.waitIncoming(t, 2)
	r2.waitState(t, 4)
	in := incomings(r2.rec)
	if len(in) != 2 || in[0].ID != "a3@x" || in[1].ID != "a4@x" {
		t.Errorf("after restart got %+v, want a3 and a4 only", in)
	}
}

// A mail the sink refuses stays on the server and comes again; the
// watermark does not pass it.
// refusingSink refuses every mail while refuse is set and counts the
// refusals.
type refusingSink struct {
	legacytest.Recorder
	mu       sync.Mutex
	refuse   bool
	refusals int
}

func (r *refusingSink) Emit(ctx context.Context, ev legacy.Event) error {
	r.mu.Lock()
	if _, ok := ev.(legacy.Contact); ok && r.refuse {
		r.refusals++
		r.mu.Unlock()
		return io.ErrClosedPipe
	}
	r.mu.Unlock()
	return r.Recorder.Emit(ctx, ev)
}

func TestEmitFailureKeepsMail(t *testing.T) {
	im := startIMAP(t, true)
	sink := &refusingSink{refuse: true}
	ls, err := testNetwork(t).Open(context.Background(), legacy.Account{ID: testAddr, Fields: fields(im.addr, "")}, sink)
	if err != nil {
		t.Fatal(err)
	}
	s := ls.(*session)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitStatus(t, &sink.Recorder, legacy.StatusConnected)
	im.deliver(t, simpleMail("bob@example.org", "x", "f1@x", "kept"), time.Time{})
	// Wait (bounded) until the mail was refused a few times, through
	// reconnections.
	for i := 0; ; i++ {
		sink.mu.Lock()
		n := sink.refusals
		sink.mu.Unlock()
		if n >= 3 {
			break
		}
		if i > 2000 {
			t.Fatalf("the mail was refused %d times, want 3", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.mu.Lock()
	last := s.state.LastUID
	s.mu.Unlock()
	if last != 0 {
		t.Fatalf("watermark advanced to %d although Emit failed", last)
	}
	if in := incomings(&sink.Recorder); len(in) != 0 {
		t.Fatalf("refused mail recorded: %+v", in)
	}
	sink.mu.Lock()
	sink.refuse = false
	sink.mu.Unlock()
	in := (&running{rec: &sink.Recorder}).waitIncoming(t, 1)
	if len(in) != 1 || in[0].ID != "f1@x" {
		t.Errorf("got %+v", in)
	}
}

func TestUIDValidityChange(t *testing.T) {
	im := startIMAP(t, true)
	n := testNetwork(t)
	f := fields(im.addr, "")
	r := runSession(t, n, f, nil)
	r.waitState(t, 0)
	waitStatus(t, r.rec, legacy.StatusConnected)
	im.deliver(t, simpleMail("bob@example.org", "1", "v1@x", "one"), time.Time{})
	r.waitIncoming(t, 1)
	st := r.waitState(t, 1)
	r.close(t)

	// The mailbox is rebuilt: old mail comes back with new UIDs.
	if err := im.user.Delete("INBOX"); err != nil {
		t.Fatal(err)
	}
	if err := im.user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)
	im.deliver(t, simpleMail("bob@example.org", "0", "v0@x", "zero"), past.Add(-time.Hour))
	im.deliver(t, simpleMail("bob@example.org", "1", "v1@x", "one"), past)
	im.deliver(t, simpleMail("bob@example.org", "new", "v2@x", "new"), time.Now().Add(time.Minute))
	r2 := runSession(t, n, f, st)
	r2.waitState(t, 3)
	in := incomings(r2.rec)
	if len(in) != 1 || in[0].ID != "v2@x" {
		t.Errorf("after UIDVALIDITY change got %+v, want only v2", in)
	}
	// A mail that arrives after the change is new whatever its date (one
	// moved in from another folder keeps its old INTERNALDATE).
	im.deliver(t, simpleMail("bob@example.org", "moved", "v3@x", "moved in"), past.Add(-24*time.Hour))
	r2.waitIncoming(t, 2)
	if in := incomings(r2.rec); in[len(in)-1].ID != "v3@x" {
		t.Errorf("after the change, an old-dated new mail: got %+v", in)
	}
}

func TestWrongPasswordStopsRun(t *testing.T) {
	rec, err := runWithPassword(t, "changed")
	if !isErr(err, legacy.ErrUnauthorized) {
		t.Fatalf("Run = %v, want ErrUnauthorized", err)
	}
	waitStatus(t, rec, legacy.StatusUnauthorized)
}

// runWithPassword runs a session against an IMAP server that does not
// take password, and returns what it reported and Run's error.
func runWithPassword(t *testing.T, password string) (*legacytest.Recorder, error) {
	t.Helper()
	im := startIMAP(t, true)
	f := fields(im.addr, "")
	f["password"] = password
	rec := &legacytest.Recorder{}
	s, err := testNetwork(t).Open(context.Background(), legacy.Account{ID: testAddr, Fields: f}, rec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return rec, s.Run(ctx)
}

// dropProxy forwards to target and cuts the connection the first time the
// client asks for a message body.
type dropProxy struct {
	addr    string
	mu      sync.Mutex
	dropped int
}

func startDropProxy(t *testing.T, target string) *dropProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &dropProxy{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c, target)
		}
	}()
	return p
}

func (p *dropProxy) serve(c net.Conn, target string) {
	defer c.Close()
	s, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer s.Close()
	go func() { io.Copy(c, s); c.Close() }()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			p.mu.Lock()
			drop := p.dropped == 0 && bytes.Contains(bytes.ToUpper(buf[:n]), []byte("BODY.PEEK[]"))
			if drop {
				p.dropped++
			}
			p.mu.Unlock()
			if drop {
				// Forward the request, then cut while the reply is on its way.
				s.Write(buf[:n])
				return
			}
			if _, err := s.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func TestDropMidFetch(t *testing.T) {
	im := startIMAP(t, true)
	px := startDropProxy(t, im.addr)
	r := runSession(t, testNetwork(t), fields(px.addr, ""), nil)
	r.waitState(t, 0)
	waitStatus(t, r.rec, legacy.StatusConnected)
	im.deliver(t, simpleMail("bob@example.org", "x", "d1@x", "survives"), time.Time{})
	r.waitIncoming(t, 1)
	r.waitState(t, 1)
	waitStatus(t, r.rec, legacy.StatusDisconnected)
	px.mu.Lock()
	dropped := px.dropped
	px.mu.Unlock()
	if dropped != 1 {
		t.Errorf("proxy dropped %d connections, want 1", dropped)
	}
	if in := incomings(r.rec); len(in) != 1 || in[0].Text != "survives" {
		t.Errorf("got %+v, want the mail exactly once", in)
	}
}

// silentProxy forwards to target until hush, after which the
// connections open then stay open but carry nothing either way (a hung
// server, a middlebox that lost its state); later connections work.
type silentProxy struct {
	addr  string
	mu    sync.Mutex
	conns int
	quiet map[int]bool
}

func startSilentProxy(t *testing.T, target string) *silentProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &silentProxy{addr: ln.Addr().String(), quiet: map[int]bool{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns++
			n := p.conns
			p.mu.Unlock()
			go p.serve(t, c, target, n)
		}
	}()
	return p
}

// hush silences the connections open now.
func (p *silentProxy) hush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 1; i <= p.conns; i++ {
		p.quiet[i] = true
	}
}

func (p *silentProxy) connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns
}

func (p *silentProxy) serve(t *testing.T, c net.Conn, target string, n int) {
	defer c.Close()
	s, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer s.Close()
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 4096)
		for {
			k, err := src.Read(buf)
			p.mu.Lock()
			quiet := p.quiet[n]
			p.mu.Unlock()
			if k > 0 && !quiet {
				if _, err := dst.Write(buf[:k]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	go pipe(c, s)
	pipe(s, c)
}

// TestSilentServerReconnects: a server that stops answering while the
// connection stays up (no reset, no FIN) is given up after the reply
// timeout, and the session reconnects and imports the mail.
func TestSilentServerReconnects(t *testing.T) {
	im := startIMAP(t, true)
	px := startSilentProxy(t, im.addr)
	n := testNetwork(t)
	n.idleRefresh, n.replyTimeout = 50*time.Millisecond, 300*time.Millisecond
	r := runSession(t, n, fields(px.addr, ""), nil)
	r.waitState(t, 0)
	waitStatus(t, r.rec, legacy.StatusConnected)
	px.hush()
	im.deliver(t, simpleMail("bob@example.org", "x", "s1@x", "after the silence"), time.Time{})
	r.waitIncoming(t, 1)
	if c := px.connections(); c < 2 {
		t.Errorf("%d connections: the session did not reconnect", c)
	}
}

func TestSend(t *testing.T) {
	im := startIMAP(t, true)
	sm := startSMTP(t)
	n := testNetwork(t)
	r := runSession(t, n, fields(im.addr, sm.addr), nil)
	r.waitState(t, 0)
	waitStatus(t, r.rec, legacy.StatusConnected)
	im.deliver(t, "From: Bob <bob@example.org>\nTo: alice@example.com\nSubject: Re: Lunch plans\n"+
		"Message-ID: <b2@example.org>\nReferences: <root@example.org> <a1@example.com>\nIn-Reply-To: <a1@example.com>\n\nnoon?\n", time.Time{})
	in := r.waitIncoming(t, 1)
	r.waitState(t, 1)

	ctx := context.Background()
	id, err := r.sess.Send(ctx, &legacy.Message{Chat: "bob@example.org", Text: "Yes, noon — fine.\nSee you", Thread: in[0].Thread, Key: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	id2, err := r.sess.Send(ctx, &legacy.Message{Chat: "bob@example.org", Text: "Yes, noon — fine.\nSee you", Thread: in[0].Thread, Key: "k1"})
	if err != nil || id2 != id {
		t.Errorf("retry with the same key: id %q, %v; want %q", id2, err, id)
	}
	ms := sm.mails()
	if len(ms) != 2 {
		t.Fatalf("got %d mails", len(ms))
	}
	if ms[0].opts.EnvelopeID == "" || ms[0].opts.Return != smtp.DSNReturnHeaders {
		t.Errorf("DSN options = %+v", ms[0].opts)
	}
	mr, err := mail.CreateReader(bytes.NewReader(ms[0].data))
	if err != nil {
		t.Fatal(err)
	}
	h := mr.Header
	mid, _ := h.MessageID()
	irt, _ := h.MsgIDList("In-Reply-To")
	refs, _ := h.MsgIDList("References")
	subj, _ := h.Subject()
	from, _ := h.AddressList("From")
	to, _ := h.AddressList("To")
	if mid != string(id) || strings.Join(irt, ",") != "b2@example.org" ||
		strings.Join(refs, ",") != "root@example.org,a1@example.com,b2@example.org" ||
		subj != "Re: Lunch plans" || h.Get("Auto-Submitted") != "no" || len(from) != 1 || from[0].Address != testAddr ||
		len(to) != 1 || to[0].Address != "bob@example.org" || h.Get("Date") == "" {
		t.Errorf("headers: %v", h.Header.Map())
	}
	if ct := h.Get("Content-Type"); !strings.Contains(ct, "text/plain") || !strings.Contains(ct, "utf-8") || h.Get("Content-Transfer-Encoding") != "quoted-printable" {
		t.Errorf("content type %q, encoding %q", ct, h.Get("Content-Transfer-Encoding"))
	}
	p, _ := mr.NextPart()
	body, _ := io.ReadAll(p.Body)
	if strings.TrimSuffix(string(body), "\r\n") != "Yes, noon — fine.\r\nSee you" {
		t.Errorf("body %q", body)
	}

	// A new conversation: subject given, or the first line.
	if _, err := r.sess.Send(ctx, &legacy.Message{Chat: "carol@example.net", Text: "First line here\nmore", Key: "k2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.sess.Send(ctx, &legacy.Message{Chat: "carol@example.net", Text: "x", Subject: "Größe", Key: "k3",
		Attachments: []legacy.Attachment{{Name: "a.txt", Type: "text/plain", Data: []byte("file")}}}); err != nil {
		t.Fatal(err)
	}
	ms = sm.mails()
	for i, want := range map[int]string{2: "First line here", 3: "Größe"} {
		mr, _ := mail.CreateReader(bytes.NewReader(ms[i].data))
		s, _ := mr.Header.Subject()
		if s != want {
			t.Errorf("mail %d subject %q, want %q", i, s, want)
		}
		if i == 3 {
			var names []string
			eachAttachment(mr, func(ah *mail.AttachmentHeader, body io.Reader) {
				fn, _ := ah.Filename()
				b, _ := io.ReadAll(body)
				names = append(names, fn+"="+string(b))
			})
			if strings.Join(names, ",") != "a.txt=file" {
				t.Errorf("attachments %v", names)
			}
		}
	}
}

func TestSendErrors(t *testing.T) {
	im := startIMAP(t, true)
	sm := startSMTP(t)
	n := testNetwork(t)
	f := fields(im.addr, sm.addr)
	s, err := n.Open(context.Background(), legacy.Account{ID: testAddr, Fields: f}, &legacytest.Recorder{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []struct {
		data   bool // returned after DATA, not for RCPT TO
		err    *smtp.SMTPError
		want   error
		code   string
		reason string // in the ReasonError, "" for transient errors
	}{
		{false, &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}, legacy.ErrNotFound, "550 5.1.1", "mailbox does not exist"},
		{false, &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "bad address syntax"}, legacy.ErrInvalidAddress, "553 5.1.3", "address is not valid"},
		{false, &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "spam"}, legacy.ErrPolicy, "550 5.7.1", "policy"},
		{true, &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "bad content"}, legacy.ErrRejected, "554 5.6.0", "content or format"},
		{true, &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "too big"}, legacy.ErrTooLarge, "552 5.3.4", "larger than"},
		// 5.2.2 is a full mailbox, not a large message (RFC 3463).
		{false, &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 2, 2}, Message: "mailbox full"}, legacy.ErrForbidden, "552 5.2.2", "the recipient's mailbox is full"},
		{true, &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 2, 2}, Message: "mailbox full"}, legacy.ErrForbidden, "552 5.2.2", "the recipient's mailbox is full"},
		{false, &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 2, 1}, Message: "disabled"}, legacy.ErrForbidden, "550 5.2.1", "disabled"},
		{false, &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7}, Message: "no UTF-8 here"}, legacy.ErrUnsupported, "553 5.6.7", "non-ASCII"},
		// Without an enhanced status, RFC 5321's reply codes for the command.
		{false, &smtp.SMTPError{Code: 550, EnhancedCode: smtp.NoEnhancedCode, Message: "mailbox unavailable"}, legacy.ErrNotFound, "550", "mailbox is unavailable"},
		{false, &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 0, 0}, Message: "mailbox unavailable"}, legacy.ErrNotFound, "550 5.0.0", "mailbox is unavailable"},
		{false, &smtp.SMTPError{Code: 551, EnhancedCode: smtp.NoEnhancedCode, Message: "user not local"}, legacy.ErrNotFound, "551", "not local"},
		{false, &smtp.SMTPError{Code: 552, EnhancedCode: smtp.NoEnhancedCode, Message: "exceeded storage allocation"}, legacy.ErrForbidden, "552", "mailbox is full"},
		{true, &smtp.SMTPError{Code: 552, EnhancedCode: smtp.NoEnhancedCode, Message: "message size exceeds fixed maximum"}, legacy.ErrTooLarge, "552", "storage allocation"},
		{false, &smtp.SMTPError{Code: 553, EnhancedCode: smtp.NoEnhancedCode, Message: "mailbox name not allowed"}, legacy.ErrInvalidAddress, "553", "not allowed"},
		{true, &smtp.SMTPError{Code: 554, EnhancedCode: smtp.NoEnhancedCode, Message: "transaction failed"}, legacy.ErrRejected, "554", "refused the message"},
		{false, &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "local error"}, legacy.ErrUnavailable, "451 4.3.0", ""},
		{false, &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full, try later"}, legacy.ErrUnavailable, "452 4.2.2", ""},
		{false, &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "rate limit exceeded"}, legacy.ErrRateLimited, "450 4.7.1", ""},
		{false, &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many messages from you, slow down"}, legacy.ErrRateLimited, "421 4.7.0", ""},
		// Greylisting and a per-message limit are no rate limit: they do
		// not hold the user's other messages.
		{false, &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "Greylisted, try again later"}, legacy.ErrUnavailable, "450 4.2.0", ""},
		{true, &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "please try again later"}, legacy.ErrUnavailable, "451 4.3.0", ""},
		{false, &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: "Too many recipients"}, legacy.ErrUnavailable, "452 4.5.3", ""},
	} {
		sm.setRcptErr(nil)
		sm.setDataErr(nil)
		if c.data {
			sm.setDataErr(c.err)
		} else {
			sm.setRcptErr(c.err)
		}
		name := c.err.Error()
		_, err := s.Send(ctx, &legacy.Message{Chat: "bob@example.org", Text: "x", Key: "e"})
		if !isErr(err, c.want) || c.want != legacy.ErrRateLimited && isErr(err, legacy.ErrRateLimited) {
			t.Errorf("%s (data %v): Send = %v, want %v", name, c.data, err, c.want)
			continue
		}
		if legacy.IsPermanent(err) != (c.err.Code >= 500) {
			t.Errorf("%s: IsPermanent = %v", name, legacy.IsPermanent(err))
		}
		var ce *legacy.CodeError
		if c.code != "" && (!asCodeError(err, &ce) || ce.Code != c.code || ce.Text != c.err.Message) {
			t.Errorf("%s: CodeError = %+v, want code %q and the server's text", name, ce, c.code)
		}
		var re *legacy.ReasonError
		if c.reason != "" && (!errors.As(err, &re) || !strings.Contains(re.Reason, c.reason) || !strings.Contains(re.Reason, c.err.Message)) {
			t.Errorf("%s: ReasonError = %+v, want a reason with %q and the server's text", name, re, c.reason)
		}
	}
	sm.setDataErr(nil)
	sm.setRcptErr(nil)
	if _, err := s.Send(ctx, &legacy.Message{Chat: "not an address", Text: "x"}); !isErr(err, legacy.ErrInvalidAddress) {
		t.Errorf("Send to a bad address = %v", err)
	}
	f["password"] = "wrong"
	s2, _ := n.Open(ctx, legacy.Account{ID: testAddr, Fields: f}, &legacytest.Recorder{})
	if _, err := s2.Send(ctx, &legacy.Message{Chat: "bob@example.org", Text: "x"}); !isErr(err, legacy.ErrUnauthorized) {
		t.Errorf("Send with a wrong password = %v, want ErrUnauthorized", err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	f = fields(im.addr, sm.addr)
	f["smtp_port"] = port
	s3, _ := n.Open(ctx, legacy.Account{ID: testAddr, Fields: f}, &legacytest.Recorder{})
	if _, err := s3.Send(ctx, &legacy.Message{Chat: "bob@example.org", Text: "x"}); !isErr(err, legacy.ErrUnavailable) || legacy.IsPermanent(err) {
		t.Errorf("Send to an unreachable server = %v, want transient ErrUnavailable", err)
	}
}

// Mail the gateway sent, seen again in INBOX, is not imported.
func TestOwnMailSkipped(t *testing.T) {
	im := startIMAP(t, true)
	sm := startSMTP(t)
	r := runSession(t, testNetwork(t), fields(im.addr, sm.addr), nil)
	r.waitState(t, 0)
	waitStatus(t, r.rec, legacy.StatusConnected)
	if _, err := r.sess.Send(context.Background(), &legacy.Message{Chat: testAddr, Text: "note to self", Key: "self"}); err != nil {
		t.Fatal(err)
	}
	im.deliver(t, string(sm.mails()[0].data), time.Time{})
	im.deliver(t, simpleMail("bob@example.org", "x", "after@x", "after"), time.Time{})
	r.waitIncoming(t, 1)
	r.waitState(t, 2)
	if in := incomings(r.rec); len(in) != 1 || in[0].ID != "after@x" {
		t.Errorf("got %+v, want only bob's mail", in)
	}
}

func TestXOAUTH2(t *testing.T) {
	im := startIMAP(t, true)
	sm := startSMTP(t)
	n := testNetwork(t)
	f := fields(im.addr, sm.addr)
	f["auth"], f["password"] = "xoauth2", testToken
	ctx := context.Background()
	if _, err := n.Register(ctx, f); err != nil {
		t.Fatalf("Register with a token: %v", err)
	}
	r := runSession(t, n, f, nil)
	r.waitState(t, 0)
	if _, err := r.sess.Send(ctx, &legacy.Message{Chat: "bob@example.org", Text: "via oauth"}); err != nil {
		t.Fatalf("Send with a token: %v", err)
	}
	f["password"] = "expired"
	if _, err := n.Register(ctx, f); !isErr(err, legacy.ErrUnauthorized) {
		t.Errorf("Register with a bad token = %v, want ErrUnauthorized", err)
	}
	s, _ := n.Open(ctx, legacy.Account{ID: testAddr, Fields: f}, &legacytest.Recorder{})
	if _, err := s.Send(ctx, &legacy.Message{Chat: "bob@example.org", Text: "x"}); !isErr(err, legacy.ErrUnauthorized) {
		t.Errorf("Send with a bad token = %v, want ErrUnauthorized", err)
	}
}

// A mail without Message-ID gets a stable id from (UIDVALIDITY, UID); a
// mail above max_message_size arrives as a notice; a mail without a From
// arrives from its Sender, else its envelope sender (Return-Path), else
// — or when that is the user — from the "unknown-sender" contact, never
// from the user, who would be a contact of their own; Send refuses it.
func TestOddMails(t *testing.T) {
	im := startIMAP(t, true)
	n := testNetwork(t)
	n.maxMessageSize = 2000
	r := runSession(t, n, fields(im.addr, ""), nil)
	r.waitState(t, 0)
	waitStatus(t, r.rec, legacy.StatusConnected)
	im.deliver(t, "From: bob@example.org\nSubject: no id\n\nhello\n", time.Time{})
	im.deliver(t, simpleMail("bob@example.org", "huge", "huge@x", strings.Repeat("big ", 1000)), time.Time{})
	im.deliver(t, "Subject: anonymous\nMessage-ID: <anon@x>\n\nwho?\n", time.Time{})
	im.deliver(t, "From: undisclosed-recipients:;\nSender: Dave <Dave@Example.org>\nSubject: group\nMessage-ID: <grp@x>\n\nvia Sender\n", time.Time{})
	im.deliver(t, "Return-Path: <carol@example.org>\nSubject: envelope\nMessage-ID: <env@x>\n\nvia Return-Path\n", time.Time{})
	im.deliver(t, "Return-Path: <Alice@Example.com>\nSubject: mine\nMessage-ID: <mine@x>\n\nfrom me?\n", time.Time{})
	in := r.waitIncoming(t, 6)
	r.sess.mu.Lock()
	v := r.sess.state.UIDValidity
	r.sess.mu.Unlock()
	if want := legacy.MessageID("imap:" + strconv.FormatUint(uint64(v), 10) + ":1"); in[0].ID != want || in[0].Text != "hello" {
		t.Errorf("mail without Message-ID: %+v, want id %q", in[0], want)
	}
	if in[1].ID != "huge@x" || in[1].Subject != "huge" || !strings.Contains(in[1].Text, "too large") {
		t.Errorf("huge mail: %+v", in[1])
	}
	for i, chat := range []legacy.ChatID{2: unknownSender, 3: "dave@example.org", 4: "carol@example.org", 5: unknownSender} {
		if i >= 2 && (in[i].Chat != chat || !strings.HasPrefix(in[i].Text, "[Mail without a valid From address]\n")) {
			t.Errorf("mail %s: from %q, %q; want from %q", in[i].ID, in[i].Chat, in[i].Text, chat)
		}
	}
	for _, ev := range r.rec.Events() {
		if c, ok := ev.(legacy.Contact); ok && (c.Chat == testAddr || c.Chat == unknownSender && c.Name != "Unknown sender" ||
			c.Chat == "dave@example.org" && c.Name != "Dave") {
			t.Errorf("contact %+v", c)
		}
	}
	if _, err := r.sess.Send(context.Background(), &legacy.Message{Chat: unknownSender, Text: "who are you?", Key: "u1"}); !isErr(err, legacy.ErrNotFound) {
		t.Errorf("Send to %s: %v, want ErrNotFound", unknownSender, err)
	}
}

// crashSink dies at the first SaveState that follows an Incoming: the mail
// is durable in the core but its watermark is not, as when the gateway is
// killed between the two. From then on it takes nothing.
type crashSink struct {
	legacytest.Recorder
	mu      sync.Mutex
	crashed bool
	armed   bool
}

func (c *crashSink) Emit(ctx context.Context, ev legacy.Event) error {
	c.mu.Lock()
	if _, ok := ev.(legacy.Incoming); ok {
		c.armed = true
	}
	if _, ok := ev.(legacy.SaveState); ok && c.armed {
		c.crashed = true
	}
	crashed := c.crashed
	c.mu.Unlock()
	if crashed {
		return io.ErrUnexpectedEOF
	}
	return c.Recorder.Emit(ctx, ev)
}

func TestCrashBetweenEmitAndSave(t *testing.T) {
	im := startIMAP(t, true)
	n := testNetwork(t)
	f := fields(im.addr, "")
	sink := &crashSink{}
	s, err := n.Open(context.Background(), legacy.Account{ID: testAddr, Fields: f}, sink)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	killed := false
	kill := func() {
		if !killed {
			killed = true
			cancel()
			<-done
		}
	}
	defer kill()
	waitStatus(t, &sink.Recorder, legacy.StatusConnected)
	im.deliver(t, simpleMail("bob@example.org", "1", "c1@x", "one"), time.Time{})
	im.deliver(t, simpleMail("bob@example.org", "2", "c2@x", "two"), time.Time{})
	(&running{rec: &sink.Recorder}).waitIncoming(t, 1)
	kill()
	var durable []byte
	for _, ev := range sink.Events() {
		if ss, ok := ev.(legacy.SaveState); ok {
			durable = ss.State
		}
	}
	first := incomings(&sink.Recorder)

	// Restart from what was durable: c1 comes again with the same id (the
	// core drops the replay), then c2; nothing is skipped.
	r := runSession(t, n, f, durable)
	r.waitIncoming(t, 2)
	r.waitState(t, 2)
	var ids []string
	for _, m := range append(first, incomings(r.rec)...) {
		ids = append(ids, string(m.ID))
	}
	if strings.Join(ids, ",") != "c1@x,c1@x,c2@x" {
		t.Errorf("ids = %v, want c1, c1 replayed with the same id, c2", ids)
	}
}

// A bounce of a mail the user sent becomes legacy.Undelivered for the
// original Message-ID, carrying the RFC 3463 status, besides the readable
// notice.
func TestBounceIsUndelivered(t *testing.T) {
	im := startIMAP(t, true)
	r := runSession(t, testNetwork(t), fields(im.addr, ""), nil)
	r.waitState(t, 0)
	waitStatus(t, r.rec, legacy.StatusConnected)
	im.deliver(t, crlf(dsn), time.Time{})
	ev := r.rec.Wait(10*time.Second, func(ev legacy.Event) bool { _, ok := ev.(legacy.Undelivered); return ok })
	if ev == nil {
		t.Fatalf("no Undelivered; events: %+v", r.rec.Events())
	}
	u := ev.(legacy.Undelivered)
	var ce *legacy.CodeError
	if u.ID != "jg.abc@example.com" || u.Chat != "nobody@example.org" || !errors.As(u.Err, &ce) || ce.Code != "5.1.1" ||
		!errors.Is(u.Err, legacy.ErrNotFound) || !strings.Contains(ce.Text, "Recipient address rejected") {
		t.Errorf("undelivered = %+v (%v)", u, u.Err)
	}
	if in := r.waitIncoming(t, 1); !strings.Contains(in[0].Text, "could not be delivered") {
		t.Errorf("notice = %+v", in[0])
	}
}

// Delivery "hold" keeps mail on the server while the XMPP user is offline
// and imports it when they come back; "headers" sends only the headers.
func TestPresenceAwareDelivery(t *testing.T) {
	im := startIMAP(t, false)
	n := testNetwork(t)
	r := runSessionSettings(t, n, fields(im.addr, ""), map[string]string{"delivery": "hold"})
	waitStatus(t, r.rec, legacy.StatusConnected)
	im.deliver(t, simpleMail("bob@example.org", "held", "h1@x", "wait for me"), time.Time{})
	// Offline (the core says so when the session starts): nothing arrives.
	// Let the poller run a few rounds, then check.
	for range 5 {
		r.sess.UserPresence(false)
		time.Sleep(40 * time.Millisecond)
	}
	if got := incomings(r.rec); len(got) != 0 {
		t.Fatalf("mail imported while the user is offline: %+v", got)
	}
	r.sess.UserPresence(true)
	if in := r.waitIncoming(t, 1); in[0].Text != "wait for me" {
		t.Errorf("held mail = %+v", in[0])
	}

	im2 := startIMAP(t, false)
	r2 := runSessionSettings(t, testNetwork(t), fields(im2.addr, ""), map[string]string{"delivery": "headers"})
	waitStatus(t, r2.rec, legacy.StatusConnected)
	im2.deliver(t, simpleMail("bob@example.org", "Subject line", "hd1@x", "secret body"), time.Time{})
	in := r2.waitIncoming(t, 1)
	if strings.Contains(in[0].Text, "secret body") || in[0].Subject != "Subject line" {
		t.Errorf("headers-only mail = %+v", in[0])
	}
}

// TestFirstRunFromOpen: mail delivered after the session was opened but
// before its first connection (a slow or failing first connect) is
// imported; mail from before the session is not. Before, the first run
// started at UIDNEXT of the first EXAMINE and skipped such mail.
func TestFirstRunFromOpen(t *testing.T) {
	im := startIMAP(t, false)
	im.deliver(t, simpleMail("old@example.com", "old", "old@x", "old mail"), time.Now().Add(-time.Hour))
	n := testNetwork(t)
	rec := &legacytest.Recorder{}
	ls, err := n.Open(context.Background(), legacy.Account{ID: testAddr, Owner: "o", Fields: fields(im.addr, "")}, rec)
	if err != nil {
		t.Fatal(err)
	}
	// Delivered after Open (two seconds later: INTERNALDATE has whole
	// seconds), before Run connects.
	im.deliver(t, simpleMail("bob@example.org", "early", "early@x", "early"), time.Now().Add(2*time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ls.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitStatus(t, rec, legacy.StatusConnected)
	im.deliver(t, simpleMail("bob@example.org", "late", "late@x", "late"), time.Time{})
	ev := rec.Wait(10*time.Second, func(ev legacy.Event) bool {
		in, ok := ev.(legacy.Incoming)
		return ok && in.ID == "late@x"
	})
	if ev == nil {
		t.Fatalf("late mail not imported: %+v", rec.Events())
	}
	in := incomings(rec)
	if len(in) != 2 || in[0].ID != "early@x" || in[1].ID != "late@x" {
		t.Errorf("imported %+v, want early@x then late@x (not old@x)", in)
	}
}

// Size options take the config's size suffixes (docs/configuration.md),
// not only bytes.
func TestSizeOptions(t *testing.T) {
	for v, want := range map[string]int64{
		"20MiB": 20 << 20, "20MB": 20_000_000, "512KiB": 512 << 10, "512kb": 512_000,
		"1GiB": 1 << 30, "2 GB": 2_000_000_000, "20971520": 20971520, "100B": 100, " 7 mib ": 7 << 20,
	} {
		n, err := New(map[string]string{"max_file_size": v, "max_message_size": v})
		if err != nil {
			t.Errorf("max_file_size %q: %v", v, err)
			continue
		}
		if n.maxFileSize != want || n.maxMessageSize != want || n.Info().MaxFileSize != want {
			t.Errorf("%q = %d / %d, want %d", v, n.maxFileSize, n.maxMessageSize, want)
		}
	}
	for _, v := range []string{"", "0", "0MiB", "-1", "-5MiB", "20 MiBs", "MiB", "1.5MiB", "20TB", "99999999999GiB", "ten"} {
		if _, err := New(map[string]string{"max_file_size": v}); err == nil {
			t.Errorf("max_file_size %q accepted", v)
		} else if !strings.Contains(err.Error(), "max_file_size") {
			t.Errorf("max_file_size %q: error %q does not name the option", v, err)
		}
	}
}

// A bad boolean option says what it wants, as a legacy.OptionError, not
// the Go parser's error.
func TestBoolOptions(t *testing.T) {
	for _, opt := range []string{"idle", "allow_insecure_loopback"} {
		_, err := New(map[string]string{opt: "maybe"})
		var oe *legacy.OptionError
		if !errors.As(err, &oe) || oe.Option != opt || oe.Problem != `want true or false, got "maybe"` || strings.Contains(err.Error(), "strconv") {
			t.Errorf("%s maybe: %v", opt, err)
		}
	}
}

// TestNewReportsEveryOption: New reports every bad option at once, each a
// *legacy.OptionError, in the order of their names, the same on every call
// (options is a map: its order must not leak into the error).
func TestNewReportsEveryOption(t *testing.T) {
	opts := map[string]string{
		"poll_interval": "0s", "idle": "maybe", "max_file_size": "lots", "pol_interval": "1m",
		"idle_refresh": "5m", // good
	}
	want := []legacy.OptionError{
		{Option: "idle", Problem: `want true or false, got "maybe"`},
		{Option: "max_file_size", Problem: `want a positive size: bytes, or a number with KiB, MiB, GiB, KB, MB or GB (e.g. 20MiB), got "lots"`},
		{Option: "pol_interval", Problem: "unknown option (known: allow_insecure_loopback, poll_interval, idle, idle_refresh, max_file_size, max_message_size)"},
		{Option: "poll_interval", Problem: `want a positive duration, got "0s"`},
	}
	legacytest.CheckOptionErrors(t, want, func() error {
		if n, err := New(opts); n == nil {
			return err
		}
		return nil
	})
}

// The sample section parses with its own options.
func TestSampleOptions(t *testing.T) {
	var opts = map[string]string{}
	in := false
	for _, line := range strings.Split(Sample, "\n") {
		if strings.TrimSpace(line) == "options:" {
			in = true
			continue
		}
		l := strings.TrimSpace(line)
		if !in || l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, _ := strings.Cut(l, ":")
		v, _, _ = strings.Cut(v, "#")
		opts[k] = strings.Trim(strings.TrimSpace(v), `"`)
	}
	if opts["max_file_size"] == "" {
		t.Fatalf("sample options not found: %v", opts)
	}
	n, err := New(opts)
	if err != nil {
		t.Fatalf("sample options %v: %v", opts, err)
	}
	if n.maxFileSize != 20<<20 || n.maxMessageSize != 25<<20 {
		t.Errorf("sample sizes = %d, %d", n.maxFileSize, n.maxMessageSize)
	}
}

// An explicit reply (XEP-0461) to a mail answers that mail: its subject,
// In-Reply-To its Message-ID, References its References and its
// Message-ID — also when it is not the last mail of its thread, and when
// a newer thread with the same correspondent exists.
func TestExplicitReplyThreading(t *testing.T) {
	im := startIMAP(t, true)
	sm := startSMTP(t)
	r := runSession(t, testNetwork(t), fields(im.addr, sm.addr), nil)
	r.waitState(t, 0)
	waitStatus(t, r.rec, legacy.StatusConnected)
	im.deliver(t, "From: Bob <bob@example.org>\nTo: alice@example.com\nSubject: Re: Hello Alice, first mail\n"+
		"Message-ID: <b1@example.org>\nReferences: <a1@example.com>\nIn-Reply-To: <a1@example.com>\n\nfirst answer\n", time.Time{})
	im.deliver(t, "From: Bob <bob@example.org>\nTo: alice@example.com\nSubject: Re: Hello Alice, first mail\n"+
		"Message-ID: <b2@example.org>\nReferences: <a1@example.com> <b1@example.org>\nIn-Reply-To: <b1@example.org>\n\nsecond answer\n", time.Time{})
	im.deliver(t, "From: Bob <bob@example.org>\nTo: alice@example.com\nSubject: Another topic\n"+
		"Message-ID: <c1@example.org>\n\nunrelated\n", time.Time{})
	r.waitIncoming(t, 3)
	r.waitState(t, 3)

	ctx := context.Background()
	for i, c := range []struct {
		reply, irt, refs, subject string
	}{
		{"b2@example.org", "b2@example.org", "a1@example.com,b1@example.org,b2@example.org", "Re: Hello Alice, first mail"},
		{"b1@example.org", "b1@example.org", "a1@example.com,b1@example.org", "Re: Hello Alice, first mail"},
		{"c1@example.org", "c1@example.org", "c1@example.org", "Re: Another topic"},
		// An unknown mail: In-Reply-To and References it, subject from the text.
		{"zz@example.org", "zz@example.org", "zz@example.org", "Replying to your first mail"},
	} {
		if _, err := r.sess.Send(ctx, &legacy.Message{Chat: "bob@example.org", Text: "Replying to your first mail", ReplyTo: legacy.MessageID(c.reply), Key: "r" + strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
		ms := sm.mails()
		mr, err := mail.CreateReader(bytes.NewReader(ms[len(ms)-1].data))
		if err != nil {
			t.Fatal(err)
		}
		irt, _ := mr.Header.MsgIDList("In-Reply-To")
		refs, _ := mr.Header.MsgIDList("References")
		subj, _ := mr.Header.Subject()
		if strings.Join(irt, ",") != c.irt || strings.Join(refs, ",") != c.refs || subj != c.subject {
			t.Errorf("reply to %s: In-Reply-To %v, References %v, Subject %q; want %s, %s, %q", c.reply, irt, refs, subj, c.irt, c.refs, c.subject)
		}
	}
}

// Non-ASCII recipients: with a server that offers SMTPUTF8 the address goes
// in UTF-8 with SMTPUTF8 and the To header in UTF-8 (RFC 6532); without
// it, a non-ASCII domain goes as its A-label and the header stays ASCII,
// and a non-ASCII local part is refused with the reason.
func TestInternationalAddresses(t *testing.T) {
	im := startIMAP(t, true)
	utf := startSMTPWith(t, func(s *smtp.Server) { s.EnableSMTPUTF8 = true })
	plain := startSMTP(t)
	n := testNetwork(t)
	ctx := context.Background()
	to := func(sm *smtpServer) (sentMail, string) {
		ms := sm.mails()
		m := ms[len(ms)-1]
		mr, err := mail.CreateReader(bytes.NewReader(m.data))
		if err != nil {
			t.Fatal(err)
		}
		list, err := mr.Header.AddressList("To")
		if err != nil || len(list) != 1 {
			t.Fatalf("To %q: %v", mr.Header.Get("To"), err)
		}
		return m, list[0].Address
	}

	s, _ := n.Open(ctx, legacy.Account{ID: testAddr, Fields: fields(im.addr, utf.addr)}, &legacytest.Recorder{})
	if _, err := s.Send(ctx, &legacy.Message{Chat: "jörg@bücher.de", Text: "hallo", Key: "u1"}); err != nil {
		t.Fatalf("Send with SMTPUTF8: %v", err)
	}
	m, hdr := to(utf)
	if !m.opts.UTF8 || len(m.to) != 1 || m.to[0] != "jörg@bücher.de" || hdr != "jörg@bücher.de" {
		t.Errorf("with SMTPUTF8: UTF8 %v, RCPT %q, To %q", m.opts.UTF8, m.to, hdr)
	}
	if _, err := s.Send(ctx, &legacy.Message{Chat: "bob@example.org", Text: "ascii", Key: "u2"}); err != nil {
		t.Fatal(err)
	}
	if m, _ := to(utf); m.opts.UTF8 {
		t.Errorf("SMTPUTF8 asked for an ASCII mail")
	}

	s2, _ := n.Open(ctx, legacy.Account{ID: testAddr, Fields: fields(im.addr, plain.addr)}, &legacytest.Recorder{})
	if _, err := s2.Send(ctx, &legacy.Message{Chat: "joerg@bücher.de", Text: "hallo", Key: "p1"}); err != nil {
		t.Fatalf("Send to an IDN domain without SMTPUTF8: %v", err)
	}
	m, hdr = to(plain)
	if m.opts.UTF8 || len(m.to) != 1 || m.to[0] != "joerg@xn--bcher-kva.de" || hdr != "joerg@xn--bcher-kva.de" {
		t.Errorf("without SMTPUTF8: UTF8 %v, RCPT %q, To %q", m.opts.UTF8, m.to, hdr)
	}
	if head, _, _ := bytes.Cut(m.data, []byte("\r\n\r\n")); !isASCII(string(head)) {
		t.Errorf("header not ASCII without SMTPUTF8:\n%s", head)
	}
	before := len(plain.mails())
	_, err := s2.Send(ctx, &legacy.Message{Chat: "jörg@bücher.de", Text: "hallo", Key: "p2"})
	var re *legacy.ReasonError
	if !isErr(err, legacy.ErrUnsupported) || !errors.As(err, &re) || !strings.Contains(re.Reason, "SMTPUTF8") {
		t.Errorf("non-ASCII local part without SMTPUTF8 = %v, want ErrUnsupported with a reason", err)
	}
	if len(plain.mails()) != before {
		t.Errorf("a mail went out")
	}
}

// An attachment's name goes as RFC 2231 in the Content-Disposition (the
// UTF-8 extended form, in pieces when long) and RFC 2047 in the
// Content-Type's name= (left out when too long for a line), both read
// back whole. A type that is not a media type goes as
// application/octet-stream: a line break from the XMPP side would end the
// part's header early (go-message's multipart writer drops that error).
func TestComposeAttachmentNames(t *testing.T) {
	long := strings.Repeat("日本語の長いファイル名", 10) + ".txt"
	m := &legacy.Message{Text: "see files", Attachments: []legacy.Attachment{
		{Name: "Résumé – final 😀.pdf", Type: "application/pdf", Data: []byte("%PDF")},
		{Name: long, Type: "text/plain; charset=utf-8", Data: []byte("text")},
		{Name: `x".pdf`, Type: "application/pdf\r\nBcc: eve@evil.example", Data: []byte("%PDF")},
	}}
	raw, err := compose(m, plan{subject: "files"}, addrs{from: testAddr, to: []string{"bob@example.org"}}, "jg.1@example.com", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte("filename*0*=utf-8''R%C3%A9sum%C3%A9%20%E2%80%93%20final%20;\r\n filename*1*=%F0%9F%98%80.pdf")) ||
		!bytes.Contains(raw, []byte(`name="=?utf-8?q?R=C3=A9sum=C3=A9_=E2=80=93_final_=F0=9F=98=80.pdf?="`)) ||
		!bytes.Contains(raw, []byte("filename*22*=.txt")) || bytes.Contains(raw, []byte("\r\nBcc:")) {
		t.Errorf("mail:\n%s", raw)
	}
	for _, l := range strings.Split(string(raw), "\r\n") {
		if len(l) > 78 {
			t.Errorf("line of %d characters: %q", len(l), l)
		}
	}
	mr, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	eachAttachment(mr, func(ah *mail.AttachmentHeader, _ io.Reader) {
		fn, _ := ah.Filename()
		typ, params, _ := ah.ContentType()
		got = append(got, fn+" "+params["name"]+" "+typ)
	})
	want := []string{"Résumé – final 😀.pdf Résumé – final 😀.pdf application/pdf", long + "  text/plain", `x".pdf x".pdf application/octet-stream`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("attachments %q, want %q", got, want)
	}
	if p := parse(raw, 1<<20); len(p.attachments) != 3 || p.attachments[0].Name != want[0][:len("Résumé – final 😀.pdf")] || p.attachments[1].Name != long {
		t.Errorf("parsed back: %+v", p.attachments)
	}
}

// eachAttachment calls f with every attachment part of mr, in order.
func eachAttachment(mr *mail.Reader, f func(*mail.AttachmentHeader, io.Reader)) {
	for {
		p, err := mr.NextPart()
		if err != nil {
			return
		}
		if ah, ok := p.Header.(*mail.AttachmentHeader); ok {
			f(ah, p.Body)
		}
	}
}
