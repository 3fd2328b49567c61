package metrics

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/bolt"
)

// The timed wrapper keeps the store's group commit (store.Batcher) and
// times it.
func TestTimedStoreApply(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m := New("test")
	ts := m.Store(st)
	if _, ok := ts.(store.Batcher); !ok {
		t.Fatal("the timed store hides store.Batcher")
	}
	q := store.Queue{Bridge: "b", JID: "u", Kind: store.Inbox}
	var b store.Batch
	b.Append(q, []byte("x")).PutMapping("b", "u", "ns", "k", "v", 0)
	res, err := store.Apply(context.Background(), ts, &b)
	if err != nil || len(res.IDs[0]) != 1 {
		t.Fatalf("Apply = %+v, %v", res, err)
	}
	if v, err := st.GetMapping(context.Background(), "b", "u", "ns", "k"); err != nil || v != "v" {
		t.Errorf("mapping = %q, %v", v, err)
	}
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	timed := false
	for _, mf := range mfs {
		if mf.GetName() != "jabbergate_store_operation_duration_seconds" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "operation" && l.GetValue() == "apply" && mt.GetHistogram().GetSampleCount() == 1 {
					timed = true
				}
			}
		}
	}
	if !timed {
		t.Error("Apply not timed as operation \"apply\"")
	}
}
