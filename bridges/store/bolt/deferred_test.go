package bolt_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/bolt"
)

// TestDeferrableApply: a Deferrable batch alone is committed anyway (after
// DeferDelay), and one pending while others commit is durable when its
// Apply returns, with every other batch.
func TestDeferrableApply(t *testing.T) {
	s, err := bolt.Open(filepath.Join(t.TempDir(), "d.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q := store.Queue{Bridge: "b", JID: "u@l", Kind: store.Outbox}

	var bt store.Batch
	res, err := s.Apply(bolt.Deferrable(ctx), bt.Append(q, []byte("alone")))
	if err != nil || len(res.IDs[0]) != 1 {
		t.Fatal(res, err)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := ctx
			if i%2 == 0 {
				c = bolt.Deferrable(ctx)
			}
			var b store.Batch
			_, err := s.Apply(c, b.Append(q, []byte{byte(i)}))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Read(ctx, q, "", 100)
	if err != nil || len(got) != 41 {
		t.Fatalf("%d entries, want 41 (%v)", len(got), err)
	}
	var ack store.Batch
	for _, e := range got {
		ack.Ack(q, e.ID)
	}
	if _, err := s.Apply(bolt.Deferrable(ctx), &ack); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Read(ctx, q, "", 100); err != nil || len(got) != 0 {
		t.Fatalf("%d entries after the deferred ack (%v)", len(got), err)
	}
}
