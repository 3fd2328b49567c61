package store

import (
	"context"
	"errors"
	"time"
)

// Batcher is an optional interface of a Store: it applies a list of writes
// in one commit — one bbolt transaction (one fsync, shared with concurrent
// callers), one Redis MULTI/EXEC round trip — instead of one per call.
//
// Apply applies every operation of b in order, atomically: when it returns
// nil all of them are durable; when it returns an error none of them was
// applied (on Redis Cluster atomicity holds per user, since a Cluster
// transaction covers one hash slot; see store/redis). Each operation has
// exactly the semantics of the Store method of the same name (Append ids
// are returned in BatchResult, MarkSeen's "new" too). An empty batch is a
// no-op. A canceled context changes nothing and returns an error wrapping
// context.Canceled.
//
// Use Apply (the function) rather than asserting the interface: it falls
// back to one call per operation on stores without it.
type Batcher interface {
	Apply(ctx context.Context, b *Batch) (*BatchResult, error)
}

// deferKey marks a context for Deferrable.
type deferKey struct{}

// Deferrable returns a context under which Apply on a store with group
// commit (store/bolt, store/pebble) does not start a commit of its own:
// the batch waits, a few milliseconds at most, to ride along with the
// next commit another caller starts, and Apply returns once that is
// durable. It is meant for writes that a caller does not wait for and
// that follow another commit closely — the outbox's ack after a send,
// whose Emit just committed, joins the next message's commit or the
// drainer's instead of costing an fsync of its own. Other stores ignore
// it.
func Deferrable(ctx context.Context) context.Context {
	return context.WithValue(ctx, deferKey{}, true)
}

// IsDeferrable reports whether ctx (or a parent) was made by Deferrable.
func IsDeferrable(ctx context.Context) bool {
	d, _ := ctx.Value(deferKey{}).(bool)
	return d
}

// OpKind names one kind of write of a Batch.
type OpKind uint8

// Operation kinds.
const (
	OpAppend OpKind = iota + 1
	OpAck
	OpPutMapping
	OpMarkSeen
	OpAppendOnce
)

// Op is one write of a Batch. Which fields matter depends on Kind:
// OpAppend: Queue, Payloads; OpAck: Queue, IDs; OpPutMapping: Queue.Bridge,
// Queue.JID, NS, Key, Value, TTL; OpMarkSeen: Queue.Bridge, Queue.JID, Key,
// TTL; OpAppendOnce: Queue, Payloads, Key, TTL.
type Op struct {
	Kind     OpKind
	Queue    Queue // the scope: Bridge and JID (and Kind for queue ops)
	Payloads [][]byte
	IDs      []string
	NS, Key  string
	Value    string
	TTL      time.Duration
}

// Batch is an ordered list of writes for Apply. The zero value is an empty
// batch; it is not safe for concurrent use. Payloads are copied by the
// store when applied, not when added: do not modify them before Apply
// returns.
type Batch struct {
	Ops []Op
}

// Append queues an Append of payloads to q (nothing if there are none).
func (b *Batch) Append(q Queue, payloads ...[]byte) *Batch {
	if len(payloads) > 0 {
		b.Ops = append(b.Ops, Op{Kind: OpAppend, Queue: q, Payloads: payloads})
	}
	return b
}

// Ack queues an Ack of ids from q (nothing if there are none).
func (b *Batch) Ack(q Queue, ids ...string) *Batch {
	if len(ids) > 0 {
		b.Ops = append(b.Ops, Op{Kind: OpAck, Queue: q, IDs: ids})
	}
	return b
}

// PutMapping queues a PutMapping.
func (b *Batch) PutMapping(bridge, jid, ns, key, value string, ttl time.Duration) *Batch {
	b.Ops = append(b.Ops, Op{Kind: OpPutMapping, Queue: Queue{Bridge: bridge, JID: jid}, NS: ns, Key: key, Value: value, TTL: ttl})
	return b
}

// MarkSeen queues a MarkSeen; its result is in BatchResult.Seen.
func (b *Batch) MarkSeen(bridge, jid, key string, ttl time.Duration) *Batch {
	b.Ops = append(b.Ops, Op{Kind: OpMarkSeen, Queue: Queue{Bridge: bridge, JID: jid}, Key: key, TTL: ttl})
	return b
}

// AppendOnce queues a MarkSeen of key (for q's user, with ttl) and, only
// when the key was new, an Append of payloads to q, as one operation: a
// write that must happen at most once per key (a client's resend of a
// message is never queued, not even for a moment). BatchResult.Seen tells
// whether the key was new, BatchResult.IDs the appended ids (nil if not).
func (b *Batch) AppendOnce(q Queue, key string, ttl time.Duration, payloads ...[]byte) *Batch {
	if len(payloads) > 0 {
		b.Ops = append(b.Ops, Op{Kind: OpAppendOnce, Queue: q, Key: key, TTL: ttl, Payloads: payloads})
	}
	return b
}

// Len returns the number of operations.
func (b *Batch) Len() int {
	if b == nil {
		return 0
	}
	return len(b.Ops)
}

// Reset empties the batch, keeping its capacity.
func (b *Batch) Reset() { clear(b.Ops); b.Ops = b.Ops[:0] }

// BatchResult holds what the operations of an applied batch returned, by
// operation index: IDs[i] the ids of an OpAppend or OpAppendOnce, Seen[i]
// whether an OpMarkSeen's or OpAppendOnce's key was new. Both slices have
// one element per operation.
type BatchResult struct {
	IDs  [][]string
	Seen []bool
}

// ErrBadOp is wrapped by Apply's error for an operation of unknown kind
// (or an Append/Ack on an unknown queue kind); nothing is applied.
var ErrBadOp = errors.New("store: invalid batch operation")

// Validate checks every operation's kind (and queue kind where one is
// needed). Implementations call it before applying anything.
func (b *Batch) Validate() error {
	if b == nil {
		return nil
	}
	for _, op := range b.Ops {
		switch op.Kind {
		case OpAppend, OpAck, OpAppendOnce:
			if op.Queue.Kind != Inbox && op.Queue.Kind != Outbox {
				return errors.Join(ErrBadOp, errors.New("store: unknown queue kind "+string(op.Queue.Kind)))
			}
		case OpPutMapping, OpMarkSeen:
		default:
			return ErrBadOp
		}
	}
	return nil
}

// Apply applies b on s: with s's Batcher when it has one (one commit),
// otherwise one Store call per operation, in order, stopping at the first
// error (then the earlier operations stay applied: not atomic).
func Apply(ctx context.Context, s Store, b *Batch) (*BatchResult, error) {
	if bt, ok := s.(Batcher); ok {
		return bt.Apply(ctx, b)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	res := &BatchResult{IDs: make([][]string, b.Len()), Seen: make([]bool, b.Len())}
	if b == nil {
		return res, nil
	}
	for i, op := range b.Ops {
		var err error
		switch op.Kind {
		case OpAppend:
			res.IDs[i], err = s.Append(ctx, op.Queue, op.Payloads...)
		case OpAck:
			err = s.Ack(ctx, op.Queue, op.IDs...)
		case OpPutMapping:
			err = s.PutMapping(ctx, op.Queue.Bridge, op.Queue.JID, op.NS, op.Key, op.Value, op.TTL)
		case OpMarkSeen:
			res.Seen[i], err = s.MarkSeen(ctx, op.Queue.Bridge, op.Queue.JID, op.Key, op.TTL)
		case OpAppendOnce:
			if res.Seen[i], err = s.MarkSeen(ctx, op.Queue.Bridge, op.Queue.JID, op.Key, op.TTL); err == nil && res.Seen[i] {
				res.IDs[i], err = s.Append(ctx, op.Queue, op.Payloads...)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return res, nil
}
