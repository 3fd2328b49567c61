package pebble

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/storetest"
)

// rawCount counts the keys of kind of every user, expired or not.
func rawCount(t *testing.T, s *Store, kind byte) int {
	t.Helper()
	v, err := s.beginRead()
	if err != nil {
		t.Fatal(err)
	}
	defer s.endRead(v)
	it, err := v.iter([]byte{tagUser}, []byte{tagUser + 1})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		_, _, pn, ok := splitUser(it.Key())
		if !ok {
			t.Fatalf("key %q is not of the layout", it.Key())
		}
		if len(it.Key()) > pn && it.Key()[pn] == kind {
			n++
		}
	}
	return n
}

func TestSweep(t *testing.T) {
	defer func(n int) { sweepBatch = n }(sweepBatch)
	sweepBatch = 40 // force several passes

	ctx := context.Background()
	c := storetest.NewClock(time.Now())
	s, err := Open(filepath.Join(t.TempDir(), "state"), Clock(c.Now), SweepInterval(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 300
	for i := range n {
		jid := fmt.Sprintf("u%d@example.org", i%3)
		ttl := time.Minute
		if i%5 == 0 {
			ttl = 0
		}
		if err := s.PutMapping(ctx, "b", jid, "msg", fmt.Sprint(i), "v", ttl); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			if _, err := s.MarkSeen(ctx, "b", jid, fmt.Sprint(i), time.Minute); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Other keys of the users are left alone.
	q := store.Queue{Bridge: "b", JID: "u0@example.org", Kind: store.Inbox}
	if _, err := s.Append(ctx, q, []byte("entry")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAccount(ctx, &store.Account{Bridge: "b", JID: "u1@example.org"}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Sweep(ctx); err != nil || got != 0 {
		t.Fatalf("Sweep before expiry = %d, %v", got, err)
	}
	c.Advance(2 * time.Minute)
	got, err := s.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := n - n/5 + n/10; got != want {
		t.Errorf("Sweep deleted %d, want %d", got, want)
	}
	if got := rawCount(t, s, kindMap); got != n/5 {
		t.Errorf("%d mappings left, want %d", got, n/5)
	}
	if got := rawCount(t, s, kindSeen); got != 0 {
		t.Errorf("%d seen marks left, want 0", got)
	}
	if v, err := s.GetMapping(ctx, "b", "u0@example.org", "msg", "0"); err != nil || v != "v" {
		t.Errorf("permanent mapping after sweep: %q, %v", v, err)
	}
	if n, err := s.Len(ctx, q); err != nil || n != 1 {
		t.Errorf("queue after sweep: %d, %v", n, err)
	}
	if _, err := s.GetAccount(ctx, "b", "u1@example.org"); err != nil {
		t.Errorf("account after sweep: %v", err)
	}
	if got, err := s.Sweep(ctx); err != nil || got != 0 {
		t.Errorf("second Sweep = %d, %v", got, err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Sweep(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Sweep with a canceled context: %v", err)
	}
}

// TestSweepRechecks: a mapping rewritten with a new TTL between the scan
// and the deletion is kept.
func TestSweepRechecks(t *testing.T) {
	ctx := context.Background()
	c := storetest.NewClock(time.Now())
	s, err := Open(filepath.Join(t.TempDir(), "state"), Clock(c.Now), SweepInterval(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, k := range []string{"a", "b"} {
		if err := s.PutMapping(ctx, "b", "j", "ns", k, "old", time.Second); err != nil {
			t.Fatal(err)
		}
	}
	c.Advance(time.Minute)
	keys, next, err := s.expiredKeys([]byte{tagUser}, c.Now().UnixNano(), 10)
	if err != nil || len(keys) != 2 || next != nil {
		t.Fatalf("expiredKeys = %d keys, next %q, %v", len(keys), next, err)
	}
	if err := s.PutMapping(ctx, "b", "j", "ns", "a", "new", time.Hour); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Sweep(ctx); err != nil || got != 1 {
		t.Fatalf("Sweep = %d, %v; want 1", got, err)
	}
	if v, err := s.GetMapping(ctx, "b", "j", "ns", "a"); err != nil || v != "new" {
		t.Fatalf("rewritten mapping after sweep: %q, %v", v, err)
	}
}

func TestSweeperRuns(t *testing.T) {
	ctx := context.Background()
	c := storetest.NewClock(time.Now())
	s, err := Open(filepath.Join(t.TempDir(), "state"), Clock(c.Now), SweepInterval(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.PutMapping(ctx, "b", "j", "ns", "k", "v", time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkSeen(ctx, "b", "j", "k", time.Second); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Hour)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if rawCount(t, s, kindMap) == 0 && rawCount(t, s, kindSeen) == 0 {
			if _, err := s.GetMapping(ctx, "b", "j", "ns", "k"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("GetMapping after sweep: %v", err)
			}
			return
		}
	}
	t.Fatal("the sweeper did not remove the expired entries within 5 s")
}
