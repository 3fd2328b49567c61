package bridges_test

// Stanza-level tests of the message extensions (protocol.md §10), both
// ways, on the echo network (every capability) and on echo variants with
// capabilities or reactions restricted.

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jabbergate/jabbergate/bridges"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/echo"
)

const contact = "hello@" + domain

// capsNetwork is the echo network with other Caps and reaction
// restrictions; its sessions still implement every optional interface, so
// a missing gate would show.
type capsNetwork struct {
	*echo.Network
	caps    legacy.Caps
	max     int
	allowed []string
}

func (n capsNetwork) Info() legacy.Info {
	i := n.Network.Info()
	i.Caps, i.MaxReactions, i.AllowedReactions = n.caps, n.max, n.allowed
	return i
}

func newCapsHarness(t *testing.T, caps legacy.Caps, max int, allowed ...string) *harness {
	e, _ := echo.New(nil)
	return newHarness(t, capsNetwork{Network: e, caps: caps, max: max, allowed: allowed})
}

// msg injects a message from alice's phone to the hello contact.
func (h *harness) msg(id, inner string) {
	h.t.Helper()
	h.send(fmt.Sprintf(`<message xmlns='jabber:component:accept' type='chat' id='%s' from='%s/phone' to='%s'>%s</message>`, id, alice, contact, inner))
}

// chat sends a message with origin-id = id and returns its echo. The
// message carries <active/>, as clients that take chat states send.
func (h *harness) chat(id, body string) *stanza.Element {
	h.t.Helper()
	h.msg(id, `<body>`+body+`</body><active xmlns='http://jabber.org/protocol/chatstates'/><origin-id xmlns='urn:xmpp:sid:0' id='`+id+`'/>`)
	return h.expect("echo of "+body, func(e *stanza.Element) bool {
		return e.Local == "message" && e.From() == contact && e.ChildText("", "body") == body
	})
}

func golden(t *testing.T, what string, got *stanza.Element, want string) {
	t.Helper()
	if got.String() != want {
		t.Errorf("%s:\n got %s\nwant %s", what, got, want)
	}
}

// expectError waits for the message error bound to id and checks its
// condition and that it carries a human-readable text.
func (h *harness) expectError(id string, cond stanza.Condition) *stanza.Element {
	h.t.Helper()
	r := h.expect("error for "+id, func(e *stanza.Element) bool { return e.ID() == id && e.Type() == "error" })
	pe := stanza.ParseError(r)
	if pe == nil || pe.Condition != cond || pe.Text == "" || r.From() != contact || r.To() != alice+"/phone" {
		h.t.Errorf("error for %s = %s, want %s with a text", id, r, cond)
	}
	return r
}

func TestInboundMessageMarkup(t *testing.T) {
	h := newHarness(t, nil)
	h.register(alice)
	e := h.chat("m1", "hi")
	golden(t, "echo", e, fmt.Sprintf(`<message xmlns='jabber:component:accept' type='chat' id='%s' from='%s' to='%s'><body>hi</body><active xmlns='http://jabber.org/protocol/chatstates'/><markable xmlns='urn:xmpp:chat-markers:0'/><origin-id xmlns='urn:xmpp:sid:0' id='%[1]s'/></message>`, e.ID(), contact, alice))
	// A client that writes without chat states gets none (XEP-0085
	// §5.1, rule 3): neither <active/> nor the contact's typing, until it
	// sends a chat state again.
	h.msg("m2", `<body>plain</body>`)
	e = h.expect("echo of plain", func(e *stanza.Element) bool { return e.ChildText("", "body") == "plain" })
	if e.Child("http://jabber.org/protocol/chatstates", "active") != nil {
		t.Errorf("chat state to a client that wrote without: %s", e)
	}
	h.msg("", `<composing xmlns='http://jabber.org/protocol/chatstates'/>`)
	h.expect("composing from the contact, once the client sent a chat state", func(e *stanza.Element) bool {
		return e.Child("http://jabber.org/protocol/chatstates", "composing") != nil
	})
	e = h.chat("m3", "again")
	if e.Child("http://jabber.org/protocol/chatstates", "active") == nil {
		t.Errorf("no <active/> once the client sends chat states again: %s", e)
	}
	// Without markers and chat states: neither <markable/> nor <active/>.
	h2 := newCapsHarness(t, legacy.Caps{Receipts: true}, 0)
	h2.register(alice)
	e = h2.chat("m1", "hi")
	if e.Child("urn:xmpp:chat-markers:0", "markable") != nil || e.Child("http://jabber.org/protocol/chatstates", "active") != nil {
		t.Errorf("markup without caps: %s", e)
	}
}

func TestCorrections(t *testing.T) {
	h := newHarness(t, nil)
	h.register(alice)
	// The correction is queued right behind the message it corrects.
	h.msg("m1", `<body>hi</body><origin-id xmlns='urn:xmpp:sid:0' id='m1'/>`)
	h.msg("c1", `<body>hello</body><replace xmlns='urn:xmpp:message-correct:0' id='m1'/>`)
	echo1 := h.expect("echo", func(e *stanza.Element) bool { return e.From() == contact && e.ChildText("", "body") == "hi" })
	c1 := h.expect("corrected echo", func(e *stanza.Element) bool { return e.Child("urn:xmpp:message-correct:0", "replace") != nil })
	golden(t, "correction", c1, fmt.Sprintf(`<message xmlns='jabber:component:accept' type='chat' id='%s' from='%s' to='%s'><body>hello</body><replace xmlns='urn:xmpp:message-correct:0' id='%s'/></message>`, c1.ID(), contact, alice, echo1.ID()))
	// A second correction still names the first id, in and out.
	h.msg("c2", `<body>hello again</body><replace xmlns='urn:xmpp:message-correct:0' id='m1'/>`)
	c2 := h.expect("second corrected echo", func(e *stanza.Element) bool { return e.ChildText("", "body") == "hello again" })
	if r := c2.Child("urn:xmpp:message-correct:0", "replace"); r == nil || r.Attr("id") != echo1.ID() || c2.ID() == c1.ID() || c2.ID() == echo1.ID() {
		t.Errorf("second correction = %s (first %s)", c2, c1)
	}
	// Unknown id: item-not-found, with the correction's id.
	h.msg("c3", `<body>x</body><replace xmlns='urn:xmpp:message-correct:0' id='nope'/>`)
	h.expectError("c3", stanza.ItemNotFound)
	// Corrections of the contact's messages are not the user's to make.
	h.msg("c4", `<body>x</body><replace xmlns='urn:xmpp:message-correct:0' id='`+echo1.ID()+`'/>`)
	h.expectError("c4", stanza.ItemNotFound)
}

// A correction on a network without edits goes out as a new message,
// naming the legacy id of the message it corrects (legacy.Message.Corrects:
// email keeps it in that message's thread).
func TestCorrectionWithoutEditsIsANewMessage(t *testing.T) {
	e, _ := echo.New(nil)
	net := correctsNet{capsNetwork: capsNetwork{Network: e, caps: legacy.Caps{Receipts: true}}, got: make(chan sentMessage, 8)}
	h := newHarness(t, net)
	h.register(alice)
	h.chat("m1", "hi")
	first := <-net.got
	h.msg("c1", `<body>hello</body><replace xmlns='urn:xmpp:message-correct:0' id='m1'/>`)
	echoed := h.expect("echo of the fallback", func(e *stanza.Element) bool {
		return e.From() == contact && strings.Contains(e.ChildText("", "body"), "hello")
	})
	if echoed.ChildText("", "body") != "Correction: hello" || echoed.Child("urn:xmpp:message-correct:0", "replace") != nil {
		t.Errorf("fallback = %s", echoed)
	}
	if s := <-net.got; s.m.Corrects != first.id || s.m.Text != "Correction: hello" {
		t.Errorf("fallback sent as %+v; want Corrects = %q, the first message's id", s.m, first.id)
	}
	// An id the gateway does not know: still sent, correcting nothing known.
	h.msg("c2", `<body>again</body><replace xmlns='urn:xmpp:message-correct:0' id='nope'/>`)
	h.expect("echo of the second fallback", func(e *stanza.Element) bool { return e.ChildText("", "body") == "Correction: again" })
	if s := <-net.got; s.m.Corrects != "" {
		t.Errorf("unknown id: Corrects = %q, want empty", s.m.Corrects)
	}
}

// correctsNet is capsNetwork that also records the messages Send sent.
type correctsNet struct {
	capsNetwork
	got chan sentMessage
}

type sentMessage struct {
	m  legacy.Message
	id legacy.MessageID
}

func (n correctsNet) Open(ctx context.Context, a legacy.Account, s legacy.Sink) (legacy.Session, error) {
	inner, err := n.capsNetwork.Open(ctx, a, s)
	return &correctsSession{Session: inner, got: n.got}, err
}

type correctsSession struct {
	legacy.Session
	got chan sentMessage
}

func (s *correctsSession) Send(ctx context.Context, m *legacy.Message) (legacy.MessageID, error) {
	id, err := s.Session.Send(ctx, m)
	if err == nil {
		s.got <- sentMessage{m: *m, id: id}
	}
	return id, err
}

func TestRetractions(t *testing.T) {
	h := newHarness(t, nil)
	h.register(alice)
	e1 := h.chat("m1", "one")
	e2 := h.chat("m2", "two")
	// XEP-0424 v1, with the fallback body a client adds: the body is not sent.
	h.msg("r1", `<retract xmlns='urn:xmpp:message-retract:1' id='m1'/><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:message-retract:1'/><body>/me retracted a message</body><store xmlns='urn:xmpp:hints'/>`)
	r1 := h.expect("retraction of the echo", func(e *stanza.Element) bool { return e.Child("urn:xmpp:message-retract:1", "retract") != nil })
	golden(t, "retraction", r1, fmt.Sprintf(`<message xmlns='jabber:component:accept' type='chat' id='%s' from='%s' to='%s'><retract xmlns='urn:xmpp:message-retract:1' id='%s'/><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:message-retract:1'/><body>/me retracted a message (your client does not support that)</body><store xmlns='urn:xmpp:hints'/></message>`, r1.ID(), contact, alice, e1.ID()))
	// The old :0 form inside <apply-to/>.
	h.msg("r2", `<apply-to xmlns='urn:xmpp:fasten:0' id='m2'><retract xmlns='urn:xmpp:message-retract:0'/></apply-to>`)
	h.expect("retraction of the second echo", func(e *stanza.Element) bool {
		r := e.Child("urn:xmpp:message-retract:1", "retract")
		return r != nil && r.Attr("id") == e2.ID()
	})
	h.msg("r3", `<retract xmlns='urn:xmpp:message-retract:1' id='unknown'/>`)
	h.expectError("r3", stanza.ItemNotFound)
	for _, r := range h.srv.Received() {
		if r.Local == "message" && r.ChildText("", "body") == "/me retracted a message" {
			t.Errorf("a retraction's fallback body was sent as a message: %s", r)
		}
	}

	// A network without retractions: feature-not-implemented at once.
	h2 := newCapsHarness(t, legacy.Caps{}, 0)
	h2.register(alice)
	h2.chat("m1", "one")
	h2.msg("r1", `<retract xmlns='urn:xmpp:message-retract:1' id='m1'/><body>/me retracted a message</body>`)
	h2.expectError("r1", stanza.FeatureNotImplemented)
}

func TestReactions(t *testing.T) {
	h := newHarness(t, nil)
	h.register(alice)
	e1 := h.chat("m1", "hi")
	// Reacting to the echo: the contact puts the same reactions on m1.
	h.msg("x1", `<reactions xmlns='urn:xmpp:reactions:0' id='`+e1.ID()+`'><reaction>👍</reaction><reaction>🎉</reaction><reaction>👍</reaction></reactions><store xmlns='urn:xmpp:hints'/>`)
	x := h.expect("reactions from the contact", func(e *stanza.Element) bool { return e.Child("urn:xmpp:reactions:0", "reactions") != nil })
	golden(t, "reactions", x, fmt.Sprintf(`<message xmlns='jabber:component:accept' type='chat' id='%s' from='%s' to='%s'><reactions xmlns='urn:xmpp:reactions:0' id='m1'><reaction>👍</reaction><reaction>🎉</reaction></reactions><store xmlns='urn:xmpp:hints'/></message>`, x.ID(), contact, alice))
	// An empty set removes them all, and is a new stanza.
	h.msg("x2", `<reactions xmlns='urn:xmpp:reactions:0' id='m1'/>`)
	x2 := h.expect("empty reactions", func(e *stanza.Element) bool {
		r := e.Child("urn:xmpp:reactions:0", "reactions")
		return r != nil && len(r.Children()) == 0
	})
	if x2.ID() == x.ID() {
		t.Errorf("reaction stanzas share an id: %s", x2)
	}
	h.msg("x3", `<reactions xmlns='urn:xmpp:reactions:0' id='nope'><reaction>👍</reaction></reactions>`)
	h.expectError("x3", stanza.ItemNotFound)
	h.msg("x4", `<reactions xmlns='urn:xmpp:reactions:0'><reaction>👍</reaction></reactions>`)
	h.expectError("x4", stanza.BadRequest)
}

func TestReactionRestrictions(t *testing.T) {
	h := newCapsHarness(t, legacy.Caps{Reactions: true}, 1, "👍", "❤️")
	h.register(alice)
	h.chat("m1", "hi")
	h.msg("x1", `<reactions xmlns='urn:xmpp:reactions:0' id='m1'><reaction>🦄</reaction></reactions>`)
	if r := h.expectError("x1", stanza.NotAcceptable); !strings.Contains(stanza.ParseError(r).Text, "🦄") {
		t.Errorf("error text does not name the reaction: %s", r)
	}
	h.msg("x2", `<reactions xmlns='urn:xmpp:reactions:0' id='m1'><reaction>👍</reaction><reaction>❤️</reaction></reactions>`)
	h.expectError("x2", stanza.NotAcceptable)
	h.msg("x3", `<reactions xmlns='urn:xmpp:reactions:0' id='m1'><reaction>❤️</reaction></reactions>`)
	h.expect("allowed reaction", func(e *stanza.Element) bool {
		r := e.Child("urn:xmpp:reactions:0", "reactions")
		return r != nil && r.Attr("id") == "m1" && r.ChildText("", "reaction") == "❤️"
	})
}

func TestReactionWithoutReactionsIsText(t *testing.T) {
	h := newCapsHarness(t, legacy.Caps{Receipts: true}, 0)
	h.register(alice)
	h.chat("m1", "hi")
	h.msg("x1", `<reactions xmlns='urn:xmpp:reactions:0' id='m1'><reaction>👍</reaction></reactions>`)
	h.expect("text fallback", func(e *stanza.Element) bool { return e.ChildText("", "body") == "Reacted 👍" })
	// Removing reactions cannot be said in text: dropped without error.
	h.msg("x2", `<reactions xmlns='urn:xmpp:reactions:0' id='m1'/>`)
	h.chat("m2", "after")
	for _, r := range h.srv.Received() {
		if r.ID() == "x2" {
			t.Errorf("empty reaction set answered: %s", r)
		}
	}
}

func TestReplies(t *testing.T) {
	h := newHarness(t, nil)
	h.register(alice)
	e1 := h.chat("m1", "hi there")
	// A reply with a quote fallback of 11 code points ("> hi there\n");
	// the echo network echoes the text it got, so the echo shows that the
	// quote was stripped, and it replies to the same message with a quote
	// the gateway adds.
	h.msg("p1", `<body>&gt; hi there
ünï 🎉</body><reply xmlns='urn:xmpp:reply:0' to='`+contact+`' id='`+e1.ID()+`'/><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'><body start='0' end='11'/></fallback><active xmlns='http://jabber.org/protocol/chatstates'/>`)
	p := h.expect("echo of the reply", func(e *stanza.Element) bool { return e.Child("urn:xmpp:reply:0", "reply") != nil })
	golden(t, "reply", p, fmt.Sprintf(`<message xmlns='jabber:component:accept' type='chat' id='%s' from='%s' to='%s'><body>&gt; hi there
ünï 🎉</body><reply xmlns='urn:xmpp:reply:0' to='%[2]s' id='%[4]s'/><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'><body start='0' end='11'/></fallback><active xmlns='http://jabber.org/protocol/chatstates'/><markable xmlns='urn:xmpp:chat-markers:0'/><origin-id xmlns='urn:xmpp:sid:0' id='%[1]s'/></message>`, p.ID(), contact, alice, e1.ID()))
	// A reply to an unknown message keeps its quote.
	h.msg("p2", `<body>&gt; lost
answer</body><reply xmlns='urn:xmpp:reply:0' to='`+contact+`' id='nope'/><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'><body start='0' end='7'/></fallback>`)
	h.expect("echo with the quote", func(e *stanza.Element) bool { return e.ChildText("", "body") == "> lost\nanswer" })
}

func TestChatStatesAndMarkers(t *testing.T) {
	h := newHarness(t, nil)
	h.register(alice)
	e1 := h.chat("m1", "hi")
	h.msg("", `<composing xmlns='http://jabber.org/protocol/chatstates'/><no-store xmlns='urn:xmpp:hints'/>`)
	c := h.expect("composing from the contact", func(e *stanza.Element) bool {
		return e.Child("http://jabber.org/protocol/chatstates", "composing") != nil
	})
	if !strings.HasPrefix(c.ID(), "cs-") {
		t.Errorf("standalone chat state without an id of its own: %s", c)
	}
	golden(t, "composing", c, fmt.Sprintf(`<message xmlns='jabber:component:accept' type='chat' id='%s' from='%s' to='%s'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`, c.ID(), contact, alice))
	h.msg("", `<active xmlns='http://jabber.org/protocol/chatstates'/>`)
	h.expect("paused from the contact", func(e *stanza.Element) bool {
		return e.Child("http://jabber.org/protocol/chatstates", "paused") != nil
	})
	// Displayed marker on the echo: the contact read m1.
	h.msg("d1", `<displayed xmlns='urn:xmpp:chat-markers:0' id='`+e1.ID()+`'/>`)
	d := h.expect("displayed from the contact", func(e *stanza.Element) bool { return e.Child("urn:xmpp:chat-markers:0", "displayed") != nil })
	golden(t, "displayed", d, fmt.Sprintf(`<message xmlns='jabber:component:accept' type='chat' id='%s' from='%s' to='%s'><displayed xmlns='urn:xmpp:chat-markers:0' id='m1'/></message>`, d.ID(), contact, alice))
	// Nothing of this went through the durable outbox, and an unknown
	// marker id is ignored without an answer.
	h.msg("d2", `<displayed xmlns='urn:xmpp:chat-markers:0' id='nope'/>`)
	h.chat("m2", "after")
	if n, _ := h.st.Len(context.Background(), store.Queue{Bridge: domain, JID: alice, Kind: store.Outbox}); n > 1 {
		t.Errorf("outbox has %d entries", n)
	}
	for _, r := range h.srv.Received() {
		if r.ID() == "d2" || r.Type() == "error" {
			t.Errorf("unexpected answer: %s", r)
		}
	}
}

func TestUnregisteredExtensions(t *testing.T) {
	h := newHarness(t, nil)
	h.msg("x1", `<reactions xmlns='urn:xmpp:reactions:0' id='m1'><reaction>👍</reaction></reactions>`)
	h.expectError("x1", stanza.RegistrationRequired)
	// Chat states from strangers are ignored.
	h.msg("s1", `<composing xmlns='http://jabber.org/protocol/chatstates'/>`)
	h.iq(alice, domain, "get", `<ping xmlns='urn:xmpp:ping'/>`)
}

// TestExtensionsStayInTheirConversation: a correction, retraction,
// reaction or reply sent to one contact about a message of the
// conversation with another is refused as unknown there (XEP-0308 §5,
// XEP-0424, XEP-0444, XEP-0461 refer to a message of the same
// conversation): it never reaches the network for the wrong chat.
func TestExtensionsStayInTheirConversation(t *testing.T) {
	h := newHarness(t, nil)
	h.register(alice)
	e1 := h.chat("m1", "hi")
	const other = "upper@" + domain
	send := func(id, inner string) {
		h.send(fmt.Sprintf(`<message xmlns='jabber:component:accept' type='chat' id='%s' from='%s/phone' to='%s'>%s</message>`, id, alice, other, inner))
	}
	for _, c := range []struct{ id, inner string }{
		{"x1", `<body>fix</body><replace xmlns='urn:xmpp:message-correct:0' id='m1'/>`},
		{"x2", `<retract xmlns='urn:xmpp:message-retract:1' id='m1'/>`},
		{"x3", `<reactions xmlns='urn:xmpp:reactions:0' id='m1'><reaction>🎉</reaction></reactions>`},
		{"x4", `<reactions xmlns='urn:xmpp:reactions:0' id='` + e1.ID() + `'><reaction>🎉</reaction></reactions>`},
	} {
		send(c.id, c.inner)
		r := h.expect("error for "+c.id, func(e *stanza.Element) bool { return e.ID() == c.id && e.Type() == "error" })
		if pe := stanza.ParseError(r); pe == nil || pe.Condition != stanza.ItemNotFound || r.From() != other {
			t.Errorf("%s to another contact = %s, want item-not-found from %s", c.id, r, other)
		}
	}
	// A reply to hello's message, sent to upper: a plain message with
	// its quote, not a reply to a message upper never saw.
	send("x5", `<reply xmlns='urn:xmpp:reply:0' to='`+contact+`' id='`+e1.ID()+`'/><body>&gt; hi
answer</body><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'><body start='0' end='5'/></fallback>`)
	r := h.expect("upper's echo of the reply", func(e *stanza.Element) bool {
		return e.From() == other && e.Type() != "error" && e.Local == "message" && e.ChildText("", "body") != ""
	})
	if r.Child("urn:xmpp:reply:0", "reply") != nil {
		t.Errorf("a reply across conversations was sent as a reply: %s", r)
	}
	// The same extensions sent to hello still work.
	h.msg("ok1", `<retract xmlns='urn:xmpp:message-retract:1' id='m1'/>`)
	h.expect("retraction in its conversation", func(e *stanza.Element) bool {
		rt := e.Child("urn:xmpp:message-retract:1", "retract")
		return rt != nil && rt.Attr("id") == e1.ID() && e.From() == contact
	})
}

// TestLongInboundMessageCutToFit: an inbound message longer than the
// link's max_stanza_size is cut to fit with a note, not refused by the
// link (a stanza over the limit makes the server close the stream, for
// every user, after each reconnection).
func TestLongInboundMessageCutToFit(t *testing.T) {
	h := newTunedHarness(t, nil, func(o *bridges.Options) { o.Link.MaxStanzaSize = 8192 })
	h.register(alice)
	long := strings.Repeat("0123456789", 790) // fits as the user's stanza; its echo with markup would not
	h.msg("long1", `<body>`+long+`</body>`)
	e := h.expect("cut echo", func(e *stanza.Element) bool {
		return e.From() == contact && strings.HasPrefix(e.ChildText("", "body"), "0123456789")
	})
	body := e.ChildText("", "body")
	if !strings.Contains(body, "cut by the gateway") || len(e.String()) > 8192 {
		t.Errorf("echo of %d bytes, body ends %q", len(e.String()), body[len(body)-100:])
	}
}

// goneNet is echo whose messages are gone on the legacy side when edited.
type goneNet struct{ *echo.Network }

func (n goneNet) Open(ctx context.Context, a legacy.Account, s legacy.Sink) (legacy.Session, error) {
	inner, err := n.Network.Open(ctx, a, s)
	return &goneSession{Session: inner}, err
}

type goneSession struct{ legacy.Session }

func (s *goneSession) Edit(ctx context.Context, chat legacy.ChatID, id legacy.MessageID, text string) error {
	return &legacy.ReasonError{Reason: "Bad Request: message to edit not found", Err: legacy.ErrNotFound}
}

// A correction the network refuses because the message is gone says
// so: the message is unknown, not the recipient.
func TestCorrectionOfAGoneMessage(t *testing.T) {
	e, _ := echo.New(nil)
	h := newHarness(t, goneNet{e})
	h.register(alice)
	h.chat("m1", "hi")
	h.msg("c1", `<body>fixed</body><replace xmlns='urn:xmpp:message-correct:0' id='m1'/>`)
	r := h.expectError("c1", stanza.ItemNotFound)
	if text := stanza.ParseError(r).Text; strings.Contains(text, "recipient") || !strings.Contains(text, "no longer knows the message") || !strings.Contains(text, "message to edit not found") {
		t.Errorf("error text = %q", text)
	}
}

// A message whose only text is not a plain body (a subject, XHTML-IM, a
// body in another namespace) is refused with a reason, not dropped.
func TestContentWithoutBodyRefused(t *testing.T) {
	h := newHarness(t, nil)
	h.register(alice)
	for id, inner := range map[string]string{
		"s1": `<subject>only a subject</subject>`,
		"x1": `<html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'><p>formatted</p></body></html>`,
		"f1": `<body xmlns='urn:other'>FOREIGN ONLY</body>`,
	} {
		h.msg(id, inner)
		h.expectError(id, stanza.NotAcceptable)
	}
	// Chat states alone are not answered; the message after them is.
	h.msg("c1", `<active xmlns='http://jabber.org/protocol/chatstates'/>`)
	h.msg("f2", `<body xmlns='urn:other'>FOREIGN</body><body>REAL</body>`)
	h.expect("echo of the real body", func(e *stanza.Element) bool { return e.ChildText("", "body") == "REAL" })
	for _, r := range h.srv.Received() {
		if r.ID() == "c1" {
			t.Errorf("chat state answered: %s", r)
		}
	}
}
