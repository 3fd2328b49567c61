package main

// End-to-end test of contact names and avatars (XEP-0172, XEP-0153 with
// XEP-0054, XEP-0084 emulation) through real Prosody and ejabberd, with the
// raw client of caps_e2e_test.go (go-xmpp drops unknown presence children).

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jabbergate/jabbergate/component/servertest"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy/echo"
)

const (
	avNSUpdate = "vcard-temp:x:update"
	avNSVCard  = "vcard-temp"
	avNSNick   = "http://jabber.org/protocol/nick"
	avNSPubsub = "http://jabber.org/protocol/pubsub"
	avNSEvent  = "http://jabber.org/protocol/pubsub#event"
	avNSMeta   = "urn:xmpp:avatar:metadata"
	avNSData   = "urn:xmpp:avatar:data"
)

func TestAvatarEndToEnd(t *testing.T) {
	for _, kind := range []string{"prosody", "ejabberd"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := servertest.Start(t, kind, servertest.Options{
				Components: map[string]string{gwDomain: gwSecret},
				Users:      map[string]string{"dave": "davepw"},
			})
			startGateway(t, srv, fmt.Sprintf("store:\n  backend: bolt\n  path: %s\n", filepath.Join(t.TempDir(), "jg.db")))
			avatarEndToEnd(t, srv)
		})
	}
}

// presencePhoto matches an available presence from the bare JID from whose
// XEP-0153 photo satisfies ok.
func presencePhoto(from string, ok func(photo string) bool) func(*stanza.Element) bool {
	return func(e *stanza.Element) bool {
		if e.Local != "presence" || bare(e.From()) != from || e.Type() != "" {
			return false
		}
		x := e.Child(avNSUpdate, "x")
		return x != nil && x.Child(avNSUpdate, "photo") != nil && ok(x.ChildText(avNSUpdate, "photo"))
	}
}

func avatarEndToEnd(t *testing.T, srv *servertest.Server) {
	dave := dialCapsClient(t, srv, "dave", "davepw", "avatar")
	hello := "hello@" + gwDomain
	pic := echo.Avatar("hello")
	sum := sha1.Sum(pic)
	hash := hex.EncodeToString(sum[:])

	if r := dave.iq("set", gwDomain, `<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>jabber:iq:register</value></field></x></query>`); r.Type() != "result" {
		t.Fatalf("register = %s", r)
	}

	// Subscribed to hello before it said anything: an empty photo.
	dave.write(`<presence type='subscribe' to='%s'/>`, hello)
	p := dave.wait("hello's presence without a picture", presencePhoto(hello, func(s string) bool { return s == "" }))
	t.Logf("%s: first presence %s", srv.Kind, p)

	// The first message makes the echo contact introduce itself: its
	// presence comes again with the photo hash and the nick, and a PEP
	// metadata event.
	dave.write(`<message type='chat' id='av1' to='%s'><body>show yourself</body></message>`, hello)
	p = dave.wait("hello's presence with the photo hash", presencePhoto(hello, func(s string) bool { return s != "" }))
	t.Logf("%s: presence with photo %s", srv.Kind, p)
	if got := p.Child(avNSUpdate, "x").ChildText(avNSUpdate, "photo"); got != hash {
		t.Errorf("photo = %s, want %s", got, hash)
	}
	if nick := p.ChildText(avNSNick, "nick"); nick != "Hello Echo" {
		t.Errorf("nick = %q in %s", nick, p)
	}
	ev := dave.wait("avatar metadata event", func(e *stanza.Element) bool {
		return e.Local == "message" && bare(e.From()) == hello && e.Child(avNSEvent, "event") != nil
	})
	if items := ev.Child(avNSEvent, "event").Child(avNSEvent, "items"); items == nil || items.Attr("node") != avNSMeta ||
		!strings.Contains(ev.String(), "id='"+hash+"'") {
		t.Errorf("event = %s", ev)
	}
	dave.wait("echo", func(e *stanza.Element) bool {
		return e.Local == "message" && bare(e.From()) == hello && e.ChildText(capsNSClient, "body") == "show yourself"
	})

	// The vCard, fetched through the server as Conversations does.
	r := dave.iq("get", hello, `<vCard xmlns='vcard-temp'/>`)
	v := r.Child(avNSVCard, "vCard")
	if r.Type() != "result" || v == nil {
		t.Fatalf("vCard = %s", r)
	}
	if fn := v.ChildText(avNSVCard, "FN"); fn != "Hello Echo" {
		t.Errorf("FN = %q", fn)
	}
	photo := v.Child(avNSVCard, "PHOTO")
	if photo == nil || photo.ChildText(avNSVCard, "TYPE") != "image/png" {
		t.Fatalf("PHOTO = %s", v)
	}
	if got, err := base64.StdEncoding.DecodeString(photo.ChildText(avNSVCard, "BINVAL")); err != nil || !bytes.Equal(got, pic) {
		t.Errorf("BINVAL is not the picture (%v)", err)
	}

	// PEP, as Monal reads it: metadata, then data by id.
	r = dave.iq("get", hello, `<pubsub xmlns='`+avNSPubsub+`'><items node='`+avNSMeta+`'/></pubsub>`)
	item := r.Child(avNSPubsub, "pubsub").Child(avNSPubsub, "items").Child(avNSPubsub, "item")
	if r.Type() != "result" || item == nil || item.Attr("id") != hash || item.Child(avNSMeta, "metadata").Child(avNSMeta, "info").Attr("type") != "image/png" {
		t.Fatalf("metadata = %s", r)
	}
	r = dave.iq("get", hello, `<pubsub xmlns='`+avNSPubsub+`'><items node='`+avNSData+`'><item id='`+hash+`'/></items></pubsub>`)
	if r.Type() != "result" {
		t.Fatalf("data = %s", r)
	}
	data := r.Child(avNSPubsub, "pubsub").Child(avNSPubsub, "items").Child(avNSPubsub, "item").ChildText(avNSData, "data")
	if got, err := base64.StdEncoding.DecodeString(data); err != nil || !bytes.Equal(got, pic) {
		t.Errorf("PEP data is not the picture (%v)", err)
	}

	// A second device gets the hash in the presence the server probes for.
	phone := dialCapsClient(t, srv, "dave", "davepw", "phone")
	phone.wait("hello's presence with the photo on probe", presencePhoto(hello, func(s string) bool { return s == hash }))
}
