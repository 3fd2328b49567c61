package componenttest

import (
	"bufio"
	"bytes"
	"errors"
)

// Raw helpers for load tools and benchmarks that must not pay for an XML
// parser on their side of the link (bridges' benchmark peer, cmd/jgbench):
// they split the stream into top-level elements and read attributes by
// bytes. They assume well-formed input from a real XMPP peer.

// ErrStreamEnd is returned by SplitStanza at the peer's </stream:stream>.
var ErrStreamEnd = errors.New("stream closed by the peer")

// SplitStanza reads one top-level element from r and appends it to buf. It
// tracks tag nesting and quoted attribute values only; text between
// top-level elements (whitespace keepalives), the XML declaration and
// comments are dropped.
func SplitStanza(r *bufio.Reader, buf []byte) ([]byte, error) {
	depth := 0
	for {
		c, err := r.ReadByte()
		if err != nil {
			return buf, err
		}
		if c != '<' {
			if depth > 0 {
				buf = append(buf, c)
			}
			continue
		}
		buf = append(buf, c)
		start := len(buf) - 1
		var quote byte
		for {
			c, err = r.ReadByte()
			if err != nil {
				return buf, err
			}
			buf = append(buf, c)
			if quote != 0 {
				if c == quote {
					quote = 0
				}
				continue
			}
			if c == '\'' || c == '"' {
				quote = c
				continue
			}
			if c == '>' {
				break
			}
		}
		tag := buf[start:]
		switch {
		case len(tag) > 1 && (tag[1] == '?' || tag[1] == '!'):
			if depth == 0 {
				buf = buf[:start]
			}
		case len(tag) > 1 && tag[1] == '/':
			depth--
			if depth < 0 {
				return buf, ErrStreamEnd // </stream:stream>
			}
			if depth == 0 {
				return buf, nil
			}
		case tag[len(tag)-2] == '/':
			if depth == 0 {
				return buf, nil
			}
		default:
			depth++
		}
	}
}

// RawAttr returns the value of attribute name in the first tag of el (no
// entity decoding), or "".
func RawAttr(el []byte, name string) string {
	end := bytes.IndexByte(el, '>')
	if end < 0 {
		end = len(el)
	}
	tag := el[:end]
	for _, sep := range []byte{' ', '\t', '\n'} {
		j := bytes.Index(tag, append([]byte{sep}, name+"="...))
		if j < 0 {
			continue
		}
		k := j + len(name) + 2
		if k >= len(tag) {
			return ""
		}
		q := tag[k]
		v := bytes.IndexByte(tag[k+1:], q)
		if v < 0 {
			return ""
		}
		return string(tag[k+1 : k+1+v])
	}
	return ""
}

// AppendIQResult appends to out the start of the result to the iq get or
// set iq, addressed back to its sender: `<iq type='result' id=… from=…
// to=…` without the closing of the tag, so the caller ends it with "/>"
// or with a payload and "</iq>".
func AppendIQResult(out, iq []byte) []byte {
	out = append(out, "<iq type='result' id='"...)
	out = append(out, RawAttr(iq, "id")...)
	out = append(out, "' from='"...)
	out = append(out, RawAttr(iq, "to")...)
	out = append(out, "' to='"...)
	out = append(out, RawAttr(iq, "from")...)
	return append(out, '\'')
}
