package main

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// compConn is a bare XEP-0114 component connection: a buffered writer and
// a byte-level stanza splitter, no XML parsing (the load generator and the
// limit component must cost as little CPU as possible).
type compConn struct {
	nc  net.Conn
	r   *bufio.Reader
	wmu sync.Mutex
	w   *bufio.Writer
}

// dialComponent connects to addr as component domain and completes the
// handshake.
func dialComponent(addr, domain, secret string) (*compConn, error) {
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	c := &compConn{nc: nc, r: bufio.NewReaderSize(nc, 64<<10), w: bufio.NewWriterSize(nc, 64<<10)}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c.w, "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='%s'>", domain)
	if err := c.w.Flush(); err != nil {
		nc.Close()
		return nil, err
	}
	var hdr []byte
	for !bytes.Contains(hdr, []byte("stream:stream")) || hdr[len(hdr)-1] != '>' {
		b, err := c.r.ReadByte()
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("stream header: %w", err)
		}
		hdr = append(hdr, b)
	}
	i := bytes.Index(hdr, []byte("<stream:stream"))
	id := attr(hdr[i:], "id")
	sum := sha1.Sum([]byte(id + secret))
	fmt.Fprintf(c.w, "<handshake>%s</handshake>", hex.EncodeToString(sum[:]))
	if err := c.w.Flush(); err != nil {
		nc.Close()
		return nil, err
	}
	el, err := splitStanza(c.r, nil)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if !bytes.HasPrefix(el, []byte("<handshake")) {
		nc.Close()
		return nil, fmt.Errorf("handshake refused: %s", el)
	}
	nc.SetDeadline(time.Time{})
	return c, nil
}

func (c *compConn) write(b []byte, flush bool) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.w.Write(b); err != nil {
		return err
	}
	if flush {
		return c.w.Flush()
	}
	return nil
}

func (c *compConn) flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.w.Flush()
}

func (c *compConn) Close() error { return c.nc.Close() }

var errStreamEnd = errors.New("stream closed by the server")

// splitStanza reads one top-level element from r and appends it to buf. It
// tracks tag nesting and quoted attribute values only; text between
// top-level elements (whitespace keepalives) is dropped.
func splitStanza(r *bufio.Reader, buf []byte) ([]byte, error) {
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
				return buf, errStreamEnd // </stream:stream>
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

// attr returns the value of attribute name in the first tag of el (no
// entity decoding).
func attr(el []byte, name string) string {
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

// body returns the text of the first <body> child, or "".
func body(el []byte) string {
	i := bytes.Index(el, []byte("<body"))
	if i < 0 {
		return ""
	}
	j := bytes.IndexByte(el[i:], '>')
	if j < 0 {
		return ""
	}
	rest := el[i+j+1:]
	k := bytes.Index(rest, []byte("</body>"))
	if k < 0 {
		return ""
	}
	return string(rest[:k])
}
