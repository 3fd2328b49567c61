package main

// End-to-end tests of the message extensions on the echo network, against
// real Prosody and ejabberd with a go-xmpp user: a receipt, a correction,
// a reaction and a retraction, plus a correction to an unknown id.

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xmppo/go-xmpp"

	"github.com/jabbergate/jabbergate/component/servertest"
)

func TestExtensionsEndToEnd(t *testing.T) {
	for _, kind := range []string{"prosody", "ejabberd"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := servertest.Start(t, kind, servertest.Options{
				Components: map[string]string{gwDomain: gwSecret},
				Users:      map[string]string{"alice": "alicepw"},
			})
			startGateway(t, srv, fmt.Sprintf("store:\n  backend: bolt\n  path: %s\n", filepath.Join(t.TempDir(), "jg.db")))
			extensionsEndToEnd(t, srv)
		})
	}
}

// otherElem returns the first extension element named local in ns.
func otherElem(m xmpp.Chat, ns, local string) *xmpp.XMLElement {
	for i, el := range m.OtherElem {
		if el.XMLName.Space == ns && el.XMLName.Local == local {
			return &m.OtherElem[i]
		}
	}
	return nil
}

func elemAttr(el *xmpp.XMLElement, name string) string {
	if el == nil {
		return ""
	}
	for _, a := range el.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func extensionsEndToEnd(t *testing.T, srv *servertest.Server) {
	alice := dialClient(t, srv, "alice", "alicepw", "ext")
	hello := "hello@" + gwDomain

	// Register with the form and add the echo contact.
	alice.send(`<iq type='set' id='r1' to='%s'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>jabber:iq:register</value></field></x></query></iq>`, gwDomain)
	if r := alice.waitIQ("r1"); r.Type != "result" {
		t.Fatalf("register = %+v", r)
	}
	alice.send(`<presence type='subscribe' to='%s'/>`, hello)
	alice.waitPresence("contact presence", hello, "")

	// A message with a receipt request: echo (markable), then the receipt.
	alice.send(`<message type='chat' id='m1' to='%s'><body>first</body><origin-id xmlns='urn:xmpp:sid:0' id='m1'/><request xmlns='urn:xmpp:receipts'/><markable xmlns='urn:xmpp:chat-markers:0'/></message>`, hello)
	echo := alice.waitChat("echo", func(m xmpp.Chat) bool { return bare(m.Remote) == hello && m.Text == "first" })
	if otherElem(echo, "urn:xmpp:chat-markers:0", "markable") == nil {
		t.Errorf("echo is not markable: %+v", echo)
	}
	alice.wait("receipt for m1", func(st any) bool {
		m, ok := st.(xmpp.Chat)
		return ok && receiptFor(m) == "m1"
	})

	// A correction: the contact corrects its echo, pointing at its first id.
	alice.send(`<message type='chat' id='c1' to='%s'><body>first, corrected</body><replace xmlns='urn:xmpp:message-correct:0' id='m1'/></message>`, hello)
	c := alice.waitChat("corrected echo", func(m xmpp.Chat) bool {
		return otherElem(m, "urn:xmpp:message-correct:0", "replace") != nil
	})
	if c.Text != "first, corrected" || elemAttr(otherElem(c, "urn:xmpp:message-correct:0", "replace"), "id") != echo.ID || bare(c.Remote) != hello {
		t.Errorf("correction = %+v, want a replace of %s", c, echo.ID)
	}

	// A reaction to the echo: the contact reacts the same way to m1.
	alice.send(`<message type='chat' id='x1' to='%s'><reactions xmlns='urn:xmpp:reactions:0' id='%s'><reaction>👍</reaction></reactions><store xmlns='urn:xmpp:hints'/></message>`, hello, echo.ID)
	x := alice.waitChat("reaction", func(m xmpp.Chat) bool { return otherElem(m, "urn:xmpp:reactions:0", "reactions") != nil })
	if r := otherElem(x, "urn:xmpp:reactions:0", "reactions"); elemAttr(r, "id") != "m1" || !strings.Contains(r.InnerXML, "👍") {
		t.Errorf("reaction = %+v", x)
	}

	// A retraction of m1: the echo is retracted too.
	alice.send(`<message type='chat' id='d1' to='%s'><retract xmlns='urn:xmpp:message-retract:1' id='m1'/><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:message-retract:1'/><body>/me retracted a message</body><store xmlns='urn:xmpp:hints'/></message>`, hello)
	r := alice.waitChat("retraction", func(m xmpp.Chat) bool { return otherElem(m, "urn:xmpp:message-retract:1", "retract") != nil })
	if elemAttr(otherElem(r, "urn:xmpp:message-retract:1", "retract"), "id") != echo.ID || otherElem(r, "urn:xmpp:fallback:0", "fallback") == nil {
		t.Errorf("retraction = %+v", r)
	}

	// A correction of a message the gateway never saw: item-not-found.
	alice.send(`<message type='chat' id='c2' to='%s'><body>x</body><replace xmlns='urn:xmpp:message-correct:0' id='never-sent'/></message>`, hello)
	e := alice.waitChat("error for the unknown correction", func(m xmpp.Chat) bool { return m.ID == "c2" && m.Type == "error" })
	if errorCondition(e) != "item-not-found" {
		t.Errorf("unknown correction = %+v", e)
	}
	var raw bytes.Buffer
	for _, el := range e.OtherElem {
		raw.WriteString(el.InnerXML)
	}
	if !strings.Contains(raw.String(), "<text") {
		t.Errorf("error without text: %s", raw.String())
	}
}
