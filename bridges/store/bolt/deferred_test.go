package bolt_test

import (
	"path/filepath"
	"testing"

	"github.com/jabbergate/jabbergate/bridges/store/bolt"
	"github.com/jabbergate/jabbergate/bridges/store/storetest"
)

// TestDeferrableApply: store.Deferrable batches are committed alone (after
// DeferDelay) and together with others (storetest.Deferred).
func TestDeferrableApply(t *testing.T) {
	s, err := bolt.Open(filepath.Join(t.TempDir(), "d.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.Deferred(t, s)
}
