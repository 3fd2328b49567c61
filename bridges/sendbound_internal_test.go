package bridges

import (
	"context"
	"testing"
	"time"
)

// TestSendBound: one context serves consecutive Sends while it has at
// least sendTimeoutMin left; each Send is bounded by sendTimeout; an
// ended or nearly spent context is replaced, and the parent's end ends it.
func TestSendBound(t *testing.T) {
	parent, stop := context.WithCancel(context.Background())
	defer stop()
	var s sendBound
	defer s.release()

	before := time.Now()
	first := s.context(parent)
	dl, ok := first.Deadline()
	if !ok {
		t.Fatal("a Send's context has no deadline")
	}
	if left := dl.Sub(before); left < sendTimeoutMin || left > sendTimeout+time.Second {
		t.Fatalf("deadline %v after the call, want between %v and %v", left, sendTimeoutMin, sendTimeout)
	}
	if again := s.context(parent); again != first {
		t.Fatal("a fresh context was not reused for the next Send")
	}

	// Less than sendTimeoutMin left: the next Send gets a new full bound,
	// and the old context is released.
	s.deadline = time.Now().Add(sendTimeoutMin - time.Second)
	renewed := s.context(parent)
	if renewed == first {
		t.Fatal("a context with less than sendTimeoutMin left was reused")
	}
	if first.Err() == nil {
		t.Fatal("the replaced context was not canceled")
	}
	if dl, _ := renewed.Deadline(); time.Until(dl) < sendTimeoutMin {
		t.Fatalf("renewed deadline only %v away", time.Until(dl))
	}

	// A context that ended (a Send ran out of time) is not handed out again.
	s.cancel()
	if next := s.context(parent); next == renewed || next.Err() != nil {
		t.Fatalf("after the context ended: got the same one (%v) or an ended one (%v)", next == renewed, next.Err())
	}

	// The worker's end ends the Send's context.
	cur := s.context(parent)
	stop()
	select {
	case <-cur.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the Send's context outlived its parent")
	}
}
