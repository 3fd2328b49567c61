package main

// End-to-end test of entity capabilities (XEP-0115) and service discovery
// through real Prosody and ejabberd servers. go-xmpp drops unknown children
// of presence, so this test logs in with a minimal raw c2s client that
// keeps every stanza as an element tree.

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/caps"
	"github.com/jabbergate/jabbergate/component/servertest"
	"github.com/jabbergate/jabbergate/component/stanza"
)

const (
	capsNSDiscoInfo = "http://jabber.org/protocol/disco#info"
	capsNSClient    = "jabber:client"
)

// capsClient is a raw XMPP client: plain TCP, SASL PLAIN, resource
// binding, and a reader goroutine that keeps every stanza.
type capsClient struct {
	t    *testing.T
	conn net.Conn
	jid  string // full JID once bound
	ids  int

	mu     sync.Mutex
	cond   *sync.Cond
	seen   []*stanza.Element
	closed bool
}

// dialCapsClient logs user in on s with resource and sends initial
// presence.
func dialCapsClient(t *testing.T, s *servertest.Server, user, password, resource string) *capsClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", s.C2SAddr, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", s.C2SAddr, err)
	}
	x := &capsClient{t: t, conn: conn}
	x.cond = sync.NewCond(&x.mu)
	t.Cleanup(x.close)
	_ = conn.SetDeadline(time.Now().Add(e2eWait))
	bareJID := s.JID(user)
	domain := bareJID[strings.IndexByte(bareJID, '@')+1:]
	open := func() (*xml.Decoder, *stanza.Element) {
		x.write(`<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`, domain)
		d := xml.NewDecoder(conn)
		for {
			tok, err := d.Token()
			if err != nil {
				t.Fatalf("stream open on %s: %v", s.Kind, err)
			}
			if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "stream" {
				break
			}
		}
		return d, x.next(d)
	}
	d, features := open()
	if features.Local != "features" {
		t.Fatalf("features = %s", features)
	}
	auth := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	x.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>`, auth)
	if r := x.next(d); r.Local != "success" {
		t.Fatalf("SASL PLAIN for %s on %s: %s", user, s.Kind, r)
	}
	d, features = open()
	x.write(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>%s</resource></bind></iq>`, resource)
	for {
		r := x.next(d)
		if r.Local == "iq" && r.ID() == "bind1" {
			x.jid = r.Child("urn:ietf:params:xml:ns:xmpp-bind", "bind").ChildText("urn:ietf:params:xml:ns:xmpp-bind", "jid")
			if r.Type() != "result" || x.jid == "" {
				t.Fatalf("bind: %s", r)
			}
			break
		}
	}
	if sess := features.Child("urn:ietf:params:xml:ns:xmpp-session", "session"); sess != nil && sess.Child("urn:ietf:params:xml:ns:xmpp-session", "optional") == nil {
		x.write(`<iq type='set' id='sess1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>`)
	}
	_ = conn.SetDeadline(time.Time{})
	go x.read(d)
	x.write(`<presence/>`)
	return x
}

// next reads the next top-level element during stream negotiation.
func (x *capsClient) next(d *xml.Decoder) *stanza.Element {
	x.t.Helper()
	for {
		tok, err := d.Token()
		if err != nil {
			x.t.Fatalf("read: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			el, err := stanza.Decode(d, se)
			if err != nil {
				x.t.Fatalf("decode: %v", err)
			}
			return el
		}
	}
}

func (x *capsClient) read(d *xml.Decoder) {
	defer func() {
		x.mu.Lock()
		x.closed = true
		x.cond.Broadcast()
		x.mu.Unlock()
	}()
	for {
		tok, err := d.Token()
		if err != nil {
			return
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		el, err := stanza.Decode(d, se)
		if err != nil {
			return
		}
		x.mu.Lock()
		x.seen = append(x.seen, el)
		x.cond.Broadcast()
		x.mu.Unlock()
	}
}

func (x *capsClient) write(format string, args ...any) {
	x.t.Helper()
	if _, err := fmt.Fprintf(x.conn, format, args...); err != nil {
		x.t.Fatalf("write: %v", err)
	}
}

func (x *capsClient) close() {
	_, _ = x.conn.Write([]byte(`</stream:stream>`))
	x.mu.Lock()
	deadline := time.AfterFunc(5*time.Second, func() { _ = x.conn.Close() })
	for !x.closed {
		x.cond.Wait()
	}
	x.mu.Unlock()
	deadline.Stop()
	_ = x.conn.Close()
}

// wait returns (and removes) the first stanza received so far or within
// e2eWait that matches.
func (x *capsClient) wait(what string, match func(*stanza.Element) bool) *stanza.Element {
	x.t.Helper()
	timer := time.AfterFunc(e2eWait, func() {
		x.mu.Lock()
		x.cond.Broadcast()
		x.mu.Unlock()
	})
	defer timer.Stop()
	start := time.Now()
	x.mu.Lock()
	defer x.mu.Unlock()
	for {
		for i, el := range x.seen {
			if match(el) {
				x.seen = append(x.seen[:i], x.seen[i+1:]...)
				return el
			}
		}
		if x.closed || time.Since(start) >= e2eWait {
			var got []string
			for _, el := range x.seen {
				got = append(got, el.String())
			}
			x.t.Fatalf("%s: no %s within %v (closed %v); unmatched:\n%s", x.jid, what, e2eWait, x.closed, strings.Join(got, "\n"))
		}
		x.cond.Wait()
	}
}

// iq sends an IQ get/set and waits for its answer.
func (x *capsClient) iq(typ, to, payload string) *stanza.Element {
	x.t.Helper()
	x.ids++
	id := fmt.Sprintf("caps%d", x.ids)
	x.write(`<iq type='%s' id='%s' to='%s'>%s</iq>`, typ, id, to, payload)
	return x.wait("answer to "+id, func(e *stanza.Element) bool {
		return e.Local == "iq" && e.ID() == id && (e.Type() == "result" || e.Type() == "error")
	})
}

// availableWithCaps matches an available presence from a bare JID that
// carries caps.
func availableWithCaps(from string) func(*stanza.Element) bool {
	return func(e *stanza.Element) bool {
		return e.Local == "presence" && bare(e.From()) == from && e.Type() == "" && e.Child(caps.NS, "c") != nil
	}
}

// capsDiscoInfo turns a disco#info query into caps.Info.
func capsDiscoInfo(q *stanza.Element) caps.Info {
	var in caps.Info
	for _, c := range q.Children() {
		switch c.Local {
		case "identity":
			in.Identities = append(in.Identities, caps.Identity{Category: c.Attr("category"), Type: c.Attr("type"), Lang: c.Lang(), Name: c.Attr("name")})
		case "feature":
			in.Features = append(in.Features, c.Attr("var"))
		case "x":
			var f caps.Form
			for _, fl := range c.Children() {
				cf := caps.Field{Var: fl.Attr("var")}
				for _, v := range fl.Children() {
					cf.Values = append(cf.Values, v.Text())
				}
				f.Fields = append(f.Fields, cf)
			}
			in.Forms = append(in.Forms, f)
		}
	}
	return in
}

// checkCapsDisco asks to for disco#info on the caps node#ver of c and
// without a node, and checks both answers agree and hash to ver.
func checkCapsDisco(t *testing.T, x *capsClient, to string, c *stanza.Element) caps.Info {
	t.Helper()
	if c.Attr("hash") != "sha-1" || c.Attr("node") != "https://jabbergate.im/caps" {
		t.Errorf("caps from %s = %s", to, c)
	}
	node := c.Attr("node") + "#" + c.Attr("ver")
	withNode := x.iq("get", to, `<query xmlns='http://jabber.org/protocol/disco#info' node='`+node+`'/>`)
	plain := x.iq("get", to, `<query xmlns='http://jabber.org/protocol/disco#info'/>`)
	if withNode.Type() != "result" || plain.Type() != "result" {
		t.Fatalf("disco#info on %s: %s\n%s", to, withNode, plain)
	}
	nq, pq := withNode.Child(capsNSDiscoInfo, "query"), plain.Child(capsNSDiscoInfo, "query")
	t.Logf("disco#info node#ver answer from %s: %s", to, withNode)
	if nq.Attr("node") != node {
		t.Errorf("node not echoed by %s: %s", to, withNode)
	}
	nInfo, pInfo := capsDiscoInfo(nq), capsDiscoInfo(pq)
	if fmt.Sprint(nInfo) != fmt.Sprint(pInfo) {
		t.Errorf("%s: node#ver answer %+v differs from plain %+v", to, nInfo, pInfo)
	}
	if ver, err := nInfo.Ver(); err != nil || ver != c.Attr("ver") {
		t.Errorf("%s: ver recomputed from disco = %q, %v; presence said %q", to, ver, err, c.Attr("ver"))
	}
	return nInfo
}

func TestCapsEndToEnd(t *testing.T) {
	for _, kind := range []string{"prosody", "ejabberd"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := servertest.Start(t, kind, servertest.Options{
				Components: map[string]string{gwDomain: gwSecret},
				Users:      map[string]string{"carol": "carolpw"},
			})
			startGateway(t, srv, fmt.Sprintf("store:\n  backend: bolt\n  path: %s\n", filepath.Join(t.TempDir(), "jg.db")))
			capsEndToEnd(t, srv)
		})
	}
}

func capsEndToEnd(t *testing.T, srv *servertest.Server) {
	carol := dialCapsClient(t, srv, "carol", "carolpw", "caps")
	hello := "hello@" + gwDomain

	// Register; the gateway asks for a subscription with its name.
	if r := carol.iq("set", gwDomain, `<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>jabber:iq:register</value></field></x></query>`); r.Type() != "result" {
		t.Fatalf("register = %s", r)
	}
	sub := carol.wait("subscribe from the gateway", func(e *stanza.Element) bool {
		return e.Local == "presence" && e.Type() == "subscribe" && bare(e.From()) == gwDomain
	})
	if nick := sub.ChildText("http://jabber.org/protocol/nick", "nick"); nick == "" {
		t.Errorf("gateway subscribe without a nick: %s", sub)
	}
	carol.write(`<presence type='subscribed' to='%s'/>`, gwDomain)
	carol.write(`<presence type='subscribe' to='%s'/>`, gwDomain)

	// The gateway's presence carries caps, and disco of node#ver matches.
	gp := carol.wait("gateway presence with caps", availableWithCaps(gwDomain))
	t.Logf("%s: gateway presence %s", srv.Kind, gp)
	gwInfo := checkCapsDisco(t, carol, gwDomain, gp.Child(caps.NS, "c"))
	if len(gwInfo.Identities) != 1 || gwInfo.Identities[0].Category != "gateway" {
		t.Errorf("gateway identities = %+v", gwInfo.Identities)
	}
	for _, f := range []string{caps.NS, "jabber:iq:register", "jabber:iq:gateway", capsNSDiscoInfo} {
		if !strings.Contains(strings.Join(gwInfo.Features, " "), f) {
			t.Errorf("gateway lacks %s: %v", f, gwInfo.Features)
		}
	}

	// A contact too, with its own ver.
	carol.write(`<presence type='subscribe' to='%s'/>`, hello)
	cp := carol.wait("contact presence with caps", availableWithCaps(hello))
	ctInfo := checkCapsDisco(t, carol, hello, cp.Child(caps.NS, "c"))
	if cp.Child(caps.NS, "c").Attr("ver") == gp.Child(caps.NS, "c").Attr("ver") {
		t.Errorf("contact and gateway share a ver")
	}
	if len(ctInfo.Identities) != 1 || ctInfo.Identities[0].Category != "client" {
		t.Errorf("contact identities = %+v", ctInfo.Identities)
	}

	// A second device: the server's probes are answered with caps.
	phone := dialCapsClient(t, srv, "carol", "carolpw", "phone")
	if c := phone.wait("gateway presence on probe", availableWithCaps(gwDomain)).Child(caps.NS, "c"); c.Attr("ver") != gp.Child(caps.NS, "c").Attr("ver") {
		t.Errorf("probe ver %s", c)
	}
	phone.wait("contact presence on probe", availableWithCaps(hello))

	// OMEMO: the contact has no device list, so clients stay on plaintext.
	for _, node := range []string{"eu.siacs.conversations.axolotl.devicelist", "urn:xmpp:omemo:2:devices"} {
		r := carol.iq("get", hello, `<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='`+node+`'/></pubsub>`)
		if pe := stanza.ParseError(r); pe == nil || pe.Condition != stanza.ItemNotFound {
			t.Errorf("OMEMO %s = %s", node, r)
		}
	}
}
