package bridges_test

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"sync"
	"testing"

	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/echo"
)

const (
	nsVCardUpdate = "vcard-temp:x:update"
	nsNickTest    = "http://jabber.org/protocol/nick"
)

// avatarNetwork is the echo network (which declares Caps.Avatars) whose
// last session's sink the test drives; noAvatars hides the capability.
type avatarNetwork struct {
	*echo.Network
	noAvatars bool
	mu        sync.Mutex
	sink      legacy.Sink
}

func newAvatarNetwork(noAvatars bool) *avatarNetwork {
	n, _ := echo.New(nil)
	return &avatarNetwork{Network: n, noAvatars: noAvatars}
}

func (n *avatarNetwork) Info() legacy.Info {
	in := n.Network.Info()
	if n.noAvatars {
		in.Caps.Avatars = false
	}
	return in
}

func (n *avatarNetwork) Open(ctx context.Context, a legacy.Account, s legacy.Sink) (legacy.Session, error) {
	n.mu.Lock()
	n.sink = s
	n.mu.Unlock()
	return n.Network.Open(ctx, a, s)
}

func (n *avatarNetwork) emit(t *testing.T, ev legacy.Event) {
	t.Helper()
	n.mu.Lock()
	s := n.sink
	n.mu.Unlock()
	if s == nil {
		t.Fatal("no session")
	}
	if err := s.Emit(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
}

func sha1Hex(b []byte) string {
	s := sha1.Sum(b)
	return hex.EncodeToString(s[:])
}

// photoOf returns the XEP-0153 photo of a presence: ok false when there is
// no vcard-temp:x:update element or no photo in it.
func photoOf(p *stanza.Element) (string, bool) {
	x := p.Child(nsVCardUpdate, "x")
	if x == nil || x.Child(nsVCardUpdate, "photo") == nil {
		return "", false
	}
	return x.ChildText(nsVCardUpdate, "photo"), true
}

// avatarSetup registers alice, subscribes her to hello and returns the
// first contact presence.
func avatarSetup(t *testing.T, noAvatars bool) (*harness, *avatarNetwork, string) {
	t.Helper()
	nw := newAvatarNetwork(noAvatars)
	h := newHarness(t, nw)
	h.register(alice)
	hello := "hello@" + domain
	h.send(`<presence xmlns='jabber:component:accept' type='subscribe' from='` + alice + `' to='` + hello + `'/>`)
	h.expect("subscribed", presenceFrom(hello, "subscribed"))
	p := h.expect("contact presence", presenceFrom(hello, ""))
	if noAvatars {
		if p.Child(nsVCardUpdate, "x") != nil {
			t.Errorf("presence of a network without avatars has a photo element: %s", p)
		}
	} else if photo, ok := photoOf(p); !ok || photo != "" {
		t.Errorf("presence of a contact without avatar = %s, want an empty <photo/>", p)
	}
	return h, nw, hello
}

// TestAvatarVCardAndPresence: a contact's name and picture reach the
// presence (nick, photo hash), the vCard (golden), and the PEP event; the
// same picture again changes nothing.
func TestAvatarVCardAndPresence(t *testing.T) {
	h, nw, hello := avatarSetup(t, false)
	// Without name or picture there is no vCard (XEP-0054 §3.2).
	if r := h.iq(alice+"/res", hello, "get", `<vCard xmlns='vcard-temp'/>`); errCond(r) != stanza.ItemNotFound {
		t.Errorf("vCard of an unknown contact = %s", r)
	}

	pic := echo.Avatar("hello")
	sum := sha1Hex(pic)
	pres := h.fresh(presenceFrom(hello, ""))
	event := h.fresh(func(e *stanza.Element) bool {
		return e.Local == "message" && e.From() == hello && e.Type() == "headline"
	})
	nw.emit(t, legacy.Contact{Chat: "hello", Name: "Hello Echo", Avatar: pic, AvatarType: "image/png"})

	p := h.expect("presence with the new photo", pres)
	if photo, _ := photoOf(p); photo != sum {
		t.Errorf("photo = %q, want %s: %s", photo, sum, p)
	}
	if nick := p.ChildText(nsNickTest, "nick"); nick != "Hello Echo" {
		t.Errorf("nick = %q: %s", nick, p)
	}
	if p.Child("http://jabber.org/protocol/caps", "c") == nil {
		t.Errorf("presence without caps: %s", p)
	}
	ev := h.expect("pubsub event", event)
	if ev.To() != alice {
		t.Errorf("event to %s", ev.To())
	}
	golden := `<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:xmpp:avatar:metadata'><item id='` + sum +
		`'><metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='` + itoa(len(pic)) + `' id='` + sum + `' type='image/png' width='64' height='64'/></metadata></item></items></event>`
	if got := ev.Child("http://jabber.org/protocol/pubsub#event", "event").String(); got != golden {
		t.Errorf("event =\n%s\nwant\n%s", got, golden)
	}

	// The vCard, golden.
	r := h.iq(alice+"/res", hello, "get", `<vCard xmlns='vcard-temp'/>`)
	want := `<vCard xmlns='vcard-temp'><FN>Hello Echo</FN><NICKNAME>Hello Echo</NICKNAME><PHOTO><TYPE>image/png</TYPE><BINVAL>` +
		base64.StdEncoding.EncodeToString(pic) + `</BINVAL></PHOTO></vCard>`
	if v := r.Child("vcard-temp", "vCard"); r.Type() != "result" || v == nil || v.String() != want {
		t.Errorf("vCard =\n%s\nwant\n%s", r, want)
	}
	if r.From() != hello || r.To() != alice+"/res" {
		t.Errorf("vCard addresses: %s", r)
	}

	// A probe gets the same hash.
	probe := h.fresh(presenceFrom(hello, ""))
	h.send(`<presence xmlns='jabber:component:accept' type='probe' from='` + alice + `' to='` + hello + `'/>`)
	if photo, _ := photoOf(h.expect("presence on probe", probe)); photo != sum {
		t.Errorf("probe photo = %q", photo)
	}

	// The same picture again: no presence, no event. The ping's answer
	// comes after anything the emit wrote.
	after := h.fresh(func(e *stanza.Element) bool {
		return e.From() == hello && (e.Local == "presence" || e.Local == "message")
	})
	nw.emit(t, legacy.Contact{Chat: "hello", Name: "Hello Echo", Avatar: pic, AvatarType: "image/png"})
	nw.emit(t, legacy.Contact{Chat: "hello", Name: "Hello Echo"}) // no picture: unchanged
	h.iq(alice, domain, "get", `<ping xmlns='urn:xmpp:ping'/>`)
	for _, e := range h.srv.Received() {
		if after(e) {
			t.Errorf("unchanged picture re-announced: %s", e)
		}
	}

	// Another picture: announced again; removal: empty photo, empty metadata.
	other := echo.Avatar("other")
	pres = h.fresh(presenceFrom(hello, ""))
	event = h.fresh(func(e *stanza.Element) bool {
		return e.Local == "message" && e.From() == hello && e.Type() == "headline"
	})
	nw.emit(t, legacy.Contact{Chat: "hello", Name: "Hello Echo", Avatar: other}) // type sniffed
	if photo, _ := photoOf(h.expect("presence after change", pres)); photo != sha1Hex(other) {
		t.Errorf("photo after change = %q", photo)
	}
	if got := h.expect("change event", event).String(); !strings.Contains(got, "item id='"+sha1Hex(other)+"'") {
		t.Errorf("change event = %s", got)
	}
	pres = h.fresh(presenceFrom(hello, ""))
	event = h.fresh(func(e *stanza.Element) bool {
		return e.Local == "message" && e.From() == hello && e.Type() == "headline"
	})
	nw.emit(t, legacy.Contact{Chat: "hello", Name: "Hello Echo", NoAvatar: true})
	if photo, ok := photoOf(h.expect("presence after removal", pres)); !ok || photo != "" {
		t.Errorf("photo after removal = %q, %v", photo, ok)
	}
	if got := h.expect("removal event", event).Child("http://jabber.org/protocol/pubsub#event", "event").String(); !strings.Contains(got, `<item id='current'><metadata xmlns='urn:xmpp:avatar:metadata'/></item>`) {
		t.Errorf("removal event = %s", got)
	}
	r = h.iq(alice+"/res", hello, "get", `<vCard xmlns='vcard-temp'/>`)
	if v := r.Child("vcard-temp", "vCard"); v == nil || v.String() != `<vCard xmlns='vcard-temp'><FN>Hello Echo</FN><NICKNAME>Hello Echo</NICKNAME></vCard>` {
		t.Errorf("vCard after removal = %s", r)
	}
}

func itoa(n int) string {
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	if len(b) == 0 {
		return "0"
	}
	return string(b)
}

// TestAvatarPEPItems: the metadata and data nodes of a contact's bare JID
// answer like a PEP service.
func TestAvatarPEPItems(t *testing.T) {
	h, nw, hello := avatarSetup(t, false)
	meta := `<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:avatar:metadata'/></pubsub>`
	if r := h.iq(alice+"/res", hello, "get", meta); errCond(r) != stanza.ItemNotFound {
		t.Errorf("metadata without avatar = %s", r)
	}
	pic := echo.Avatar("hello")
	sum := sha1Hex(pic)
	nw.emit(t, legacy.Contact{Chat: "hello", Name: "Hello Echo", Avatar: pic, AvatarType: "image/png"})

	r := h.iq(alice+"/res", hello, "get", meta)
	golden := `<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:avatar:metadata'><item id='` + sum +
		`'><metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='` + itoa(len(pic)) + `' id='` + sum + `' type='image/png' width='64' height='64'/></metadata></item></items></pubsub>`
	if got := r.Child("http://jabber.org/protocol/pubsub", "pubsub"); r.Type() != "result" || got == nil || got.String() != golden {
		t.Errorf("metadata =\n%s\nwant\n%s", r, golden)
	}
	r = h.iq(alice+"/res", hello, "get", `<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:avatar:data'><item id='`+sum+`'/></items></pubsub>`)
	golden = `<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:avatar:data'><item id='` + sum +
		`'><data xmlns='urn:xmpp:avatar:data'>` + base64.StdEncoding.EncodeToString(pic) + `</data></item></items></pubsub>`
	if got := r.Child("http://jabber.org/protocol/pubsub", "pubsub"); r.Type() != "result" || got == nil || got.String() != golden {
		t.Errorf("data =\n%s\nwant\n%s", r, golden)
	}
	// Another item id, another user, a full JID, a publish: refused.
	if r := h.iq(alice+"/res", hello, "get", `<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:avatar:data'><item id='0000'/></items></pubsub>`); errCond(r) != stanza.ItemNotFound {
		t.Errorf("unknown item = %s", r)
	}
	if r := h.iq("mallory@localhost/x", hello, "get", meta); errCond(r) != stanza.ItemNotFound {
		t.Errorf("unregistered = %s", r)
	}
	if r := h.iq(alice+"/res", hello+"/r", "get", meta); errCond(r) != stanza.ItemNotFound {
		t.Errorf("full JID = %s", r)
	}
	if r := h.iq(alice+"/res", hello, "set", `<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:avatar:data'/></pubsub>`); errCond(r) != stanza.Forbidden {
		t.Errorf("set = %s", r)
	}
	// Another contact of the same user has no picture.
	if r := h.iq(alice+"/res", "robot@"+domain, "get", meta); errCond(r) != stanza.ItemNotFound {
		t.Errorf("other contact = %s", r)
	}
}

// TestAvatarRefusals: a picture over the limit or not an image is refused
// with a log line and the previous one kept; vCard sets and strangers are
// refused.
func TestAvatarRefusals(t *testing.T) {
	h, nw, hello := avatarSetup(t, false)
	pic := echo.Avatar("hello")
	nw.emit(t, legacy.Contact{Chat: "hello", Name: "Hello Echo", Avatar: pic, AvatarType: "image/png"})
	big := append(bytes.Clone(pic), make([]byte, 128<<10)...)
	nw.emit(t, legacy.Contact{Chat: "hello", Name: "Hello Echo", Avatar: big, AvatarType: "image/png"})
	nw.emit(t, legacy.Contact{Chat: "hello", Name: "Hello Echo", Avatar: []byte("plain text, not a picture")})
	if n := strings.Count(h.log.String(), "contact avatar refused"); n != 2 {
		t.Errorf("%d refusal log lines, want 2:\n%s", n, h.log.String())
	}
	r := h.iq(alice+"/res", hello, "get", `<vCard xmlns='vcard-temp'/>`)
	if got := r.Child("vcard-temp", "vCard").Child("vcard-temp", "PHOTO").ChildText("vcard-temp", "BINVAL"); got != base64.StdEncoding.EncodeToString(pic) {
		t.Errorf("picture after refusals is not the previous one")
	}
	if r := h.iq(alice+"/res", hello, "set", `<vCard xmlns='vcard-temp'><FN>x</FN></vCard>`); errCond(r) != stanza.NotAllowed {
		t.Errorf("vCard set = %s", r)
	}
	if r := h.iq("mallory@localhost/x", hello, "get", `<vCard xmlns='vcard-temp'/>`); errCond(r) != stanza.ItemNotFound {
		t.Errorf("vCard for a stranger = %s", r)
	}
}

// TestAvatarNotDeclared: a network without Caps.Avatars still gives names
// (nick, vCard FN) but no photo element, and pictures it reports are
// ignored with a log line.
func TestAvatarNotDeclared(t *testing.T) {
	h, nw, hello := avatarSetup(t, true)
	pres := h.fresh(presenceFrom(hello, ""))
	nw.emit(t, legacy.Contact{Chat: "hello", Name: "Hello Echo", Avatar: echo.Avatar("hello"), AvatarType: "image/png"})
	h.send(`<presence xmlns='jabber:component:accept' type='probe' from='` + alice + `' to='` + hello + `'/>`)
	p := h.expect("presence on probe", pres)
	if p.Child(nsVCardUpdate, "x") != nil || p.ChildText(nsNickTest, "nick") != "Hello Echo" {
		t.Errorf("presence = %s", p)
	}
	r := h.iq(alice+"/res", hello, "get", `<vCard xmlns='vcard-temp'/>`)
	if v := r.Child("vcard-temp", "vCard"); v == nil || v.String() != `<vCard xmlns='vcard-temp'><FN>Hello Echo</FN><NICKNAME>Hello Echo</NICKNAME></vCard>` {
		t.Errorf("vCard = %s", r)
	}
	if !strings.Contains(h.log.String(), "does not declare Caps.Avatars") {
		t.Errorf("no log line for the undeclared avatar")
	}
}

// TestEchoIntroducesItself: the first message to an echo contact brings its
// name and generated picture, before the echo.
func TestEchoIntroducesItself(t *testing.T) {
	h, _, hello := avatarSetup(t, false)
	pres := h.fresh(presenceFrom(hello, ""))
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='m1' from='` + alice + `/res' to='` + hello + `'><body>hi</body></message>`)
	p := h.expect("presence with the echo picture", pres)
	if photo, _ := photoOf(p); photo != sha1Hex(echo.Avatar("hello")) || p.ChildText(nsNickTest, "nick") != "Hello Echo" {
		t.Errorf("presence = %s", p)
	}
	h.expect("echo", func(e *stanza.Element) bool {
		return e.Local == "message" && e.From() == hello && e.ChildText("", "body") == "hi"
	})
}
