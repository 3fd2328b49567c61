package bolt

// Group commit: store.Batcher for bbolt.
//
// Apply runs a whole store.Batch in one write transaction, and concurrent
// Apply calls share transactions (and so the fsync that ends each one):
// the first caller to find no commit running becomes the committer; while
// it commits, later callers queue up, and the next commit takes everything
// queued. A lone caller is committed at once (no timer, unlike bbolt's
// DB.Batch, whose 10 ms MaxBatchDelay a serial caller would pay on every
// call); under load a commit carries everything that arrived during the
// previous fsync. If a shared transaction fails, each request is retried in
// a transaction of its own, so one failing batch cannot fail the others.

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/internal/record"
	bbolt "go.etcd.io/bbolt"
)

var _ store.Batcher = (*Store)(nil)

// groupCommit queues write requests for shared transactions.
type groupCommit struct {
	store.Group[*commitReq]
	commits atomic.Int64
}

// Commits returns how many write transactions Apply has committed (shared
// ones count once): what group commit saves, for benchmarks.
func (s *Store) Commits() int64 { return s.gc.commits.Load() }

// DeferDelay bounds how long a batch under store.Deferrable waits for a
// commit to join.
const DeferDelay = 2 * time.Millisecond

type commitReq struct {
	fn   func(tx *bbolt.Tx) error // must be safe to run again after a rollback
	done chan error
}

// maxGroup bounds the requests of one shared transaction.
const maxGroup = 256

// commit runs fn in a write transaction, shared with concurrent callers
// (store.Group), and returns once that transaction is durable (or failed).
func (s *Store) commit(fn func(tx *bbolt.Tx) error, deferred bool) error {
	r := &commitReq{fn: fn, done: make(chan error, 1)}
	return s.gc.Submit(r, r.done, deferred, DeferDelay, maxGroup, s.commitRound)
}

// commitRound commits batch in one transaction.
func (s *Store) commitRound(batch []*commitReq) {
	g := &s.gc
	g.commits.Add(1)
	err := s.db.Update(func(tx *bbolt.Tx) error {
		for _, r := range batch {
			if err := r.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil || len(batch) == 1 {
		for _, r := range batch {
			r.done <- err
		}
		return
	}
	for _, r := range batch { // find the culprit: each on its own
		g.commits.Add(1)
		r.done <- s.db.Update(r.fn)
	}
}

// Apply applies every operation of b in one transaction (see
// store.Batcher), shared with concurrent Apply calls.
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
	now := s.now()
	nowNano := now.UnixNano()
	deferred := store.IsDeferrable(ctx)
	err := s.commit(func(tx *bbolt.Tx) error {
		c := txBuckets{tx: tx}
		for i, op := range b.Ops {
			res.IDs[i], res.Seen[i] = nil, false // a retry starts afresh
			var err error
			switch op.Kind {
			case store.OpAppend:
				res.IDs[i], err = txAppend(&c, op.Queue, op.Payloads)
			case store.OpAck:
				err = txAck(&c, op.Queue, op.IDs)
			case store.OpPutMapping:
				err = txPutMapping(&c, op, record.ExpiryAt(nowNano, op.TTL))
			case store.OpMarkSeen:
				res.Seen[i], err = txMarkSeen(&c, op, nowNano, record.ExpiryAt(nowNano, op.TTL))
			case store.OpAppendOnce:
				if res.Seen[i], err = txMarkSeen(&c, op, nowNano, record.ExpiryAt(nowNano, op.TTL)); err == nil && res.Seen[i] {
					res.IDs[i], err = txAppend(&c, op.Queue, op.Payloads)
				}
			}
			if err != nil {
				return err
			}
		}
		return nil
	}, deferred)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return res, nil
}

func txAppend(c *txBuckets, q store.Queue, payloads [][]byte) ([]string, error) {
	if len(payloads) == 0 {
		return nil, nil
	}
	b, err := c.sub(q.Bridge, q.JID, queueName(q.Kind), true)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(payloads))
	for i, p := range payloads {
		seq, err := b.NextSequence()
		if err != nil {
			return nil, err
		}
		if err := b.Put(seqKey(seq), p); err != nil {
			return nil, err
		}
		ids[i] = record.FormatID(seq)
	}
	return ids, nil
}

func txAck(c *txBuckets, q store.Queue, ids []string) error {
	b, _ := c.sub(q.Bridge, q.JID, queueName(q.Kind), false)
	if b == nil {
		return nil
	}
	for _, id := range ids {
		if n, ok := record.ParseID(id); ok {
			if err := b.Delete(seqKey(n)); err != nil {
				return err
			}
		}
	}
	return nil
}

func txPutMapping(c *txBuckets, op store.Op, exp uint64) error {
	v := make([]byte, 8, 8+len(op.Value))
	binary.BigEndian.PutUint64(v, exp)
	v = append(v, op.Value...)
	b, err := c.sub(op.Queue.Bridge, op.Queue.JID, bktMap, true)
	if err != nil {
		return err
	}
	return b.Put(mapKey(op.NS, op.Key), v)
}

func txMarkSeen(c *txBuckets, op store.Op, now int64, exp uint64) (bool, error) {
	b, err := c.sub(op.Queue.Bridge, op.Queue.JID, bktSeen, true)
	if err != nil {
		return false, err
	}
	k := seenKey(op.Key)
	if v := b.Get(k); len(v) == 8 && !record.Expired(binary.BigEndian.Uint64(v), now) {
		return false, nil
	}
	return true, b.Put(k, binary.BigEndian.AppendUint64(nil, exp))
}

// txBuckets remembers the last user bucket one Apply opened: the
// operations of a batch mostly follow one another per user, and finding a
// user's bucket costs two B+tree seeks and two key allocations.
type txBuckets struct {
	tx          *bbolt.Tx
	bridge, jid string
	user        *bbolt.Bucket // nil: not looked up yet
}

// sub returns the bucket name of the user, creating it (and the user's
// bucket) if create is set; without create a missing bucket is nil.
func (c *txBuckets) sub(bridge, jid string, name []byte, create bool) (*bbolt.Bucket, error) {
	if c.user == nil || c.bridge != bridge || c.jid != jid {
		var u *bbolt.Bucket
		if create {
			var err error
			if u, err = createUserBucket(c.tx, bridge, jid); err != nil {
				return nil, err
			}
		} else if u = userBucket(c.tx, bridge, jid); u == nil {
			return nil, nil
		}
		c.bridge, c.jid, c.user = bridge, jid, u
	}
	if create {
		return c.user.CreateBucketIfNotExists(name)
	}
	return c.user.Bucket(name), nil
}
