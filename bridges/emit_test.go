package bridges_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
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

// The echo network answers from within Send with EmitAsync: Send returns
// before the echo is stored. When that store write fails, the outgoing
// message must not be acknowledged: it is sent again and its echo arrives,
// exactly once.
func TestAsyncAnswerNotStoredIsSentAgain(t *testing.T) {
	fs := &inboxFailingStore{}
	h := newTunedHarness(t, nil, func(o *bridges.Options) {
		fs.Store = o.Store
		o.Store = fs
	})
	h.register(alice)
	// A first message warms the contact (introductions use Emit too).
	h.send(fmt.Sprintf(`<message xmlns='jabber:component:accept' type='chat' id='w' from='%s/phone' to='hello@%s'><body>warm</body></message>`, alice, domain))
	h.expect("echo of warm", func(e *stanza.Element) bool { return e.Local == "message" && e.ChildText("", "body") == "warm" })

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
