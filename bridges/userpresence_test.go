package bridges_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/echo"
)

// watchNet is echo whose sessions record what the core says of the user's
// presence.
type watchNet struct {
	*echo.Network
	mu   sync.Mutex
	seen []bool
}

func (n *watchNet) Open(ctx context.Context, a legacy.Account, s legacy.Sink) (legacy.Session, error) {
	inner, err := n.Network.Open(ctx, a, s)
	return &watchSession{Session: inner, n: n}, err
}

type watchSession struct {
	legacy.Session
	n *watchNet
}

func (s *watchSession) UserPresence(available bool) {
	s.n.mu.Lock()
	s.n.seen = append(s.n.seen, available)
	s.n.mu.Unlock()
}

func (n *watchNet) waitFor(t *testing.T, want []bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		n.mu.Lock()
		got := append([]bool(nil), n.seen...)
		n.mu.Unlock()
		if len(got) == len(want) {
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("UserPresence calls = %v, want %v", got, want)
				}
			}
			return
		}
		if len(got) > len(want) || time.Now().After(deadline) {
			t.Fatalf("UserPresence calls = %v, want %v", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSessionsLearnTheUsersPresence(t *testing.T) {
	e, _ := echo.New(nil)
	n := &watchNet{Network: e}
	h := newHarness(t, n)
	h.register(alice)
	n.waitFor(t, []bool{false}) // told at start: not known to be online
	h.send(`<presence xmlns='jabber:component:accept' from='` + alice + `/phone' to='` + domain + `'/>`)
	n.waitFor(t, []bool{false, true})
	// A second resource changes nothing; the last one leaving does.
	h.send(`<presence xmlns='jabber:component:accept' from='` + alice + `/laptop' to='` + domain + `'/>`)
	h.send(`<presence xmlns='jabber:component:accept' type='unavailable' from='` + alice + `/phone' to='` + domain + `'/>`)
	h.iq(alice, domain, "get", `<ping xmlns='urn:xmpp:ping'/>`) // the presences above were handled
	n.waitFor(t, []bool{false, true})
	h.send(`<presence xmlns='jabber:component:accept' type='unavailable' from='` + alice + `/laptop' to='` + domain + `'/>`)
	n.waitFor(t, []bool{false, true, false})
}

// settingsWatchNet is watchNet with a setting, so that a settings change
// restarts the session.
type settingsWatchNet struct{ *watchNet }

func (n settingsWatchNet) Info() legacy.Info {
	i := n.watchNet.Info()
	i.Settings = []legacy.Field{{Var: "notify", Label: "Notifications", Type: legacy.Boolean}}
	return i
}

// A session restarted by a settings change or a registration again is told
// the user is online: the user's server sends no presence for it.
func TestRestartedSessionsKnowTheUserIsOnline(t *testing.T) {
	e, _ := echo.New(nil)
	n := settingsWatchNet{&watchNet{Network: e}}
	h := newHarness(t, n)
	h.register(alice)
	n.waitFor(t, []bool{false})
	h.send(`<presence xmlns='jabber:component:accept' from='` + alice + `/phone' to='` + domain + `'/>`)
	n.waitFor(t, []bool{false, true})

	c := cmdOf(t, h.cmd(alice+"/r", "settings", "", "", ""))
	c = cmdOf(t, h.cmd(alice+"/r", "settings", "complete", c.Attr("sessionid"), cmdSubmit(map[string]string{"notify": "true"})))
	if c.Attr("status") != "completed" {
		t.Fatalf("settings = %s", c)
	}
	n.waitFor(t, []bool{false, true, true})

	h.register(alice)
	n.waitFor(t, []bool{false, true, true, true})
}
