package component

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"

	"github.com/jabbergate/jabbergate/component/stanza"
)

// Handshake returns the XEP-0114 handshake value for a stream id and secret:
// lowercase hex SHA-1 of streamID followed by secret.
func Handshake(streamID, secret string) string {
	sum := sha1.Sum([]byte(streamID + secret))
	return hex.EncodeToString(sum[:])
}

// reader decodes the server's side of the stream with stanza.StreamDecoder
// (not encoding/xml: it costs a few allocations per stanza instead of
// dozens). The decoder's byte budget is the size limit: it refuses to read
// past it, so a single huge token cannot grow any buffer beyond
// MaxStanzaSize.
type reader struct {
	dec   *stanza.StreamDecoder
	hook  *readHook
	max   int64
	start int64 // decoder offset where the current top-level element began
	// maxDepth bounds element nesting (0: stanza.MaxDepth).
	maxDepth int
	// starts caches the boxed start tokens of the last stanza names seen
	// (message, iq, presence…), so that next does not allocate one per
	// stanza; the names are interned by the decoder.
	starts [4]startTok
	nstart int
}

type startTok struct {
	space, local string
	tok          xml.Token
}

func newReader(r io.Reader, max int) *reader {
	h := &readHook{r: r}
	if nc, ok := r.(net.Conn); ok {
		h.ackNow = quickAcker(nc)
	}
	return &reader{dec: stanza.NewStreamDecoder(h, 4096), hook: h, max: int64(max)}
}

// readHook runs before, when set, each time the decoder is about to read
// from the connection: the input read so far has been worked through, and
// the read may block. The connection writes the answers its handler
// produced meanwhile there (Conn.flushInline). before is set once, before
// the read loop starts.
//
// ackNow, when set, runs after each read that returned data: it makes the
// kernel acknowledge that data at once instead of delaying the ACK (see
// quickAcker).
type readHook struct {
	r      io.Reader
	before func()
	ackNow func()
	// progress, if set, counts reads that returned bytes: the keepalive's
	// sign that the server is talking even while one stanza takes long
	// to arrive (a huge one being skipped on a slow network).
	progress *atomic.Uint64
}

func (h *readHook) Read(p []byte) (int, error) {
	if h.before != nil {
		h.before()
	}
	n, err := h.r.Read(p)
	if n > 0 {
		if h.ackNow != nil {
			h.ackNow()
		}
		if h.progress != nil {
			h.progress.Add(1)
		}
	}
	return n, err
}

// arm starts the size budget for the next top-level element.
func (r *reader) arm() {
	r.start = r.dec.InputOffset()
	// One byte more than the limit may be read: an element that needs it is
	// refused by element, and the error says where reading stopped.
	r.dec.SetLimit(r.start + r.max + 1)
}

// next returns the next top-level start element (or the end of the
// stream as an *xml.EndElement), skipping whitespace, comments and
// processing instructions between stanzas. The stream header comes with
// its attributes; a stanza's start element carries only its name (element
// returns the whole stanza).
func (r *reader) next() (xml.Token, error) {
	for {
		r.arm()
		ev, err := r.dec.Next()
		if err != nil {
			return nil, err
		}
		switch ev {
		case stanza.EventHeader:
			space, local, attrs := r.dec.Header()
			start := xml.StartElement{Name: xml.Name{Space: space, Local: local}}
			for _, a := range attrs {
				start.Attr = append(start.Attr, xml.Attr{Name: xml.Name{Space: a.Space, Local: a.Local}, Value: a.Value})
			}
			return start, nil
		case stanza.EventStart:
			space, local := r.dec.StartName()
			for i := range r.starts {
				if c := &r.starts[i]; c.tok != nil && c.local == local && c.space == space {
					return c.tok, nil
				}
			}
			tok := xml.Token(xml.StartElement{Name: xml.Name{Space: space, Local: local}})
			r.starts[r.nstart%len(r.starts)] = startTok{space, local, tok}
			r.nstart++
			return tok, nil
		case stanza.EventEnd:
			space, local, _ := r.dec.Header()
			return xml.EndElement{Name: xml.Name{Space: space, Local: local}}, nil
		}
	}
}

// element reads the rest of the top-level element whose start next returned.
func (r *reader) element(start xml.StartElement) (*stanza.Element, error) {
	el, err := r.dec.Element(r.maxDepth)
	if err != nil {
		return nil, err
	}
	if r.dec.InputOffset()-r.start > r.max {
		return nil, errTooLarge
	}
	return el, nil
}

// refusedStanza is a stanza the link read past and dropped because of its
// depth or size, keeping the stream: the sender gets an error instead of
// every user losing the link.
type refusedStanza struct {
	name, typ, id, from, to string
	reason                  string // why, for the log and the error text
}

// refuse handles a failed element: a stanza nested too deep, or too large
// for the limit in its character data (a large body), is skipped to its
// end and returned, and the stream goes on; for any other failure (or when
// skipping fails) it returns the failure that ends the stream.
//
// Skipping has no byte ceiling for character data: a server need not limit
// the stanzas its users send (ejabberd's c2s max_stanza_size defaults to
// infinity, and the tester's 17.5 MB body was routed whole), so any bound
// here would let any user drop the link with one message. It keeps
// nothing (stanza.StreamDecoder.Discard), and the nesting it counts is
// bounded by the depth limit. Only a tag longer than the size limit on its
// own — attributes hundreds of KiB long, which no server routes from a
// client — ends the stream.
func (r *reader) refuse(err error, start *xml.StartElement) (*refusedStanza, readFailure) {
	f := r.classify(err, start)
	var reason string
	switch e := f.err.(type) {
	case *tooDeepError:
		reason = fmt.Sprintf("it nests elements deeper than the %d levels this gateway accepts", e.limit)
	case *tooLargeError:
		reason = fmt.Sprintf("it is larger than the %d bytes this gateway accepts", e.limit)
	default:
		return nil, f
	}
	_, local := r.dec.StartName()
	ref := &refusedStanza{name: local, typ: r.dec.StartAttr("type"), id: r.dec.StartAttr("id"),
		from: r.dec.StartAttr("from"), to: r.dec.StartAttr("to"), reason: reason}
	if !errors.Is(err, errTooLarge) { // errTooLarge: read whole, one byte over
		if derr := r.dec.Discard(r.max); derr != nil {
			if errors.Is(derr, stanza.ErrLimit) {
				derr = fmt.Errorf("a tag in it is longer than the limit on its own (%w)", derr)
			}
			f.err = fmt.Errorf("%w; skipping it failed: %v", f.err, derr)
			return nil, f
		}
	}
	return ref, readFailure{}
}

// readFailure classifies a read error.
type readFailure struct {
	err  error  // the close reason
	cond string // stream error condition to send back, if any
}

func (r *reader) classify(err error, start *xml.StartElement) readFailure {
	switch {
	case r.dec.LimitHit() || errors.Is(err, errTooLarge) || errors.Is(err, stanza.ErrLimit):
		e := &tooLargeError{limit: int(r.max), read: r.dec.InputOffset() - r.start}
		if start != nil {
			e.from, e.to = r.startAddrs(start)
		}
		return readFailure{e, "policy-violation"}
	case r.dec.ReadErr() != nil:
		// The decoder turns an EOF inside the open stream into a syntax
		// error; the socket's own error is the real reason.
		rerr := r.dec.ReadErr()
		if rerr == io.EOF {
			if start != nil {
				return readFailure{err: fmt.Errorf("server closed the connection in the middle of a <%s> (%d bytes of it read and discarded)",
					start.Name.Local, r.dec.InputOffset()-r.start)}
			}
			return readFailure{err: errors.New("server closed the connection")}
		}
		var ne net.Error
		if errors.As(rerr, &ne) && ne.Timeout() {
			return readFailure{err: errors.New("read timed out")}
		}
		return readFailure{err: rerr}
	case errors.Is(err, stanza.ErrTooDeep):
		e := &tooDeepError{limit: r.maxDepth}
		if e.limit <= 0 {
			e.limit = stanza.MaxDepth
		}
		if start != nil {
			e.from, e.to = r.startAddrs(start)
		}
		return readFailure{e, "policy-violation"}
	case errors.Is(err, stanza.ErrRestrictedXML):
		return readFailure{&malformedError{err}, "restricted-xml"}
	}
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		return readFailure{&malformedError{err}, "not-well-formed"}
	}
	return readFailure{err: err}
}

// startAddrs returns the from and to attributes of a start element: from
// its attributes, or else from the decoder's copy of the stanza's start tag
// (next does not copy them into the token).
func (r *reader) startAddrs(start *xml.StartElement) (from, to string) {
	for _, a := range start.Attr {
		if a.Name.Space == "" && a.Name.Local == "from" {
			from = a.Value
		}
		if a.Name.Space == "" && a.Name.Local == "to" {
			to = a.Value
		}
	}
	if len(start.Attr) == 0 {
		from, to = r.dec.StartAttr("from"), r.dec.StartAttr("to")
	}
	return from, to
}

// parseStreamError reads a <stream:error/> element; streamNS is the default
// namespace of the server's stream header.
func parseStreamError(el *stanza.Element, domain, streamNS string) *StreamError {
	e := &StreamError{domain: domain, streamNS: streamNS}
	for _, c := range el.Children() {
		if c.Space != stanza.NSStreams {
			continue
		}
		if c.Local == "text" {
			e.Text = c.Text()
		} else if e.Condition == "" {
			e.Condition = c.Local
			if c.Local == "see-other-host" {
				e.Text = c.Text()
			}
		}
	}
	if e.Condition == "" {
		e.Condition = "undefined-condition"
	}
	return e
}

// isStanza reports whether el is a message, presence or iq in one of the
// stanza namespaces.
func isStanza(el *stanza.Element) bool {
	switch el.Local {
	case "message", "presence", "iq":
		return stanza.IsStanzaNS(el.Space)
	}
	return false
}

// normalize moves el and the descendants that inherited its namespace (the
// stanza's own children such as body, subject, show, error) into the
// component namespace. Elements below a child in another namespace, like a
// forwarded message, keep theirs.
func normalize(el *stanza.Element) {
	from := el.Space
	if from == stanza.NSComponent {
		return
	}
	var walk func(e *stanza.Element)
	walk = func(e *stanza.Element) {
		e.Space = stanza.NSComponent
		for _, n := range e.Nodes {
			if n.El != nil && n.El.Space == from {
				walk(n.El)
			}
		}
	}
	walk(el)
}
