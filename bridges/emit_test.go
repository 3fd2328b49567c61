package bridges_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/component/stanza"
)

// inboxFailingStore fails the next n batches that append to an inbox.
type inboxFailingStore struct {
	store.Store
	mu     sync.Mutex
	n      int
	failed int
}

func (s *inboxFailingStore) Apply(ctx context.Context, b *store.Batch) (*store.BatchResult, error) {
	for _, op := range b.Ops {
		if op.Kind == store.OpAppend && op.Queue.Kind == store.Inbox {
			s.mu.Lock()
			fail := s.n > 0
			if fail {
				s.n--
				s.failed++
			}
			s.mu.Unlock()
			if fail {
				return nil, errors.New("disk on fire")
			}
			break
		}
	}
	return store.Apply(ctx, s.Store, b)
}

// warmEchoHarness is a harness on the echo network whose store is wrap's
// (a failing wrapper around the real one), with alice registered and a
// first message echoed, which warms the contact (introductions use Emit
// too).
func warmEchoHarness(t *testing.T, wrap func(store.Store) store.Store) *harness {
	h := newTunedHarness(t, nil, func(o *bridges.Options) { o.Store = wrap(o.Store) })
	h.register(alice)
	h.send(fmt.Sprintf(`<message xmlns='jabber:component:accept' type='chat' id='w' from='%s/phone' to='hello@%s'><body>warm</body></message>`, alice, domain))
	h.expect("echo of warm", func(e *stanza.Element) bool { return e.Local == "message" && e.ChildText("", "body") == "warm" })
	return h
}

// The echo network answers from within Send with EmitAsync: Send returns
// before the echo is stored. When that store write fails, the outgoing
// message must not be acknowledged: it is sent again and its echo arrives,
// exactly once.
func TestAsyncAnswerNotStoredIsSentAgain(t *testing.T) {
	fs := &inboxFailingStore{}
	h := warmEchoHarness(t, func(st store.Store) store.Store { fs.Store = st; return fs })

	fs.mu.Lock()
	fs.n = 1
	fs.mu.Unlock()
	h.send(fmt.Sprintf(`<message xmlns='jabber:component:accept' type='chat' id='m1' from='%s/phone' to='hello@%s'><body>lost once</body></message>`, alice, domain))
	h.expect("echo after the failed store write", func(e *stanza.Element) bool {
		return e.Local == "message" && e.ChildText("", "body") == "lost once"
	})
	h.waitLog("the answer to a sent message could not be stored; the message will be sent again")
	fs.mu.Lock()
	failed := fs.failed
	fs.mu.Unlock()
	if failed != 1 {
		t.Fatalf("inbox appends failed = %d, want 1 (the test did not exercise the failure)", failed)
	}
	// Both queues drain, and the echo was delivered once.
	for _, k := range []store.QueueKind{store.Inbox, store.Outbox} {
		deadline := time.Now().Add(wait)
		for {
			n, _ := h.st.Len(context.Background(), store.Queue{Bridge: domain, JID: alice, Kind: k})
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s queue still has %d entries", k, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	time.Sleep(200 * time.Millisecond) // a duplicate would be written by now
	echoes := 0
	for _, r := range h.srv.Received() {
		if r.Local == "message" && r.ChildText("", "body") == "lost once" {
			echoes++
		}
	}
	if echoes != 1 {
		t.Errorf("echo delivered %d times, want once", echoes)
	}
}

// outboxAckFailingStore fails every batch that acknowledges an outbox
// entry while failing is set.
type outboxAckFailingStore struct {
	store.Store
	failing atomic.Bool
	failed  atomic.Int64
}

func (s *outboxAckFailingStore) Apply(ctx context.Context, b *store.Batch) (*store.BatchResult, error) {
	if s.failing.Load() {
		for _, op := range b.Ops {
			if op.Kind == store.OpAck && op.Queue.Kind == store.Outbox {
				s.failed.Add(1)
				return nil, errors.New("disk on fire")
			}
		}
	}
	return store.Apply(ctx, s.Store, b)
}

// An outbox ack that keeps failing past its retry window leaves the entry
// queued; the worker must then read its outbox from the store again, so
// the entry is sent again and, once the store works, acknowledged — not
// left in the store unseen behind a warm in-memory tail.
func TestAckGivenUpIsSentAgain(t *testing.T) {
	restore := bridges.SetAckRetry(300 * time.Millisecond)
	defer restore()
	fs := &outboxAckFailingStore{}
	h := warmEchoHarness(t, func(st store.Store) store.Store { fs.Store = st; return fs })

	fs.failing.Store(true)
	h.send(fmt.Sprintf(`<message xmlns='jabber:component:accept' type='chat' id='m1' from='%s/phone' to='hello@%s'><body>ack fails</body></message>`, alice, domain))
	h.expect("echo of m1", func(e *stanza.Element) bool { return e.Local == "message" && e.ChildText("", "body") == "ack fails" })
	h.waitLog("outbox entries sent but not acknowledged; they will be sent again")
	if fs.failed.Load() == 0 {
		t.Fatal("no ack failed: the test did not exercise the failure")
	}
	fs.failing.Store(false)
	q := store.Queue{Bridge: domain, JID: alice, Kind: store.Outbox}
	deadline := time.Now().Add(wait)
	for {
		n, _ := h.st.Len(context.Background(), q)
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox still holds %d entries after the store recovered: the given-up entry was never sent again", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
