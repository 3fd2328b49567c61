// Package stanza holds the XML element tree that Jabbergate uses for XMPP
// stanzas (RFC 6120 §8) on the component link, the encoder and decoder for
// it, and the RFC 6120 §8.3 stanza error conditions.
//
// A stanza is kept as a generic element tree rather than as typed structs:
// the gateway must pass through, inspect and rewrite payloads of many XEPs,
// and a tree with namespace-aware lookups does that without a struct per XEP.
// Encoding writes each namespace once, where it changes, so the output never
// carries the duplicate xmlns attributes that encoding/xml's token re-encoder
// produces (research/go-deps.md §1).
//
// Two decoders: [StreamDecoder] (stream.go) is the link's, written for the
// hot path (a few allocations per stanza, byte budget, no encoding/xml);
// [Decode] and [Parse] read from an encoding/xml Decoder, for tests,
// configuration and fixed templates, and are the reference StreamDecoder is
// checked against (FuzzStreamDecoder). Not done: StreamDecoder does not
// check processing instructions beyond finding their end (encoding/xml
// checks their target), and checks names outside ASCII against Unicode
// letter/digit/mark classes rather than XML 1.0's name tables.
package stanza

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Namespaces used across the gateway.
const (
	NSComponent = "jabber:component:accept"
	NSClient    = "jabber:client"
	NSServer    = "jabber:server"
	NSStanzas   = "urn:ietf:params:xml:ns:xmpp-stanzas"
	NSStreams   = "urn:ietf:params:xml:ns:xmpp-streams"
	NSStream    = "http://etherx.jabber.org/streams"
	NSXML       = "http://www.w3.org/XML/1998/namespace"
)

// Attr is one attribute. Space is empty for ordinary attributes and NSXML for
// xml:lang.
type Attr struct {
	Space, Local, Value string
}

// Node is one child of an element: either an element or character data.
type Node struct {
	El   *Element
	Text string
}

// Element is one XML element with its attributes and children, in document
// order. The zero value is not useful; build elements with New.
type Element struct {
	Space string // namespace URI
	Local string // local name
	Attrs []Attr
	Nodes []Node

	frozen *frozenXML // set by Freeze
}

// frozenXML is an element's serialisation under a parent in namespace ns.
type frozenXML struct {
	ns  string
	xml []byte
}

// Freeze caches e's serialisation for when it is written under a parent in
// namespace parentNS (the stream's namespace for a stanza, NSComponent for a
// payload of a stanza), so that an element shared by many stanzas (the
// gateway's disco#info reply) is encoded once. e and its descendants must
// not be changed afterwards: a change would not be written. Copy returns an
// unfrozen copy.
func (e *Element) Freeze(parentNS string) *Element {
	var b bytes.Buffer
	e.frozen = nil
	e.encode(&b, parentNS)
	e.frozen = &frozenXML{ns: parentNS, xml: b.Bytes()}
	return e
}

// New returns an element in namespace space with the given local name and
// attributes, given as name, value pairs. Pairs with an empty value are
// skipped, so optional attributes can be passed unconditionally.
func New(space, local string, attrs ...string) *Element {
	var e *Element
	if n := len(attrs) / 2; n > 0 && n <= 4 {
		// The element and its attributes in one allocation.
		x := &elemAttrs{}
		e = &x.e
		e.Attrs = x.a[:0]
	} else {
		e = &Element{}
	}
	e.Space, e.Local = space, local
	for i := 0; i+1 < len(attrs); i += 2 {
		if attrs[i+1] != "" {
			e.SetAttr(attrs[i], attrs[i+1])
		}
	}
	return e
}

// elemAttrs is an element with room for four attributes, allocated at once
// by New.
type elemAttrs struct {
	e Element
	a [4]Attr
}

// Attr returns the value of the un-namespaced attribute local, or "".
func (e *Element) Attr(local string) string {
	if e == nil {
		return ""
	}
	for _, a := range e.Attrs {
		if a.Local == local && a.Space == "" {
			return a.Value
		}
	}
	return ""
}

// Lang returns the xml:lang attribute, or "".
func (e *Element) Lang() string {
	for _, a := range e.Attrs {
		if a.Local == "lang" && a.Space == NSXML {
			return a.Value
		}
	}
	return ""
}

// SetAttr sets (or, with an empty value, removes) the un-namespaced
// attribute local and returns e.
func (e *Element) SetAttr(local, value string) *Element {
	for i, a := range e.Attrs {
		if a.Local == local && a.Space == "" {
			if value == "" {
				e.Attrs = append(e.Attrs[:i], e.Attrs[i+1:]...)
			} else {
				e.Attrs[i].Value = value
			}
			return e
		}
	}
	if value != "" {
		e.Attrs = append(e.Attrs, Attr{Local: local, Value: value})
	}
	return e
}

// Grow makes room for n more children (or text nodes) in one allocation,
// for an element whose children are added one by one on a hot path, and
// returns e.
func (e *Element) Grow(n int) *Element {
	e.Nodes = slices.Grow(e.Nodes, n)
	return e
}

// Add appends child elements and returns e.
func (e *Element) Add(children ...*Element) *Element {
	for _, c := range children {
		if c != nil {
			e.Nodes = append(e.Nodes, Node{El: c})
		}
	}
	return e
}

// AddText appends character data and returns e.
func (e *Element) AddText(s string) *Element {
	if s != "" {
		e.Nodes = append(e.Nodes, Node{Text: s})
	}
	return e
}

// TextChild appends <local xmlns=space>text</local> and returns e. An empty
// text still adds the (empty) element.
func (e *Element) TextChild(space, local, text string) *Element {
	return e.Add(New(space, local).AddText(text))
}

// Children returns the child elements, in order.
func (e *Element) Children() []*Element {
	if e == nil {
		return nil
	}
	out := make([]*Element, 0, len(e.Nodes))
	for _, n := range e.Nodes {
		if n.El != nil {
			out = append(out, n.El)
		}
	}
	return out
}

// Child returns the first child element named local in namespace space
// (any namespace when space is ""), or nil.
func (e *Element) Child(space, local string) *Element {
	if e == nil {
		return nil
	}
	for _, n := range e.Nodes {
		if n.El != nil && n.El.Local == local && (space == "" || n.El.Space == space) {
			return n.El
		}
	}
	return nil
}

// FirstChild returns the first child element, or nil.
func (e *Element) FirstChild() *Element {
	if e == nil {
		return nil
	}
	for _, n := range e.Nodes {
		if n.El != nil {
			return n.El
		}
	}
	return nil
}

// ChildText returns the text of the child named local in space, or "".
func (e *Element) ChildText(space, local string) string {
	return e.Child(space, local).Text()
}

// Text returns the concatenated character data directly inside e.
func (e *Element) Text() string {
	if e == nil {
		return ""
	}
	if len(e.Nodes) == 1 {
		return e.Nodes[0].Text
	}
	var b strings.Builder
	for _, n := range e.Nodes {
		b.WriteString(n.Text)
	}
	return b.String()
}

// RemoveChildren removes every child element named local in space (any
// namespace when space is "") and returns e.
func (e *Element) RemoveChildren(space, local string) *Element {
	kept := e.Nodes[:0]
	for _, n := range e.Nodes {
		if n.El != nil && n.El.Local == local && (space == "" || n.El.Space == space) {
			continue
		}
		kept = append(kept, n)
	}
	e.Nodes = kept
	return e
}

// Copy returns a deep copy of e.
func (e *Element) Copy() *Element {
	if e == nil {
		return nil
	}
	c := &Element{Space: e.Space, Local: e.Local}
	c.Attrs = append([]Attr(nil), e.Attrs...)
	c.Nodes = make([]Node, len(e.Nodes))
	for i, n := range e.Nodes {
		c.Nodes[i] = Node{El: n.El.Copy(), Text: n.Text}
	}
	return c
}

// Stanza accessors. They read the attributes RFC 6120 defines on every
// stanza.

// To returns the to attribute.
func (e *Element) To() string { return e.Attr("to") }

// From returns the from attribute.
func (e *Element) From() string { return e.Attr("from") }

// ID returns the id attribute.
func (e *Element) ID() string { return e.Attr("id") }

// Type returns the type attribute.
func (e *Element) Type() string { return e.Attr("type") }

// String returns e serialised as XML, with e's namespace declared.
func (e *Element) String() string {
	var b bytes.Buffer
	e.encode(&b, "")
	return b.String()
}

// AppendXML appends e serialised as XML to buf and returns it. parentNS is
// the namespace in scope where e is written: the stream's default namespace
// for a stanza, so that its xmlns is omitted.
func (e *Element) AppendXML(buf *bytes.Buffer, parentNS string) {
	e.encode(buf, parentNS)
}

// SizeOver reports whether e serialised under parentNS (as AppendXML
// writes it) is longer than limit bytes, and if so its length. It is cheap
// for the stanzas of every day: a walk that adds up the names and values
// gives a bound (no escape is more than six times its character), and
// only an element whose bound passes limit is serialised to be measured.
func (e *Element) SizeOver(limit int, parentNS string) (size int, over bool) {
	if e.sizeBound() <= limit {
		return 0, false
	}
	var b bytes.Buffer
	e.encode(&b, parentNS)
	return b.Len(), b.Len() > limit
}

// sizeBound is an upper bound of e's serialised length under any parent
// namespace.
func (e *Element) sizeBound() int {
	if f := e.frozen; f != nil {
		// Frozen for one parent namespace; under another it is encoded
		// anew, which may add its xmlns.
		return len(f.xml) + 6*len(e.Space) + 16
	}
	n := 2*len(e.Local) + 6*len(e.Space) + 16 // <a xmlns='…'></a>
	for _, a := range e.Attrs {
		n += len(a.Local) + 6*len(a.Value) + 6*len(a.Space) + 24 // ' xmlns:a1='…' a1:x='…''
	}
	for _, c := range e.Nodes {
		if c.El != nil {
			n += c.El.sizeBound()
		} else {
			n += 6 * len(c.Text)
		}
	}
	return n
}

// IsStanzaNS reports whether ns is one of the stream namespaces a stanza may
// arrive in (component, client or server). The link normalises them all to
// NSComponent.
func IsStanzaNS(ns string) bool {
	return ns == NSComponent || ns == NSClient || ns == NSServer || ns == ""
}

func (e *Element) encode(b *bytes.Buffer, parentNS string) {
	if f := e.frozen; f != nil && f.ns == parentNS {
		b.Write(f.xml)
		return
	}
	b.WriteByte('<')
	b.WriteString(e.Local)
	ns := e.Space
	if ns != parentNS {
		b.WriteString(" xmlns='")
		escapeAttr(b, ns)
		b.WriteByte('\'')
	}
	var foreign int
	for _, a := range e.Attrs {
		b.WriteByte(' ')
		switch a.Space {
		case "":
		case NSXML:
			b.WriteString("xml:")
		default:
			// A namespaced attribute other than xml:*: declare a prefix for it.
			foreign++
			p := "a" + string(rune('0'+foreign%10))
			b.WriteString("xmlns:" + p + "='")
			escapeAttr(b, a.Space)
			b.WriteString("' " + p + ":")
		}
		b.WriteString(a.Local)
		b.WriteString("='")
		escapeAttr(b, a.Value)
		b.WriteByte('\'')
	}
	if len(e.Nodes) == 0 {
		b.WriteString("/>")
		return
	}
	b.WriteByte('>')
	for _, n := range e.Nodes {
		if n.El != nil {
			n.El.encode(b, ns)
		} else {
			escapeText(b, n.Text)
		}
	}
	b.WriteString("</")
	b.WriteString(e.Local)
	b.WriteByte('>')
}

// illegalXML reports the size of the character at s[i] and whether XML 1.0
// forbids it (control characters other than tab, newline and carriage
// return; U+FFFE, U+FFFF) or it is not UTF-8. The escapers write U+FFFD
// instead: one such character from a legacy network would otherwise make
// the server close the link (not-well-formed), and the replayed message
// would close it again and again (found by FuzzSerialize).
func illegalXML(s string, i int) (size int, bad bool) {
	c := s[i]
	switch {
	case c >= 0x20 && c < 0x80, c == '\t', c == '\n', c == '\r':
		return 1, false
	case c < 0x20:
		return 1, true
	}
	r, size := utf8.DecodeRuneInString(s[i:])
	return size, r == utf8.RuneError && size == 1 || r == 0xFFFE || r == 0xFFFF
}

func escapeAttr(b *bytes.Buffer, s string) {
	last := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '\'':
			esc = "&apos;"
		case '"':
			esc = "&quot;"
		case '\n':
			esc = "&#xA;"
		case '\r':
			esc = "&#xD;"
		case '\t':
			esc = "&#x9;"
		default:
			if c := s[i]; c >= 0x20 && c < 0x80 {
				continue // the common case, kept cheap
			}
			size, bad := illegalXML(s, i)
			if !bad {
				i += size - 1
				continue
			}
			b.WriteString(s[last:i])
			b.WriteString("\uFFFD")
			i += size - 1
			last = i + 1
			continue
		}
		b.WriteString(s[last:i])
		b.WriteString(esc)
		last = i + 1
	}
	b.WriteString(s[last:])
}

// TextSize is the length of s once written as character data (what
// escapeText writes: escapes, and U+FFFD for what XML may not carry), for
// callers that cut a text to fit a stanza size.
func TextSize(s string) int {
	n := len(s)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '&', c == '\r':
			n += 4 // &amp; &#xD;
		case c == '<', c == '>':
			n += 3 // &lt; &gt;
		case c >= 0x20 && c < 0x80, c == '\t', c == '\n':
		default:
			size, bad := illegalXML(s, i)
			if bad {
				n += 3 - size // U+FFFD
			}
			i += size - 1
		}
	}
	return n
}

func escapeText(b *bytes.Buffer, s string) {
	last := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '\r':
			esc = "&#xD;"
		default:
			if c := s[i]; c >= 0x20 && c < 0x80 {
				continue // the common case, kept cheap
			}
			size, bad := illegalXML(s, i)
			if !bad {
				i += size - 1
				continue
			}
			b.WriteString(s[last:i])
			b.WriteString("\uFFFD")
			i += size - 1
			last = i + 1
			continue
		}
		b.WriteString(s[last:i])
		b.WriteString(esc)
		last = i + 1
	}
	b.WriteString(s[last:])
}

// ErrTooDeep is returned by Decode for elements nested deeper than
// MaxDepth.
var ErrTooDeep = errors.New("stanza: element nesting too deep")

// MaxDepth bounds element nesting in Decode, so crafted input cannot exhaust
// the stack. DecodeLimit takes another bound.
const MaxDepth = 64

// ErrRestrictedXML is returned by Decode for a DTD (<!DOCTYPE …>) or any
// other markup declaration inside an element: XMPP forbids them (RFC 6120
// §11.1). encoding/xml never expands entities other than the five
// predefined ones and character references; an undeclared entity is a
// syntax error.
var ErrRestrictedXML = errors.New("stanza: DTD or markup declaration (restricted XML)")

// Decode reads one element from d, whose start element has already been
// read, up to and including its end element. Namespace declarations are
// resolved by d and dropped from Attrs. Nesting is bounded by MaxDepth.
func Decode(d *xml.Decoder, start xml.StartElement) (*Element, error) {
	return DecodeLimit(d, start, MaxDepth)
}

// DecodeLimit is Decode with a bound on element nesting: the start element
// is depth 1, and an element deeper than maxDepth returns ErrTooDeep
// (maxDepth <= 0 means MaxDepth).
func DecodeLimit(d *xml.Decoder, start xml.StartElement, maxDepth int) (*Element, error) {
	if maxDepth <= 0 {
		maxDepth = MaxDepth
	}
	root := fromStart(start)
	stack := []*Element{root}
	for {
		tok, err := d.Token()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		top := stack[len(stack)-1]
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) >= maxDepth {
				return nil, ErrTooDeep
			}
			el := fromStart(t)
			top.Nodes = append(top.Nodes, Node{El: el})
			stack = append(stack, el)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return root, nil
			}
		case xml.Directive:
			return nil, ErrRestrictedXML
		case xml.CharData:
			if n := len(top.Nodes); n > 0 && top.Nodes[n-1].El == nil {
				top.Nodes[n-1].Text += string(t)
			} else {
				top.Nodes = append(top.Nodes, Node{Text: string(t)})
			}
		}
	}
}

// checkNames refuses an element whose name, or one of its elements' or
// attributes', has a local part that is no XML name on its own ("p:0",
// which encoding/xml splits into p and 0): it could not be written back.
func checkNames(e *Element) error {
	bad := func(local string) bool {
		r, _ := utf8.DecodeRuneInString(local)
		return r == '-' || r == '.' || unicode.In(r, unicode.Nd, unicode.Mn, unicode.Mc)
	}
	if bad(e.Local) {
		return &xml.SyntaxError{Msg: "invalid XML name: " + e.Local}
	}
	for _, a := range e.Attrs {
		if bad(a.Local) {
			return &xml.SyntaxError{Msg: "invalid XML name: " + a.Local}
		}
	}
	for _, c := range e.Children() {
		if err := checkNames(c); err != nil {
			return err
		}
	}
	return nil
}

// Parse decodes a single element from s. It is meant for tests and config;
// the link decodes from its stream.
func Parse(s string) (*Element, error) {
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			e, err := Decode(d, t)
			if err != nil {
				return nil, err
			}
			if err := checkNames(e); err != nil {
				return nil, err
			}
			return e, nil
		case xml.Directive:
			return nil, ErrRestrictedXML
		}
	}
}

// MustParse is Parse that panics on error, for tests and fixed templates.
func MustParse(s string) *Element {
	e, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return e
}

func fromStart(s xml.StartElement) *Element {
	e := &Element{Space: s.Name.Space, Local: s.Name.Local}
	if len(s.Attr) > 0 {
		e.Attrs = make([]Attr, 0, len(s.Attr))
	}
	for _, a := range s.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		e.Attrs = append(e.Attrs, Attr{Space: a.Name.Space, Local: a.Name.Local, Value: a.Value})
	}
	return e
}
