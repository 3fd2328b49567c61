package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
)

// GroupCommitter is a store with group commit that counts its commits
// (store/bolt, store/pebble).
type GroupCommitter interface {
	store.Store
	store.Batcher
	Commits() int64
}

// Deferred checks store.Deferrable on s, a new empty store: a deferred
// batch alone is committed anyway (by the store's timer, in one commit),
// and deferred batches pending while others commit are durable, with every
// other batch, when their Apply returns.
func Deferred(t *testing.T, s GroupCommitter) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q := store.Queue{Bridge: "b", JID: "u@l", Kind: store.Outbox}

	c0 := s.Commits()
	var bt store.Batch
	res, err := s.Apply(store.Deferrable(ctx), bt.Append(q, []byte("alone")))
	if err != nil || len(res.IDs[0]) != 1 {
		t.Fatal(res, err)
	}
	if n := s.Commits() - c0; n != 1 {
		t.Errorf("a lone deferred batch took %d commits, want 1", n)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			c := ctx
			if i%2 == 0 {
				c = store.Deferrable(ctx)
			}
			var b store.Batch
			_, err := s.Apply(c, b.Append(q, []byte{byte(i)}))
			errs <- err
		})
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
	if _, err := s.Apply(store.Deferrable(ctx), &ack); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Read(ctx, q, "", 100); err != nil || len(got) != 0 {
		t.Fatalf("%d entries after the deferred ack (%v)", len(got), err)
	}
}
