package componenttest

import (
	"bufio"
	"crypto/sha1"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/component/stanza"
)

// rawComponent is a minimal hand-written component for testing the server.
type rawComponent struct {
	nc  net.Conn
	dec *xml.Decoder
}

func dialRaw(t *testing.T, s *Server, domain, secret string) (*rawComponent, *stanza.Element) {
	t.Helper()
	nc, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	c := &rawComponent{nc: nc, dec: xml.NewDecoder(bufio.NewReader(nc))}
	c.write(t, "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='"+domain+"'>")
	hdr, err := nextStart(c.dec)
	if err != nil {
		t.Fatal(err)
	}
	var id string
	for _, a := range hdr.Attr {
		if a.Name.Local == "id" {
			id = a.Value
		}
	}
	sum := sha1.Sum([]byte(id + secret))
	c.write(t, "<handshake>"+hex.EncodeToString(sum[:])+"</handshake>")
	return c, c.read(t)
}

func (c *rawComponent) write(t *testing.T, s string) {
	t.Helper()
	if _, err := c.nc.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

func (c *rawComponent) read(t *testing.T) *stanza.Element {
	t.Helper()
	st, err := nextStart(c.dec)
	if err != nil {
		t.Fatal(err)
	}
	el, err := stanza.Decode(c.dec, st)
	if err != nil {
		t.Fatal(err)
	}
	return el
}

func streamCond(el *stanza.Element) string {
	if el.Space != stanza.NSStream || el.Local != "error" {
		return ""
	}
	return el.FirstChild().Local
}

func TestHandshakeChecks(t *testing.T) {
	s := NewServer(t, "echo.localhost", "secret")
	if s.ServerDomain() != "localhost" || s.Domain() != "echo.localhost" {
		t.Fatal(s.ServerDomain(), s.Domain())
	}
	if _, el := dialRaw(t, s, "echo.localhost", "wrong"); streamCond(el) != "not-authorized" {
		t.Fatalf("wrong secret: %s", el)
	}
	if _, el := dialRaw(t, s, "other.localhost", "secret"); streamCond(el) != "host-unknown" {
		t.Fatalf("wrong domain: %s", el)
	}
	s.FailHandshakes("system-shutdown", "bye")
	if _, el := dialRaw(t, s, "echo.localhost", "secret"); streamCond(el) != "system-shutdown" {
		t.Fatalf("FailHandshakes: %s", el)
	}
	s.FailHandshakes("", "")
	_, el := dialRaw(t, s, "echo.localhost", "secret") // stays open until the test ends
	if el.Local != "handshake" || !s.Connected() || s.Handshakes() != 1 {
		t.Fatalf("good handshake: %s", el)
	}
	if _, el := dialRaw(t, s, "echo.localhost", "secret"); streamCond(el) != "conflict" {
		t.Fatalf("second component: %s", el)
	}
	if n := len(s.Attempts()); n != 5 {
		t.Errorf("%d attempts recorded, want 5", n)
	}
}

func TestPingsInjectAndRecording(t *testing.T) {
	s := NewServer(t, "echo.localhost", "secret")
	if err := s.Inject(stanza.New(stanza.NSComponent, "message")); !errors.Is(err, ErrNoComponent) {
		t.Fatalf("Inject without component = %v", err)
	}
	c, _ := dialRaw(t, s, "echo.localhost", "secret")
	c.write(t, "<iq type='get' id='p1' from='echo.localhost' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	if r := c.read(t); r.Local != "iq" || r.Type() != "result" || r.ID() != "p1" || r.To() != "echo.localhost" {
		t.Fatalf("ping reply: %s", r)
	}
	c.write(t, "<iq type='get' id='v1' from='echo.localhost' to='localhost'><query xmlns='jabber:iq:version'/></iq>")
	if r := c.read(t); r.Type() != "error" || stanza.ParseError(r).Condition != stanza.ServiceUnavailable {
		t.Fatalf("other iq reply: %s", r)
	}
	if err := s.Inject(stanza.New("", "message", "from", "a@localhost", "to", "echo.localhost").TextChild("", "body", "hi")); err != nil {
		t.Fatal(err)
	}
	if r := c.read(t); r.Local != "message" || r.Space != stanza.NSComponent || r.ChildText("", "body") != "hi" {
		t.Fatalf("injected: %s", r)
	}
	c.write(t, "<message from='bob@echo.localhost/r' to='a@localhost'><body>x</body></message>")
	st, err := s.WaitFor(5*time.Second, func(st *stanza.Element) bool { return st.Local == "message" })
	if err != nil || st.From() != "bob@echo.localhost/r" {
		t.Fatalf("WaitFor = %v, %v", st, err)
	}
	if n := len(s.Received()); n != 3 {
		t.Errorf("%d stanzas recorded, want 3", n)
	}
	if _, err := s.WaitFor(20*time.Millisecond, func(*stanza.Element) bool { return false }); err == nil {
		t.Error("WaitFor without a match succeeded")
	}
	if v := s.Violations(); len(v) != 0 {
		t.Errorf("violations: %v", v)
	}
}

func TestForeignFromIsViolation(t *testing.T) {
	s := NewServer(t, "echo.localhost", "secret")
	c, _ := dialRaw(t, s, "echo.localhost", "secret")
	c.write(t, "<message from='eve@evil.org' to='a@localhost'><body>x</body></message>")
	if el := c.read(t); streamCond(el) != "invalid-from" {
		t.Fatalf("foreign from: %s", el)
	}
	if v := s.Violations(); len(v) != 1 || !strings.Contains(v[0], "eve@evil.org") {
		t.Fatalf("violations: %v", v)
	}
	if err := s.WaitDisconnected(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestStreamErrorFromComponentRecorded(t *testing.T) {
	s := NewServer(t, "echo.localhost", "secret")
	c, _ := dialRaw(t, s, "echo.localhost", "secret")
	c.write(t, "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>")
	if err := s.WaitDisconnected(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if e := s.StreamErrors(); len(e) != 1 || e[0] != "policy-violation" {
		t.Fatalf("stream errors: %v", e)
	}
}
