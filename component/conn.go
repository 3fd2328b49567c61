package component

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jabbergate/jabbergate/component/stanza"
)

// nsPing is the XEP-0199 namespace.
const nsPing = "urn:xmpp:ping"

// maxBatch bounds how many bytes the writer gathers into one Write.
const maxBatch = 64 * 1024

// Conn is one authenticated connection of a Link. It ends for good when the
// connection does; the Link then makes a new one.
type Conn struct {
	l        *Link
	nc       net.Conn
	r        *reader
	streamID string
	out      chan *stanza.Element
	done     chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc

	writerDone chan struct{}
	kaDone     chan struct{}

	ended atomic.Bool
	// progress counts stanzas and reads of bytes, and busy is set while
	// the handler runs: a ping answer queued behind stanzas we are still
	// processing (the handler blocks under back-pressure), or behind one
	// long stanza still arriving, is no sign of a dead link.
	progress atomic.Uint64
	busy     atomic.Bool
	mu       sync.Mutex
	reason   error
	sendCond string // stream error to send when closing
	graceful bool   // close after flushing the queue
	pending  map[string]*pending

	// Answers the handler wrote from the read loop (SendFromHandler),
	// written in one Write when the read loop has worked through its
	// input (flushInline), not handed to the writer one by one.
	inlineMu     sync.Mutex
	inline       bytes.Buffer
	inlineKinds  []string
	inlineClosed bool // shutdownWrite took over: nothing more is written

	// Barrier's shared pings: the round gathering callers, and whether
	// runBarriers is sending (a ping in flight).
	barrierMu   sync.Mutex
	barrierNext *barrierRound
	barrierBusy bool
}

type pending struct {
	ch chan *stanza.Element
	to string
}

func newConn(l *Link, nc net.Conn, r *reader, streamID string) *Conn {
	c := &Conn{
		l:          l,
		nc:         nc,
		r:          r,
		streamID:   streamID,
		out:        make(chan *stanza.Element, l.cfg.WriteQueue),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
		kaDone:     make(chan struct{}),
		pending:    make(map[string]*pending),
	}
	r.hook.before = c.flushInline
	r.hook.progress = &c.progress
	return c
}

// sendFromHandler appends st, already checked, to the answers written
// when the read loop next runs out of input. Called by the handler on the
// read loop; anywhere else it is Send.
func (c *Conn) sendFromHandler(st *stanza.Element) error {
	if !c.busy.Load() { // not inside the handler: the ordinary path
		return c.enqueue(c.ctx, st)
	}
	c.inlineMu.Lock()
	if c.inlineClosed || c.ended.Load() {
		c.inlineMu.Unlock()
		return ErrConnClosed
	}
	st.AppendXML(&c.inline, stanza.NSComponent)
	c.inlineKinds = append(c.inlineKinds, st.Local)
	full := c.inline.Len() >= maxBatch
	c.inlineMu.Unlock()
	if full {
		c.flushInline()
	}
	return nil
}

// flushInline writes the answers sendFromHandler gathered, in one Write:
// from the read loop, before it reads again (readHook), so a burst of
// requests read in one go is answered in one go, as the limit component
// of cmd/jgbench does; and by shutdownWrite before the closing tag.
func (c *Conn) flushInline() {
	c.inlineMu.Lock()
	defer c.inlineMu.Unlock()
	if c.inline.Len() == 0 || c.inlineClosed {
		return
	}
	_, err := c.nc.Write(c.inline.Bytes())
	kinds := c.inlineKinds
	c.inline.Reset()
	c.inlineKinds = c.inlineKinds[:0]
	if c.inline.Cap() > 1<<20 {
		c.inline = bytes.Buffer{}
	}
	if err != nil {
		c.end(fmt.Errorf("write failed: %w", err), "", false) // the writer then closes the stream
		return
	}
	c.reportOut(kinds)
}

// Done returns a channel that is closed when the connection has ended (or
// has begun closing; nothing more can be sent on it).
func (c *Conn) Done() <-chan struct{} { return c.done }

// serve runs the connection until it ends and returns the reason.
func (c *Conn) serve(ctx context.Context) error {
	c.ctx, c.cancel = context.WithCancel(ctx)
	go c.writeLoop()
	go c.keepalive()
	stop := context.AfterFunc(ctx, func() { c.end(errShutdown, "", true) })
	if c.l.cfg.OnUp != nil {
		go c.l.callOnUp(c)
	}
	f := c.readLoop()
	c.end(f.err, f.cond, false)
	stop()
	<-c.writerDone
	<-c.kaDone
	c.nc.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// closeGrace bounds the orderly close: flushing, the closing tag and
// waiting for the server's.
func (c *Conn) closeGrace() time.Duration {
	return min(2*time.Second, c.l.cfg.PingTimeout)
}

// end starts closing the connection, once; later calls do nothing. reason
// is reported by serve; cond, if set, is sent as a stream error; graceful
// flushes the write queue before the closing tag and waits for the
// server's.
func (c *Conn) end(reason error, cond string, graceful bool) {
	c.mu.Lock()
	if c.ended.Load() {
		c.mu.Unlock()
		return
	}
	c.reason, c.sendCond, c.graceful = reason, cond, graceful
	c.ended.Store(true)
	c.mu.Unlock()
	c.l.dropCur(c)
	now := time.Now()
	if graceful {
		c.nc.SetWriteDeadline(now.Add(c.closeGrace()))
	} else {
		// Abort a blocked write; the writer sets a fresh deadline for the
		// stream error and closing tag.
		c.nc.SetWriteDeadline(now)
	}
	c.nc.SetReadDeadline(now.Add(c.closeGrace()))
	close(c.done)
	c.cancel()
}

// readLoop reads and dispatches stanzas until the stream fails or ends.
func (c *Conn) readLoop() readFailure {
	r := c.r
	for {
		tok, err := r.next()
		if err != nil {
			return r.classify(err, nil)
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			return readFailure{err: errServerClosed}
		}
		el, err := r.element(start)
		if err != nil {
			ref, f := r.refuse(err, &start)
			if ref == nil {
				return f
			}
			c.refused(ref)
			continue
		}
		if el.Space == stanza.NSStream && el.Local == "error" {
			se := parseStreamError(el, c.l.cfg.Domain, r.dec.HeaderNS())
			c.l.streamError(se, "session")
			return readFailure{err: se}
		}
		if !isStanza(el) {
			c.l.log.Debug("component link ignoring unexpected element", "domain", c.l.cfg.Domain, "element", el.Local, "xmlns", el.Space)
			continue
		}
		normalize(el)
		c.progress.Add(1)
		c.l.cfg.Observer.Stanza(In, el.Local)
		if el.Local == "iq" && c.deliver(el) {
			continue
		}
		c.busy.Store(true)
		c.l.callHandler(el)
		c.busy.Store(false)
	}
}

// refused logs a stanza the read loop skipped (too deep or too large) and
// answers its sender with a policy-violation error, unless it was itself
// an error or an iq result (which nothing answers).
func (c *Conn) refused(ref *refusedStanza) {
	c.l.log.Warn("component link refused a stanza from the server; the link stays up", "domain", c.l.cfg.Domain,
		"stanza", ref.name, "type", ref.typ, "from", ref.from, "to", ref.to, "id", ref.id, "reason", ref.reason)
	if ref.typ == "error" || ref.name == "iq" && ref.typ == "result" || ref.from == "" ||
		ref.name != "message" && ref.name != "presence" && ref.name != "iq" {
		return
	}
	orig := stanza.New(stanza.NSComponent, ref.name, "type", ref.typ, "id", ref.id, "from", ref.from, "to", ref.to)
	reply := stanza.ErrorReply(orig, &stanza.Error{Type: stanza.ErrModify, Condition: stanza.PolicyViolation,
		Text: "this stanza was not delivered: " + ref.reason})
	reply, err := c.l.check(reply)
	if err != nil { // addressed outside our domain: nothing to answer from
		return
	}
	c.busy.Store(true)
	_ = c.sendFromHandler(reply)
	c.busy.Store(false)
}

// sentCond returns the stream error condition sent when closing, if any.
func (c *Conn) sentCond() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sendCond
}

// deliver hands an IQ result or error to the pending request it answers.
func (c *Conn) deliver(el *stanza.Element) bool {
	if t := el.Type(); t != "result" && t != "error" {
		return false
	}
	id := el.ID()
	c.mu.Lock()
	p := c.pending[id]
	if p == nil || !replyFrom(p.to, el.From()) {
		c.mu.Unlock()
		return false
	}
	delete(c.pending, id)
	c.mu.Unlock()
	p.ch <- el
	return true
}

// replyFrom reports whether a reply from from can answer a request sent to
// to: the same JID, or a full JID under a bare one.
func replyFrom(to, from string) bool {
	if to == "" || strings.EqualFold(to, from) {
		return true
	}
	if strings.IndexByte(to, '/') < 0 {
		if i := strings.IndexByte(from, '/'); i >= 0 {
			return strings.EqualFold(to, from[:i])
		}
	}
	return false
}

// Send queues st for writing on this connection. It blocks while the write
// queue is full (back-pressure) until ctx ends, and returns ErrConnClosed
// once this connection has ended. st must be a message, presence or iq
// whose from is the component domain or a JID under it (user@domain,
// user@domain/resource, domain/resource); anything else is refused and
// never written, because one foreign from makes Prosody and ejabberd close
// the whole link. st must not be modified after Send.
func (c *Conn) Send(ctx context.Context, st *stanza.Element) error {
	st, err := c.l.check(st)
	if err != nil {
		return err
	}
	return c.enqueue(ctx, st)
}

func (c *Conn) enqueue(ctx context.Context, st *stanza.Element) error {
	if c.ended.Load() {
		return ErrConnClosed
	}
	select {
	case c.out <- st:
		return nil
	case <-c.done:
		return ErrConnClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// check validates an outgoing stanza and returns it in the component
// namespace (a copy if it had to be moved).
func (l *Link) check(st *stanza.Element) (*stanza.Element, error) {
	if st == nil {
		return nil, errors.New("component: refusing to send a nil stanza")
	}
	if !isStanza(st) {
		return nil, fmt.Errorf("component: refusing to send <%s xmlns=%q>: not a message, presence or iq stanza", st.Local, st.Space)
	}
	if !l.inDomain(st.From()) {
		return nil, fmt.Errorf("component: refusing to send %s to=%q id=%q with from=%q: from must be %s or a JID under it",
			st.Local, st.To(), st.ID(), st.From(), l.cfg.Domain)
	}
	if st.Space != stanza.NSComponent {
		st = st.Copy()
		normalize(st)
	}
	if n, over := st.SizeOver(l.cfg.MaxStanzaSize, stanza.NSComponent); over {
		return nil, fmt.Errorf("%w: %s to=%q id=%q is %d bytes, the limit is %d", ErrStanzaTooLarge, st.Local, st.To(), st.ID(), n, l.cfg.MaxStanzaSize)
	}
	return st, nil
}

// inDomain reports whether jid is the component domain, domain/resource,
// local@domain or local@domain/resource.
func (l *Link) inDomain(jid string) bool {
	bare := jid
	if i := strings.IndexByte(jid, '/'); i >= 0 {
		if i == len(jid)-1 {
			return false
		}
		bare = jid[:i]
	}
	if i := strings.IndexByte(bare, '@'); i >= 0 {
		if i == 0 {
			return false
		}
		bare = bare[i+1:]
	}
	return strings.EqualFold(bare, l.cfg.Domain)
}

// Request sends an IQ get or set and waits for its result or error reply,
// which is then not passed to the Handler. An empty id is replaced by a
// unique one and an empty from by the component domain (on a copy; iq is
// not modified). A reply of type error is returned together with its
// *stanza.Error; ErrConnClosed means the connection ended first. Do not
// call it from the Handler: the reply is read by the loop that runs it.
func (c *Conn) Request(ctx context.Context, iq *stanza.Element) (*stanza.Element, error) {
	if iq == nil || iq.Local != "iq" {
		return nil, errors.New("component: Request needs an iq stanza")
	}
	if t := iq.Type(); t != "get" && t != "set" {
		return nil, fmt.Errorf("component: Request needs an iq of type get or set, not %q", t)
	}
	reply, err := c.roundTrip(ctx, iq)
	if err != nil {
		return nil, err
	}
	if reply.Type() == "error" {
		se := stanza.ParseError(reply)
		if se == nil || se.Condition == "" {
			se = stanza.NewError(stanza.UndefinedCondition, "error reply without a condition")
		}
		return reply, se
	}
	return reply, nil
}

// Barrier sends an XEP-0199 ping to PingTo after everything already queued
// on c and returns nil once the server answers (result or error). The server
// processes a link in order, so this proves the stanzas queued before it
// were routed. It returns ErrConnClosed if c ended first, ctx's error if
// ctx ends first.
//
// Concurrent callers share pings: while one is in flight, callers
// arriving meanwhile gather for the next, sent when it is answered (each
// caller's stanzas were queued before it joined, so before that ping).
// Under load the server answers one ping per round trip for all of them
// instead of one per caller; a lone caller's ping leaves at once.
//
// A ping left unanswered for PingTimeout on a link that is still alive
// (its answer lost, or routed to another link of the same domain) is
// followed by a new one, whose answer proves the same: a barrier never
// waits forever on a live link.
func (c *Conn) Barrier(ctx context.Context) error {
	c.barrierMu.Lock()
	r := c.barrierNext
	if r == nil || r.ctx.Err() != nil { // none gathering, or all its callers gave up
		r = &barrierRound{done: make(chan struct{})}
		r.ctx, r.cancel = context.WithCancel(context.Background())
		c.barrierNext = r
		if !c.barrierBusy {
			c.barrierBusy = true
			go c.runBarriers()
		}
	}
	r.waiters++
	c.barrierMu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		c.barrierMu.Lock()
		if r.waiters--; r.waiters == 0 {
			// Nobody waits for this ping any more: stop waiting for its
			// answer (which may never come, say, routed to another
			// instance), so a caller retrying gets a ping of its own now.
			r.cancel()
		}
		c.barrierMu.Unlock()
		return ctx.Err()
	}
}

// barrierRound is one shared barrier ping and the callers waiting for it.
type barrierRound struct {
	done    chan struct{} // closed when err is set
	err     error
	waiters int // callers still waiting, under Conn.barrierMu
	// ctx is canceled when the last waiter gives up: the round's ping is
	// then abandoned, or never sent if it was still gathering.
	ctx    context.Context
	cancel context.CancelFunc
}

// runBarriers sends the gathered rounds' pings one after the other until
// no caller is waiting for the next.
func (c *Conn) runBarriers() {
	for {
		c.barrierMu.Lock()
		r := c.barrierNext
		c.barrierNext = nil
		if r == nil {
			c.barrierBusy = false
			c.barrierMu.Unlock()
			return
		}
		gone := r.ctx.Err() != nil // every caller gave up while it gathered
		c.barrierMu.Unlock()
		if gone {
			close(r.done)
			continue
		}
		r.err = c.barrierPing(r)
		close(r.done)
	}
}

// barrierPing pings until an answer comes, the link ends, or nobody waits
// for r any more.
func (c *Conn) barrierPing(r *barrierRound) error {
	defer r.cancel()
	for {
		attempt, cancel := context.WithTimeout(r.ctx, c.l.cfg.PingTimeout)
		_, err := c.roundTrip(attempt, c.pingIQ())
		cancel()
		if err == nil || r.ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
}

func (c *Conn) pingIQ() *stanza.Element {
	return stanza.New(stanza.NSComponent, "iq", "type", "get", "from", c.l.cfg.Domain, "to", c.l.cfg.PingTo).
		Add(stanza.New(nsPing, "ping"))
}

// roundTrip sends iq and waits for the reply.
func (c *Conn) roundTrip(ctx context.Context, iq *stanza.Element) (*stanza.Element, error) {
	req := *iq
	req.Attrs = slices.Clone(iq.Attrs)
	if req.ID() == "" {
		req.SetAttr("id", c.l.nextID())
	}
	if req.From() == "" {
		req.SetAttr("from", c.l.cfg.Domain)
	}
	st, err := c.l.check(&req)
	if err != nil {
		return nil, err
	}
	id := st.ID()
	p := &pending{ch: make(chan *stanza.Element, 1), to: st.To()}
	c.mu.Lock()
	if _, dup := c.pending[id]; dup {
		c.mu.Unlock()
		return nil, fmt.Errorf("component: a request with id %q is already pending", id)
	}
	c.pending[id] = p
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.pending[id] == p {
			delete(c.pending, id)
		}
		c.mu.Unlock()
	}()
	if err := c.enqueue(ctx, st); err != nil {
		return nil, err
	}
	select {
	case r := <-p.ch:
		return r, nil
	case <-c.done:
		select {
		case r := <-p.ch:
			return r, nil
		default:
			return nil, ErrConnClosed
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// keepalive pings PingTo every PingInterval and closes the connection when
// an answer takes longer than PingTimeout.
func (c *Conn) keepalive() {
	defer close(c.kaDone)
	t := time.NewTimer(c.l.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		before := c.progress.Load()
		ctx, cancel := context.WithTimeout(c.ctx, c.l.cfg.PingTimeout)
		_, err := c.roundTrip(ctx, c.pingIQ())
		timedOut := errors.Is(err, context.DeadlineExceeded) && c.ctx.Err() == nil
		cancel()
		if timedOut && (c.progress.Load() != before || c.busy.Load()) {
			// The server is talking and we are the slow reader: the
			// answer waits behind stanzas not yet read. Closing now
			// would lose everything the server already sent us.
			c.l.log.Debug("keepalive answer late while stanzas are still being read; link kept", "domain", c.l.cfg.Domain)
			t.Reset(c.l.cfg.PingInterval)
			continue
		}
		if timedOut {
			c.end(fmt.Errorf("dead link: no answer to keepalive ping to %s within %v", c.l.cfg.PingTo, c.l.cfg.PingTimeout), "", false)
			return
		}
		if err != nil {
			if !c.ended.Load() {
				c.l.log.Warn("component keepalive ping failed", "domain", c.l.cfg.Domain, "err", err)
			}
			return
		}
		t.Reset(c.l.cfg.PingInterval)
	}
}

// writeLoop is the connection's only writer. It gathers everything queued
// into one buffer and writes it with a single Write.
func (c *Conn) writeLoop() {
	defer close(c.writerDone)
	var buf bytes.Buffer
	var kinds []string
	for {
		select {
		case st := <-c.out:
			buf.Reset()
			kinds = kinds[:0]
			st.AppendXML(&buf, stanza.NSComponent)
			kinds = append(kinds, st.Local)
		drain:
			for buf.Len() < maxBatch {
				select {
				case st := <-c.out:
					st.AppendXML(&buf, stanza.NSComponent)
					kinds = append(kinds, st.Local)
				default:
					break drain
				}
			}
			if c.ended.Load() && !c.isGraceful() {
				c.shutdownWrite(nil)
				return
			}
			if _, err := c.nc.Write(buf.Bytes()); err != nil {
				c.end(fmt.Errorf("write failed: %w", err), "", false)
				c.shutdownWrite(nil)
				return
			}
			c.reportOut(kinds)
			if buf.Cap() > 1<<20 {
				buf = bytes.Buffer{}
			}
		case <-c.done:
			c.shutdownWrite(&buf)
			return
		}
	}
}

func (c *Conn) isGraceful() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.graceful
}

func (c *Conn) reportOut(kinds []string) {
	for _, k := range kinds {
		c.l.cfg.Observer.Stanza(Out, k)
	}
}

// shutdownWrite writes the end of the stream: on a graceful close the rest
// of the queue first, otherwise the stream error, if any. It then closes
// the socket unless the close is graceful (serve waits for the server's
// closing tag then).
func (c *Conn) shutdownWrite(buf *bytes.Buffer) {
	<-c.done // end has set the deadlines
	c.mu.Lock()
	graceful, cond := c.graceful, c.sendCond
	c.mu.Unlock()
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	var kinds []string
	// Answers gathered from the read loop go first (graceful) or are
	// dropped with the rest of the queue; none is written after this.
	c.inlineMu.Lock()
	if graceful {
		buf.Write(c.inline.Bytes())
		kinds = append(kinds, c.inlineKinds...)
	}
	c.inline.Reset()
	c.inlineKinds = nil
	c.inlineClosed = true
	c.inlineMu.Unlock()
	if graceful {
	flush:
		for {
			select {
			case st := <-c.out:
				st.AppendXML(buf, stanza.NSComponent)
				kinds = append(kinds, st.Local)
			default:
				break flush
			}
		}
	} else if cond != "" {
		buf.WriteString("<stream:error><" + cond + " xmlns='" + stanza.NSStreams + "'/></stream:error>")
	}
	buf.WriteString("</stream:stream>")
	if !graceful {
		c.nc.SetWriteDeadline(time.Now().Add(c.closeGrace()))
	}
	if _, err := c.nc.Write(buf.Bytes()); err == nil {
		c.reportOut(kinds)
	} else if graceful {
		c.l.log.Warn("component link could not flush on close", "domain", c.l.cfg.Domain, "err", err, "stanzas_lost", len(kinds))
	}
	if !graceful {
		c.nc.Close()
	}
}
