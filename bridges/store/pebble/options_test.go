package pebble

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
)

// TestBlockCacheCaches: the block cache is large enough next to the
// memtables Pebble counts against it to keep blocks (with a cache not
// larger than two memtables it keeps none and every read of a flushed
// table goes to the file).
func TestBlockCacheCaches(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state"), SweepInterval(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	// Enough to grow the memtable to its full size (Pebble starts small).
	for r := range 20 {
		var bt store.Batch
		for i := range 5000 {
			bt.PutMapping("b", "j", "msg", fmt.Sprint(r*5000+i), "stanza-id", time.Hour)
		}
		if _, err := s.Apply(ctx, &bt); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	h0 := s.db.Metrics().BlockCache.Hits
	for range 20 {
		if v, err := s.GetMapping(ctx, "b", "j", "msg", "4242"); err != nil || v != "stanza-id" {
			t.Fatalf("GetMapping = %q, %v", v, err)
		}
	}
	m := s.db.Metrics().BlockCache
	if m.Hits-h0 < 19 || m.Size == 0 {
		t.Errorf("block cache after 20 reads of one key: %d hits, %d bytes held", m.Hits-h0, m.Size)
	}
}

// TestReplayWritesNothing: MarkSeen of a key already marked commits
// nothing (no WAL write, so no fsync), whether alone or in a batch.
func TestReplayWritesNothing(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state"), SweepInterval(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if isNew, err := s.MarkSeen(ctx, "b", "j", "k", time.Hour); err != nil || !isNew {
		t.Fatalf("first MarkSeen = %v, %v", isNew, err)
	}
	w0 := s.db.Metrics().WAL.BytesIn
	for range 5 {
		if isNew, err := s.MarkSeen(ctx, "b", "j", "k", time.Hour); err != nil || isNew {
			t.Fatalf("replayed MarkSeen = %v, %v", isNew, err)
		}
		var bt store.Batch
		res, err := s.Apply(ctx, bt.MarkSeen("b", "j", "k", time.Hour))
		if err != nil || res.Seen[0] {
			t.Fatalf("replayed MarkSeen in a batch = %v, %v", res, err)
		}
	}
	if w := s.db.Metrics().WAL.BytesIn; w != w0 {
		t.Errorf("replays wrote %d bytes to the WAL", w-w0)
	}
}
