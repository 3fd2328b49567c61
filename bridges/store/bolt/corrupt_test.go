package bolt

import (
	"path/filepath"
	"testing"

	"github.com/jabbergate/jabbergate/bridges/store/storetest"
	bbolt "go.etcd.io/bbolt"
)

func TestCorruptAccount(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, SweepInterval(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.CorruptAccount(t, s, func(bridge, jid string) string {
		if err := s.db.Update(func(tx *bbolt.Tx) error {
			return userBucket(tx, bridge, jid).Put(keyAccount, []byte("garbage"))
		}); err != nil {
			t.Fatal(err)
		}
		return path
	})
}
