package storetest

// Conformance of store.Batcher (group commit) and of the store.Apply
// fallback. A store without Batcher runs these through store.Apply's
// one-call-per-operation fallback, so they pass there too, except the
// atomicity check, which needs a Batcher and is skipped without one.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
)

// plainStore hides a store's optional interfaces, so store.Apply takes
// its fallback path.
type plainStore struct{ store.Store }

func (s suite) batch(t *testing.T) {
	if _, ok := s.h.Open(t).(store.Batcher); !ok {
		t.Log("store has no store.Batcher: checking store.Apply's fallback only")
	}
	for _, v := range []struct {
		name string
		wrap func(store.Store) store.Store
	}{
		{"Batcher", func(st store.Store) store.Store { return st }},
		{"Fallback", func(st store.Store) store.Store { return plainStore{st} }},
	} {
		t.Run(v.name, func(t *testing.T) { s.batchVariant(t, v.wrap) })
	}
	t.Run("Atomic", func(t *testing.T) {
		st := s.h.Open(t)
		bt, ok := st.(store.Batcher)
		if !ok {
			t.Skip("no store.Batcher")
		}
		var b store.Batch
		b.PutMapping(bridgeA, userA, "ns", "k", "v", 0)
		b.Append(qOf(bridgeA, userA, store.Inbox), []byte("x"))
		b.Ops = append(b.Ops, store.Op{Kind: store.OpAck, Queue: store.Queue{Bridge: bridgeA, JID: userA, Kind: "nope"}, IDs: []string{"1"}})
		if _, err := bt.Apply(ctx(t), &b); !errors.Is(err, store.ErrBadOp) {
			t.Fatalf("Apply with an invalid op: %v, want store.ErrBadOp", err)
		}
		if _, err := st.GetMapping(ctx(t), bridgeA, userA, "ns", "k"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("mapping of a refused batch: %v, want ErrNotFound", err)
		}
		checkLen(t, st, qOf(bridgeA, userA, store.Inbox), 0)
		b = store.Batch{Ops: []store.Op{{Kind: 99}}}
		if _, err := bt.Apply(ctx(t), &b); !errors.Is(err, store.ErrBadOp) {
			t.Fatalf("Apply with an unknown op kind: %v, want store.ErrBadOp", err)
		}
	})
	t.Run("AppendOnce", func(t *testing.T) {
		for _, v := range []struct {
			name string
			wrap func(store.Store) store.Store
		}{
			{"Batcher", func(st store.Store) store.Store { return st }},
			{"Fallback", func(st store.Store) store.Store { return plainStore{st} }},
		} {
			t.Run(v.name, func(t *testing.T) {
				st := v.wrap(s.h.Open(t))
				q := qOf(bridgeA, userA, store.Outbox)
				var b store.Batch
				b.AppendOnce(q, "once:1", time.Hour, []byte("first"))
				b.AppendOnce(q, "once:2", 0, []byte("second"), []byte("third"))
				b.AppendOnce(q, "once:1", time.Hour, []byte("same key in the same batch"))
				res, err := store.Apply(ctx(t), st, &b)
				must(t, err)
				if !res.Seen[0] || len(res.IDs[0]) != 1 || !res.Seen[1] || len(res.IDs[1]) != 2 {
					t.Errorf("new keys: Seen %v, IDs %v; want appended", res.Seen, res.IDs)
				}
				if res.Seen[2] || res.IDs[2] != nil {
					t.Errorf("a key seen earlier in the batch: Seen %v, IDs %v; want nothing appended", res.Seen[2], res.IDs[2])
				}
				// Again in another batch, beside a new one: only the new one.
				b = store.Batch{}
				b.AppendOnce(q, "once:2", time.Hour, []byte("resent"))
				b.AppendOnce(q, "once:3", time.Hour, []byte("fourth"))
				res, err = store.Apply(ctx(t), st, &b)
				must(t, err)
				if res.Seen[0] || res.IDs[0] != nil || !res.Seen[1] || len(res.IDs[1]) != 1 {
					t.Errorf("second batch: Seen %v, IDs %v", res.Seen, res.IDs)
				}
				if got := payloads(readAll(t, st, q)); !slices.Equal(got, []string{"first", "second", "third", "fourth"}) {
					t.Errorf("queue %q, want [first second third fourth]", got)
				}
				// The mark is an ordinary seen mark.
				if isNew, err := st.MarkSeen(ctx(t), bridgeA, userA, "once:3", time.Hour); err != nil || isNew {
					t.Errorf("MarkSeen of an AppendOnce key = %v, %v; want false", isNew, err)
				}
			})
		}
	})
	t.Run("Persistence", func(t *testing.T) {
		if s.h.Reopen == nil {
			t.Skip("no Reopen in the harness")
		}
		st := s.h.Open(t)
		q := qOf(bridgeA, userA, store.Outbox)
		var b store.Batch
		b.Append(q, []byte("p1"), []byte("p2")).PutMapping(bridgeA, userA, "ns", "k", "v", time.Hour).MarkSeen(bridgeA, userA, "s", time.Hour)
		_, err := store.Apply(ctx(t), st, &b)
		must(t, err)
		st = s.h.Reopen(t, st)
		if got := payloads(readAll(t, st, q)); !slices.Equal(got, []string{"p1", "p2"}) {
			t.Errorf("after reopen: queue %q, want [p1 p2]", got)
		}
		if v, err := st.GetMapping(ctx(t), bridgeA, userA, "ns", "k"); err != nil || v != "v" {
			t.Errorf("after reopen: mapping %q, %v", v, err)
		}
		if isNew, err := st.MarkSeen(ctx(t), bridgeA, userA, "s", time.Hour); err != nil || isNew {
			t.Errorf("after reopen: MarkSeen of a batched mark = %v, %v; want false", isNew, err)
		}
	})
}

func (s suite) batchVariant(t *testing.T, wrap func(store.Store) store.Store) {
	t.Run("Empty", func(t *testing.T) {
		st := wrap(s.h.Open(t))
		for _, b := range []*store.Batch{nil, {}} {
			res, err := store.Apply(ctx(t), st, b)
			if err != nil || res == nil {
				t.Fatalf("Apply(empty) = %v, %v", res, err)
			}
		}
	})
	t.Run("Mixed", func(t *testing.T) {
		st := wrap(s.h.Open(t))
		in, out := qOf(bridgeA, userA, store.Inbox), qOf(bridgeA, userA, store.Outbox)
		var b store.Batch
		b.Append(in, []byte("a"), []byte("b"), []byte("c"))
		b.PutMapping(bridgeA, userA, "delivered", "s1", "1", time.Hour)
		b.MarkSeen(bridgeA, userA, "ev1", time.Hour)
		b.MarkSeen(bridgeA, userA, "ev1", time.Hour)
		b.Append(out, []byte("o"))
		b.Append(qOf(bridgeB, userB, store.Inbox), []byte("other"))
		res, err := store.Apply(ctx(t), st, &b)
		must(t, err)
		if len(res.IDs) != b.Len() || len(res.Seen) != b.Len() {
			t.Fatalf("result has %d ids and %d seen for %d ops", len(res.IDs), len(res.Seen), b.Len())
		}
		if len(res.IDs[0]) != 3 || len(res.IDs[4]) != 1 || len(res.IDs[5]) != 1 {
			t.Fatalf("Append ids: %q", res.IDs)
		}
		checkDistinct(t, res.IDs[0])
		if !res.Seen[2] || res.Seen[3] {
			t.Errorf("MarkSeen twice in one batch = %v, %v; want true, false", res.Seen[2], res.Seen[3])
		}
		es := readAll(t, st, in)
		if got := payloads(es); !slices.Equal(got, []string{"a", "b", "c"}) {
			t.Fatalf("inbox %q, want [a b c]", got)
		}
		if !slices.Equal(entryIDs(es), res.IDs[0]) {
			t.Errorf("Read ids %q, Apply returned %q", entryIDs(es), res.IDs[0])
		}
		if v, err := st.GetMapping(ctx(t), bridgeA, userA, "delivered", "s1"); err != nil || v != "1" {
			t.Errorf("mapping = %q, %v", v, err)
		}
		if got := listQueues(t, st, bridgeB, store.Inbox); !slices.Equal(got, []string{userB}) {
			t.Errorf("Queues(bridgeB) = %q", got)
		}

		// Ack two of three and map them in one batch: the delivered marks
		// and the ack of a drained inbox batch.
		b.Reset()
		b.PutMapping(bridgeA, userA, "delivered", "s2", "1", time.Hour)
		b.Ack(in, res.IDs[0][0], res.IDs[0][2], "malformed", "")
		b.Ack(out, res.IDs[4]...)
		b.MarkSeen(bridgeA, userA, "ev1", time.Hour)
		res2, err := store.Apply(ctx(t), st, &b)
		must(t, err)
		if res2.Seen[3] {
			t.Error("MarkSeen of a key marked by an earlier batch reported new")
		}
		if got := payloads(readAll(t, st, in)); !slices.Equal(got, []string{"b"}) {
			t.Errorf("inbox after the batched ack: %q, want [b]", got)
		}
		checkLen(t, st, out, 0)
		if v, err := st.GetMapping(ctx(t), bridgeA, userA, "delivered", "s2"); err != nil || v != "1" {
			t.Errorf("mapping = %q, %v", v, err)
		}
		// Appends after a batched ack still get increasing ids.
		ids := appendN(t, st, in, "d")
		es = readAll(t, st, in)
		if got := payloads(es); !slices.Equal(got, []string{"b", "d"}) || es[1].ID != ids[0] {
			t.Errorf("inbox %q (%q), want [b d] ending with %q", got, entryIDs(es), ids[0])
		}
	})
	t.Run("Order", func(t *testing.T) {
		// Later operations see earlier ones: the last write of a key wins.
		st := wrap(s.h.Open(t))
		var b store.Batch
		b.PutMapping(bridgeA, userA, "ns", "k", "first", 0)
		b.PutMapping(bridgeA, userA, "ns", "k", "second", 0)
		_, err := store.Apply(ctx(t), st, &b)
		must(t, err)
		if v, err := st.GetMapping(ctx(t), bridgeA, userA, "ns", "k"); err != nil || v != "second" {
			t.Errorf("mapping = %q, %v; want second", v, err)
		}
	})
	t.Run("TTL", func(t *testing.T) {
		st := wrap(s.h.Open(t))
		var b store.Batch
		b.PutMapping(bridgeA, userA, "ns", "short", "v", shortTTL)
		b.PutMapping(bridgeA, userA, "ns", "long", "v", time.Hour)
		b.MarkSeen(bridgeA, userA, "mark", shortTTL)
		_, err := store.Apply(ctx(t), st, &b)
		must(t, err)
		s.advance(t, unwrap(st), ttlWait)
		if _, err := st.GetMapping(ctx(t), bridgeA, userA, "ns", "short"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("expired batched mapping: %v, want ErrNotFound", err)
		}
		if _, err := st.GetMapping(ctx(t), bridgeA, userA, "ns", "long"); err != nil {
			t.Errorf("live batched mapping: %v", err)
		}
		if isNew, err := st.MarkSeen(ctx(t), bridgeA, userA, "mark", time.Hour); err != nil || !isNew {
			t.Errorf("MarkSeen after the batched mark expired = %v, %v; want true", isNew, err)
		}
	})
	t.Run("Canceled", func(t *testing.T) {
		st := wrap(s.h.Open(t))
		c, cancel := context.WithCancel(context.Background())
		cancel()
		var b store.Batch
		b.Append(qOf(bridgeA, userA, store.Inbox), []byte("x")).PutMapping(bridgeA, userA, "ns", "k", "v", 0)
		if _, err := store.Apply(c, st, &b); !errors.Is(err, context.Canceled) {
			t.Errorf("Apply with a canceled context: %v, want context.Canceled", err)
		}
		checkLen(t, st, qOf(bridgeA, userA, store.Inbox), 0)
		if _, err := st.GetMapping(ctx(t), bridgeA, userA, "ns", "k"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("mapping after a canceled Apply: %v", err)
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		// Concurrent callers (which a store may commit together) each get
		// their own results; per queue, order is the order of the calls.
		st := wrap(s.h.Open(t))
		const workers, rounds = 16, 8
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Go(func() {
				jid := fmt.Sprintf("u%d@example.org", w%4)
				q := qOf(bridgeA, jid, store.Inbox)
				for r := range rounds {
					var b store.Batch
					p := fmt.Sprintf("w%d-r%d", w, r)
					b.Append(q, []byte(p)).PutMapping(bridgeA, jid, "ns", p, p, time.Hour).MarkSeen(bridgeA, jid, p, time.Hour)
					res, err := store.Apply(ctx(t), st, &b)
					if err != nil {
						errs <- err
						return
					}
					if len(res.IDs[0]) != 1 || !res.Seen[2] {
						errs <- fmt.Errorf("%s: result %q %v", p, res.IDs, res.Seen)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for u := range 4 {
			jid := fmt.Sprintf("u%d@example.org", u)
			es := readAll(t, st, qOf(bridgeA, jid, store.Inbox))
			if len(es) != workers/4*rounds {
				t.Fatalf("%s: %d entries, want %d", jid, len(es), workers/4*rounds)
			}
			checkDistinct(t, entryIDs(es))
			last := map[string]int{}
			for _, e := range es {
				var w, r int
				if _, err := fmt.Sscanf(string(e.Payload), "w%d-r%d", &w, &r); err != nil {
					t.Fatal(err)
				}
				key := fmt.Sprint(w)
				if prev, ok := last[key]; ok && r <= prev {
					t.Fatalf("%s: worker %d's round %d after round %d", jid, w, r, prev)
				}
				last[key] = r
				if v, err := st.GetMapping(ctx(t), bridgeA, jid, "ns", string(e.Payload)); err != nil || v != string(e.Payload) {
					t.Errorf("mapping %s = %q, %v", e.Payload, v, err)
				}
			}
		}
	})
}

// unwrap returns the store a test wrapper hides (Advance is keyed by the
// harness's own store).
func unwrap(st store.Store) store.Store {
	if p, ok := st.(plainStore); ok {
		return p.Store
	}
	return st
}
