package bolt_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/bolt"
	"github.com/jabbergate/jabbergate/bridges/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Embedded("state.db",
		func(path string, now func() time.Time) (store.Store, error) { return bolt.Open(path, bolt.Clock(now)) },
		func(s store.Store) string { return s.(*bolt.Store).Path() }))
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
