package pebble

// Group commit: every write of the store, store.Batcher's Apply and the
// single-call methods alike, is a request to one committer at a time
// (store.Group). A round builds one Pebble batch of all the requests
// queued, commits it with a synced WAL write, and answers them: a lone
// caller is committed at once (no timer); under load a round carries
// everything that arrived during the previous fsync. If a shared round
// fails, each request is retried in a batch of its own, so one failing
// request cannot fail the others.
//
// One committer at a time makes the store's read-then-write operations
// atomic (MarkSeen, the sweeper's recheck) and assigns queue sequences in
// commit order. A round's batch is indexed, so a request reads the writes
// of the requests before it in the same round.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/internal/record"
)

var _ store.Batcher = (*Store)(nil)

// groupCommit queues write requests for shared commits.
type groupCommit struct {
	store.Group[*commitReq]
	commits atomic.Int64
}

// Commits returns how many commit rounds the store has run (shared ones
// count once): what group commit saves, for benchmarks.
func (s *Store) Commits() int64 { return s.gc.commits.Load() }

// DeferDelay bounds how long a batch applied under store.Deferrable waits
// for a commit to join.
const DeferDelay = 2 * time.Millisecond

type commitReq struct {
	fn   func(w *writer) error // must be safe to run again after a failed round
	done chan error
}

// maxGroup bounds the requests of one round.
const maxGroup = 256

// write runs fn in a commit round and returns once the round is durable
// (or failed).
func (s *Store) write(ctx context.Context, fn func(w *writer) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.commit(fn, false); err != nil {
		if errors.Is(err, ErrClosed) {
			return err
		}
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// commit queues fn for a round shared with concurrent callers. A deferred
// request does not start a round: it waits for one, or for DeferDelay.
func (s *Store) commit(fn func(w *writer) error, deferred bool) error {
	r := &commitReq{fn: fn, done: make(chan error, 1)}
	return s.gc.Submit(r, r.done, deferred, DeferDelay, maxGroup, s.commitRound)
}

// commitRound commits batch in one Pebble batch.
func (s *Store) commitRound(batch []*commitReq) {
	if err := s.enter(); err != nil {
		for _, r := range batch {
			r.done <- err
		}
		return
	}
	defer s.leave()
	s.gc.commits.Add(1)
	err := s.run(batch...)
	if err == nil || len(batch) == 1 {
		for _, r := range batch {
			r.done <- err
		}
		return
	}
	for _, r := range batch { // find the culprit: each on its own
		s.gc.commits.Add(1)
		r.done <- s.run(r)
	}
}

// run builds one batch of the requests and commits it, synced.
func (s *Store) run(reqs ...*commitReq) error {
	clear(s.wtails)
	w := &writer{s: s, b: s.db.NewIndexedBatch(), key: s.wkey[:0], val: s.wval[:0], tails: s.wtails}
	defer func() { s.wkey, s.wval = w.key[:0], w.val[:0] }() // for the next round
	defer w.b.Close()
	for _, r := range reqs {
		if err := r.fn(w); err != nil {
			return err
		}
	}
	if w.b.Empty() {
		return nil
	}
	if err := w.b.Commit(pebbledb.Sync); err != nil {
		return err
	}
	s.publish(w.deleted)
	for _, up := range w.deleted {
		forgetUser(s.tails, up)
	}
	for p, seq := range w.tails {
		s.tails[p] = seq
	}
	return nil
}

// forgetUser drops from m, keyed by prefixes of one user's keys (queue
// tails, seen filters), the entries of the user with prefix up.
func forgetUser[V any](m map[string]V, up []byte) {
	for k := range m {
		if strings.HasPrefix(k, string(up)) {
			delete(m, k)
		}
	}
}

// writer is one round's batch.
type writer struct {
	s       *Store
	b       *pebbledb.Batch   // indexed: reads see the round's writes
	deleted [][]byte          // prefixes of the users the round deletes
	tails   map[string]uint64 // last sequences the round wrote (Store.wtails)
	// Scratch for the keys and values the round writes: Pebble copies
	// what Set, Delete and Get are given, so one buffer serves them all.
	key, val []byte
}

// expiry returns the expiry of key (a mapping or seen mark) as the round
// sees it; ok is false if the key is absent.
func (w *writer) expiry(key []byte) (exp uint64, ok bool, err error) {
	v, c, err := w.b.Get(key)
	if errors.Is(err, pebbledb.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer c.Close()
	if len(v) < 8 {
		return 0, false, nil
	}
	return binary.BigEndian.Uint64(v), true, nil
}

func (w *writer) append(q store.Queue, payloads [][]byte) ([]string, error) {
	if len(payloads) == 0 {
		return nil, nil
	}
	p, k := w.queueKeys(q)
	last, err := w.lastSeq(p)
	if err != nil {
		return nil, err
	}
	first, tail := last+1, last+uint64(len(payloads))
	ids := make([]string, len(payloads))
	for i, pl := range payloads {
		seq := first + uint64(i)
		binary.BigEndian.PutUint64(k[len(p):], seq)
		if err := w.b.Set(k, pl, nil); err != nil { // copies k and pl
			return nil, err
		}
		ids[i] = record.FormatID(seq)
	}
	w.val = binary.BigEndian.AppendUint64(w.val[:0], tail)
	if err := w.b.Set(p, w.val, nil); err != nil {
		return nil, err
	}
	w.tails[string(p)] = tail
	return ids, nil
}

// lastSeq returns the last sequence of the queue with prefix p, as the
// round sees it: stored with every Append (0 for a queue never written,
// or deleted with its user since: it starts again at 1, as on bolt).
// Known sequences come from memory (this round's, then the committed
// ones of Store.tails unless the round deletes the queue's user); the
// first Append to a queue since Open reads the database.
func (w *writer) lastSeq(p []byte) (uint64, error) {
	if seq, ok := w.tails[string(p)]; ok {
		return seq, nil
	}
	if seq, ok := w.s.tails[string(p)]; ok && !w.deletes(p) {
		return seq, nil
	}
	v, c, err := w.b.Get(p)
	if errors.Is(err, pebbledb.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("queue %q: last sequence of %d bytes", p, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// queueKeys builds, in the writer's key scratch, the prefix p of queue q
// and an entry key k of it (p followed by a sequence the caller sets).
func (w *writer) queueKeys(q store.Queue) (p, k []byte) {
	w.key = appendQueuePrefix(w.key[:0], q)
	n := len(w.key)
	w.key = binary.BigEndian.AppendUint64(w.key, 0)
	return w.key[:n], w.key
}

func (w *writer) ack(q store.Queue, ids []string) error {
	p, k := w.queueKeys(q)
	for _, id := range ids {
		if seq, ok := record.ParseID(id); ok {
			binary.BigEndian.PutUint64(k[len(p):], seq)
			// A single delete: an entry's key is set once (see Queues in
			// the package doc), so the deletion and the entry cancel out
			// where they meet, at the latest in the memtable's flush.
			if err := w.b.SingleDelete(k, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *writer) deleteUser(bridge, jid string) error {
	up := userPrefix(bridge, jid, 0)
	w.deleted = append(w.deleted, up)
	forgetUser(w.tails, up)
	forgetUser(w.s.seen, up)
	return w.b.DeleteRange(up, successor(up), nil)
}

// deletes reports whether the round deletes the user whose key p is.
func (w *writer) deletes(p []byte) bool {
	for _, up := range w.deleted {
		if bytes.HasPrefix(p, up) {
			return true
		}
	}
	return false
}

// markSeen writes the seen mark k, whose last keyLen bytes are the
// caller's key, with expiry exp unless a live one is there, and reports
// whether it wrote. The user's filter (seen.go) spares the look-up of a
// key it does not hold.
func (w *writer) markSeen(k []byte, keyLen int, now int64, exp uint64) (bool, error) {
	sp, key := k[:len(k)-keyLen], k[len(k)-keyLen:]
	f, err := w.seenFilter(sp)
	if err != nil {
		return false, err
	}
	if f.f.Test(key) {
		old, ok, err := w.expiry(k)
		if err != nil {
			return false, err
		}
		if ok && !record.Expired(old, now) {
			return false, nil
		}
	} else {
		f.add(key)
	}
	w.val = binary.BigEndian.AppendUint64(w.val[:0], exp)
	return true, w.b.Set(k, w.val, nil)
}

// Apply applies every operation of b in one commit (see store.Batcher),
// shared with concurrent callers. Under a context from store.Deferrable
// it waits for another caller's commit (at most DeferDelay) instead of
// starting one.
func (s *Store) Apply(ctx context.Context, b *store.Batch) (*store.BatchResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	n := b.Len()
	res := &store.BatchResult{IDs: make([][]string, n), Seen: make([]bool, n)}
	if n == 0 {
		return res, nil
	}
	now := s.now().UnixNano()
	err := s.commit(func(w *writer) error {
		for i, op := range b.Ops {
			res.IDs[i], res.Seen[i] = nil, false // a retry starts afresh
			var err error
			switch op.Kind {
			case store.OpAppend:
				res.IDs[i], err = w.append(op.Queue, op.Payloads)
			case store.OpAck:
				err = w.ack(op.Queue, op.IDs)
			case store.OpPutMapping:
				w.key = appendMapKey(w.key[:0], op.Queue.Bridge, op.Queue.JID, op.NS, op.Key)
				w.val = appendMapValue(w.val[:0], record.ExpiryAt(now, op.TTL), op.Value)
				err = w.b.Set(w.key, w.val, nil)
			case store.OpMarkSeen:
				w.key = appendSeenKey(w.key[:0], op.Queue.Bridge, op.Queue.JID, op.Key)
				res.Seen[i], err = w.markSeen(w.key, len(op.Key), now, record.ExpiryAt(now, op.TTL))
			case store.OpAppendOnce:
				w.key = appendSeenKey(w.key[:0], op.Queue.Bridge, op.Queue.JID, op.Key)
				if res.Seen[i], err = w.markSeen(w.key, len(op.Key), now, record.ExpiryAt(now, op.TTL)); err == nil && res.Seen[i] {
					res.IDs[i], err = w.append(op.Queue, op.Payloads)
				}
			}
			if err != nil {
				return err
			}
		}
		return nil
	}, store.IsDeferrable(ctx))
	if err != nil {
		if errors.Is(err, ErrClosed) {
			return nil, err
		}
		return nil, fmt.Errorf("store: %w", err)
	}
	return res, nil
}
