package bolt

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/storetest"
	bbolt "go.etcd.io/bbolt"
)

// rawCount counts the entries of bucket name of every user, expired or not.
func rawCount(t *testing.T, s *Store, name []byte) int {
	t.Helper()
	n := 0
	err := s.db.View(func(tx *bbolt.Tx) error {
		bridges := tx.Bucket(bktBridges)
		return bridges.ForEachBucket(func(bn []byte) error {
			br := bridges.Bucket(bn)
			return br.ForEachBucket(func(un []byte) error {
				if b := br.Bucket(un).Bucket(name); b != nil {
					n += b.Stats().KeyN
				}
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSweep(t *testing.T) {
	defer func(n int) { sweepBatch = n }(sweepBatch)
	sweepBatch = 40 // force several passes

	ctx := context.Background()
	c := storetest.NewClock(time.Now())
	s, err := Open(filepath.Join(t.TempDir(), "state.db"), Clock(c.Now), SweepInterval(-1))
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
	if got := rawCount(t, s, bktMap); got != n/5 {
		t.Errorf("%d mappings left, want %d", got, n/5)
	}
	if got := rawCount(t, s, bktSeen); got != 0 {
		t.Errorf("%d seen marks left, want 0", got)
	}
	if v, err := s.GetMapping(ctx, "b", "u0@example.org", "msg", "0"); err != nil || v != "v" {
		t.Errorf("permanent mapping after sweep: %q, %v", v, err)
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

func TestSweeperRuns(t *testing.T) {
	ctx := context.Background()
	c := storetest.NewClock(time.Now())
	s, err := Open(filepath.Join(t.TempDir(), "state.db"), Clock(c.Now), SweepInterval(5*time.Millisecond))
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
		if rawCount(t, s, bktMap) == 0 && rawCount(t, s, bktSeen) == 0 {
			if _, err := s.GetMapping(ctx, "b", "j", "ns", "k"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("GetMapping after sweep: %v", err)
			}
			return
		}
	}
	t.Fatal("the sweeper did not remove the expired entries within 5 s")
}
