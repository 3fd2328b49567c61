package bridges_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/echo"
)

// rejectNet is echo whose sessions find their credentials rejected.
type rejectNet struct{ *echo.Network }

func (n rejectNet) Open(ctx context.Context, a legacy.Account, s legacy.Sink) (legacy.Session, error) {
	inner, err := n.Network.Open(ctx, a, s)
	return &rejectSession{Session: inner}, err
}

type rejectSession struct{ legacy.Session }

func (rejectSession) Run(context.Context) error {
	return fmt.Errorf("password changed on the legacy side: %w", legacy.ErrUnauthorized)
}

func TestLoginFailureIsToldToTheUser(t *testing.T) {
	e, _ := echo.New(nil)
	h := newHarness(t, rejectNet{e})
	h.register(alice)
	p := h.expect("gateway presence saying so", func(e *stanza.Element) bool {
		return e.Local == "presence" && e.From() == domain && strings.Contains(e.ChildText("", "status"), "Login failed")
	})
	if p.ChildText("", "show") != "xa" {
		t.Errorf("presence = %s", p)
	}
	h.expect("chat message saying so", func(e *stanza.Element) bool {
		return e.Local == "message" && e.From() == domain && strings.Contains(e.ChildText("", "body"), "login failed")
	})
	// A message now fails at once with not-authorized, not after a TTL.
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='x1' from='` + alice + `/p' to='hello@` + domain + `'><body>hi</body></message>`)
	if r := h.expect("error", func(e *stanza.Element) bool { return e.ID() == "x1" }); errCond(r) != stanza.NotAuthorized {
		t.Errorf("message after login failure = %s", r)
	}
}

// reasonNet is echo whose sessions end with an adapter's reason for the
// user (legacy.ReasonError) around a Go error chain.
type reasonNet struct {
	*echo.Network
	err error
}

func (n reasonNet) Open(ctx context.Context, a legacy.Account, s legacy.Sink) (legacy.Session, error) {
	inner, err := n.Network.Open(ctx, a, s)
	return &reasonSession{Session: inner, err: n.err}, err
}

type reasonSession struct {
	legacy.Session
	err error
}

func (s *reasonSession) Run(context.Context) error { return s.err }

// The status texts the user sees carry the adapter's reason, not the Go
// error chain around it.
func TestSessionEndShowsTheAdaptersReason(t *testing.T) {
	for _, c := range []struct {
		name, want string
		err        error
	}{
		{"unauthorized", "Login failed: the IMAP server rejected the username or password; register again",
			fmt.Errorf("email: imap: NO [AUTHENTICATIONFAILED]: %w", &legacy.ReasonError{Reason: "the IMAP server rejected the username or password", Err: legacy.ErrUnauthorized})},
		{"unauthorized, the reason saying it", "Login failed: Telegram rejected the bot token (Unauthorized); get a valid token from @BotFather and register again",
			fmt.Errorf("telegram: getUpdates: %w", &legacy.CodeError{Code: "401", Text: "Telegram rejected the bot token (Unauthorized); get a valid token from @BotFather and register again", Err: legacy.ErrUnauthorized})},
		{"disconnected", "Disconnected from Echo: cannot reach the IMAP server (connection refused)",
			fmt.Errorf("email: dial tcp 127.0.0.1:1: connect: connection refused: %w", &legacy.ReasonError{Reason: "cannot reach the IMAP server (connection refused)", Err: legacy.ErrUnavailable})},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, _ := echo.New(nil)
			h := newHarness(t, reasonNet{Network: e, err: c.err})
			h.register(alice)
			p := h.expect("status presence", func(e *stanza.Element) bool {
				return e.Local == "presence" && e.From() == domain && e.ChildText("", "status") != ""
			})
			if got := p.ChildText("", "status"); got != c.want {
				t.Errorf("status = %q, want %q", got, c.want)
			}
			if strings.HasPrefix(c.want, "Login failed") {
				m := h.expect("login-failed chat message", func(e *stanza.Element) bool {
					return e.Local == "message" && e.From() == domain && strings.Contains(e.ChildText("", "body"), "login failed")
				})
				if n := strings.Count(m.ChildText("", "body"), "register again"); n != 1 {
					t.Errorf("\"register again\" %d times in %q", n, m.ChildText("", "body"))
				}
			}
		})
	}
}

// sendRejectNet is echo whose sessions run but whose Send finds its
// credentials rejected (an SMTP password changed while IMAP still works).
type sendRejectNet struct {
	*echo.Network
	sends *atomic.Int64
}

func (n sendRejectNet) Open(ctx context.Context, a legacy.Account, s legacy.Sink) (legacy.Session, error) {
	inner, err := n.Network.Open(ctx, a, s)
	return &sendRejectSession{Session: inner, sends: n.sends}, err
}

type sendRejectSession struct {
	legacy.Session
	sends *atomic.Int64
}

func (s *sendRejectSession) Send(context.Context, *legacy.Message) (legacy.MessageID, error) {
	s.sends.Add(1)
	return "", fmt.Errorf("email: SMTP AUTH: %w", &legacy.ReasonError{Reason: "the SMTP server rejected the username or password", Err: legacy.ErrUnauthorized})
}

// Credentials refused when sending are told once, like a failed login,
// and the messages behind fail at once without trying them again.
func TestSendCredentialsRejectedToldOnce(t *testing.T) {
	e, _ := echo.New(nil)
	sends := &atomic.Int64{}
	h := newHarness(t, sendRejectNet{e, sends})
	h.register(alice)
	for i := 1; i <= 3; i++ {
		h.send(fmt.Sprintf(`<message xmlns='jabber:component:accept' type='chat' id='s%d' from='%s/p' to='hello@%s'><body>hi %d</body></message>`, i, alice, domain, i))
		if r := h.expect("error", func(e *stanza.Element) bool { return e.ID() == fmt.Sprintf("s%d", i) }); errCond(r) != stanza.NotAuthorized {
			t.Errorf("message %d = %s", i, r)
		}
	}
	h.expect("chat message saying so", func(e *stanza.Element) bool {
		return e.Local == "message" && e.From() == domain && strings.Contains(e.ChildText("", "body"), "SMTP server rejected")
	})
	if n := sends.Load(); n != 1 {
		t.Errorf("Send called %d times, want once: the others must fail without trying the credentials again", n)
	}
	notices := 0
	for _, st := range h.srv.Received() {
		if st.Local == "message" && st.From() == domain && strings.Contains(st.ChildText("", "body"), "SMTP server rejected") {
			notices++
		}
	}
	if notices != 1 {
		t.Errorf("%d notices, want 1", notices)
	}
}
