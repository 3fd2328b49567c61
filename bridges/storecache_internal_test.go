package bridges

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/bolt"
)

// readCounter counts GetContact calls that reach the store.
type readCounter struct {
	store.Store
	gets atomic.Int64
}

func (r *readCounter) GetContact(ctx context.Context, bridge, jid, lp string) (*store.Contact, error) {
	r.gets.Add(1)
	return r.Store.GetContact(ctx, bridge, jid, lp)
}

func openCache(t *testing.T, cacheContacts bool) (*contactCache, *readCounter) {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rc := &readCounter{Store: st}
	return newContactCache(rc, cacheContacts), rc
}

func TestContactCache(t *testing.T) {
	ctx := context.Background()
	c, rc := openCache(t, true)
	const br, u = "b.example", "u@example"
	get := func(lp string) *store.Contact {
		t.Helper()
		ct, err := c.GetContact(ctx, br, u, lp)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		return ct
	}
	// Absent contacts are cached too.
	if get("x") != nil || get("x") != nil {
		t.Fatal("absent contact found")
	}
	if n := rc.gets.Load(); n != 1 {
		t.Errorf("%d store reads for two gets of an absent contact, want 1", n)
	}
	// A write makes the next get read the new value.
	if err := c.PutContact(ctx, br, u, &store.Contact{Localpart: "x", LegacyID: "X1"}); err != nil {
		t.Fatal(err)
	}
	if ct := get("x"); ct == nil || ct.LegacyID != "X1" {
		t.Fatalf("after PutContact: %+v", ct)
	}
	// Copies out: changing what Get returned changes nothing cached.
	get("x").LegacyID = "changed"
	if ct := get("x"); ct.LegacyID != "X1" {
		t.Errorf("cached contact changed through a returned copy: %+v", ct)
	}
	before := rc.gets.Load()
	get("x")
	if rc.gets.Load() != before {
		t.Error("a warm get read the store")
	}
	if err := c.PutContact(ctx, br, u, &store.Contact{Localpart: "x", LegacyID: "X2"}); err != nil {
		t.Fatal(err)
	}
	if ct := get("x"); ct.LegacyID != "X2" {
		t.Errorf("after a second PutContact: %+v", ct)
	}
	if err := c.DeleteContact(ctx, br, u, "x"); err != nil {
		t.Fatal(err)
	}
	if get("x") != nil {
		t.Error("deleted contact still cached")
	}
	if err := c.PutContact(ctx, br, u, &store.Contact{Localpart: "y", LegacyID: "Y"}); err != nil {
		t.Fatal(err)
	}
	get("y")
	if err := c.DeleteAccount(ctx, br, u); err != nil {
		t.Fatal(err)
	}
	if get("y") != nil {
		t.Error("contact of a deleted account still cached")
	}
	// Writes through the cache by another user do not touch this one's.
	get("z")
	if err := c.PutContact(ctx, br, "other@example", &store.Contact{Localpart: "z", LegacyID: "Z"}); err != nil {
		t.Fatal(err)
	}
	if get("z") != nil {
		t.Error("another user's contact seen")
	}
}

func TestContactCacheOffInCluster(t *testing.T) {
	ctx := context.Background()
	c, rc := openCache(t, false)
	for range 3 {
		if _, err := c.GetContact(ctx, "b", "u", "x"); !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
	}
	if n := rc.gets.Load(); n != 3 {
		t.Errorf("%d store reads, want 3 (no cache)", n)
	}
}

func TestStagedMappings(t *testing.T) {
	ctx := context.Background()
	c, _ := openCache(t, true)
	c.stage("b", "u", "ns", "k", "v")
	if v, err := c.GetMapping(ctx, "b", "u", "ns", "k"); err != nil || v != "v" {
		t.Fatalf("staged mapping = %q, %v", v, err)
	}
	if _, err := c.GetMapping(ctx, "b", "other", "ns", "k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("staged mapping seen by another user: %v", err)
	}
	var bt store.Batch
	bt.PutMapping("b", "u", "ns", "k", "v", 0)
	if _, err := store.Apply(ctx, c, &bt); err != nil {
		t.Fatal(err)
	}
	c.unstage(&bt)
	if v, err := c.GetMapping(ctx, "b", "u", "ns", "k"); err != nil || v != "v" {
		t.Fatalf("committed mapping = %q, %v", v, err)
	}
	// Abandoned (never committed): gone once unstaged.
	c.stage("b", "u", "ns", "k2", "v2")
	bt.Reset()
	bt.PutMapping("b", "u", "ns", "k2", "v2", 0)
	c.unstage(&bt)
	if _, err := c.GetMapping(ctx, "b", "u", "ns", "k2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("abandoned staged mapping still answered: %v", err)
	}
}
