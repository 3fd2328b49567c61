package main

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"github.com/jabbergate/jabbergate/component/componenttest"
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
	id := componenttest.RawAttr(hdr[i:], "id")
	sum := sha1.Sum([]byte(id + secret))
	fmt.Fprintf(c.w, "<handshake>%s</handshake>", hex.EncodeToString(sum[:]))
	if err := c.w.Flush(); err != nil {
		nc.Close()
		return nil, err
	}
	el, err := componenttest.SplitStanza(c.r, nil)
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
