package component

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jabbergate/jabbergate/component/stanza"
)

// Handler receives every stanza read from the link, in order, from the read
// loop. It must not block on network I/O (it may enqueue work or Send
// replies). Replies to the link's own requests (Request, Barrier and the
// keepalive ping) are consumed by the link and never reach the Handler;
// since that same loop reads them, the Handler must not wait for a Request
// or Barrier itself (start a goroutine for that).
type Handler interface{ HandleStanza(st *stanza.Element) }

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(st *stanza.Element)

// HandleStanza calls f(st).
func (f HandlerFunc) HandleStanza(st *stanza.Element) { f(st) }

// Link is the gateway's component connection to one XMPP server for one
// domain. It is created with New and driven by Run; its methods are safe
// for concurrent use.
type Link struct {
	cfg  Config
	h    Handler
	log  *slog.Logger
	dial func(ctx context.Context, network, addr string) (net.Conn, error)

	idPrefix string
	idSeq    atomic.Uint64
	running  atomic.Bool

	mu   sync.Mutex
	cur  *Conn
	upCh chan struct{} // closed while cur != nil
	ups  int           // successful handshakes so far
}

// New validates cfg, applies defaults and returns a Link. It does no I/O.
// A nil Handler drops every stanza.
func New(cfg Config, h Handler) (*Link, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if h == nil {
		h = HandlerFunc(func(*stanza.Element) {})
	}
	var rb [6]byte
	_, _ = rand.Read(rb[:])
	d := &net.Dialer{}
	return &Link{
		cfg:      cfg,
		h:        h,
		log:      cfg.Logger,
		dial:     d.DialContext,
		idPrefix: "jg" + hex.EncodeToString(rb[:]) + "-",
		upCh:     make(chan struct{}),
	}, nil
}

// Domain returns the component domain.
func (l *Link) Domain() string { return l.cfg.Domain }

// Up reports whether the link has an authenticated connection.
func (l *Link) Up() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur != nil
}

// current returns the live connection, or nil.
func (l *Link) current() *Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur
}

// WaitUp returns the current connection, waiting until there is one or ctx
// ends.
func (l *Link) WaitUp(ctx context.Context) (*Conn, error) {
	for {
		l.mu.Lock()
		c, ch := l.cur, l.upCh
		l.mu.Unlock()
		if c != nil {
			return c, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Send queues st on the current connection; see Conn.Send. It returns
// ErrNotConnected when there is none.
func (l *Link) Send(ctx context.Context, st *stanza.Element) error {
	c := l.current()
	if c == nil {
		return ErrNotConnected
	}
	return c.Send(ctx, st)
}

// SendFromHandler sends st, an answer the Handler computed itself, from the
// read loop: it is written, with the other answers computed meanwhile, in
// one write once the read loop has worked through the input it has read
// (before it reads again), instead of being handed to the writer goroutine
// one stanza at a time. A burst of pings costs one write and no goroutine
// wake-ups. Called from anywhere but the Handler it is Send. It returns
// ErrNotConnected when there is no connection.
func (l *Link) SendFromHandler(st *stanza.Element) error {
	c := l.current()
	if c == nil {
		return ErrNotConnected
	}
	st, err := l.check(st)
	if err != nil {
		return err
	}
	return c.sendFromHandler(st)
}

// Barrier runs Conn.Barrier on the current connection. It returns
// ErrNotConnected when there is none.
func (l *Link) Barrier(ctx context.Context) error {
	c := l.current()
	if c == nil {
		return ErrNotConnected
	}
	return c.Barrier(ctx)
}

func (l *Link) setCur(c *Conn) (first bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cur = c
	close(l.upCh)
	l.ups++
	return l.ups == 1
}

func (l *Link) dropCur(c *Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cur == c {
		l.cur = nil
		l.upCh = make(chan struct{})
	}
}

func (l *Link) nextID() string {
	return l.idPrefix + strconv.FormatUint(l.idSeq.Add(1), 36)
}

// Run dials the server, performs the handshake and serves the connection,
// reconnecting with exponential backoff and full jitter whenever the
// connection fails, until ctx ends. It then closes the stream and returns
// nil. Run must not be called concurrently with itself.
func (l *Link) Run(ctx context.Context) error {
	if !l.running.CompareAndSwap(false, true) {
		return errors.New("component: Run is already running for " + l.cfg.Domain)
	}
	defer l.running.Store(false)
	var fails, authFails int
	for ctx.Err() == nil {
		up, uptime, err := l.connectAndServe(ctx)
		if ctx.Err() != nil {
			break
		}
		if up {
			authFails = 0
			if uptime >= l.cfg.PingInterval {
				fails = 0
			}
		}
		fails++
		var se *StreamError
		if errors.As(err, &se) && se.backoffAuth() {
			authFails++
		}
		d := l.backoff(fails, authFails)
		l.log.Info("component link reconnecting", "domain", l.cfg.Domain, "delay", d, "attempt", fails)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	return nil
}

// backoff returns the wait before the next attempt after fails consecutive
// failures (>= 1), authFails of them configuration-type stream errors:
// uniformly random between MinBackoff and min(MaxBackoff,
// MinBackoff·2^fails) ("full jitter" above a floor, so there is never a
// tight loop), and after an authentication-type stream error at least
// AuthBackoff·2^(authFails-1), capped at max(MaxBackoff, AuthBackoff).
func (l *Link) backoff(fails, authFails int) time.Duration {
	lo, hi := l.cfg.MinBackoff, l.cfg.MinBackoff
	for i := 0; i < fails && hi < l.cfg.MaxBackoff; i++ {
		hi *= 2
	}
	hi = min(hi, l.cfg.MaxBackoff)
	d := lo + time.Duration(mrand.Int64N(int64(hi-lo)+1))
	if authFails > 0 {
		limit := max(l.cfg.MaxBackoff, l.cfg.AuthBackoff)
		a := l.cfg.AuthBackoff
		for i := 1; i < authFails && a < limit; i++ {
			a *= 2
		}
		a = min(a, limit)
		a += time.Duration(mrand.Int64N(int64(a/4) + 1))
		d = max(d, a)
	}
	return d
}

// connectAndServe runs one connection from dial to close. up reports whether
// the handshake succeeded, uptime how long the connection then lived.
func (l *Link) connectAndServe(ctx context.Context) (up bool, uptime time.Duration, err error) {
	dctx, cancel := context.WithTimeout(ctx, l.cfg.DialTimeout)
	nc, err := l.dial(dctx, "tcp", l.cfg.Addr)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			l.log.Warn("component link connect failed", "addr", l.cfg.Addr, "domain", l.cfg.Domain, "err", err)
		}
		return false, 0, err
	}
	r, streamID, err := l.handshake(ctx, nc)
	if err != nil {
		nc.Close()
		if ctx.Err() != nil {
			return false, 0, err
		}
		var se *StreamError
		if errors.As(err, &se) {
			l.streamError(se, "handshake")
		} else {
			l.log.Warn("component link handshake failed", "addr", l.cfg.Addr, "domain", l.cfg.Domain, "err", err)
		}
		return false, 0, err
	}
	c := newConn(l, nc, r, streamID)
	start := time.Now()
	first := l.setCur(c)
	l.log.Info("component link connected", "addr", l.cfg.Addr, "domain", l.cfg.Domain, "stream_id", streamID)
	l.cfg.Observer.LinkUp(true)
	if !first {
		l.cfg.Observer.Reconnected()
	}
	err = c.serve(ctx)
	uptime = time.Since(start)
	l.cfg.Observer.LinkUp(false)
	switch cond := c.sentCond(); {
	case errors.Is(err, errShutdown):
		l.log.Info("component link closed", "domain", l.cfg.Domain, "uptime", uptime.Round(time.Millisecond))
	case cond != "":
		// We closed the stream because of what the server sent.
		l.log.Error("component link disconnected", "domain", l.cfg.Domain, "reason", err,
			"stream_error_sent", cond, "max_stanza_size", l.cfg.MaxStanzaSize, "uptime", uptime.Round(time.Millisecond))
	default:
		l.log.Warn("component link disconnected", "domain", l.cfg.Domain, "reason", err, "uptime", uptime.Round(time.Millisecond))
	}
	return true, uptime, err
}

// streamError logs and reports a stream error received from the server.
func (l *Link) streamError(se *StreamError, phase string) {
	l.cfg.Observer.StreamError(se.Condition)
	l.log.Error("component link stream error from server", "domain", l.cfg.Domain, "addr", l.cfg.Addr,
		"phase", phase, "condition", se.Condition, "text", se.Text, "meaning", se.Meaning())
}

// handshake opens the stream on nc and authenticates (XEP-0114 §3).
func (l *Link) handshake(ctx context.Context, nc net.Conn) (*reader, string, error) {
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	nc.SetDeadline(time.Now().Add(l.cfg.DialTimeout))

	var b bytes.Buffer
	b.WriteString("<stream:stream xmlns='" + stanza.NSComponent + "' xmlns:stream='" + stanza.NSStream + "' to='")
	xml.EscapeText(&b, []byte(l.cfg.Domain))
	b.WriteString("'>")
	if _, err := nc.Write(b.Bytes()); err != nil {
		return nil, "", fmt.Errorf("writing stream header: %w", err)
	}
	r := newReader(nc, l.cfg.MaxStanzaSize)
	r.maxDepth = l.cfg.MaxDepth
	fail := func(what string, err error) (*reader, string, error) {
		f := r.classify(err, nil)
		if f.err != nil {
			err = f.err
		}
		if f.cond != "" {
			// Tell the server why, as on an established stream (a DTD:
			// restricted-xml; bad XML: not-well-formed).
			nc.SetWriteDeadline(time.Now().Add(time.Second))
			nc.Write([]byte("<stream:error><" + f.cond + " xmlns='" + stanza.NSStreams + "'/></stream:error></stream:stream>"))
		}
		return nil, "", fmt.Errorf("%s: %w", what, err)
	}
	tok, err := r.next()
	if err != nil {
		return fail("reading stream header", err)
	}
	hdr, ok := tok.(xml.StartElement)
	if !ok || hdr.Name.Space != stanza.NSStream || hdr.Name.Local != "stream" {
		return nil, "", fmt.Errorf("unexpected stream header %v", tok)
	}
	var id string
	for _, a := range hdr.Attr {
		if a.Name.Space == "" && a.Name.Local == "id" {
			id = a.Value
		}
	}
	// The server may send a stream error right after its header instead of
	// waiting for our handshake (host-unknown, improper-addressing).
	if id == "" {
		_, err := l.readHandshakeReply(r)
		var se *StreamError
		if errors.As(err, &se) {
			return nil, "", err
		}
		if err == nil {
			err = errors.New("the server sent a handshake nobody asked for")
		}
		return nil, "", fmt.Errorf("the server's stream header has no id, which the XEP-0114 handshake needs (is this port a component port?); then: %w", err)
	}
	b.Reset()
	b.WriteString("<handshake>" + Handshake(id, l.cfg.Secret) + "</handshake>")
	if _, err := nc.Write(b.Bytes()); err != nil {
		return nil, "", fmt.Errorf("writing handshake: %w", err)
	}
	if _, err := l.readHandshakeReply(r); err != nil {
		return nil, "", err
	}
	if !stop() {
		return nil, "", ctx.Err()
	}
	nc.SetDeadline(time.Time{})
	return r, id, nil
}

// readHandshakeReply reads the element after our handshake: <handshake/> on
// success (returned), a stream error or the end of the stream otherwise.
func (l *Link) readHandshakeReply(r *reader) (*stanza.Element, error) {
	tok, err := r.next()
	if err != nil {
		if f := r.classify(err, nil); f.err != nil {
			err = f.err
		}
		return nil, fmt.Errorf("waiting for handshake reply: %w", err)
	}
	start, ok := tok.(xml.StartElement)
	if !ok {
		return nil, errors.New("server closed the stream during the handshake")
	}
	el, err := r.element(start)
	if err != nil {
		if f := r.classify(err, &start); f.err != nil {
			err = f.err
		}
		return nil, fmt.Errorf("waiting for handshake reply: %w", err)
	}
	switch {
	case el.Space == stanza.NSStream && el.Local == "error":
		return nil, parseStreamError(el, l.cfg.Domain, r.dec.HeaderNS())
	case el.Local == "handshake" && stanza.IsStanzaNS(el.Space):
		return el, nil
	}
	return nil, fmt.Errorf("unexpected <%s xmlns='%s'> instead of the handshake reply", el.Local, el.Space)
}

// callHandler runs the Handler, surviving a panic.
func (l *Link) callHandler(st *stanza.Element) {
	defer func() {
		if p := recover(); p != nil {
			l.log.Error("component handler panicked; stanza dropped", "domain", l.cfg.Domain,
				"panic", fmt.Sprint(p), "kind", st.Local, "from", st.From(), "to", st.To(), "id", st.ID(),
				"stack", string(debug.Stack()))
		}
	}()
	l.h.HandleStanza(st)
}

// callOnUp runs Config.OnUp, surviving a panic.
func (l *Link) callOnUp(c *Conn) {
	defer func() {
		if p := recover(); p != nil {
			l.log.Error("component OnUp panicked", "domain", l.cfg.Domain, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
	}()
	l.cfg.OnUp(c.ctx, c)
}
