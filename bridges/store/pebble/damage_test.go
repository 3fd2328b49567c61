package pebble

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/record"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/jabbergate/jabbergate/bridges/store"
)

// filled opens a store in a new directory, puts n accounts and closes it;
// with flush, it is opened and closed once more, which writes the
// write-ahead log's contents to a table.
func filled(t *testing.T, n int, flush bool) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	s, err := Open(dir, SweepInterval(-1))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		a := &store.Account{Bridge: "b", JID: fmt.Sprintf("u%04d@example.org", i), LegacyID: strings.Repeat("x", 1000)}
		if err := s.PutAccount(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if flush {
		s, err := Open(dir, SweepInterval(-1))
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	return dir
}

func filesIn(t *testing.T, dir, suffix string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if strings.HasSuffix(e.Name(), suffix) || strings.HasPrefix(e.Name(), suffix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestOpenRefusesMissingManifestMarker: a directory with Pebble's tables
// but no marker.manifest.* is refused, naming the directory and what is
// missing, and its tables are left where they are (Pebble would have
// started an empty database and deleted them as obsolete).
func TestOpenRefusesMissingManifestMarker(t *testing.T) {
	dir := filled(t, 20, true)
	ssts := filesIn(t, dir, ".sst")
	if len(ssts) == 0 {
		t.Fatal("no table written")
	}
	for _, m := range filesIn(t, dir, "marker.manifest.") {
		if err := os.Remove(filepath.Join(dir, m)); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(dir, SweepInterval(-1))
	if err == nil {
		as, _ := s.ListAccounts(context.Background(), "b")
		s.Close()
		t.Fatalf("Open succeeded (%d accounts)", len(as))
	}
	if !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), "store directory "+dir+" is damaged: ") || !strings.Contains(err.Error(), "no marker.manifest.* file") {
		t.Errorf("Open: %v\nwant the directory and the missing marker named", err)
	}
	if got := filesIn(t, dir, ".sst"); !slices.Equal(got, ssts) {
		t.Errorf("tables after Open = %q, want %q", got, ssts)
	}
}

// TestOpenDamagedWAL: Pebble's error about a write-ahead log it cannot
// replay names neither the directory nor the file; Open's does, on one
// line. (Pebble reports only damage it can tell from a torn tail: a
// damaged last WAL without later sync chunks is read up to the damage,
// and the rest dropped silently, so the error is made here as Pebble
// makes it.)
func TestOpenDamagedWAL(t *testing.T) {
	dir := filled(t, 1, false)
	logs := filesIn(t, dir, ".log")
	if len(logs) == 0 {
		t.Fatal("no WAL")
	}
	pebbleErr := fmt.Errorf("pebble: error when replaying WAL: %w", record.ErrInvalidChunk)
	err := openError(dir, vfs.Default, pebbleErr)
	if !errors.Is(err, store.ErrCorrupt) || !errors.Is(err, record.ErrInvalidChunk) ||
		!strings.Contains(err.Error(), "store directory "+dir+" is damaged: its write-ahead log ("+strings.Join(logs, ", ")+") is damaged (pebble: error when replaying WAL: pebble/record: invalid chunk)") ||
		strings.Contains(err.Error(), "\n") {
		t.Errorf("error: %v\nwant the directory and its WALs named, on one line", err)
	}
}

// TestDamagedTableIsOneLine: a table that fails its checksum stops the
// gateway (fatal) with a message naming the file, without Pebble's stack
// traces.
func TestDamagedTableIsOneLine(t *testing.T) {
	dir := filled(t, 200, true)
	ssts := filesIn(t, dir, ".sst")
	if len(ssts) == 0 {
		t.Fatal("no table written")
	}
	for _, n := range ssts {
		p := filepath.Join(dir, n)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		copy(b[100:len(b)/2], bytes.Repeat([]byte{0x5a}, len(b)))
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Pebble meets the damage when the store reads, which Open does
	// already; fatal does not return, so neither does that call.
	fatal := make(chan string, 10)
	opened := make(chan error, 1)
	go func() {
		s, err := Open(dir, SweepInterval(-1), onFatal(func(msg string) { fatal <- msg }))
		if err == nil {
			t.Cleanup(func() { releaseDir(s.dir) })
			_, err = s.ListAccounts(context.Background(), "b")
		}
		opened <- err
	}()
	var msg string
	select {
	case msg = <-fatal:
	case err := <-opened:
		t.Fatalf("Open and ListAccounts returned %v; want fatal called", err)
	case <-time.After(30 * time.Second):
		t.Fatal("fatal not called")
	}
	if !strings.Contains(msg, dir) || !strings.Contains(msg, ".sst is damaged (") || strings.Contains(msg, "stack trace") || strings.Contains(msg, "\n") || len(msg) > 600 {
		t.Errorf("fatal message (%d bytes):\n%s\nwant the file named, on one line, without stack traces", len(msg), msg)
	}
}
