package redis

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/redistest"
)

func openGroupTest(t *testing.T) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Open(ctx, redistest.Start(t), Options{Prefix: "grp"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newReq(b *store.Batch) *txReq {
	return &txReq{b: b, cmds: newBatchCmds(b.Len())}
}

// TestSharedTransactionErrorsPerBatch puts three batches in one shared
// transaction, the middle one failing in Redis (its queue key holds a
// string, XADD answers WRONGTYPE): the other two are applied and told so,
// only the middle one gets the error.
func TestSharedTransactionErrorsPerBatch(t *testing.T) {
	ctx := context.Background()
	s := openGroupTest(t)
	const br = "gw.example"
	good1 := store.Queue{Bridge: br, JID: "a@example", Kind: store.Inbox}
	bad := store.Queue{Bridge: br, JID: "b@example", Kind: store.Inbox}
	good2 := store.Queue{Bridge: br, JID: "c@example", Kind: store.Inbox}
	if err := s.c.Set(ctx, queueKey(s.user(br, bad.JID), bad.Kind), "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	reqs := []*txReq{
		newReq((&store.Batch{}).Append(good1, []byte("one")).MarkSeen(br, good1.JID, "k", time.Hour)),
		newReq((&store.Batch{}).Append(bad, []byte("lost")).PutMapping(br, bad.JID, "ns", "key", "v", time.Hour)),
		newReq((&store.Batch{}).Append(good2, []byte("two"))),
	}
	g := &s.group
	for _, r := range reqs {
		r.done = make(chan error, 1)
	}
	txs := g.txs.Load()
	g.round(ctx, s, reqs)
	if n := g.txs.Load() - txs; n != 1 {
		t.Fatalf("%d transactions for three batches, want 1", n)
	}
	for i, want := range []bool{true, false, true} {
		err := <-reqs[i].done
		if (err == nil) != want {
			t.Errorf("batch %d: error %v, want ok=%v", i, err, want)
		}
	}
	for _, c := range []struct {
		q    store.Queue
		want string
	}{{good1, "one"}, {good2, "two"}} {
		es, err := s.Read(ctx, c.q, "", 10)
		if err != nil || len(es) != 1 || string(es[0].Payload) != c.want {
			t.Errorf("%s: %v, %v; want one entry %q", c.q.JID, es, err, c.want)
		}
	}
	if seen := reqs[0].cmds.seen[1]; seen == nil || !seen.Val() {
		t.Errorf("MarkSeen of the first batch not reported new: %v", seen)
	}
}

// TestConcurrentApplyShareTransactions: many goroutines applying batches at
// once get exactly what one-by-one calls would give (ids in order, one
// "new" per seen key), in fewer transactions than calls.
func TestConcurrentApplyShareTransactions(t *testing.T) {
	ctx := context.Background()
	s := openGroupTest(t)
	const br, workers, each = "gw.example", 32, 20
	txs := s.Transactions()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	newMarks := make([]int, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := store.Queue{Bridge: br, JID: fmt.Sprintf("u%d@example", w%8), Kind: store.Outbox}
			for i := range each {
				var b store.Batch
				b.Append(q, fmt.Appendf(nil, "%d-%d", w, i))
				b.MarkSeen(br, "shared@example", fmt.Sprintf("key%d", i), time.Hour) // every worker marks the same keys
				res, err := s.Apply(ctx, &b)
				if err != nil {
					errs <- err
					return
				}
				if len(res.IDs[0]) != 1 || res.IDs[0][0] == "" {
					errs <- fmt.Errorf("worker %d: append ids %v", w, res.IDs[0])
					return
				}
				if res.Seen[1] {
					newMarks[w]++
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := 0
	for _, n := range newMarks {
		total += n
	}
	if total != each {
		t.Errorf("%d seen marks reported new, want %d (one per key)", total, each)
	}
	// Each worker's entries are in its user's queue, in its order.
	for u := range 8 {
		q := store.Queue{Bridge: br, JID: fmt.Sprintf("u%d@example", u), Kind: store.Outbox}
		es, err := s.Read(ctx, q, "", workers*each)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != workers/8*each {
			t.Fatalf("%s: %d entries, want %d", q.JID, len(es), workers/8*each)
		}
		next := map[int]int{}
		for _, e := range es {
			var w, i int
			if _, err := fmt.Sscanf(string(e.Payload), "%d-%d", &w, &i); err != nil || i != next[w] {
				t.Fatalf("%s: entry %q out of order (want %d-%d)", q.JID, e.Payload, w, next[w])
			}
			next[w]++
		}
	}
	if n := s.Transactions() - txs; n >= workers*each {
		t.Errorf("%d transactions for %d concurrent Apply calls: none shared", n, workers*each)
	} else {
		t.Logf("%d Apply calls in %d transactions", workers*each, n)
	}
}

// TestBatchTracksEveryMember: a batch's mappings and seen marks, gathered
// into one ZADD per ttl zset and kind, are all tracked (so DeleteAccount
// finds them), a seen mark's tracking is never shortened (GT), and
// another user's zset gets only its own members.
func TestBatchTracksEveryMember(t *testing.T) {
	ctx := context.Background()
	m := miniredis.RunT(t)
	s, err := Open(ctx, "redis://"+m.Addr(), Options{Prefix: "jg"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if ok, err := s.MarkSeen(ctx, "b", "u", "forever", 0); err != nil || !ok {
		t.Fatal(ok, err)
	}
	var b store.Batch
	for i := range 5 {
		b.PutMapping("b", "u", "ns", fmt.Sprint(i), "v", time.Hour)
	}
	b.MarkSeen("b", "u", "forever", time.Millisecond) // must stay +inf
	b.MarkSeen("b", "u", "new", time.Hour)
	b.PutMapping("b", "other", "ns", "x", "v", 0)
	if _, err := s.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	members, err := m.ZMembers("jg:{b|u}:ttl")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"map:ns:0", "map:ns:1", "map:ns:2", "map:ns:3", "map:ns:4", "seen:new", "seen:forever"}
	if len(members) != len(want) {
		t.Errorf("ttl zset of u = %q, want the members %q", members, want)
	}
	for _, w := range want {
		if _, err := m.ZScore("jg:{b|u}:ttl", w); err != nil {
			t.Errorf("%s not tracked: %v", w, err)
		}
	}
	if score, _ := m.ZScore("jg:{b|u}:ttl", "seen:forever"); score < 1e300 {
		t.Errorf("tracking of a permanent seen mark shortened to %v", score)
	}
	if other, _ := m.ZMembers("jg:{b|other}:ttl"); len(other) != 1 || other[0] != "map:ns:x" {
		t.Errorf("ttl zset of other = %q", other)
	}
	if err := s.DeleteAccount(ctx, "b", "u"); err != nil {
		t.Fatal(err)
	}
	for _, k := range m.Keys() {
		if strings.HasPrefix(k, "jg:{b|u}:") {
			t.Errorf("key %s left after DeleteAccount", k)
		}
	}
}

// TestAppendOnceWithoutTheScript: a server whose script cache is empty (a
// restart, SCRIPT FLUSH) refuses the EVALSHA of an AppendOnce with
// NOSCRIPT; the store then sends the script's text, so the append happens
// once, and the other operations of the transaction happen once too.
func TestAppendOnceWithoutTheScript(t *testing.T) {
	ctx := context.Background()
	s := openGroupTest(t)
	const br = "gw.example"
	q := store.Queue{Bridge: br, JID: "a@example", Kind: store.Outbox}
	other := store.Queue{Bridge: br, JID: "b@example", Kind: store.Outbox}
	for i, key := range []string{"k1", "k2"} {
		if err := s.c.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		var b store.Batch
		b.Append(other, []byte(fmt.Sprintf("plain %d", i)))
		b.AppendOnce(q, key, time.Hour, []byte("once "+key))
		b.AppendOnce(q, "k1", time.Hour, []byte("resent"))
		res, err := s.Apply(ctx, &b)
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if !res.Seen[1] || len(res.IDs[1]) != 1 || res.Seen[2] || len(res.IDs[2]) != 0 {
			t.Errorf("batch %d: Seen %v IDs %v", i, res.Seen, res.IDs)
		}
	}
	es, err := s.Read(ctx, q, "", 10)
	if err != nil || len(es) != 2 || string(es[0].Payload) != "once k1" || string(es[1].Payload) != "once k2" {
		t.Errorf("queue: %v, %v; want once k1, once k2", es, err)
	}
	if es, err := s.Read(ctx, other, "", 10); err != nil || len(es) != 2 {
		t.Errorf("the other operations: %v, %v; want each applied once", es, err)
	}
}
