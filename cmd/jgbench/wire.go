package main

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
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

// readStreamHeader reads the server's stream header (and an XML
// declaration before it) and returns the header tag.
func (c *compConn) readStreamHeader() ([]byte, error) {
	var hdr []byte
	for !bytes.Contains(hdr, []byte("stream:stream")) || hdr[len(hdr)-1] != '>' {
		b, err := c.r.ReadByte()
		if err != nil {
			return nil, fmt.Errorf("stream header: %w", err)
		}
		hdr = append(hdr, b)
	}
	return hdr[bytes.Index(hdr, []byte("<stream:stream")):], nil
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
	hdr, err := c.readStreamHeader()
	if err != nil {
		nc.Close()
		return nil, err
	}
	id := componenttest.RawAttr(hdr, "id")
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

// dialC2S connects to addr as user@domain (SASL PLAIN on the plain
// loopback stream the test servers allow), binds resource and sends initial
// presence; it returns the connection and the bound full JID. The same
// byte-level connection as a component's: only the login is different.
func dialC2S(addr, domain, user, password, resource string) (c *compConn, jid string, err error) {
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, "", err
	}
	defer func() {
		if err != nil {
			nc.Close()
		}
	}()
	c = &compConn{nc: nc, r: bufio.NewReaderSize(nc, 64<<10), w: bufio.NewWriterSize(nc, 64<<10)}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	open := func() ([]byte, error) { // stream header out, header and features in
		fmt.Fprintf(c.w, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>", domain)
		if err := c.w.Flush(); err != nil {
			return nil, err
		}
		if _, err := c.readStreamHeader(); err != nil {
			return nil, err
		}
		f, err := componenttest.SplitStanza(c.r, nil)
		if err != nil {
			return nil, fmt.Errorf("stream features: %w", err)
		}
		return f, nil
	}
	features, err := open()
	if err != nil {
		return nil, "", err
	}
	if !bytes.Contains(features, []byte(">PLAIN<")) {
		return nil, "", fmt.Errorf("the server offers no SASL PLAIN on %s: %s", addr, features)
	}
	creds := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	fmt.Fprintf(c.w, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>", creds)
	if err := c.w.Flush(); err != nil {
		return nil, "", err
	}
	el, err := componenttest.SplitStanza(c.r, nil)
	if err != nil {
		return nil, "", fmt.Errorf("SASL: %w", err)
	}
	if !bytes.HasPrefix(el, []byte("<success")) {
		return nil, "", fmt.Errorf("SASL PLAIN as %s@%s refused: %s", user, domain, el)
	}
	if _, err := open(); err != nil { // the stream restarts after SASL
		return nil, "", err
	}
	fmt.Fprintf(c.w, "<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>%s</resource></bind></iq>", resource)
	if err := c.w.Flush(); err != nil {
		return nil, "", err
	}
	for {
		el, err := componenttest.SplitStanza(c.r, nil)
		if err != nil {
			return nil, "", fmt.Errorf("bind: %w", err)
		}
		if componenttest.RawAttr(el, "id") != "bind" {
			continue
		}
		if componenttest.RawAttr(el, "type") != "result" {
			return nil, "", fmt.Errorf("bind refused: %s", el)
		}
		if i, j := bytes.Index(el, []byte("<jid>")), bytes.Index(el, []byte("</jid>")); i >= 0 && j > i {
			jid = string(el[i+len("<jid>") : j])
		}
		break
	}
	// Available, so that messages to the bare JID reach this resource.
	if err := c.write([]byte("<presence/>"), true); err != nil {
		return nil, "", err
	}
	nc.SetDeadline(time.Time{})
	return c, jid, nil
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
