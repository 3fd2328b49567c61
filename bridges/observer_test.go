package bridges_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/echo"
)

// recObserver records what the optional Observer extensions are told.
type recObserver struct {
	mu       sync.Mutex
	heads    map[string]time.Time // user key → head of the outbox
	seen     []time.Time          // every non-zero head reported
	users    map[string]bool      // every user key reported
	failures []string             // network/reason
}

var (
	_ bridges.Observer        = (*recObserver)(nil)
	_ bridges.OutboxObserver  = (*recObserver)(nil)
	_ bridges.SessionObserver = (*recObserver)(nil)
)

func (o *recObserver) QueueDepth(store.QueueKind, int) {}
func (o *recObserver) Delivered(string, bool)          {}
func (o *recObserver) Sessions(int)                    {}

func (o *recObserver) OutboxOldest(user string, t time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.users[user] = true
	if t.IsZero() {
		delete(o.heads, user)
		return
	}
	o.heads[user] = t
	o.seen = append(o.seen, t)
}

func (o *recObserver) SessionFailed(network, reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failures = append(o.failures, network+"/"+reason)
}

func (o *recObserver) snapshot() (heads int, seen []time.Time, users []string, failures []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for u := range o.users {
		users = append(users, u)
	}
	return len(o.heads), slices.Clone(o.seen), users, slices.Clone(o.failures)
}

// newObservedHarness is newHarness with an Observer.
func newObservedHarness(t *testing.T, network legacy.Network, obs bridges.Observer) *harness {
	t.Helper()
	return newTunedHarness(t, network, func(o *bridges.Options) { o.Observer = obs })
}

// TestOutboxOldestReported: while a message waits for retries the
// observer knows when it was queued; once sent, the user's outbox is
// reported empty. The user key is not the JID.
func TestOutboxOldestReported(t *testing.T) {
	e, _ := echo.New(nil)
	f := &flaky{Network: e, fails: 3, err: fmt.Errorf("HTTP 502: %w", legacy.ErrUnavailable)}
	obs := &recObserver{heads: map[string]time.Time{}, users: map[string]bool{}}
	h := newObservedHarness(t, f, obs)
	h.register(alice)
	before := time.Now()
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='o1' from='` + alice + `/p' to='hello@` + domain + `'><body>wait for me</body></message>`)
	h.expect("echo after retries", func(e *stanza.Element) bool { return e.ChildText("", "body") == "wait for me" })
	deadline := time.Now().Add(wait)
	for {
		heads, seen, users, _ := obs.snapshot()
		if heads == 0 && len(seen) > 0 {
			for _, s := range seen {
				if s.Before(before.Add(-time.Second)) || s.After(time.Now()) {
					t.Errorf("head time %v is not when the message was queued (~%v)", s, before)
				}
			}
			for _, u := range users {
				if u == alice || u == "" {
					t.Errorf("user key %q: want an opaque key", u)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox heads %d, reported %v: want reported then empty", heads, seen)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSessionFailureReported: a session whose credentials are rejected is
// counted with its network and reason.
func TestSessionFailureReported(t *testing.T) {
	e, _ := echo.New(nil)
	obs := &recObserver{heads: map[string]time.Time{}, users: map[string]bool{}}
	h := newObservedHarness(t, rejectNet{e}, obs)
	h.register(alice)
	deadline := time.Now().Add(wait)
	for {
		_, _, _, failures := obs.snapshot()
		if slices.Contains(failures, e.Info().Name+"/unauthorized") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("failures = %q", failures)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// secretNet is echo with a secret registration field.
type secretNet struct{ *echo.Network }

func (n secretNet) Info() legacy.Info {
	i := n.Network.Info()
	i.Fields = append(i.Fields, legacy.Field{Var: "token", Label: "Token", Secret: true})
	return i
}

func (n secretNet) Open(ctx context.Context, a legacy.Account, s legacy.Sink) (legacy.Session, error) {
	if a.Fields["token"] == "" {
		return nil, fmt.Errorf("no token: %w", legacy.ErrUnauthorized) // as Telegram's
	}
	return n.Network.Open(ctx, a, s)
}

// Stored credentials that do not open (the vault key changed) are one
// failure, "credentials": the session is not opened without them, so no
// "open" failure is counted besides (an alert counts these).
func TestUnopenableCredentialsCountedOnce(t *testing.T) {
	e, _ := echo.New(nil)
	obs := &recObserver{heads: map[string]time.Time{}, users: map[string]bool{}}
	h := newObservedHarness(t, secretNet{e}, obs)
	if err := h.st.PutAccount(context.Background(), &store.Account{Bridge: domain, JID: "bob@localhost", LegacyID: "bob",
		Fields: map[string]string{"token": "k1:c2VhbGVkIHdpdGggYW5vdGhlciBrZXk="}, Created: time.Now(), Subscription: "both"}); err != nil {
		t.Fatal(err)
	}
	h.stop()
	h.start(secretNet{e})
	deadline := time.Now().Add(wait)
	for {
		_, _, _, failures := obs.snapshot()
		if slices.Contains(failures, e.Info().Name+"/credentials") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("failures = %q", failures)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The user is told, though the session ended before the link was up.
	h.expect("gateway presence saying so", func(e *stanza.Element) bool {
		return e.Local == "presence" && e.From() == domain && e.To() == "bob@localhost" && e.ChildText("", "show") == "xa"
	})
	h.expect("chat message saying so", func(e *stanza.Element) bool {
		return e.Local == "message" && e.From() == domain && e.To() == "bob@localhost" && e.ChildText("", "body") != ""
	})
	time.Sleep(100 * time.Millisecond) // runUser counted "open" right after, in the same goroutine
	if _, _, _, failures := obs.snapshot(); len(failures) != 1 {
		t.Errorf("failures = %q, want one", failures)
	}
}
