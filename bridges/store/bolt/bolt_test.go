package bolt_test

import (
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/bolt"
	"github.com/jabbergate/jabbergate/bridges/store/storetest"
)

// clock is a fake clock for TTLs.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// harness opens stores on files in t.TempDir(), each with a fake clock.
type harness struct {
	mu     sync.Mutex
	clocks map[store.Store]*clock
}

func (h *harness) open(t *testing.T, path string, c *clock) store.Store {
	t.Helper()
	s, err := bolt.Open(path, bolt.Clock(c.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	h.mu.Lock()
	h.clocks[s] = c
	h.mu.Unlock()
	return s
}

func (h *harness) clock(s store.Store) *clock {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.clocks[s]
}

func TestConformance(t *testing.T) {
	h := &harness{clocks: map[store.Store]*clock{}}
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T) store.Store {
			return h.open(t, filepath.Join(t.TempDir(), "state.db"), &clock{t: time.Now()})
		},
		Reopen: func(t *testing.T, old store.Store) store.Store {
			if err := old.Close(); err != nil {
				t.Fatal(err)
			}
			return h.open(t, old.(*bolt.Store).Path(), h.clock(old))
		},
		Advance: func(t *testing.T, s store.Store, d time.Duration) {
			h.clock(s).Advance(d)
		},
	})
}

func TestSecondOpenIsLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	start := time.Now()
	s2, err := bolt.Open(path, bolt.Timeout(200*time.Millisecond))
	if err == nil {
		s2.Close()
		t.Fatal("second Open of a held file succeeded")
	}
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second Open: %v, want an error wrapping store.ErrLocked", err)
	}
	want := "store: " + path + " is in use by another jabbergate process"
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second Open took %v", d)
	}

	// Once the first is closed the file opens again.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s3, err := bolt.Open(path)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s3.Close()
}

func TestOpenErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing-dir", "state.db")
	_, err := bolt.Open(path)
	if err == nil || !strings.Contains(err.Error(), path) || errors.Is(err, store.ErrLocked) {
		t.Fatalf("Open in a missing directory: %v", err)
	}
}

func openBench(b *testing.B) *bolt.Store {
	s, err := bolt.Open(filepath.Join(b.TempDir(), "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func BenchmarkAppendAck(b *testing.B)     { storetest.BenchAppendAck(b, openBench(b)) }
func BenchmarkPutGetMapping(b *testing.B) { storetest.BenchPutGetMapping(b, openBench(b)) }
func BenchmarkMarkSeen(b *testing.B)      { storetest.BenchMarkSeen(b, openBench(b)) }
