package pebble_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/bolt"
	"github.com/jabbergate/jabbergate/bridges/store/pebble"
)

// TestDeferrableApply: a Deferrable batch alone is committed anyway (after
// DeferDelay), and one pending while others commit is durable when its
// Apply returns, with every other batch. bolt.Deferrable (what the bridge
// uses) is store.Deferrable, so it works here too.
func TestDeferrableApply(t *testing.T) {
	for name, deferrable := range map[string]func(context.Context) context.Context{
		"store": store.Deferrable,
		"bolt":  bolt.Deferrable,
	} {
		t.Run(name, func(t *testing.T) { testDeferrable(t, deferrable) })
	}
}

func testDeferrable(t *testing.T, deferrable func(context.Context) context.Context) {
	s, err := pebble.Open(filepath.Join(t.TempDir(), "d"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q := store.Queue{Bridge: "b", JID: "u@l", Kind: store.Outbox}

	c0 := s.Commits()
	var bt store.Batch
	res, err := s.Apply(deferrable(ctx), bt.Append(q, []byte("alone")))
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
				c = deferrable(ctx)
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
	if _, err := s.Apply(deferrable(ctx), &ack); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Read(ctx, q, "", 100); err != nil || len(got) != 0 {
		t.Fatalf("%d entries after the deferred ack (%v)", len(got), err)
	}
}
