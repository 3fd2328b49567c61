package component

import (
	"bufio"
	"crypto/sha1"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"net"

	"github.com/jabbergate/jabbergate/component/stanza"
)

// Handshake returns the XEP-0114 handshake value for a stream id and secret:
// lowercase hex SHA-1 of streamID followed by secret.
func Handshake(streamID, secret string) string {
	sum := sha1.Sum([]byte(streamID + secret))
	return hex.EncodeToString(sum[:])
}

// limiter sits between the socket and the XML decoder. It implements
// io.ByteReader, so the decoder reads through it byte by byte without
// buffering of its own, and refuses to read past limit: a single huge token
// cannot grow the decoder's buffers beyond MaxStanzaSize.
type limiter struct {
	br       *bufio.Reader
	n, limit int64
	err      error // first error from the socket
	hit      bool  // the limit was reached
}

func (l *limiter) ReadByte() (byte, error) {
	if l.n >= l.limit {
		l.hit = true
		return 0, errTooLarge
	}
	b, err := l.br.ReadByte()
	if err != nil {
		if l.err == nil {
			l.err = err
		}
		return 0, err
	}
	l.n++
	return b, nil
}

// Read satisfies io.Reader; the decoder uses ReadByte.
func (l *limiter) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	b, err := l.ReadByte()
	if err != nil {
		return 0, err
	}
	p[0] = b
	return 1, nil
}

// reader decodes the server's side of the stream.
type reader struct {
	lim   *limiter
	dec   *xml.Decoder
	max   int64
	start int64 // decoder offset where the current top-level element began
	// maxDepth bounds element nesting (0: stanza.MaxDepth).
	maxDepth int
}

func newReader(r io.Reader, max int) *reader {
	lim := &limiter{br: bufio.NewReaderSize(r, 4096)}
	return &reader{lim: lim, dec: xml.NewDecoder(lim), max: int64(max)}
}

// arm starts the size budget for the next top-level element.
func (r *reader) arm() {
	r.start = r.dec.InputOffset()
	// The limiter may be one byte ahead of the decoder (a byte the decoder
	// pushed back), hence the +1.
	r.lim.limit = r.lim.n + r.max + 1
}

// next returns the next top-level start element (or the end of the
// stream as an *xml.EndElement), skipping whitespace, comments and
// processing instructions between stanzas.
func (r *reader) next() (xml.Token, error) {
	for {
		r.arm()
		tok, err := r.dec.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement, xml.EndElement:
			return t, nil
		case xml.Directive:
			// A DTD between stanzas (RFC 6120 §11.1): never skipped.
			return nil, stanza.ErrRestrictedXML
		}
	}
}

// element reads the rest of the top-level element started by start.
func (r *reader) element(start xml.StartElement) (*stanza.Element, error) {
	el, err := stanza.DecodeLimit(r.dec, start, r.maxDepth)
	if err != nil {
		return nil, err
	}
	if r.dec.InputOffset()-r.start > r.max {
		r.lim.hit = true
		return nil, errTooLarge
	}
	return el, nil
}

// readFailure classifies a read error.
type readFailure struct {
	err  error  // the close reason
	cond string // stream error condition to send back, if any
}

func (r *reader) classify(err error, start *xml.StartElement) readFailure {
	switch {
	case r.lim.hit || errors.Is(err, errTooLarge):
		e := &tooLargeError{limit: int(r.max), read: r.dec.InputOffset() - r.start}
		if start != nil {
			for _, a := range start.Attr {
				if a.Name.Space == "" && a.Name.Local == "from" {
					e.from = a.Value
				}
				if a.Name.Space == "" && a.Name.Local == "to" {
					e.to = a.Value
				}
			}
		}
		return readFailure{e, "policy-violation"}
	case r.lim.err != nil:
		// The decoder turns an EOF inside the open stream into a syntax
		// error; the socket's own error is the real reason.
		if r.lim.err == io.EOF {
			return readFailure{err: errors.New("server closed the connection")}
		}
		var ne net.Error
		if errors.As(r.lim.err, &ne) && ne.Timeout() {
			return readFailure{err: errors.New("read timed out")}
		}
		return readFailure{err: r.lim.err}
	case errors.Is(err, stanza.ErrTooDeep):
		e := &tooDeepError{limit: r.maxDepth}
		if e.limit <= 0 {
			e.limit = stanza.MaxDepth
		}
		if start != nil {
			e.from, e.to = startAddrs(start)
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

// startAddrs returns the from and to attributes of a start element.
func startAddrs(start *xml.StartElement) (from, to string) {
	for _, a := range start.Attr {
		if a.Name.Space == "" && a.Name.Local == "from" {
			from = a.Value
		}
		if a.Name.Space == "" && a.Name.Local == "to" {
			to = a.Value
		}
	}
	return from, to
}

// parseStreamError reads a <stream:error/> element.
func parseStreamError(el *stanza.Element, domain string) *StreamError {
	e := &StreamError{domain: domain}
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
