package stanza

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// StreamDecoder reads an XMPP stream (the server's side of the component
// link) element by element without encoding/xml: it is the link's hot path.
// It keeps Decode's guarantees — well-formed XML 1.0 (names, quoting,
// matching end tags, the five predefined entities and character references
// only, legal characters in valid UTF-8, \r\n folded to \n), namespaces
// resolved (default and prefixed declarations, xml:, an unbound prefix kept
// as the namespace, like encoding/xml), DTDs and markup declarations refused
// (ErrRestrictedXML), nesting bounded (ErrTooDeep) — and adds a byte budget
// (SetLimit) checked on every byte read, so a huge token cannot grow any
// buffer past it.
//
// Cost per stanza in the steady state: names and namespace URIs are
// interned per decoder (bounded), and the element tree of one stanza is
// built with two allocations when it is small or typical (up to 6
// elements, 8 attributes, 6 nodes: the elements, attributes and nodes in
// one block, and one string holding every attribute value and text, which
// the tree's strings are slices of), four when larger (a slice each). A
// handler that keeps one value keeps that stanza's string alive — except
// attribute values of stanzas above 2 KiB, which are copied, so a map key
// taken from a from/to/id never pins a large body.
//
// Differences from encoding/xml, all on input no XMPP server sends: names
// outside ASCII are checked with unicode letter/digit/mark classes rather
// than the XML 1.0 name tables, and syntax errors carry the byte offset, not
// the line.
type StreamDecoder struct {
	src      io.Reader
	buf      []byte
	pos, end int
	off      int64 // bytes consumed
	limit    int64
	hit      bool  // the limit was reached
	rerr     error // first error from src

	open       bool // the stream header was read
	closeNext  bool // the header was self-closing: report the close next
	hdrSpace   string
	hdrPrefix  string
	hdrLocal   string
	hdrAttrs   []Attr
	hdrNSDef   string // the header's default namespace
	pending    bool   // a stanza start tag was read, its body not yet
	selfClosed bool   // … and it was <…/>
	// resume says where the last failed Element stopped, for Discard:
	// resumeNone (nowhere Discard can go on from), resumeTag (just after
	// a '<': a start tag nested too deep, or the byte limit), resumeText
	// (in character data, on the byte limit), resumeStart or resumeEnd
	// (inside a start or end tag, on the byte limit: the closing tags of
	// a stanza just over the limit).
	resume uint8

	ns    []nsBind // namespace bindings; the header's stay for the stream
	hdrNS int      // how many of them are the header's
	names map[string]string

	// per element being decoded
	scratch []byte // decoded attribute values and text
	els     []tEl
	attrs   []tAttr
	nstack  []tNode // nodes of the open elements
	nodes   []tNode // nodes of closed elements, contiguous per element
	stack   []tOpen
	nameBuf []byte
}

type nsBind struct{ prefix, uri string }

type tEl struct {
	space, prefix, local string
	alo, ahi, nlo, nhi   int32
}

type tAttr struct {
	prefix, local string
	space         string
	lo, hi        int32
}

type tNode struct {
	el     int32 // index in els, or -1 for text
	lo, hi int32
}

type tOpen struct {
	el, nsMark, nodeMark int32
}

// Stream events returned by StreamDecoder.Next.
const (
	// EventSkip: whitespace, text, a comment or a processing instruction
	// between stanzas was read and dropped.
	EventSkip = iota
	// EventHeader: the stream's root start tag was read (Header).
	EventHeader
	// EventStart: a stanza's start tag was read (StartName); Element reads
	// the rest.
	EventStart
	// EventEnd: the stream's root end tag was read.
	EventEnd
)

// Where a failed Element stopped (StreamDecoder.resume).
const (
	resumeNone = iota
	resumeTag
	resumeText
	resumeStart
	resumeEnd
)

// ErrLimit is returned when the byte budget set with SetLimit is used up.
var ErrLimit = errors.New("stanza: stream byte limit reached")

// NewStreamDecoder returns a decoder reading r through a buffer of bufSize
// bytes (4096 when <= 0). The budget is unlimited until SetLimit.
func NewStreamDecoder(r io.Reader, bufSize int) *StreamDecoder {
	if bufSize <= 0 {
		bufSize = 4096
	}
	return &StreamDecoder{
		src:   r,
		buf:   make([]byte, bufSize),
		limit: 1<<63 - 1,
		names: make(map[string]string, 64),
	}
}

// InputOffset returns the number of bytes consumed so far.
func (d *StreamDecoder) InputOffset() int64 { return d.off }

// SetLimit makes every read at or past offset limit fail with ErrLimit.
func (d *StreamDecoder) SetLimit(limit int64) { d.limit = limit }

// LimitHit reports whether a read failed on the limit.
func (d *StreamDecoder) LimitHit() bool { return d.hit }

// ReadErr returns the first error of the underlying reader, or nil.
func (d *StreamDecoder) ReadErr() error { return d.rerr }

// Header returns the stream root's namespace, local name and attributes
// (namespace declarations dropped).
func (d *StreamDecoder) Header() (space, local string, attrs []Attr) {
	return d.hdrSpace, d.hdrLocal, d.hdrAttrs
}

// HeaderNS returns the default namespace the stream header declared —
// jabber:component:accept from a component port, jabber:client from a
// client port — or "" when it declared none.
func (d *StreamDecoder) HeaderNS() string { return d.hdrNSDef }

// StartName returns the namespace and local name of the stanza whose start
// tag the last Next returned (EventStart).
func (d *StreamDecoder) StartName() (space, local string) {
	if len(d.els) == 0 {
		return "", ""
	}
	return d.els[0].space, d.els[0].local
}

// StartAttr returns the un-namespaced attribute local of the last stanza
// start tag read, or "" (for error messages: it allocates).
func (d *StreamDecoder) StartAttr(local string) string {
	if len(d.els) == 0 {
		return ""
	}
	e := d.els[0]
	for _, a := range d.attrs[e.alo:e.ahi] {
		if a.space == "" && a.local == local && int(a.hi) <= len(d.scratch) {
			return string(d.scratch[a.lo:a.hi])
		}
	}
	return ""
}

func (d *StreamDecoder) byte() (byte, error) {
	if d.pos < d.end && d.off < d.limit {
		b := d.buf[d.pos]
		d.pos++
		d.off++
		return b, nil
	}
	return d.slowByte()
}

func (d *StreamDecoder) slowByte() (byte, error) {
	if d.off >= d.limit {
		d.hit = true
		return 0, ErrLimit
	}
	if d.pos >= d.end {
		if d.rerr != nil {
			return 0, d.rerr
		}
		for i := 0; ; i++ {
			n, err := d.src.Read(d.buf)
			if n > 0 {
				d.pos, d.end = 0, n
				break
			}
			if err == nil && i >= 100 {
				err = io.ErrNoProgress
			}
			if err != nil {
				d.rerr = err
				return 0, err
			}
		}
	}
	b := d.buf[d.pos]
	d.pos++
	d.off++
	return b, nil
}

// avail returns the buffered bytes that may be consumed without a refill
// and without passing the limit; skip consumes n of them.
func (d *StreamDecoder) avail() []byte {
	n := d.end - d.pos
	if rem := d.limit - d.off; int64(n) > rem {
		n = int(max(rem, 0))
	}
	return d.buf[d.pos : d.pos+n]
}

func (d *StreamDecoder) skip(n int) {
	d.pos += n
	d.off += int64(n)
}

// plain marks the bytes copied as they are in text (1) and in attribute
// values (2): printable ASCII, tab and newline, but not the markup bytes
// that need a look (<, &, ], quotes, \r).
var plain = func() (t [256]uint8) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = 3
	}
	t['\t'], t['\n'] = 3, 3
	t['<'], t['&'] = 0, 0
	t[']'] = 2
	t['\''], t['"'] = 1, 1
	return t
}()

// unread gives back the byte the last successful byte() returned.
func (d *StreamDecoder) unread() {
	d.pos--
	d.off--
}

func (d *StreamDecoder) syntax(msg string) error {
	return &xml.SyntaxError{Msg: fmt.Sprintf("%s (at byte %d)", msg, d.off)}
}

// must turns the end of the input inside markup into a syntax error.
func (d *StreamDecoder) must(err error) error {
	if err == io.EOF {
		return d.syntax("unexpected EOF")
	}
	return err
}

// Next reads the next top-level event. Before the stream header it skips
// the XML declaration, comments and whitespace; inside the stream, a stanza
// start tag returns EventStart and Element must be called before Next again.
func (d *StreamDecoder) Next() (int, error) {
	if d.pending {
		return 0, errors.New("stanza: Next called before Element")
	}
	if d.open {
		d.ns = d.ns[:d.hdrNS] // after a failed Element
	}
	if d.closeNext {
		d.closeNext, d.open = false, false
		return EventEnd, nil
	}
	b, err := d.byte()
	if err != nil {
		if !d.open && err == io.EOF {
			return 0, io.EOF
		}
		return 0, d.must(err)
	}
	if b != '<' {
		if isSpace(b) {
			// Whitespace between stanzas (keepalives, RFC 6120 §4.6.1),
			// a buffer's worth at a time, each its own skip: a caller's
			// budget for the next stanza (SetLimit) is set after it, so
			// no run of whitespace, however long, counts against one.
			a := d.avail()
			i := 0
			for i < len(a) && isSpace(a[i]) {
				i++
			}
			d.skip(i)
			return EventSkip, nil
		}
		d.unread()
		d.resetElement()
		if err := d.text(false); err != nil {
			return 0, err
		}
		d.resetElement()
		return EventSkip, nil
	}
	if b, err = d.byte(); err != nil {
		return 0, d.must(err)
	}
	switch b {
	case '?':
		return EventSkip, d.skipPI()
	case '!':
		d.resetElement()
		if err := d.bang(); err != nil {
			return 0, err
		}
		d.resetElement()
		return EventSkip, nil
	case '/':
		if !d.open {
			return 0, d.syntax("unexpected end element")
		}
		if err := d.endTag(d.hdrPrefix, d.hdrLocal); err != nil {
			return 0, err
		}
		d.open = false
		d.ns = d.ns[:0]
		return EventEnd, nil
	}
	d.unread()
	d.resetElement()
	if !d.open {
		d.ns = d.ns[:0]
	}
	self, err := d.startTag()
	if err != nil {
		return 0, err
	}
	if !d.open {
		// The stream header: its bindings stay for the whole stream.
		e := d.els[0]
		s := string(d.scratch)
		d.hdrAttrs = make([]Attr, 0, e.ahi-e.alo)
		for _, a := range d.attrs[e.alo:e.ahi] {
			d.hdrAttrs = append(d.hdrAttrs, Attr{Space: a.space, Local: a.local, Value: s[a.lo:a.hi]})
		}
		d.hdrSpace, d.hdrPrefix, d.hdrLocal = e.space, e.prefix, e.local
		d.hdrNSDef = d.resolve("")
		d.open, d.closeNext, d.hdrNS = true, self, len(d.ns)
		d.resetElement()
		return EventHeader, nil
	}
	d.pending, d.selfClosed = true, self
	return EventStart, nil
}

func (d *StreamDecoder) resetElement() {
	d.scratch = d.scratch[:0]
	d.els = d.els[:0]
	d.attrs = d.attrs[:0]
	d.nstack = d.nstack[:0]
	d.nodes = d.nodes[:0]
	d.stack = d.stack[:0]
}

// Element reads the rest of the stanza whose start tag Next returned and
// returns it. An element nested deeper than maxDepth (the stanza is depth
// 1; <= 0 means MaxDepth) returns ErrTooDeep.
func (d *StreamDecoder) Element(maxDepth int) (*Element, error) {
	if !d.pending {
		return nil, errors.New("stanza: Element called without a start tag")
	}
	d.pending, d.resume = false, resumeNone
	if maxDepth <= 0 {
		maxDepth = MaxDepth
	}
	d.stack = append(d.stack, tOpen{el: 0, nsMark: int32(d.nsMarkOf(0)), nodeMark: 0})
	if d.selfClosed {
		d.closeTop()
		return d.build(), nil
	}
	for {
		b, err := d.byte()
		if err != nil {
			if err == ErrLimit {
				d.resume = resumeText
			}
			return nil, d.must(err)
		}
		if b != '<' {
			d.unread()
			if err := d.text(false); err != nil {
				if err == ErrLimit {
					d.resume = resumeText
				}
				return nil, err
			}
			continue
		}
		if b, err = d.byte(); err != nil {
			if err == ErrLimit {
				d.resume = resumeTag
			}
			return nil, d.must(err)
		}
		switch b {
		case '/':
			top := d.els[d.stack[len(d.stack)-1].el]
			if err := d.endTag(top.prefix, top.local); err != nil {
				if err == ErrLimit {
					d.resume = resumeEnd
				}
				return nil, err
			}
			if d.closeTop() {
				return d.build(), nil
			}
		case '?':
			if err := d.skipPI(); err != nil {
				return nil, err
			}
		case '!':
			if err := d.bang(); err != nil {
				return nil, err
			}
		default:
			d.unread()
			if len(d.stack) >= maxDepth {
				d.resume = resumeTag
				return nil, ErrTooDeep
			}
			idx := int32(len(d.els))
			d.nstack = append(d.nstack, tNode{el: idx})
			self, err := d.startTag()
			if err != nil {
				if err == ErrLimit {
					d.resume = resumeStart
				}
				return nil, err
			}
			d.stack = append(d.stack, tOpen{el: idx, nsMark: int32(d.nsMarkOf(idx)), nodeMark: int32(len(d.nstack))})
			if self {
				d.closeTop()
			}
		}
	}
}

// nsMarkOf is recorded by startTag: the binding count before element i's
// own declarations.
func (d *StreamDecoder) nsMarkOf(i int32) int { return int(d.els[i].nhi) }

// closeTop closes the innermost open element; it reports whether that was
// the stanza itself.
func (d *StreamDecoder) closeTop() bool {
	o := d.stack[len(d.stack)-1]
	d.stack = d.stack[:len(d.stack)-1]
	e := &d.els[o.el]
	e.nlo = int32(len(d.nodes))
	d.nodes = append(d.nodes, d.nstack[o.nodeMark:]...)
	e.nhi = int32(len(d.nodes))
	d.nstack = d.nstack[:o.nodeMark]
	d.ns = d.ns[:o.nsMark]
	return len(d.stack) == 0
}

// Discard skips the rest of a stanza whose Element failed with ErrTooDeep,
// or with ErrLimit in character data (a body larger than the limit) or in
// a start or end tag (a stanza whose closing tags, or an attribute, pass
// the limit), keeping nothing, so that Next can go on with the following
// stanza: one stanza is refused instead of the whole stream.
//
// Character data, CDATA sections, comments and processing instructions
// are skipped whatever their length: a server without a client stanza
// size limit (ejabberd's default) routes a body of any size, so any of its
// users could otherwise end the stream with one message; nothing is kept,
// so memory does not grow with them. Each tag is read up to tagMax bytes
// (the rest of the tag Element stopped in, when it stopped in one): past
// that, and when Element stopped anywhere else (in a comment or processing
// instruction, which servers do not send in stanzas), Discard fails —
// ErrLimit for a tag too long. The start tag Element stopped in ends at
// the first '>' (servers escape '>' in attribute values); the others at the
// first '>' outside quotes.
//
// It only counts nesting: the XML it skips is not checked, which is safe
// on a stream from a server (it parsed the stanza before routing it) and
// costs nothing for the stanzas that follow, whose parsing starts afresh
// at the byte after the skipped stanza's end tag. The byte limit set with
// SetLimit is replaced: set it again before Next.
func (d *StreamDecoder) Discard(tagMax int64) error {
	if d.resume == resumeNone {
		return errors.New("stanza: nothing to discard: Element did not stop where it can be resumed")
	}
	depth, inTag, resume := len(d.stack), d.resume == resumeTag, d.resume
	var prev byte // the byte before the stop, when still buffered
	if d.pos > 0 {
		prev = d.buf[d.pos-1]
	}
	d.resume = resumeNone
	d.resetElement()
	d.scratch = d.scratch[:0:0] // let a large text's buffer go
	const unlimited = 1<<63 - 1
	d.hit = false
	tag := func() { d.limit = d.off + tagMax } // bound the tag starting here
	switch resume {
	case resumeEnd: // the rest of an end tag: no quotes in it
		tag()
		if err := d.skipPast(">"); err != nil {
			return err
		}
		depth--
	case resumeStart: // the rest of a start tag, and whether it closed itself
		tag()
		for {
			b, err := d.byte()
			if err != nil {
				return d.must(err)
			}
			if b == '>' {
				break
			}
			prev = b
		}
		if prev != '/' {
			depth++ // the element it opens (startTag had not pushed it)
		}
	case resumeTag: // just after a '<': the tag it opens is bounded below
		tag()
	}
	for depth > 0 {
		if !inTag { // character data: up to the next '<'
			d.limit = unlimited
			for {
				a := d.avail()
				i := bytes.IndexByte(a, '<')
				if i >= 0 {
					d.skip(i + 1)
					break
				}
				d.skip(len(a))
				if _, err := d.byte(); err != nil { // refill (or fail)
					return d.must(err)
				}
				d.unread()
			}
			tag()
		}
		inTag = false
		b, err := d.byte()
		if err != nil {
			return d.must(err)
		}
		switch b {
		case '/': // end tag: no quotes in it
			if err := d.skipPast(">"); err != nil {
				return err
			}
			depth--
		case '?':
			d.limit = unlimited
			if err := d.skipPast("?>"); err != nil {
				return err
			}
		case '!':
			d.limit = unlimited
			if b, err = d.byte(); err != nil {
				return d.must(err)
			}
			end := "]]>" // <![CDATA[
			if b == '-' {
				end = "-->"
			}
			if err := d.skipPast(end); err != nil {
				return err
			}
		default: // start tag: up to '>' outside quoted values
			var quote, prev byte
			for b != '>' || quote != 0 {
				switch {
				case quote != 0:
					if b == quote {
						quote = 0
					}
				case b == '\'' || b == '"':
					quote = b
				}
				prev = b
				if b, err = d.byte(); err != nil {
					return d.must(err)
				}
			}
			if prev != '/' {
				depth++
			}
		}
	}
	return nil
}

// skipPast consumes input up to and including end (at most 3 bytes).
func (d *StreamDecoder) skipPast(end string) error {
	var last [3]byte // the last bytes read, most recent at the end
	for n := 0; ; n++ {
		b, err := d.byte()
		if err != nil {
			return d.must(err)
		}
		last[0], last[1], last[2] = last[1], last[2], b
		if n+1 >= len(end) && string(last[3-len(end):]) == end {
			return nil
		}
	}
}

// smallTree holds the tree of a small stanza in one allocation.
type smallTree struct {
	e [2]Element
	a [6]Attr
	n [2]Node
}

// mediumTree holds the tree of a typical chat message in one allocation.
type mediumTree struct {
	e [6]Element
	a [8]Attr
	n [6]Node
}

// build turns the decoded stanza into an element tree: two allocations for
// a small or medium stanza, four otherwise (make of a zero length does not
// allocate).
func (d *StreamDecoder) build() *Element {
	s := string(d.scratch)
	var els []Element
	var attrs []Attr
	var nodes []Node
	switch ne, na, nn := len(d.els), len(d.attrs), len(d.nodes); {
	case ne <= 2 && na <= 6 && nn <= 2:
		// A small stanza (a ping, a disco#info request, a presence): its
		// tree in one allocation.
		x := &smallTree{}
		els, attrs, nodes = x.e[:ne], x.a[:na], x.n[:nn]
	case ne <= 6 && na <= 8 && nn <= 6:
		// A chat message with a few payloads (body, chat state, receipt
		// request, origin-id).
		x := &mediumTree{}
		els, attrs, nodes = x.e[:ne], x.a[:na], x.n[:nn]
	default:
		els = make([]Element, len(d.els))
		attrs = make([]Attr, len(d.attrs))
		nodes = make([]Node, len(d.nodes))
	}
	if len(d.attrs) > 0 {
		// In a large stanza, attribute values (from, to, id: what
		// handlers keep as map keys) get their own memory, so keeping one
		// does not keep a 256 KiB body alive.
		own := len(s) > ownAttrsAbove
		for i, a := range d.attrs {
			v := s[a.lo:a.hi]
			if own {
				v = strings.Clone(v)
			}
			attrs[i] = Attr{Space: a.space, Local: a.local, Value: v}
		}
	}
	if len(d.nodes) > 0 {
		for i, n := range d.nodes {
			if n.el >= 0 {
				nodes[i].El = &els[n.el]
			} else {
				nodes[i].Text = s[n.lo:n.hi]
			}
		}
	}
	for i, t := range d.els {
		e := &els[i]
		e.Space, e.Local = t.space, t.local
		if t.ahi > t.alo {
			e.Attrs = attrs[t.alo:t.ahi:t.ahi]
		}
		if t.nhi > t.nlo {
			e.Nodes = nodes[t.nlo:t.nhi:t.nhi]
		}
	}
	d.resetElement()
	return &els[0]
}

// ownAttrsAbove is the size of a stanza's strings above which its
// attribute values are copied rather than sliced (build).
const ownAttrsAbove = 2048

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

var nameByte = func() (t [256]uint8) {
	// 1: may start a name; 2: may continue one.
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = 3, 3
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = 2
	}
	t['_'], t[':'] = 3, 3
	t['-'], t['.'] = 2, 2
	for c := 0x80; c < 0x100; c++ {
		t[c] = 3
	}
	return t
}()

// name reads an XML name into d.nameBuf.
func (d *StreamDecoder) name() ([]byte, error) {
	b, err := d.byte()
	if err != nil {
		return nil, d.must(err)
	}
	if nameByte[b]&1 == 0 {
		return nil, d.syntax(fmt.Sprintf("invalid XML name: %q", b))
	}
	nb := append(d.nameBuf[:0], b)
	ascii := b < utf8.RuneSelf
	if a := d.avail(); true {
		i := 0
		for i < len(a) && a[i] < utf8.RuneSelf && nameByte[a[i]]&2 != 0 {
			i++
		}
		nb = append(nb, a[:i]...)
		d.skip(i)
	}
	for {
		if b, err = d.byte(); err != nil {
			return nil, d.must(err)
		}
		if nameByte[b]&2 == 0 {
			d.unread()
			break
		}
		ascii = ascii && b < utf8.RuneSelf
		nb = append(nb, b)
	}
	d.nameBuf = nb
	if !ascii {
		for i, r := range string(nb) {
			ok := r != utf8.RuneError && (unicode.IsLetter(r) || r == '_' || r == ':' ||
				i > 0 && (unicode.IsDigit(r) || unicode.IsMark(r) || r == '-' || r == '.' || r == '·'))
			if !ok {
				return nil, d.syntax("invalid XML name")
			}
		}
	}
	return nb, nil
}

// intern returns b as a string, shared with earlier equal names.
func (d *StreamDecoder) intern(b []byte) string {
	if s, ok := d.names[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(d.names) < 4096 && len(b) <= 256 {
		d.names[s] = s
	}
	return s
}

// qname interns a name, split at its colon like encoding/xml: a name with
// one colon between non-empty parts has a prefix; more colons are an error.
func (d *StreamDecoder) qname(nb []byte) (prefix, local string, err error) {
	colon, n := -1, 0
	for i, c := range nb {
		if c == ':' {
			colon = i
			n++
		}
	}
	switch {
	case n > 1:
		return "", "", d.syntax("expected element name after <")
	case n == 0 || colon == 0 || colon == len(nb)-1:
		return "", d.intern(nb), nil
	}
	return d.intern(nb[:colon]), d.intern(nb[colon+1:]), nil
}

func (d *StreamDecoder) skipSpace() (byte, error) {
	for {
		b, err := d.byte()
		if err != nil {
			return 0, d.must(err)
		}
		if !isSpace(b) {
			return b, nil
		}
	}
}

// startTag reads a start tag (after '<') into a new element of d.els and
// reports whether it was self-closing. The element's nhi holds, until it is
// closed, the binding count before its own declarations.
func (d *StreamDecoder) startTag() (bool, error) {
	nb, err := d.name()
	if err != nil {
		return false, err
	}
	prefix, local, err := d.qname(nb)
	if err != nil {
		return false, err
	}
	alo := len(d.attrs)
	self := false
	for {
		b, err := d.skipSpace()
		if err != nil {
			return false, err
		}
		if b == '/' {
			if b, err = d.byte(); err != nil {
				return false, d.must(err)
			}
			if b != '>' {
				return false, d.syntax("expected /> in element")
			}
			self = true
			break
		}
		if b == '>' {
			break
		}
		d.unread()
		nb, err := d.name()
		if err != nil {
			return false, err
		}
		ap, al, err := d.qname(nb)
		if err != nil {
			return false, err
		}
		if b, err = d.skipSpace(); err != nil {
			return false, err
		}
		if b != '=' {
			return false, d.syntax("attribute name without = in element")
		}
		q, err := d.skipSpace()
		if err != nil {
			return false, err
		}
		if q != '\'' && q != '"' {
			return false, d.syntax("unquoted or missing attribute value in element")
		}
		lo := len(d.scratch)
		if err := d.value(q); err != nil {
			return false, err
		}
		d.attrs = append(d.attrs, tAttr{prefix: ap, local: al, lo: int32(lo), hi: int32(len(d.scratch))})
	}
	if err := d.uniqueAttrs(d.attrs[alo:]); err != nil {
		return false, err
	}
	// Declarations first (they apply to the element's own name), then
	// resolve the names and drop the declarations from the attributes.
	mark := len(d.ns)
	for i := alo; i < len(d.attrs); i++ {
		a := &d.attrs[i]
		switch {
		case a.prefix == "xmlns":
			d.ns = append(d.ns, nsBind{a.local, d.intern(d.scratch[a.lo:a.hi])})
		case a.prefix == "" && a.local == "xmlns":
			d.ns = append(d.ns, nsBind{"", d.intern(d.scratch[a.lo:a.hi])})
		}
	}
	kept := alo
	for i := alo; i < len(d.attrs); i++ {
		a := d.attrs[i]
		if a.prefix == "xmlns" || a.prefix == "" && a.local == "xmlns" {
			continue
		}
		if a.prefix != "" {
			a.space = d.resolve(a.prefix)
		}
		d.attrs[kept] = a
		kept++
	}
	d.attrs = d.attrs[:kept]
	d.els = append(d.els, tEl{
		space: d.resolve(prefix), prefix: prefix, local: local,
		alo: int32(alo), ahi: int32(kept), nhi: int32(mark),
	})
	return self, nil
}

// uniqueAttrs refuses a tag that names an attribute twice (XML 1.0 "Unique
// Att Spec"): which of two ids would an error reply carry? A few
// attributes are compared pairwise, many through a set, so that a tag of
// thousands costs no more than its reading.
func (d *StreamDecoder) uniqueAttrs(as []tAttr) error {
	if len(as) <= 16 {
		for i := 1; i < len(as); i++ {
			for j := range i {
				if as[i].local == as[j].local && as[i].prefix == as[j].prefix {
					return d.syntax("attribute " + as[i].local + " given twice in element")
				}
			}
		}
		return nil
	}
	type name struct{ prefix, local string }
	seen := make(map[name]struct{}, len(as))
	for _, a := range as {
		n := name{a.prefix, a.local}
		if _, ok := seen[n]; ok {
			return d.syntax("attribute " + a.local + " given twice in element")
		}
		seen[n] = struct{}{}
	}
	return nil
}

// resolve maps a prefix ("" for the default namespace) to its namespace as
// encoding/xml does: xml is NSXML, an unbound prefix stays as it is.
func (d *StreamDecoder) resolve(prefix string) string {
	if prefix == "xml" {
		return NSXML
	}
	if prefix == "xmlns" {
		return prefix
	}
	for i := len(d.ns) - 1; i >= 0; i-- {
		if d.ns[i].prefix == prefix {
			return d.ns[i].uri
		}
	}
	return prefix
}

// endTag reads an end tag (after "</") and checks it closes prefix:local.
func (d *StreamDecoder) endTag(prefix, local string) error {
	nb, err := d.name()
	if err != nil {
		return err
	}
	ok := false
	if prefix == "" {
		ok = string(nb) == local
	} else {
		p := len(prefix)
		ok = len(nb) == p+1+len(local) && string(nb[:p]) == prefix && nb[p] == ':' && string(nb[p+1:]) == local
	}
	if !ok {
		return d.syntax(fmt.Sprintf("element <%s> closed by </%s>", joinName(prefix, local), nb))
	}
	b, err := d.skipSpace()
	if err != nil {
		return err
	}
	if b != '>' {
		return d.syntax("invalid characters between </" + string(nb) + " and >")
	}
	return nil
}

func joinName(prefix, local string) string {
	if prefix == "" {
		return local
	}
	return prefix + ":" + local
}

// skipPI skips a processing instruction (after "<?").
func (d *StreamDecoder) skipPI() error {
	var prev byte
	for {
		b, err := d.byte()
		if err != nil {
			return d.must(err)
		}
		if prev == '?' && b == '>' {
			return nil
		}
		prev = b
	}
}

// bang handles "<!": a comment is skipped, CDATA is text, anything else
// (DOCTYPE, ENTITY, …) is restricted XML.
func (d *StreamDecoder) bang() error {
	b, err := d.byte()
	if err != nil {
		return d.must(err)
	}
	switch b {
	case '-':
		if b, err = d.byte(); err != nil {
			return d.must(err)
		}
		if b != '-' {
			return d.syntax("invalid sequence <!- not part of <!--")
		}
		var b0, b1 byte
		for {
			if b, err = d.byte(); err != nil {
				return d.must(err)
			}
			if b0 == '-' && b1 == '-' {
				if b != '>' {
					return d.syntax(`invalid sequence "--" not allowed in comments`)
				}
				return nil
			}
			b0, b1 = b1, b
		}
	case '[':
		for _, c := range []byte("CDATA[") {
			if b, err = d.byte(); err != nil {
				return d.must(err)
			}
			if b != c {
				return d.syntax("invalid <![ sequence")
			}
		}
		return d.text(true)
	}
	return ErrRestrictedXML
}

// text reads character data (cdata: up to "]]>"; else up to '<', left
// unread) into d.scratch as a text node of the innermost open element,
// merged with a text node just before it.
func (d *StreamDecoder) text(cdata bool) error {
	lo := len(d.scratch)
	var b0, b1 byte
	check := false
	for {
		if !cdata && b1 != '\r' && b1 != ']' {
			a := d.avail()
			i := 0
			for i < len(a) && plain[a[i]]&1 != 0 {
				i++
			}
			if i > 0 {
				d.scratch = append(d.scratch, a[:i]...)
				d.skip(i)
				b0, b1 = 0, 0
			}
		}
		b, err := d.byte()
		if err != nil {
			if !cdata && err == io.EOF {
				break
			}
			return d.must(err)
		}
		if b0 == ']' && b1 == ']' && b == '>' {
			if cdata {
				d.scratch = d.scratch[:len(d.scratch)-2]
				break
			}
			return d.syntax("unescaped ]]> not in CDATA section")
		}
		if !cdata {
			if b == '<' {
				d.unread()
				break
			}
			if b == '&' {
				if err := d.entity(); err != nil {
					return err
				}
				check = true
				b0, b1 = 0, 0
				continue
			}
		}
		switch {
		case b == '\r':
			d.scratch = append(d.scratch, '\n')
		case b1 == '\r' && b == '\n':
		default:
			if b < 0x20 && b != '\t' && b != '\n' || b >= utf8.RuneSelf {
				check = true
			}
			d.scratch = append(d.scratch, b)
		}
		b0, b1 = b1, b
	}
	if check {
		if err := d.checkChars(d.scratch[lo:]); err != nil {
			return err
		}
	}
	hi := len(d.scratch)
	if hi == lo {
		return nil
	}
	if len(d.stack) == 0 {
		return nil // between stanzas: dropped by the caller
	}
	if n := len(d.nstack); n > int(d.stack[len(d.stack)-1].nodeMark) {
		if last := &d.nstack[n-1]; last.el < 0 && int(last.hi) == lo {
			last.hi = int32(hi)
			return nil
		}
	}
	d.nstack = append(d.nstack, tNode{el: -1, lo: int32(lo), hi: int32(hi)})
	return nil
}

// value reads a quoted attribute value (after the quote q) into d.scratch.
func (d *StreamDecoder) value(q byte) error {
	lo := len(d.scratch)
	var b1 byte
	check := false
	for {
		if b1 != '\r' {
			a := d.avail()
			i := 0
			for i < len(a) && plain[a[i]]&2 != 0 {
				i++
			}
			if i > 0 {
				d.scratch = append(d.scratch, a[:i]...)
				d.skip(i)
				b1 = 0
			}
		}
		b, err := d.byte()
		if err != nil {
			return d.must(err)
		}
		switch {
		case b == q:
			if check {
				return d.checkChars(d.scratch[lo:])
			}
			return nil
		case b == '<':
			return d.syntax("unescaped < inside quoted string")
		case b == '&':
			if err := d.entity(); err != nil {
				return err
			}
			check = true
			b1 = 0
			continue
		case b == '\r':
			d.scratch = append(d.scratch, '\n')
		case b1 == '\r' && b == '\n':
		default:
			if b < 0x20 && b != '\t' && b != '\n' || b >= utf8.RuneSelf {
				check = true
			}
			d.scratch = append(d.scratch, b)
		}
		b1 = b
	}
}

// entity reads a reference (after '&') and appends its text.
func (d *StreamDecoder) entity() error {
	var ent [16]byte
	n := 0
	for {
		b, err := d.byte()
		if err != nil {
			return d.must(err)
		}
		if b == ';' {
			break
		}
		if n == len(ent) || !(nameByte[b]&2 != 0 && b < utf8.RuneSelf || b == '#') {
			return d.syntax("invalid character entity &" + string(ent[:n]) + " (no semicolon)")
		}
		ent[n] = b
		n++
	}
	name := ent[:n]
	switch string(name) {
	case "lt":
		d.scratch = append(d.scratch, '<')
		return nil
	case "gt":
		d.scratch = append(d.scratch, '>')
		return nil
	case "amp":
		d.scratch = append(d.scratch, '&')
		return nil
	case "apos":
		d.scratch = append(d.scratch, '\'')
		return nil
	case "quot":
		d.scratch = append(d.scratch, '"')
		return nil
	}
	if len(name) > 1 && name[0] == '#' {
		digits, base := name[1:], 10
		if digits[0] == 'x' {
			digits, base = digits[1:], 16
		}
		if v, err := strconv.ParseUint(string(digits), base, 32); err == nil && len(digits) > 0 && v <= unicode.MaxRune {
			d.scratch = utf8.AppendRune(d.scratch, rune(v))
			return nil
		}
	}
	return d.syntax("invalid character entity &" + string(name) + ";")
}

// checkChars refuses invalid UTF-8 and characters XML 1.0 forbids.
func (d *StreamDecoder) checkChars(s []byte) error {
	for len(s) > 0 {
		r, size := utf8.DecodeRune(s)
		if r == utf8.RuneError && size == 1 {
			return d.syntax("invalid UTF-8")
		}
		s = s[size:]
		if !(r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0xD7FF ||
			r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF) {
			return d.syntax(fmt.Sprintf("illegal character code %U", r))
		}
	}
	return nil
}
