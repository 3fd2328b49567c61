package bridges_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges"
	"github.com/jabbergate/jabbergate/bridges/store"
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

// A late failure reaches the user's available resources as an error on
// the original message, and every resource, online or not, as a notice to
// the bare JID: a server discards an error to a bare JID (RFC 6121).
func TestUndeliveredBecomesErrorOnTheOriginalMessage(t *testing.T) {
	e, _ := echo.New(nil)
	h := newHarness(t, bounceNet{e})
	h.register(alice)
	h.send(`<presence xmlns='jabber:component:accept' from='` + alice + `/p' to='` + domain + `'/>`)
	h.iq(alice, domain, "get", `<ping xmlns='urn:xmpp:ping'/>`) // the presence was handled
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='orig-1' from='` + alice + `/p' to='hello@` + domain + `'><body>bounce</body></message>`)
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='orig-2' from='` + alice + `/p' to='hello@` + domain + `'><body>next</body></message>`)
	r := h.expect("late error", func(e *stanza.Element) bool { return e.ID() == "orig-1" && e.Type() == "error" })
	pe := stanza.ParseError(r)
	if r.From() != "hello@"+domain || r.To() != alice+"/p" || pe.Condition != stanza.ItemNotFound || pe.App == nil || pe.App.Attr("code") != "550 5.1.1" ||
		!strings.Contains(pe.Text, "mailbox unavailable") {
		t.Errorf("undelivered = %s", r)
	}
	n := h.expect("notice", func(e *stanza.Element) bool { return strings.HasPrefix(e.ChildText("", "body"), "⚠ Not delivered") })
	if n.To() != alice || n.From() != "hello@"+domain || n.Type() != "chat" || !strings.Contains(n.ChildText("", "body"), "mailbox unavailable") {
		t.Errorf("notice = %s", n)
	}
}

func TestUndeliveredWhileOfflineIsANotice(t *testing.T) {
	e, _ := echo.New(nil)
	h := newHarness(t, bounceNet{e})
	h.register(alice)
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='orig-1' from='` + alice + `/gone' to='hello@` + domain + `'><body>bounce</body></message>`)
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='orig-2' from='` + alice + `/gone' to='hello@` + domain + `'><body>next</body></message>`)
	n := h.expect("notice", func(e *stanza.Element) bool { return strings.HasPrefix(e.ChildText("", "body"), "⚠ Not delivered") })
	if n.To() != alice || !strings.Contains(n.ChildText("", "body"), "mailbox unavailable") {
		t.Errorf("notice = %s", n)
	}
	h.expect("echo of the next", func(e *stanza.Element) bool { return e.ChildText("", "body") == "next" })
	for _, st := range h.srv.Received() {
		if st.Type() == "error" && st.ID() == "orig-1" {
			t.Errorf("error sent with no resource known to be online: %s", st)
		}
	}
}

// A message held by transient failures longer than DelayNotice: its
// sender is told once why and until when, and it is still sent.
func TestDelayedMessageIsToldOnce(t *testing.T) {
	e, _ := echo.New(nil)
	f := &flaky{Network: e, fails: 6, err: &legacy.RateLimitError{RetryAfter: 30 * time.Millisecond}}
	h := newTunedHarness(t, f, func(o *bridges.Options) { o.DelayNotice = 60 * time.Millisecond })
	h.register(alice)
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='d1' from='` + alice + `/p' to='hello@` + domain + `'><body>wait for me</body></message>`)
	h.expect("echo after the retries", func(e *stanza.Element) bool { return e.ChildText("", "body") == "wait for me" })
	var notices []*stanza.Element
	for _, st := range h.srv.Received() {
		if strings.HasPrefix(st.ChildText("", "body"), "⌛") {
			notices = append(notices, st)
		}
	}
	if len(notices) != 1 {
		t.Fatalf("%d delay notices, want 1: %v", len(notices), notices)
	}
	n := notices[0]
	if body := n.ChildText("", "body"); n.To() != alice || n.From() != "hello@"+domain || n.Type() != "chat" ||
		!strings.Contains(body, "“wait for me”") || !strings.Contains(body, "slow down") || !strings.Contains(body, "sends it at") {
		t.Errorf("delay notice = %s", n)
	}
}

// A message whose next attempt would come long after DelayNotice is
// tried again when it has waited that long, and its sender is told then
// if that attempt fails too, not a backoff delay later.
func TestDelayNoticeNotPostponedByBackoff(t *testing.T) {
	e, _ := echo.New(nil)
	// The network's own answer (as Telegram's and the SMS providers' 5xx
	// carry it) is named in the notice.
	f := &flaky{Network: e, fails: 2, err: fmt.Errorf("send: %w", &legacy.CodeError{Code: "503", Text: "Service Unavailable", Err: legacy.ErrUnavailable})}
	h := newTunedHarness(t, f, func(o *bridges.Options) {
		o.DelayNotice = 100 * time.Millisecond
		o.RetryMin, o.RetryMax = time.Hour, time.Hour // the backoff alone would wait an hour
	})
	h.register(alice)
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='n1' from='` + alice + `/p' to='hello@` + domain + `'><body>tell me</body></message>`)
	n := h.expect("the delay notice", func(e *stanza.Element) bool { return strings.HasPrefix(e.ChildText("", "body"), "⌛") })
	if body := n.ChildText("", "body"); !strings.Contains(body, "“tell me”") || !strings.Contains(body, "cannot be reached (503 Service Unavailable)") {
		t.Errorf("delay notice = %s", n)
	}
}

// The delay notice is sent once, not again by each restart of the
// gateway while the message still waits.
func TestDelayNoticeOnceAcrossRestarts(t *testing.T) {
	e, _ := echo.New(nil)
	f := &flaky{Network: e, fails: 1000, err: fmt.Errorf("connection refused: %w", legacy.ErrUnavailable)}
	h := newTunedHarness(t, f, func(o *bridges.Options) { o.DelayNotice = 50 * time.Millisecond })
	h.register(alice)
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='r1' from='` + alice + `/p' to='hello@` + domain + `'><body>still waiting</body></message>`)
	isNotice := func(e *stanza.Element) bool { return strings.HasPrefix(e.ChildText("", "body"), "⌛") }
	h.expect("the delay notice", isNotice)
	attempts := func() int { f.mu.Lock(); defer f.mu.Unlock(); return 1000 - f.fails }
	for range 2 {
		h.stop()
		h.start(f)
		before := attempts()
		deadline := time.Now().Add(wait)
		for attempts() < before+2 { // tried again, past DelayNotice, after the restart
			if time.Now().After(deadline) {
				t.Fatalf("no new attempt after the restart (%d attempts)", attempts())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if n := h.count(isNotice); n != 1 {
		t.Errorf("%d delay notices across two restarts, want 1", n)
	}
}

// A message that expires after retries: the error goes to the sending
// resource, and a notice to the bare JID (that resource may be gone).
func TestExpiredMessageIsToldWithANotice(t *testing.T) {
	e, _ := echo.New(nil)
	f := &flaky{Network: e, fails: -1, err: fmt.Errorf("connection refused: %w", legacy.ErrUnavailable)}
	h := newTunedHarness(t, f, func(o *bridges.Options) { o.DelayNotice = 50 * time.Millisecond; o.OutboxTTL = 300 * time.Millisecond })
	h.register(alice)
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='x1' from='` + alice + `/p' to='hello@` + domain + `'><body>too late</body></message>`)
	r := h.expect("error", func(e *stanza.Element) bool { return e.ID() == "x1" && e.Type() == "error" })
	if r.To() != alice+"/p" || stanza.ParseError(r).Condition != stanza.RemoteServerTimeout {
		t.Errorf("error = %s", r)
	}
	n := h.expect("failure notice", func(e *stanza.Element) bool { return strings.HasPrefix(e.ChildText("", "body"), "⚠ Not delivered") })
	if n.To() != alice || !strings.Contains(n.ChildText("", "body"), "“too late”") {
		t.Errorf("failure notice = %s", n)
	}
}

// Unregistering with messages still queued: each sender is told they were
// not sent.
func TestUnregisterTellsOfQueuedMessages(t *testing.T) {
	e, _ := echo.New(nil)
	f := &flaky{Network: e, fails: -1, err: fmt.Errorf("connection refused: %w", legacy.ErrUnavailable)}
	h := newHarness(t, f)
	h.register(alice)
	for _, id := range []string{"q1", "q2"} {
		h.send(`<message xmlns='jabber:component:accept' type='chat' id='` + id + `' from='` + alice + `/p' to='hello@` + domain + `'><body>queued</body></message>`)
	}
	deadline := time.Now().Add(wait)
	for !strings.Contains(h.log.String(), "will retry") {
		if time.Now().After(deadline) {
			t.Fatal("no send attempt")
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.gwChat(alice, "unregister yes", "You are unregistered")
	for _, id := range []string{"q1", "q2"} {
		r := h.expect("error for "+id, func(e *stanza.Element) bool { return e.ID() == id && e.Type() == "error" })
		if pe := stanza.ParseError(r); pe.Condition != stanza.RegistrationRequired || r.To() != alice+"/p" || !strings.Contains(pe.Text, "unregistered") {
			t.Errorf("error for %s = %s", id, r)
		}
	}
}

// stuckNet is echo whose Send fails with a transient error for the chat
// "stuck" while stuck is set, and records the texts it sent, in order.
type stuckNet struct {
	*echo.Network
	mu    sync.Mutex
	stuck bool
	sent  []string
}

func (n *stuckNet) Open(ctx context.Context, a legacy.Account, s legacy.Sink) (legacy.Session, error) {
	inner, err := n.Network.Open(ctx, a, s)
	return &stuckSession{Session: inner, n: n}, err
}

type stuckSession struct {
	legacy.Session
	n *stuckNet
}

func (s *stuckSession) Send(ctx context.Context, m *legacy.Message) (legacy.MessageID, error) {
	s.n.mu.Lock()
	if m.Chat == "stuck" && s.n.stuck {
		s.n.mu.Unlock()
		return "", fmt.Errorf("451 4.7.1 greylisted, try again later: %w", legacy.ErrUnavailable)
	}
	s.n.sent = append(s.n.sent, m.Text)
	s.n.mu.Unlock()
	return s.Session.Send(ctx, m)
}

func (n *stuckNet) sentTexts() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.sent)
}

// A message that fails for a while holds up only the later messages to
// its own contact: those to others go out meanwhile, and the held ones
// follow in order once it is sent.
func TestFailingContactDoesNotHoldUpOthers(t *testing.T) {
	e, _ := echo.New(nil)
	n := &stuckNet{Network: e, stuck: true}
	h := newTunedHarness(t, n, func(o *bridges.Options) { o.RetryMax = 50 * time.Millisecond })
	h.register(alice)
	msg := func(id, to, body string) {
		h.send(`<message xmlns='jabber:component:accept' type='chat' id='` + id + `' from='` + alice + `/p' to='` + to + `@` + domain + `'><body>` + body + `</body></message>`)
	}
	msg("s1", "stuck", "first to stuck")
	msg("o1", "other", "to other")
	msg("s2", "stuck", "second to stuck")
	msg("o2", "other", "again to other")
	h.expect("other's second echo", func(e *stanza.Element) bool { return e.ChildText("", "body") == "again to other" })
	if got := n.sentTexts(); !slices.Equal(got, []string{"to other", "again to other"}) {
		t.Fatalf("sent while stuck = %q", got)
	}
	n.mu.Lock()
	n.stuck = false
	n.mu.Unlock()
	h.expect("stuck's second echo", func(e *stanza.Element) bool { return e.ChildText("", "body") == "second to stuck" })
	if got := n.sentTexts(); !slices.Equal(got, []string{"to other", "again to other", "first to stuck", "second to stuck"}) {
		t.Errorf("sent = %q", got)
	}
	for _, st := range h.srv.Received() {
		if st.Type() == "error" {
			t.Errorf("error: %s", st)
		}
	}
	// Nothing is left queued.
	deadline := time.Now().Add(wait)
	for {
		l, err := h.st.Len(context.Background(), store.Queue{Bridge: domain, JID: alice, Kind: store.Outbox})
		if err == nil && l == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox still holds %d entries (%v)", l, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// noRepliesBounce is bounceNet on a network without replies (SMS).
type noRepliesBounce struct{ bounceNet }

func (n noRepliesBounce) Info() legacy.Info {
	i := n.bounceNet.Info()
	i.Caps.Replies = false
	return i
}

// The notice of a late failure quotes the message also on a network
// without replies: the user must tell which message failed.
func TestUndeliveredNoticeQuotesWithoutReplies(t *testing.T) {
	e, _ := echo.New(nil)
	h := newHarness(t, noRepliesBounce{bounceNet{e}})
	h.register(alice)
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='orig-1' from='` + alice + `/gone' to='hello@` + domain + `'><body>bounce</body></message>`)
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='orig-2' from='` + alice + `/gone' to='hello@` + domain + `'><body>next</body></message>`)
	n := h.expect("notice", func(e *stanza.Element) bool { return strings.HasPrefix(e.ChildText("", "body"), "⚠ Not delivered") })
	if !strings.Contains(n.ChildText("", "body"), "“bounce”") {
		t.Errorf("notice = %s", n)
	}
}

// A rate limit whose wait alone passes DelayNotice (a Telegram flood
// wait of minutes): the sender is told before the wait, with when it is
// sent, not after it, when the message goes out.
func TestLongRateLimitIsToldBeforeTheWait(t *testing.T) {
	e, _ := echo.New(nil)
	f := &flaky{Network: e, fails: 1, err: &legacy.RateLimitError{RetryAfter: 2 * time.Second}}
	h := newTunedHarness(t, f, func(o *bridges.Options) { o.DelayNotice = time.Second })
	h.register(alice)
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='d1' from='` + alice + `/p' to='hello@` + domain + `'><body>flood wait</body></message>`)
	n := h.expect("delay notice", func(e *stanza.Element) bool { return strings.HasPrefix(e.ChildText("", "body"), "⌛") })
	for _, st := range h.srv.Received() {
		if st.ChildText("", "body") == "flood wait" {
			t.Fatalf("the notice came after the message was sent: %s", st)
		}
	}
	if body := n.ChildText("", "body"); !strings.Contains(body, "“flood wait”") || !strings.Contains(body, "slow down") || !strings.Contains(body, "sends it at") {
		t.Errorf("delay notice = %s", n)
	}
	h.expect("echo after the wait", func(e *stanza.Element) bool { return e.ChildText("", "body") == "flood wait" })
}

// A client's resend of a message that failed gets the failure again,
// whether it failed at once or was reported undelivered later (never a
// receipt, which would show it delivered); the message is not sent again.
func TestResendOfAFailedMessageGetsItsFailure(t *testing.T) {
	t.Run("at once", func(t *testing.T) {
		e, _ := echo.New(nil)
		f := &flaky{Network: e, fails: 1, err: fmt.Errorf("blocked: %w", legacy.ErrForbidden)}
		h := newHarness(t, f)
		h.register(alice)
		send := func() {
			h.send(`<message xmlns='jabber:component:accept' type='chat' id='f1' from='` + alice + `/p' to='hello@` + domain + `'><body>refused</body><request xmlns='urn:xmpp:receipts'/><origin-id xmlns='urn:xmpp:sid:0' id='f1'/></message>`)
		}
		failed := func(e *stanza.Element) bool { return e.ID() == "f1" && e.Type() == "error" }
		send()
		h.expect("error", failed)
		seen := h.markSeen()
		send()
		r := h.expectNew(seen, "the error again", failed)
		if errCond(r) != stanza.Forbidden {
			t.Errorf("error again = %s", r)
		}
		if n := h.count(func(e *stanza.Element) bool { return e.ChildText("", "body") == "refused" && e.Type() != "error" }); n != 0 {
			t.Errorf("the resend was sent: %d echoes", n)
		}
	})
	t.Run("reported later", func(t *testing.T) {
		e, _ := echo.New(nil)
		h := newHarness(t, bounceNet{e})
		h.register(alice)
		h.send(`<presence xmlns='jabber:component:accept' from='` + alice + `/p' to='` + domain + `'/>`)
		h.iq(alice, domain, "get", `<ping xmlns='urn:xmpp:ping'/>`)
		bounce := `<message xmlns='jabber:component:accept' type='chat' id='b1' from='` + alice + `/p' to='hello@` + domain + `'><body>bounce</body><request xmlns='urn:xmpp:receipts'/><origin-id xmlns='urn:xmpp:sid:0' id='b1'/></message>`
		h.send(bounce)
		h.send(`<message xmlns='jabber:component:accept' type='chat' id='n1' from='` + alice + `/p' to='hello@` + domain + `'><body>next</body></message>`)
		h.expect("late error", func(e *stanza.Element) bool { return e.ID() == "b1" && e.Type() == "error" })
		seen := h.markSeen()
		h.send(bounce)
		r := h.expectNew(seen, "the failure again", func(e *stanza.Element) bool {
			return e.ID() == "b1" && e.Type() == "error" || e.Child("urn:xmpp:receipts", "received") != nil
		})
		if r.Type() != "error" || errCond(r) != stanza.ItemNotFound {
			t.Errorf("answer to the resend = %s, want the failure", r)
		}
	})
}
