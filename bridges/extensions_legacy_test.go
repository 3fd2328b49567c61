package bridges_test

// legacy → XMPP: every event kind of a scripted network, as stanzas.

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
)

// scripted is a network whose session sends nothing back by itself:
// Send returns "L1", "L2", …; the test emits events through its sink.
type scripted struct {
	caps legacy.Caps
	mu   sync.Mutex
	sink legacy.Sink
	n    int
	sent []legacy.Message // what Send was given
}

func (s *scripted) Info() legacy.Info {
	return legacy.Info{Name: "scripted", DiscoType: "xmpp", DisplayName: "Scripted", Caps: s.caps}
}

func (s *scripted) Open(ctx context.Context, a legacy.Account, sink legacy.Sink) (legacy.Session, error) {
	s.mu.Lock()
	s.sink = sink
	s.mu.Unlock()
	return s, nil
}

func (s *scripted) Run(ctx context.Context) error {
	_ = s.emit(ctx, legacy.StatusEvent{Status: legacy.StatusConnected})
	<-ctx.Done()
	return nil
}

func (s *scripted) Send(ctx context.Context, m *legacy.Message) (legacy.MessageID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	s.sent = append(s.sent, *m)
	return legacy.MessageID(fmt.Sprintf("L%d", s.n)), nil
}

// sentMessages returns a copy of what Send was given.
func (s *scripted) sentMessages() []legacy.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]legacy.Message(nil), s.sent...)
}

func (s *scripted) emit(ctx context.Context, ev legacy.Event) error {
	s.mu.Lock()
	sink := s.sink
	s.mu.Unlock()
	return sink.Emit(ctx, ev)
}

func (s *scripted) waitSink(t *testing.T) {
	deadline := time.Now().Add(wait)
	for {
		s.mu.Lock()
		ok := s.sink != nil
		s.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("session not opened")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLegacyEventsToXMPP(t *testing.T) {
	net := &scripted{caps: legacy.Caps{Edits: true, Retractions: true, Reactions: true, ChatStates: true, Markers: true, Receipts: true, Replies: true}}
	h := newHarness(t, net)
	h.register(alice)
	net.waitSink(t)
	ctx := context.Background()
	emit := func(ev legacy.Event) {
		t.Helper()
		if err := net.emit(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	// The user's message becomes L1.
	h.msg("m1", `<body>where are you?</body><active xmlns='http://jabber.org/protocol/chatstates'/><origin-id xmlns='urn:xmpp:sid:0' id='o1'/><request xmlns='urn:xmpp:receipts'/>`)
	h.expect("receipt of m1 (Send success means delivered)", func(e *stanza.Element) bool {
		r := e.Child("urn:xmpp:receipts", "received")
		return r != nil && r.Attr("id") == "m1"
	})

	// A backlog message that replies to the user's: delay stamp, reply to
	// her origin-id with her text quoted.
	sent := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	emit(legacy.Incoming{ID: "in1", Chat: "hello", Text: "on my way", ReplyTo: "L1", Time: sent})
	in1 := h.expect("incoming", func(e *stanza.Element) bool { return e.Child("urn:xmpp:reply:0", "reply") != nil })
	golden(t, "incoming reply", in1, fmt.Sprintf(`<message xmlns='jabber:component:accept' type='chat' id='%s' from='%s' to='%s'><body>&gt; where are you?
on my way</body><reply xmlns='urn:xmpp:reply:0' to='%[3]s' id='o1'/><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'><body start='0' end='17'/></fallback><active xmlns='http://jabber.org/protocol/chatstates'/><markable xmlns='urn:xmpp:chat-markers:0'/><origin-id xmlns='urn:xmpp:sid:0' id='%[1]s'/><delay xmlns='urn:xmpp:delay' stamp='2026-01-05T10:00:00Z' from='%[4]s'/></message>`, in1.ID(), contact, alice, domain))

	// Two edits: both replace the first id, with distinct stanza ids.
	emit(legacy.Edited{ID: "in1", Chat: "hello", Text: "on my way, 5 min", Time: sent.Add(time.Minute)})
	emit(legacy.Edited{ID: "in1", Chat: "hello", Text: "on my way, 10 min", Time: sent.Add(2 * time.Minute)})
	var edits []*stanza.Element
	for _, text := range []string{"on my way, 5 min", "on my way, 10 min"} {
		ed := h.expect("edit "+text, func(e *stanza.Element) bool { return e.ChildText("", "body") == text })
		golden(t, "edit", ed, fmt.Sprintf(`<message xmlns='jabber:component:accept' type='chat' id='%s' from='%s' to='%s'><body>%s</body><replace xmlns='urn:xmpp:message-correct:0' id='%s'/></message>`, ed.ID(), contact, alice, text, in1.ID()))
		edits = append(edits, ed)
	}
	if edits[0].ID() == edits[1].ID() {
		t.Errorf("two edits share stanza id %s", edits[0].ID())
	}

	// Receipt, displayed marker and reactions on the user's message.
	emit(legacy.Receipt{ID: "L1", Chat: "hello"})
	rc := h.expect("receipt event", func(e *stanza.Element) bool {
		r := e.Child("urn:xmpp:receipts", "received")
		return r != nil && e.To() == alice
	})
	golden(t, "receipt", rc, fmt.Sprintf(`<message xmlns='jabber:component:accept' type='chat' id='%s' from='%s' to='%s'><received xmlns='urn:xmpp:receipts' id='m1'/></message>`, rc.ID(), contact, alice))
	emit(legacy.Displayed{ID: "L1", Chat: "hello"})
	d := h.expect("displayed", func(e *stanza.Element) bool { return e.Child("urn:xmpp:chat-markers:0", "displayed") != nil })
	golden(t, "displayed", d, fmt.Sprintf(`<message xmlns='jabber:component:accept' type='chat' id='%s' from='%s' to='%s'><displayed xmlns='urn:xmpp:chat-markers:0' id='m1'/></message>`, d.ID(), contact, alice))
	emit(legacy.Reacted{ID: "L1", Chat: "hello", Emojis: []string{"❤️"}})
	x := h.expect("reaction", func(e *stanza.Element) bool { return e.Child("urn:xmpp:reactions:0", "reactions") != nil })
	golden(t, "reaction", x, fmt.Sprintf(`<message xmlns='jabber:component:accept' type='chat' id='%s' from='%s' to='%s'><reactions xmlns='urn:xmpp:reactions:0' id='o1'><reaction>❤️</reaction></reactions><store xmlns='urn:xmpp:hints'/></message>`, x.ID(), contact, alice))
	// A reaction to the contact's own message names its stanza id.
	emit(legacy.Reacted{ID: "in1", Chat: "hello", Emojis: []string{"👍"}})
	h.expect("reaction on in1", func(e *stanza.Element) bool {
		r := e.Child("urn:xmpp:reactions:0", "reactions")
		return r != nil && r.Attr("id") == in1.ID()
	})
	// Typing: composing, then paused, never twice the same.
	emit(legacy.Typing{Chat: "hello", Typing: true})
	emit(legacy.Typing{Chat: "hello", Typing: true})
	emit(legacy.Typing{Chat: "hello", Typing: false})
	h.expect("paused", func(e *stanza.Element) bool { return e.Child("http://jabber.org/protocol/chatstates", "paused") != nil })
	n := 0
	for _, r := range h.srv.Received() {
		if r.Child("http://jabber.org/protocol/chatstates", "composing") != nil {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d composing notifications, want 1", n)
	}
	// A client that writes without chat states gets none from then on
	// (XEP-0085 §5.1, rule 3): no typing, no <active/>.
	h.msg("m9", `<body>no states here</body><request xmlns='urn:xmpp:receipts'/>`)
	h.expect("receipt of m9", func(e *stanza.Element) bool {
		r := e.Child("urn:xmpp:receipts", "received")
		return r != nil && r.Attr("id") == "m9"
	})
	emit(legacy.Typing{Chat: "hello", Typing: true})
	emit(legacy.Incoming{ID: "in9", Chat: "hello", Text: "after typing"})
	in9 := h.expect("in9", func(e *stanza.Element) bool { return e.ChildText("", "body") == "after typing" })
	if in9.Child("http://jabber.org/protocol/chatstates", "active") != nil {
		t.Errorf("<active/> to a client that wrote without chat states: %s", in9)
	}
	for _, r := range h.srv.Received() {
		if r.Child("http://jabber.org/protocol/chatstates", "composing") != nil {
			n--
		}
	}
	if n != 0 {
		t.Errorf("%d composing notifications to a client that wrote without chat states", -n)
	}
	// Retraction of the contact's message.
	emit(legacy.Retracted{ID: "in1", Chat: "hello"})
	h.expect("retraction", func(e *stanza.Element) bool {
		r := e.Child("urn:xmpp:message-retract:1", "retract")
		return r != nil && r.Attr("id") == in1.ID() && e.Child("urn:xmpp:hints", "store") != nil
	})
}

func TestUndeclaredLegacyEventsDropped(t *testing.T) {
	net := &scripted{caps: legacy.Caps{}}
	h := newHarness(t, net)
	h.register(alice)
	net.waitSink(t)
	ctx := context.Background()
	for _, ev := range []legacy.Event{
		legacy.Incoming{ID: "in1", Chat: "hello", Text: "plain", ReplyTo: "zz"},
		legacy.Edited{ID: "in1", Chat: "hello", Text: "edited"},
		legacy.Retracted{ID: "in1", Chat: "hello"},
		legacy.Reacted{ID: "in1", Chat: "hello", Emojis: []string{"👍"}},
		legacy.Displayed{ID: "in1", Chat: "hello"},
		legacy.Typing{Chat: "hello", Typing: true},
		legacy.Receipt{ID: "in1", Chat: "hello"},
		legacy.Incoming{ID: "in2", Chat: "hello", Text: "last"},
	} {
		if err := net.emit(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	h.expect("last", func(e *stanza.Element) bool { return e.ChildText("", "body") == "last" })
	for _, r := range h.srv.Received() {
		if r.Local == "message" && r.ChildText("", "body") != "plain" && r.ChildText("", "body") != "last" {
			t.Errorf("undeclared feature sent: %s", r)
		}
		if r.Child("urn:xmpp:reply:0", "reply") != nil || r.Child("urn:xmpp:chat-markers:0", "markable") != nil {
			t.Errorf("undeclared markup: %s", r)
		}
	}
}
