package redis

// store.Batcher for Redis: a whole store.Batch is one MULTI/EXEC, sent as
// one pipeline (one round trip). On one server (or Sentinel) it is atomic.
// On Cluster a transaction covers one hash slot: the queue index sets
// (another slot) are updated first in their own round trip, as Append
// does, then each user's operations (all of a user's keys share a slot)
// are one MULTI/EXEC, one round trip per user: atomic per user, not across
// users; users applied before a failure stay applied.

import (
	"context"
	"slices"

	"github.com/jabbergate/jabbergate/bridges/store"
	goredis "github.com/redis/go-redis/v9"
)

var _ store.Batcher = (*Store)(nil)

// Apply applies every operation of b in one MULTI/EXEC round trip (see
// store.Batcher and the comment above).
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
	if s.cluster {
		// Index memberships first (other slots), pipelined.
		if _, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, op := range b.Ops {
				if op.Kind == store.OpAppend {
					p.SAdd(ctx, s.bridgeKey(op.Queue.Bridge, "queues:"+string(op.Queue.Kind)), op.Queue.JID)
				}
			}
			return nil
		}); err != nil {
			return nil, wrap(err)
		}
	}
	adds := make([][]*goredis.StringCmd, n)
	seen := make([]*goredis.BoolCmd, n)
	groups := [][]int{nil}
	if s.cluster {
		// One transaction per user (slot), in order of first appearance.
		groups = groups[:0]
		at := map[store.Queue]int{}
		for i, op := range b.Ops {
			k := store.Queue{Bridge: op.Queue.Bridge, JID: op.Queue.JID}
			g, ok := at[k]
			if !ok {
				g = len(groups)
				at[k] = g
				groups = append(groups, nil)
			}
			groups[g] = append(groups[g], i)
		}
	} else {
		for i := range b.Ops {
			groups[0] = append(groups[0], i)
		}
	}
	for _, g := range groups {
		if err := s.applyTx(ctx, b, g, adds, seen); err != nil {
			return nil, wrap(err)
		}
	}
	for i := range b.Ops {
		if adds[i] != nil {
			ids := make([]string, len(adds[i]))
			for j, c := range adds[i] {
				ids[j] = c.Val()
			}
			res.IDs[i] = ids
		}
		if seen[i] != nil {
			res.Seen[i] = seen[i].Val()
		}
	}
	return res, nil
}

// applyTx runs the operations idx of b in one MULTI/EXEC, recording the
// commands whose replies Apply returns.
func (s *Store) applyTx(ctx context.Context, b *store.Batch, idx []int, adds [][]*goredis.StringCmd, seen []*goredis.BoolCmd) error {
	_, err := s.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		// Per batch, not per operation: one queue-set SADD per queue and
		// one pruning of each ttl zset, after all its members.
		var queues map[store.Queue]bool
		var ttlKeys []string
		tracked := func(key string) {
			if !slices.Contains(ttlKeys, key) {
				ttlKeys = append(ttlKeys, key)
			}
		}
		for _, i := range idx {
			op := b.Ops[i]
			u := s.user(op.Queue.Bridge, op.Queue.JID)
			switch op.Kind {
			case store.OpAppend:
				if !s.cluster && !queues[op.Queue] {
					if queues == nil {
						queues = map[store.Queue]bool{}
					}
					queues[op.Queue] = true
					p.SAdd(ctx, s.bridgeKey(op.Queue.Bridge, "queues:"+string(op.Queue.Kind)), op.Queue.JID)
				}
				key := queueKey(u, op.Queue.Kind)
				adds[i] = make([]*goredis.StringCmd, len(op.Payloads))
				for j, pl := range op.Payloads {
					adds[i][j] = p.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []any{"p", pl}})
				}
			case store.OpAck:
				valid := make([]string, 0, len(op.IDs))
				for _, id := range op.IDs {
					if validID(id) {
						valid = append(valid, id)
					}
				}
				if len(valid) > 0 {
					p.XDel(ctx, queueKey(u, op.Queue.Kind), valid...)
				}
			case store.OpPutMapping:
				m, ttl := mapMember(op.NS, op.Key), ttlArg(op.TTL)
				p.Set(ctx, u+m, op.Value, ttl)
				trackMember(ctx, p, u+"ttl", m, ttl, false)
				tracked(u + "ttl")
			case store.OpMarkSeen:
				m, ttl := seenMember(op.Key), ttlArg(op.TTL)
				seen[i] = p.SetNX(ctx, u+m, "1", ttl)
				trackMember(ctx, p, u+"ttl", m, ttl, true)
				tracked(u + "ttl")
			}
		}
		for _, k := range ttlKeys {
			prune(ctx, p, k)
		}
		return nil
	})
	return err
}
