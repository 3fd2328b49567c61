package pebble

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/jabbergate/jabbergate/bridges/store"
)

// TestReadsSeeOnlyDurableWrites: while a write's WAL sync is in progress
// (held here), no read method sees it — Pebble applies a commit to its
// memtable and shows it before the sync ends, and a crash then would lose
// it — and once the write's call has returned, the caller's reads see it.
func TestReadsSeeOnlyDurableWrites(t *testing.T) {
	f := &walFaults{}
	s, _ := openFaulty(t, f)
	defer s.Close()
	ctx := context.Background()
	q := store.Queue{Bridge: "b", JID: "j", Kind: store.Inbox}

	for _, c := range []struct {
		name    string
		write   func() error
		visible func() (bool, error)
	}{{
		"Append",
		func() error { _, err := s.Append(ctx, q, []byte("m")); return err },
		func() (bool, error) {
			es, err := s.Read(ctx, q, "", 10)
			n, err2 := s.Len(ctx, q)
			qs, err3 := s.Queues(ctx, "b", store.Inbox)
			if len(es) != n || n != len(qs) {
				t.Errorf("Append: Read %d entries, Len %d, Queues %d", len(es), n, len(qs))
			}
			return len(es) > 0, errors.Join(err, err2, err3)
		},
	}, {
		"Apply",
		func() error {
			var b store.Batch
			_, err := s.Apply(ctx, b.PutMapping("b", "j", "ns", "k", "v", 0).MarkSeen("b", "j", "seen", 0))
			return err
		},
		func() (bool, error) {
			_, err := s.GetMapping(ctx, "b", "j", "ns", "k")
			if errors.Is(err, store.ErrNotFound) {
				return false, nil
			}
			return err == nil, err
		},
	}, {
		"PutAccount",
		func() error { return s.PutAccount(ctx, &store.Account{Bridge: "b", JID: "j", LegacyID: "x"}) },
		func() (bool, error) {
			as, err := s.ListAccounts(ctx, "b")
			_, err2 := s.GetAccount(ctx, "b", "j")
			if (len(as) > 0) != (err2 == nil) {
				t.Errorf("PutAccount: ListAccounts %d, GetAccount %v", len(as), err2)
			}
			return len(as) > 0, err
		},
	}, {
		"PutContact",
		func() error { return s.PutContact(ctx, "b", "j", &store.Contact{Localpart: "c"}) },
		func() (bool, error) {
			cs, err := s.ListContacts(ctx, "b", "j")
			_, err2 := s.GetContact(ctx, "b", "j", "c")
			if (len(cs) > 0) != (err2 == nil) {
				t.Errorf("PutContact: ListContacts %d, GetContact %v", len(cs), err2)
			}
			return len(cs) > 0, err
		},
	}, {
		"DeleteAccount",
		func() error { return s.DeleteAccount(ctx, "b", "j") },
		func() (bool, error) {
			_, err := s.GetAccount(ctx, "b", "j")
			if errors.Is(err, store.ErrNotFound) {
				return true, nil
			}
			return false, err
		},
	}} {
		held, release := f.hold()
		done := make(chan error, 1)
		go func() { done <- c.write() }()
		<-held
		vis, err := c.visible()
		close(release)
		if err != nil {
			t.Fatalf("%s: read while the WAL sync is held: %v", c.name, err)
		}
		if vis {
			t.Errorf("%s: a read sees the write while its WAL sync is in progress", c.name)
		}
		if err := <-done; err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if vis, err := c.visible(); err != nil || !vis {
			t.Errorf("%s: after the call returned, a read does not see it (%v)", c.name, err)
		}
	}
}

// TestViewsReleased: a read keeps the view it started with while later
// writes publish new ones, and every replaced view is closed once no read
// holds it: the store leaves one Pebble snapshot open.
func TestViewsReleased(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state"), SweepInterval(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	q := store.Queue{Bridge: "b", JID: "j", Kind: store.Inbox}
	old, err := s.beginRead()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := s.Append(ctx, q, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.db.Metrics().Snapshots.Count; n != 2 {
		t.Errorf("%d snapshots open, want 2: the current view and the one held", n)
	}
	p := queuePrefix(q)
	it, err := old.iter(p, successor(p))
	if err != nil {
		t.Fatal(err)
	}
	if it.First() {
		t.Errorf("the view held from before the appends shows %q", it.Key())
	}
	it.Close()
	s.endRead(old)
	if n := s.db.Metrics().Snapshots.Count; n != 1 {
		t.Errorf("%d snapshots open, want 1 (the current view)", n)
	}
	if n, err := s.Len(ctx, q); err != nil || n != 10 {
		t.Fatalf("Len = %d, %v", n, err)
	}
}
