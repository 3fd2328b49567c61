package pebble

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// TestSeenFilter: MarkSeen answers as the database holds the marks while
// the filters in front of it grow past their size (rebuilt), survive a
// reopen (built again from the database), drop a deleted user's marks,
// and take in keys of a round that failed (the key is still new after).
func TestSeenFilter(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state")
	s, err := Open(path, SweepInterval(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	mark := func(jid, key string, want bool) {
		t.Helper()
		isNew, err := s.MarkSeen(ctx, "b", jid, key, time.Hour)
		if err != nil || isNew != want {
			t.Fatalf("MarkSeen(%s, %s) = %v, %v; want %v", jid, key, isNew, err, want)
		}
	}
	const n = 5 * seenFilterMin // past two rebuilds
	for i := range n {
		mark("j", fmt.Sprint("k", i), true)
		mark("j", fmt.Sprint("k", i/2), false) // a replay of a key already marked
		mark("other", fmt.Sprint("k", i), true)
	}
	if f := s.seen[string(seenKey("b", "j", ""))]; f == nil || f.max <= seenFilterMin {
		t.Fatalf("filter of j after %d keys: %+v, want one rebuilt larger than %d", n, f, seenFilterMin)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(path, SweepInterval(-1)); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		mark("j", fmt.Sprint("k", i), false)
	}
	if err := s.DeleteAccount(ctx, "b", "j"); err != nil {
		t.Fatal(err)
	}
	mark("j", "k1", true)
	mark("other", "k1", false)
	// A round that fails after marking: the key is in the filter, not in
	// the database.
	injected := errors.New("injected")
	failing := &commitReq{fn: func(w *writer) error {
		k := seenKey("b", "j", "lost")
		if _, err := w.markSeen(k, len("lost"), 0, 0); err != nil {
			return err
		}
		return injected
	}}
	if err := s.run(failing); !errors.Is(err, injected) {
		t.Fatalf("failing round: %v", err)
	}
	mark("j", "lost", true)
	mark("j", "lost", false)
}
