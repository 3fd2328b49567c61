package storetest

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
)

// Embedded is the Harness of an embedded store (store/bolt, store/pebble):
// each store lives at name under its test's temporary directory, with a
// fake clock for its TTLs that Advance moves and Reopen carries over.
// open opens the store at path with the clock now; pathOf tells the path
// of a store open returned.
func Embedded(name string, open func(path string, now func() time.Time) (store.Store, error), pathOf func(store.Store) string) Harness {
	var mu sync.Mutex
	clocks := map[store.Store]*Clock{}
	start := func(t *testing.T, path string, c *Clock) store.Store {
		t.Helper()
		s, err := open(path, c.Now)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		mu.Lock()
		clocks[s] = c
		mu.Unlock()
		return s
	}
	clockOf := func(s store.Store) *Clock {
		mu.Lock()
		defer mu.Unlock()
		return clocks[s]
	}
	return Harness{
		Open: func(t *testing.T) store.Store {
			return start(t, filepath.Join(t.TempDir(), name), NewClock(time.Now()))
		},
		Reopen: func(t *testing.T, old store.Store) store.Store {
			if err := old.Close(); err != nil {
				t.Fatal(err)
			}
			return start(t, pathOf(old), clockOf(old))
		},
		Advance: func(t *testing.T, s store.Store, d time.Duration) {
			clockOf(s).Advance(d)
		},
	}
}

// Clock is a fake clock for TTLs, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock showing t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
