package bridges_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges"
	"github.com/jabbergate/jabbergate/bridges/store"
)

// holdingStore holds PutContact calls while hold is set, until released,
// then performs them with the caller's context as it is by then.
type holdingStore struct {
	store.Store
	mu      sync.Mutex
	hold    bool
	entered chan struct{}
	release chan struct{}
}

func (s *holdingStore) PutContact(ctx context.Context, bridge, jid string, c *store.Contact) error {
	s.mu.Lock()
	hold := s.hold
	s.hold = false
	s.mu.Unlock()
	if hold {
		close(s.entered)
		<-s.release
		if err := ctx.Err(); err != nil {
			return err // what a store does with a canceled context
		}
	}
	return s.Store.PutContact(ctx, bridge, jid, c)
}

// A subscription change the server reports just as the bridge stops
// (SIGTERM, a reload restarting it) is still recorded: the write does not
// share the stopping stanza context, so after the restart the contact
// keeps the state the server has already applied.
func TestSubscriptionRecordedWhileStopping(t *testing.T) {
	hs := &holdingStore{entered: make(chan struct{}), release: make(chan struct{})}
	h := newTunedHarness(t, newContactsNetwork(twoContacts...), func(o *bridges.Options) {
		hs.Store = o.Store
		o.Store = hs
	})
	h.register(alice)
	h.waitLog(`method=subscribe reason="no roster privilege"`)
	hs.mu.Lock()
	hs.hold = true
	hs.mu.Unlock()
	h.send(fmt.Sprintf(`<presence xmlns='jabber:component:accept' type='subscribed' from='%s' to='ann@%s'/>`, alice, domain))
	select {
	case <-hs.entered:
	case <-time.After(wait):
		t.Fatal("the subscription write never reached the store")
	}
	// Stop the bridge while the write is held; release it once stopping.
	go func() {
		time.Sleep(100 * time.Millisecond)
		close(hs.release)
	}()
	h.stop()

	h.start(newContactsNetwork(twoContacts...))
	c, err := h.st.GetContact(context.Background(), domain, alice, "ann")
	if err != nil {
		t.Fatalf("contact after restart: %v", err)
	}
	// The user approved ann's request: ann may see the user ("to", from
	// the contact's point of view).
	if c.Subscription != "to" && c.Subscription != "both" {
		t.Fatalf("subscription after a stop during the write = %q, want to", c.Subscription)
	}
}

// Removing a contact from the roster (the server sends unsubscribe and
// unsubscribed) removes it from the gateway's contacts; a request the
// user only declines leaves a pending contact alone.
func TestRosterRemovalDeletesTheContact(t *testing.T) {
	h := newHarness(t, nil)
	h.register(alice)
	ctx := context.Background()
	pres := func(typ, to string) {
		h.send(fmt.Sprintf(`<presence xmlns='jabber:component:accept' type='%s' from='%s' to='%s'/>`, typ, alice, to))
	}
	robot := "robot@" + domain
	pres("subscribe", robot)
	pres("subscribed", robot)
	h.iq(alice, domain, "get", `<query xmlns='http://jabber.org/protocol/disco#items'/>`) // through the same shard: handled in order
	if c, err := h.st.GetContact(ctx, domain, alice, "robot"); err != nil || c.Subscription != "both" {
		t.Fatalf("contact after subscribing = %+v, %v", c, err)
	}
	pres("unsubscribe", robot)
	pres("unsubscribed", robot)
	h.iq(alice, domain, "get", `<query xmlns='http://jabber.org/protocol/disco#items'/>`)
	if c, err := h.st.GetContact(ctx, domain, alice, "robot"); err == nil {
		t.Errorf("contact removed from the roster is still stored: %+v", c)
	}
	// A pending contact (no subscription yet) declined: kept, and no
	// record is made for an unknown one.
	if err := h.st.PutContact(ctx, domain, alice, &store.Contact{Localpart: "pending", LegacyID: "pending"}); err != nil {
		t.Fatal(err)
	}
	pres("unsubscribed", "pending@"+domain)
	pres("unsubscribed", "stranger@"+domain)
	h.iq(alice, domain, "get", `<query xmlns='http://jabber.org/protocol/disco#items'/>`)
	if _, err := h.st.GetContact(ctx, domain, alice, "pending"); err != nil {
		t.Errorf("declined pending contact: %v", err)
	}
}
