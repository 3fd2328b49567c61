package bolt

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/jabbergate/jabbergate/bridges/store"
)

// TestScrubDropsDeletedBytes: a deleted account's sealed value stays in
// the file's free pages until Scrub rewrites it; live data survives.
func TestScrubDropsDeletedBytes(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "jg.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	gone := "k1:SEALED-CREDENTIAL-OF-A-DELETED-USER"
	for _, a := range []*store.Account{
		{Bridge: "b", JID: "gone@x", Fields: map[string]string{"token": gone}},
		{Bridge: "b", JID: "kept@x", Fields: map[string]string{"token": "k1:kept"}},
	} {
		if err := s.PutAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteAccount(ctx, "b", "gone@x"); err != nil {
		t.Fatal(err)
	}
	// Held by the open store: refused.
	if err := Scrub(path); !errors.Is(err, store.ErrLocked) {
		t.Errorf("Scrub of an open store = %v, want ErrLocked", err)
	}
	s.Close()
	// Owned by the service's user, as the gateway leaves it; the admin
	// command runs as root.
	if os.Geteuid() == 0 {
		if err := os.Chown(path, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(path)
	if !bytes.Contains(data, []byte(gone)) {
		t.Skip("bbolt reused the page already: nothing left to scrub in this run")
	}
	if err := Scrub(path); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(path)
	if bytes.Contains(data, []byte(gone)) {
		t.Error("the deleted value is still in the file after Scrub")
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after Scrub = %v", fi.Mode())
	}
	if st := fi.Sys().(*syscall.Stat_t); os.Geteuid() == 0 && (st.Uid != 65534 || st.Gid != 65534) {
		t.Errorf("owner after Scrub = %d:%d, want 65534:65534 (the file's)", st.Uid, st.Gid)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("files left: %v", ents)
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if a, err := s.GetAccount(ctx, "b", "kept@x"); err != nil || a.Fields["token"] != "k1:kept" {
		t.Errorf("kept account after Scrub = %+v, %v", a, err)
	}
	if _, err := s.GetAccount(ctx, "b", "gone@x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted account after Scrub: %v", err)
	}
}
