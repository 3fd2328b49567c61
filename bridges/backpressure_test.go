package bridges_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
)

// While XMPP does not confirm delivery (the barrier ping goes unanswered),
// the user's inbox fills up to the bridge's limit; then Emit refuses with a
// retryable error, so the adapter keeps the event on the legacy side. Once
// XMPP takes the waiting messages, events are accepted again and every
// accepted one is delivered.
func TestInboxLimitPushesBackToTheLegacySide(t *testing.T) {
	const limit = 3
	n := newSinkNet(t)
	h := newTunedHarness(t, n, func(o *bridges.Options) { o.InboxLimit = limit })
	h.register(alice)
	sink := n.sink(t)
	h.srv.SetAnswerPings(false)

	emit := func(i int) error {
		return sink.Emit(context.Background(), legacy.Incoming{ID: legacy.MessageID(fmt.Sprintf("bp-%d", i)),
			Chat: "hello", Sender: "hello", Text: fmt.Sprintf("bp %d", i)})
	}
	for i := range limit {
		if err := emit(i); err != nil {
			t.Fatalf("emit %d below the limit: %v", i, err)
		}
	}
	err := emit(limit)
	if !errors.Is(err, legacy.ErrUnavailable) || legacy.IsPermanent(err) {
		t.Fatalf("emit beyond the limit = %v; want a retryable legacy.ErrUnavailable", err)
	}

	h.srv.SetAnswerPings(true)
	accepted := false
	for deadline := time.Now().Add(wait); !accepted && time.Now().Before(deadline); {
		if err := emit(limit); err == nil {
			accepted = true
		} else if !errors.Is(err, legacy.ErrUnavailable) {
			t.Fatalf("emit after XMPP caught up: %v", err)
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if !accepted {
		t.Fatal("events still refused after XMPP took the waiting messages")
	}
	for i := 0; i <= limit; i++ {
		body := fmt.Sprintf("bp %d", i)
		h.expect(body, func(e *stanza.Element) bool { return e.ChildText("", "body") == body })
	}
}
