package bridges_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/component/stanza"
)

// queueReadCounter counts store reads of each queue.
type queueReadCounter struct {
	store.Store
	mu    sync.Mutex
	reads map[store.Queue]int
}

func (c *queueReadCounter) Read(ctx context.Context, q store.Queue, after string, limit int) ([]store.Entry, error) {
	c.mu.Lock()
	c.reads[q]++
	c.mu.Unlock()
	return c.Store.Read(ctx, q, after, limit)
}

func (c *queueReadCounter) Len(ctx context.Context, q store.Queue) (int, error) {
	c.mu.Lock()
	c.reads[q]++
	c.mu.Unlock()
	return c.Store.Len(ctx, q)
}

func (c *queueReadCounter) count(q store.Queue) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads[q]
}

// Apply passes batches through (store.Apply asserts the interface).
func (c *queueReadCounter) Apply(ctx context.Context, b *store.Batch) (*store.BatchResult, error) {
	return store.Apply(ctx, c.Store, b)
}

// TestStartReadsOnlyQueuesWithEntries: at start the bridge lists the
// queues holding entries once; an idle user's workers start without
// reading the store (100 000 users: one read per queue each cost seconds),
// while a queue left with an entry is read and delivered, and the link
// coming up does not make the idle ones read either.
func TestStartReadsOnlyQueuesWithEntries(t *testing.T) {
	const bob = "bob@localhost"
	var counter *queueReadCounter
	h := newTunedHarness(t, nil, func(o *bridges.Options) {
		if counter != nil {
			counter.Store = o.Store
			o.Store = counter
		}
	})
	h.register(alice)
	h.register(bob)
	h.srv.SetAnswerPings(false) // alice's echo stays in her inbox
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='s1' from='` + alice + `/p' to='hello@` + domain + `'><body>left in the inbox</body></message>`)
	h.expect("echo written", func(e *stanza.Element) bool { return e.ChildText("", "body") == "left in the inbox" })
	h.stop()
	h.srv.SetAnswerPings(true)

	counter = &queueReadCounter{reads: map[store.Queue]int{}}
	h.start(nil)
	deadline := time.Now().Add(wait)
	for n := 0; n < 2; {
		if time.Now().After(deadline) {
			t.Fatal("alice's echo not delivered again after the restart")
		}
		n = 0
		for _, e := range h.srv.Received() {
			if e.ChildText("", "body") == "left in the inbox" {
				n++
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := counter.count(store.Queue{Bridge: domain, JID: alice, Kind: store.Inbox}); n == 0 {
		t.Error("alice's inbox, which had an entry, was not read")
	}
	// Bob's queues are empty: never read, also once the link is up and
	// after he sends a message (it goes through the in-memory tail).
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='s2' from='` + bob + `/p' to='hello@` + domain + `'><body>from bob</body></message>`)
	h.expect("bob's echo", func(e *stanza.Element) bool { return e.ChildText("", "body") == "from bob" && e.To() == bob })
	for _, k := range []store.QueueKind{store.Inbox, store.Outbox} {
		if n := counter.count(store.Queue{Bridge: domain, JID: bob, Kind: k}); n != 0 {
			t.Errorf("bob's empty %s queue read %d times", k, n)
		}
	}
}
