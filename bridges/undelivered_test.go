package bridges_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/echo"
)

// bounceNet is echo, except that a message "bounce" is accepted by Send
// and reported undelivered when the next message is sent (the outbox is
// sequential, so the first message's id map is stored by then), as an
// email bounce or a failed SMS delivery report would be.
type bounceNet struct{ *echo.Network }

func (n bounceNet) Open(ctx context.Context, a legacy.Account, s legacy.Sink) (legacy.Session, error) {
	inner, err := n.Network.Open(ctx, a, s)
	return &bounceSession{Session: inner, sink: s}, err
}

type bounceSession struct {
	legacy.Session
	sink    legacy.Sink
	pending *legacy.Undelivered
}

func (s *bounceSession) Send(ctx context.Context, m *legacy.Message) (legacy.MessageID, error) {
	if s.pending != nil {
		if err := s.sink.Emit(ctx, *s.pending); err != nil {
			return "", err
		}
		s.pending = nil
	}
	if m.Text != "bounce" {
		return s.Session.Send(ctx, m)
	}
	id := legacy.MessageID("b-" + m.Key)
	s.pending = &legacy.Undelivered{ID: id, Chat: m.Chat,
		Err: &legacy.CodeError{Code: "550 5.1.1", Text: "mailbox unavailable", Err: legacy.ErrNotFound}}
	return id, nil
}

func TestUndeliveredBecomesErrorOnTheOriginalMessage(t *testing.T) {
	e, _ := echo.New(nil)
	h := newHarness(t, bounceNet{e})
	h.register(alice)
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='orig-1' from='` + alice + `/p' to='hello@` + domain + `'><body>bounce</body></message>`)
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='orig-2' from='` + alice + `/p' to='hello@` + domain + `'><body>next</body></message>`)
	r := h.expect("late error", func(e *stanza.Element) bool { return e.ID() == "orig-1" && e.Type() == "error" })
	pe := stanza.ParseError(r)
	if r.From() != "hello@"+domain || pe.Condition != stanza.ItemNotFound || pe.App == nil || pe.App.Attr("code") != "550 5.1.1" ||
		!strings.Contains(pe.Text, "mailbox unavailable") {
		t.Errorf("undelivered = %s", r)
	}
}
