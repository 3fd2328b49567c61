package pebble

import (
	"path/filepath"
	"testing"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/jabbergate/jabbergate/bridges/store/storetest"
)

func TestCorruptAccount(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	s, err := Open(path, SweepInterval(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.CorruptAccount(t, s, func(bridge, jid string) string {
		if err := s.db.Set(accountKey(bridge, jid), []byte("garbage"), pebbledb.Sync); err != nil {
			t.Fatal(err)
		}
		s.publish(nil) // reads use a view taken after each commit round
		return path
	})
}
