package servertest_test

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// rawComponent is a minimal XEP-0114 component on a net.Conn, enough to
// prove the server side of the plumbing without the project's own code.
type rawComponent struct {
	conn   net.Conn
	dec    *xml.Decoder
	domain string
	id     string
}

// stanza is any top-level element of the component stream.
type stanza struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Inner   string     `xml:",innerxml"`
}

func (s stanza) attr(name string) string {
	for _, a := range s.Attrs {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

func (s stanza) String() string {
	var b strings.Builder
	b.WriteString("<" + s.XMLName.Local)
	for _, a := range s.Attrs {
		fmt.Fprintf(&b, " %s=%q", a.Name.Local, a.Value)
	}
	b.WriteString(">" + s.Inner + "</" + s.XMLName.Local + ">")
	return b.String()
}

// errStreamError is returned when the server sends <stream:error/>.
var errStreamError = errors.New("stream error")

// dialComponent connects and authenticates a component: stream header to
// the component domain, the server's stream id, <handshake> =
// hex(sha1(id + secret)), and the server's empty <handshake/>.
func dialComponent(addr, domain, secret string) (*rawComponent, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &rawComponent{conn: conn, dec: xml.NewDecoder(conn), domain: domain}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	defer conn.SetDeadline(time.Time{})
	if _, err := fmt.Fprintf(conn, "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='%s'>", domain); err != nil {
		conn.Close()
		return nil, err
	}
	// The server's stream header.
	for c.id == "" {
		tok, err := c.dec.Token()
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("reading the stream header: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "stream" {
				conn.Close()
				return nil, fmt.Errorf("expected the stream header, got <%s>", se.Name.Local)
			}
			for _, a := range se.Attr {
				if a.Name.Local == "id" {
					c.id = a.Value
				}
			}
			if c.id == "" {
				conn.Close()
				return nil, errors.New("stream header without id")
			}
		}
	}
	sum := sha1.Sum([]byte(c.id + secret))
	if _, err := fmt.Fprintf(conn, "<handshake>%s</handshake>", hex.EncodeToString(sum[:])); err != nil {
		conn.Close()
		return nil, err
	}
	st, err := c.next()
	if err != nil {
		conn.Close()
		return nil, err
	}
	if st.XMLName.Local != "handshake" {
		conn.Close()
		return nil, fmt.Errorf("expected <handshake/>, got %s", st)
	}
	return c, nil
}

// next reads the next top-level element. A stream error is returned as an
// error wrapping errStreamError, with the condition in the message.
func (c *rawComponent) next() (stanza, error) {
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return stanza{}, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			var st stanza
			if err := c.dec.DecodeElement(&st, &tok); err != nil {
				return stanza{}, err
			}
			if st.XMLName.Local == "error" && st.XMLName.Space == "http://etherx.jabber.org/streams" {
				return st, fmt.Errorf("%w: %s", errStreamError, st.Inner)
			}
			return st, nil
		case xml.EndElement:
			return stanza{}, io.EOF // </stream:stream>
		}
	}
}

// nextMatching reads stanzas until match accepts one, within timeout.
func (c *rawComponent) nextMatching(timeout time.Duration, match func(stanza) bool) (stanza, []stanza, error) {
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	defer c.conn.SetReadDeadline(time.Time{})
	var skipped []stanza
	for {
		st, err := c.next()
		if err != nil {
			return st, skipped, err
		}
		if match(st) {
			return st, skipped, nil
		}
		skipped = append(skipped, st)
	}
}

func (c *rawComponent) send(format string, args ...any) error {
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := fmt.Fprintf(c.conn, format, args...)
	return err
}

// close ends the stream and waits (bounded) for the server's end.
func (c *rawComponent) close() {
	_ = c.send("</stream:stream>")
	c.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		if _, err := c.next(); err != nil {
			break
		}
	}
	c.conn.Close()
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// plainAuth opens a c2s stream and tries SASL PLAIN (go-xmpp leaves the
// connection open when authentication fails, so this is done by hand).
func plainAuth(addr, domain, user, password string) (bool, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := &rawComponent{conn: conn, dec: xml.NewDecoder(conn)}
	if _, err := fmt.Fprintf(conn, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>", domain); err != nil {
		return false, err
	}
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return false, err
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "stream" {
			break
		}
	}
	features, err := c.next()
	if err != nil {
		return false, err
	}
	if !strings.Contains(features.Inner, ">PLAIN<") {
		return false, fmt.Errorf("PLAIN not offered: %s", features)
	}
	creds := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	if _, err := fmt.Fprintf(conn, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>", creds); err != nil {
		return false, err
	}
	res, err := c.next()
	if err != nil {
		return false, err
	}
	fmt.Fprint(conn, "</stream:stream>")
	switch res.XMLName.Local {
	case "success":
		return true, nil
	case "failure":
		return false, nil
	}
	return false, fmt.Errorf("unexpected SASL answer %s", res)
}
