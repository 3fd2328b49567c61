package bolt_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/bolt"
)

// goodFile writes a store of a few hundred pages and returns its bytes.
func goodFile(t *testing.T, path string) []byte {
	t.Helper()
	s, err := bolt.Open(path, bolt.SweepInterval(-1))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 150 {
		a := &store.Account{Bridge: "b.example", JID: fmt.Sprintf("user%04d@example.org", i), LegacyID: strings.Repeat("x", 3000)}
		if err := s.PutAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOpenDamagedFile: a store file that is not a whole bbolt database is
// refused by Open with an error wrapping store.ErrCorrupt that names the
// file and the problem, instead of bbolt's SIGBUS or panic; the file is
// left as it was, and its lock is released.
func TestOpenDamagedFile(t *testing.T) {
	dir := t.TempDir()
	good := goodFile(t, filepath.Join(dir, "good.db"))
	const ps = 4096
	if len(good) < 64*ps {
		t.Fatalf("store file is %d bytes, want at least 64 pages", len(good))
	}
	for _, tc := range []struct {
		name   string
		damage func(b []byte) []byte
		want   string
	}{
		{"empty", func([]byte) []byte { return nil }, "the file is empty (0 bytes)"},
		{"half", func(b []byte) []byte { return b[:len(b)/2] }, fmt.Sprintf("the file is %d bytes but its meta page says", len(good)/2)},
		{"one page", func(b []byte) []byte { return b[:ps] }, "truncated?"},
		{"100 bytes", func(b []byte) []byte { return b[:100] }, "truncated?"},
		{"meta pages zeroed", func(b []byte) []byte {
			clear(b[:2*ps])
			return b
		}, "no valid meta page"},
		{"meta pages garbage", func(b []byte) []byte {
			r := rand.New(rand.NewPCG(1, 2))
			for i := range 2 * ps {
				b[i] = byte(r.Uint32())
			}
			return b
		}, "no valid meta page"},
		{"data pages zeroed", func(b []byte) []byte {
			clear(b[2*ps:])
			return b
		}, "invalid freelist page"},
		{"page headers scrambled", func(b []byte) []byte {
			r := rand.New(rand.NewPCG(3, 4))
			for p := 2; p*ps < len(b); p++ {
				for i := range 16 {
					b[p*ps+i] = byte(r.Uint32())
				}
			}
			return b
		}, "is damaged: "},
		{"root page elements scrambled", func(b []byte) []byte {
			// The root page's header is intact; its element table is not:
			// bbolt panics (slice bounds) reading a key.
			root := int(binary.NativeEndian.Uint64(b[32:])) // meta 0's root; meta 1 is older or equal
			if m1 := int(binary.NativeEndian.Uint64(b[ps+32:])); binary.NativeEndian.Uint64(b[ps+64:]) > binary.NativeEndian.Uint64(b[64:]) {
				root = m1
			}
			r := rand.New(rand.NewPCG(7, 8))
			for i := 16; i < 16+64; i++ {
				b[root*ps+i] = byte(r.Uint32())
			}
			return b
		}, "reading it failed: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".db")
			damaged := tc.damage(bytes.Clone(good))
			if err := os.WriteFile(path, damaged, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := bolt.Open(path, bolt.SweepInterval(-1))
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), "store file "+path+" is damaged: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open: %v\nwant an error wrapping store.ErrCorrupt naming the file and %q", err, tc.want)
			}
			t.Log(err)
			if after, _ := os.ReadFile(path); !bytes.Equal(after, damaged) {
				t.Errorf("Open changed the damaged file (%d bytes, was %d)", len(after), len(damaged))
			}
			// The lock is released: a second Open says the same, not "in use".
			if _, err2 := bolt.Open(path, bolt.SweepInterval(-1)); errors.Is(err2, store.ErrLocked) {
				t.Errorf("second Open: %v", err2)
			}
		})
	}
}

// TestOpenMissingFileCreates: only a missing file is a new store.
func TestOpenMissingFileCreates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.db")
	s, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = bolt.Open(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	s.Close()
}

// TestCheckFindsDamagedPages: damage Open does not read (a page header
// of a user's bucket) is found by Check, which doctor runs.
func TestCheckFindsDamagedPages(t *testing.T) {
	dir := t.TempDir()
	good := goodFile(t, filepath.Join(dir, "good.db"))
	s, err := bolt.Open(filepath.Join(dir, "good.db"), bolt.SweepInterval(-1))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(context.Background()); err != nil {
		t.Errorf("Check of a whole file: %v", err)
	}
	s.Close()

	const ps = 4096
	b := bytes.Clone(good)
	r := rand.New(rand.NewPCG(5, 6))
	for p := 2; p*ps < len(b); p += 8 {
		for i := range 16 {
			b[p*ps+i] = byte(r.Uint32())
		}
	}
	path := filepath.Join(dir, "every8th.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = bolt.Open(path, bolt.SweepInterval(-1))
	if err != nil {
		// Open may meet the damage itself: then it says so.
		if !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("Open: %v", err)
		}
		return
	}
	defer s.Close()
	err = s.Check(context.Background())
	if !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), "store file "+path+" is damaged: consistency check: ") {
		t.Errorf("Check: %v, want the damage named", err)
	}
}
