package bridges_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jabbergate/jabbergate/bridges"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/echo"
)

// carbonNet is echo, except that a message "carbon: TEXT" makes the legacy
// side report TEXT as written by the user from the legacy app.
type carbonNet struct{ *echo.Network }

func (c carbonNet) Open(ctx context.Context, a legacy.Account, s legacy.Sink) (legacy.Session, error) {
	inner, err := c.Network.Open(ctx, a, s)
	return &carbonSession{Session: inner, sink: s}, err
}

type carbonSession struct {
	legacy.Session
	sink legacy.Sink
}

func (s *carbonSession) Send(ctx context.Context, m *legacy.Message) (legacy.MessageID, error) {
	if text, ok := strings.CutPrefix(m.Text, "carbon: "); ok {
		err := s.sink.Emit(ctx, legacy.Incoming{ID: legacy.MessageID("c-" + m.Key), Chat: m.Chat, Text: text, Carbon: true})
		return legacy.MessageID("s-" + m.Key), err
	}
	return s.Session.Send(ctx, m)
}

func TestCarbonWithoutPrivilegeIsStillDelivered(t *testing.T) {
	e, _ := echo.New(nil)
	h := newHarness(t, carbonNet{e})
	h.register(alice)
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='c1' from='` + alice + `/p' to='hello@` + domain + `'><body>carbon: sent from my phone</body></message>`)
	m := h.expect("fallback copy", func(e *stanza.Element) bool {
		return strings.Contains(e.ChildText("", "body"), "sent from my phone")
	})
	if m.From() != "hello@"+domain || m.To() != alice || !strings.HasPrefix(m.ChildText("", "body"), "You wrote from Echo: ") {
		t.Errorf("fallback = %s", m)
	}
}

func TestCarbonWithPrivilegeIsSentAsTheUser(t *testing.T) {
	e, _ := echo.New(nil)
	h := newHarness(t, carbonNet{e})
	h.send(advertisement("urn:xmpp:privilege:2"))
	h.waitLog("XEP-0356 privileges granted")
	h.register(alice)
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='c1' from='` + alice + `/p' to='hello@` + domain + `'><body>carbon: sent from my phone</body></message>`)
	m := h.expect("privileged message", func(e *stanza.Element) bool {
		return e.Local == "message" && e.Child("urn:xmpp:privilege:2", "privilege") != nil
	})
	inner := m.Child("", "privilege").Child("urn:xmpp:forward:0", "forwarded").Child("", "message")
	if m.To() != "localhost" || m.From() != domain || inner == nil || inner.From() != alice || inner.To() != "hello@"+domain ||
		inner.ChildText("", "body") != "sent from my phone" || inner.Space != stanza.NSClient {
		t.Errorf("privileged message = %s", m)
	}
}

// With the smallest link limit the config allows, a short carbon is
// delivered as it is (its text budget is the stanza's, not less).
func TestCarbonFitsASmallLink(t *testing.T) {
	e, _ := echo.New(nil)
	h := newTunedHarness(t, carbonNet{e}, func(o *bridges.Options) { o.Link.MaxStanzaSize = 10000 })
	h.register(alice)
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='c1' from='` + alice + `/p' to='hello@` + domain + `'><body>carbon: sent from my phone</body></message>`)
	m := h.expect("fallback copy", func(e *stanza.Element) bool {
		return strings.HasPrefix(e.ChildText("", "body"), "You wrote from Echo: ")
	})
	if m.ChildText("", "body") != "You wrote from Echo: sent from my phone" {
		t.Errorf("fallback = %s", m)
	}
}
