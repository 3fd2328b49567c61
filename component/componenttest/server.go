// Package componenttest provides an in-process fake XMPP server that
// accepts one XEP-0114 component, for tests of the component link and of
// packages built on it.
//
// The Server listens on 127.0.0.1, checks the stream header and the
// handshake like Prosody does (host-unknown for a wrong domain,
// not-authorized for a wrong secret, conflict for a second component),
// answers XEP-0199 pings addressed to its own domain, refuses stanzas whose
// from is outside the component domain with invalid-from, and records every
// stanza it receives. Tests can inject stanzas, send stream errors, drop the
// connection or make the server stop answering.
package componenttest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/component/stanza"
)

const nsPing = "urn:xmpp:ping"

// ErrNoComponent is returned by methods that need a connected component
// when none is.
var ErrNoComponent = errors.New("componenttest: no component connected")

// Server is a fake XMPP server's component listener. Create it with
// NewServer; all methods are safe for concurrent use.
type Server struct {
	domain, serverDomain string
	ln                   net.Listener

	mu             sync.Mutex
	secret         string
	answerPings    bool
	unresponsive   bool
	failCond       string
	failText       string
	handshakeDelay time.Duration
	sess           *session
	conns          map[net.Conn]struct{}
	received       []*stanza.Element
	attempts       []time.Time
	handshakes     int
	streamErrs     []string
	violations     []string
	changed        chan struct{}
	closed         bool
	wg             sync.WaitGroup
}

type session struct {
	nc  net.Conn
	wmu sync.Mutex
}

func (s *session) write(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := s.nc.Write(b)
	return err
}

// NewServer starts a fake server for the component domain (for example
// "echo.localhost") with the given secret on 127.0.0.1 and a free port. The
// server's own domain is the component domain minus its first label
// ("localhost"). It is closed when the test ends.
func NewServer(tb testing.TB, domain, secret string) *Server {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("componenttest: listen: %v", err)
	}
	serverDomain := domain
	if i := strings.IndexByte(domain, '.'); i >= 0 {
		serverDomain = domain[i+1:]
	}
	s := &Server{
		domain:       domain,
		serverDomain: serverDomain,
		ln:           ln,
		secret:       secret,
		answerPings:  true,
		conns:        make(map[net.Conn]struct{}),
		changed:      make(chan struct{}),
	}
	s.wg.Add(1)
	go s.acceptLoop()
	tb.Cleanup(s.Close)
	return s
}

// Addr returns the host:port the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Domain returns the component domain the server accepts.
func (s *Server) Domain() string { return s.domain }

// ServerDomain returns the server's own domain, to which it answers pings.
func (s *Server) ServerDomain() string { return s.serverDomain }

// Close stops the server, closes every connection and waits for its
// goroutines.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// SetSecret changes the secret checked by later handshakes.
func (s *Server) SetSecret(secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secret = secret
}

// SetAnswerPings sets whether the server answers pings to its own domain
// (default true).
func (s *Server) SetAnswerPings(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answerPings = on
}

// SetUnresponsive makes the server stop answering anything while on: the
// current session keeps reading (and recording) but gets no replies, and
// new connections get neither a stream header nor a handshake reply. It
// simulates a dead link.
func (s *Server) SetUnresponsive(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unresponsive = on
}

// FailHandshakes makes later handshakes fail with the stream error cond
// (for example "conflict") and optional text instead of succeeding; an
// empty cond restores normal behaviour.
func (s *Server) FailHandshakes(cond, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failCond, s.failText = cond, text
}

// SetHandshakeDelay delays the server's handshake reply by d. Anything the
// component sends in that window is recorded as a violation.
func (s *Server) SetHandshakeDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handshakeDelay = d
}

// Connected reports whether a component is authenticated right now.
func (s *Server) Connected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sess != nil
}

// Handshakes returns the number of successful handshakes so far.
func (s *Server) Handshakes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handshakes
}

// Attempts returns when each stream header was received, successful or
// not, oldest first.
func (s *Server) Attempts() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.attempts...)
}

// StreamErrors returns the conditions of the stream errors the component
// sent, oldest first.
func (s *Server) StreamErrors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.streamErrs...)
}

// Violations returns protocol violations by the component: data before
// the handshake succeeded, a stanza whose from is outside the component
// domain, an unexpected top-level element. A well-behaved component has
// none.
func (s *Server) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.violations...)
}

// Received returns every stanza received from the component so far,
// including pings, oldest first.
func (s *Server) Received() []*stanza.Element {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*stanza.Element(nil), s.received...)
}

// WaitFor returns the first stanza received (so far or within timeout) for
// which match returns true. match must not call the Server.
func (s *Server) WaitFor(timeout time.Duration, match func(*stanza.Element) bool) (*stanza.Element, error) {
	var found *stanza.Element
	err := s.wait(timeout, func() bool {
		for _, st := range s.received {
			if match(st) {
				found = st
				return true
			}
		}
		return false
	})
	if err != nil {
		return nil, fmt.Errorf("componenttest: no matching stanza within %v (%d received)", timeout, len(s.Received()))
	}
	return found, nil
}

// WaitHandshakes waits until at least n handshakes have succeeded.
func (s *Server) WaitHandshakes(n int, timeout time.Duration) error {
	err := s.wait(timeout, func() bool { return s.handshakes >= n })
	if err != nil {
		return fmt.Errorf("componenttest: %d handshakes within %v, want %d", s.Handshakes(), timeout, n)
	}
	return nil
}

// WaitAttempts waits until at least n stream headers have been received.
func (s *Server) WaitAttempts(n int, timeout time.Duration) error {
	err := s.wait(timeout, func() bool { return len(s.attempts) >= n })
	if err != nil {
		return fmt.Errorf("componenttest: %d connection attempts within %v, want %d", len(s.Attempts()), timeout, n)
	}
	return nil
}

// WaitDisconnected waits until no component is authenticated.
func (s *Server) WaitDisconnected(timeout time.Duration) error {
	if err := s.wait(timeout, func() bool { return s.sess == nil }); err != nil {
		return errors.New("componenttest: component still connected")
	}
	return nil
}

// wait polls cond (called with s.mu held) on every change until it holds
// or timeout passes.
func (s *Server) wait(timeout time.Duration, cond func() bool) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		s.mu.Lock()
		ok, ch := cond(), s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-t.C:
			return errors.New("timeout")
		}
	}
}

// notify wakes waiters; s.mu must be held.
func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) current() *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sess
}

// Inject sends st to the component. A stanza in no namespace is sent in
// the component namespace.
func (s *Server) Inject(st *stanza.Element) error {
	sess := s.current()
	if sess == nil {
		return ErrNoComponent
	}
	if st.Space == "" {
		st = st.Copy()
		st.Space = stanza.NSComponent
	}
	var b bytes.Buffer
	st.AppendXML(&b, stanza.NSComponent)
	return sess.write(b.Bytes())
}

// InjectRaw writes raw bytes to the component, for malformed or oversized
// input.
func (s *Server) InjectRaw(raw string) error {
	sess := s.current()
	if sess == nil {
		return ErrNoComponent
	}
	return sess.write([]byte(raw))
}

// SendStreamError sends the stream error cond (with optional text) to the
// component and closes its connection.
func (s *Server) SendStreamError(cond, text string) error {
	sess := s.current()
	if sess == nil {
		return ErrNoComponent
	}
	err := sess.write([]byte(streamError(cond, text)))
	sess.nc.Close()
	return err
}

// CloseConn drops the component's connection without closing the stream.
func (s *Server) CloseConn() error {
	sess := s.current()
	if sess == nil {
		return ErrNoComponent
	}
	return sess.nc.Close()
}

func streamError(cond, text string) string {
	var b strings.Builder
	b.WriteString("<stream:error><" + cond + " xmlns='" + stanza.NSStreams + "'/>")
	if text != "" {
		b.WriteString("<text xmlns='" + stanza.NSStreams + "'>")
		xml.EscapeText(&b, []byte(text))
		b.WriteString("</text>")
	}
	b.WriteString("</stream:error></stream:stream>")
	return b.String()
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns[nc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.handle(nc)
			nc.Close()
			s.mu.Lock()
			delete(s.conns, nc)
			s.mu.Unlock()
		}()
	}
}

func (s *Server) violation(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.violations = append(s.violations, fmt.Sprintf(format, args...))
	s.notify()
}

// handle runs one connection.
func (s *Server) handle(nc net.Conn) {
	s.mu.Lock()
	dead := s.unresponsive
	s.mu.Unlock()
	if dead {
		io.Copy(io.Discard, nc)
		return
	}
	br := bufio.NewReader(nc)
	dec := xml.NewDecoder(br)
	sess := &session{nc: nc}
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	hdr, err := nextStart(dec)
	if err != nil || hdr.Name.Space != stanza.NSStream || hdr.Name.Local != "stream" {
		return
	}
	var to string
	for _, a := range hdr.Attr {
		if a.Name.Space == "" && a.Name.Local == "to" {
			to = a.Value
		}
	}
	id := randomID()
	s.mu.Lock()
	s.attempts = append(s.attempts, time.Now())
	s.notify()
	secret, failCond, failText, delay := s.secret, s.failCond, s.failText, s.handshakeDelay
	s.mu.Unlock()
	var b strings.Builder
	b.WriteString("<?xml version='1.0'?><stream:stream xmlns:stream='" + stanza.NSStream + "' xmlns='" + stanza.NSComponent + "' from='")
	xml.EscapeText(&b, []byte(to))
	b.WriteString("' id='" + id + "'>")
	if err := sess.write([]byte(b.String())); err != nil {
		return
	}
	if to != s.domain {
		sess.write([]byte(streamError("host-unknown", "")))
		return
	}
	hs, err := nextStart(dec)
	if err != nil {
		return
	}
	el, err := stanza.Decode(dec, hs)
	if err != nil {
		return
	}
	if el.Local != "handshake" {
		s.violation("<%s/> received before the handshake", el.Local)
		sess.write([]byte(streamError("not-authorized", "")))
		return
	}
	if delay > 0 {
		// Nothing may arrive before our <handshake/>.
		nc.SetReadDeadline(time.Now().Add(delay))
		if p, err := br.Peek(1); err == nil || br.Buffered() > 0 {
			s.violation("data received before the handshake succeeded: %q", p)
		}
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	}
	want := sha1.Sum([]byte(id + secret))
	switch {
	case el.Text() != hex.EncodeToString(want[:]):
		sess.write([]byte(streamError("not-authorized", "")))
		return
	case failCond != "":
		sess.write([]byte(streamError(failCond, failText)))
		return
	}
	// Register the session before the component can learn of its success,
	// so that Inject works as soon as the component is up; hold the write
	// lock until <handshake/> is out so nothing injected can precede it.
	s.mu.Lock()
	if s.sess != nil {
		s.mu.Unlock()
		sess.write([]byte(streamError("conflict", "")))
		return
	}
	sess.wmu.Lock()
	s.sess = sess
	s.handshakes++
	s.notify()
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.sess == sess {
			s.sess = nil
		}
		s.notify()
		s.mu.Unlock()
	}()
	nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err = nc.Write([]byte("<handshake/>"))
	sess.wmu.Unlock()
	if err != nil {
		return
	}
	nc.SetReadDeadline(time.Time{})
	s.serve(sess, dec)
}

// serve reads stanzas from an authenticated component.
func (s *Server) serve(sess *session, dec *xml.Decoder) {
	for {
		tok, err := dec.Token()
		if err != nil {
			return
		}
		switch t := tok.(type) {
		case xml.EndElement:
			sess.write([]byte("</stream:stream>"))
			return
		case xml.StartElement:
			el, err := stanza.Decode(dec, t)
			if err != nil {
				return
			}
			if el.Space == stanza.NSStream && el.Local == "error" {
				cond := "undefined-condition"
				if c := el.FirstChild(); c != nil {
					cond = c.Local
				}
				s.mu.Lock()
				s.streamErrs = append(s.streamErrs, cond)
				s.notify()
				s.mu.Unlock()
				continue
			}
			if el.Space != stanza.NSComponent || (el.Local != "message" && el.Local != "presence" && el.Local != "iq") {
				s.violation("unexpected element <%s xmlns='%s'>", el.Local, el.Space)
				sess.write([]byte(streamError("unsupported-stanza-type", "")))
				return
			}
			if !s.inDomain(el.From()) {
				s.violation("stanza with from=%q outside %s: %s", el.From(), s.domain, el)
				sess.write([]byte(streamError("invalid-from", "")))
				return
			}
			s.mu.Lock()
			s.received = append(s.received, el)
			s.notify()
			answer, dead := s.answerPings, s.unresponsive
			s.mu.Unlock()
			if dead {
				continue
			}
			if reply := s.reply(el, answer); reply != nil {
				var b bytes.Buffer
				reply.AppendXML(&b, stanza.NSComponent)
				sess.write(b.Bytes())
			}
		}
	}
}

// reply answers IQs addressed to the server itself: pings with a result
// (when answerPings), anything else with service-unavailable.
func (s *Server) reply(el *stanza.Element, answerPings bool) *stanza.Element {
	if el.Local != "iq" || !strings.EqualFold(el.To(), s.serverDomain) {
		return nil
	}
	if t := el.Type(); t != "get" && t != "set" {
		return nil
	}
	if el.Child(nsPing, "ping") != nil {
		if !answerPings {
			return nil
		}
		return stanza.Result(el, nil)
	}
	return stanza.ErrorReply(el, stanza.NewError(stanza.ServiceUnavailable, ""))
}

func (s *Server) inDomain(jid string) bool {
	bare := jid
	if i := strings.IndexByte(jid, '/'); i >= 0 {
		bare = jid[:i]
	}
	if i := strings.IndexByte(bare, '@'); i >= 0 {
		bare = bare[i+1:]
	}
	return jid != "" && strings.EqualFold(bare, s.domain)
}

func nextStart(dec *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := dec.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		if t, ok := tok.(xml.StartElement); ok {
			return t, nil
		}
	}
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
