package redis

// store.Batcher for Redis: a whole store.Batch is one MULTI/EXEC, sent as
// one pipeline (one round trip). On one server (or Sentinel) it is atomic,
// and concurrent Apply calls share transactions (group commit, as the bolt
// store shares fsyncs): the first caller to find no transaction in flight
// sends one with its batch; callers arriving meanwhile queue up and the
// next transaction carries all of them. Each round trip costs a write and
// a read system call on both sides, the gateway's and redis-server's, and
// they were most of what an echoed message cost redis-server. Every batch
// gets the errors of its own commands: Redis applies the other commands of
// a transaction when one fails, so a batch whose commands succeeded is
// applied, whatever its neighbours got.
//
// On Cluster a transaction covers one hash slot: the queue index sets
// (another slot) are updated first in their own round trip, as Append
// does, then each user's operations (all of a user's keys share a slot)
// are one MULTI/EXEC, one round trip per user: atomic per user, not across
// users; users applied before a failure stay applied. Cluster batches are
// not grouped.

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

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
	cmds := newBatchCmds(n)
	if !s.cluster {
		if err := s.group.apply(ctx, s, &txReq{b: b, cmds: cmds}); err != nil {
			return nil, wrap(err)
		}
		return cmds.result(res), nil
	}
	// Cluster: index memberships first (other slots), pipelined.
	if _, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, op := range b.Ops {
			if op.Kind == store.OpAppend || op.Kind == store.OpAppendOnce {
				p.SAdd(ctx, s.bridgeKey(op.Queue.Bridge, "queues:"+string(op.Queue.Kind)), op.Queue.JID)
			}
		}
		return nil
	}); err != nil {
		return nil, wrap(err)
	}
	// Then one transaction per user (slot), in order of first appearance.
	var groups [][]int
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
	for _, g := range groups {
		txCmds, err := s.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			var t txWriter
			t.ops(ctx, s, p, b, g, cmds)
			t.end(ctx, p)
			return nil
		})
		if err != nil && cmds.retryNoScript(ctx, s, b) {
			err = firstErr(txCmds)
		}
		if err != nil {
			return nil, wrap(err)
		}
	}
	return cmds.result(res), nil
}

// batchCmds are the commands of a batch whose replies Apply returns, by
// operation index.
type batchCmds struct {
	adds [][]*goredis.StringCmd // OpAppend
	seen []*goredis.BoolCmd     // OpMarkSeen
	once []*goredis.Cmd         // OpAppendOnce (appendOnce, by EVALSHA)
}

func newBatchCmds(n int) *batchCmds {
	return &batchCmds{adds: make([][]*goredis.StringCmd, n), seen: make([]*goredis.BoolCmd, n), once: make([]*goredis.Cmd, n)}
}

// retryNoScript sends, as EVAL, each OpAppendOnce of b (c holds its
// commands) that the server refused with NOSCRIPT (its script cache is
// empty after a restart or a SCRIPT FLUSH, or this is another Cluster
// node): such a command did not
// run at all, so running it now, alone, is what it would have done in the
// transaction, and the script is atomic on its own. The reply replaces the
// refused one. It reports whether any was retried.
func (c *batchCmds) retryNoScript(ctx context.Context, s *Store, b *store.Batch) bool {
	retried := false
	for i, cmd := range c.once {
		if cmd == nil || cmd.Err() == nil || !strings.HasPrefix(cmd.Err().Error(), "NOSCRIPT") {
			continue
		}
		keys, args, _, _ := s.appendOnceCall(b.Ops[i])
		r := appendOnce.Eval(ctx, s.c, keys, args...)
		cmd.SetVal(r.Val())
		cmd.SetErr(r.Err())
		retried = true
	}
	return retried
}

// result fills res from the replies.
func (c *batchCmds) result(res *store.BatchResult) *store.BatchResult {
	for i := range c.adds {
		if c.adds[i] != nil {
			ids := make([]string, len(c.adds[i]))
			for j, c := range c.adds[i] {
				ids[j] = c.Val()
			}
			res.IDs[i] = ids
		}
		if c.seen[i] != nil {
			res.Seen[i] = c.seen[i].Val()
		}
		if c.once[i] != nil {
			ids, _ := c.once[i].StringSlice()
			if len(ids) > 0 { // none: the key was not new
				res.IDs[i], res.Seen[i] = ids, true
			}
		}
	}
	return res
}

// appendOnce is OpAppendOnce: KEYS[1] the seen mark, KEYS[2] the queue's
// stream; ARGV[1] the mark's ttl in ms (0: none), ARGV[2…] the payloads.
// It returns the new entries' ids, or none when the mark was there
// (nothing appended; not a nil reply, which a pipeline reports as an
// error). A script, as MULTI cannot make a command depend on another's
// reply. It is sent by its digest (EVALSHA: the server neither receives
// nor hashes its text each time, which costs it twice a SET and an XADD);
// Open loads it, and retryNoScript sends the text when a server lacks it.
var appendOnce = goredis.NewScript(`
local set
if ARGV[1] ~= '0' then
  set = redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1])
else
  set = redis.call('SET', KEYS[1], '1', 'NX')
end
if not set then return {} end
local ids = {}
for i = 2, #ARGV do
  ids[#ids + 1] = redis.call('XADD', KEYS[2], '*', 'p', ARGV[i])
end
return ids`)

// txWriter writes batches into one MULTI/EXEC: per transaction, not per
// operation, one queue-set SADD per queue, one ZADD per ttl zset (and
// kind: plain for mappings, GT for seen marks) with all its members, and
// one pruning of each ttl zset after them.
type txWriter struct {
	queues map[store.Queue]bool
	ttl    []ttlMembers

	// The key prefix of the user of the last operation and of its ttl
	// zset: a batch's operations are mostly one user's, so each is built
	// once, not once per operation.
	bridge, jid, user, userTTL string
}

// userKeys returns the key prefix of the user (Store.user) and of the
// user's ttl zset.
func (t *txWriter) userKeys(s *Store, bridge, jid string) (user, ttl string) {
	if t.user == "" || bridge != t.bridge || jid != t.jid {
		t.bridge, t.jid = bridge, jid
		t.user = s.user(bridge, jid)
		t.userTTL = t.user + "ttl"
	}
	return t.user, t.userTTL
}

// ttlMembers are the members one ZADD adds to a ttl zset.
type ttlMembers struct {
	key     string
	gt      bool
	members []goredis.Z
}

// track records that member of the zset key expires after ttl.
func (t *txWriter) track(key, member string, ttl time.Duration, gt bool) {
	z := goredis.Z{Score: ttlScore(ttl), Member: member}
	for i := range t.ttl {
		if t.ttl[i].key == key && t.ttl[i].gt == gt {
			t.ttl[i].members = append(t.ttl[i].members, z)
			return
		}
	}
	t.ttl = append(t.ttl, ttlMembers{key: key, gt: gt, members: []goredis.Z{z}})
}

// end ends the transaction's commands: the ttl zsets' additions, then
// their pruning.
func (t *txWriter) end(ctx context.Context, p goredis.Pipeliner) {
	for _, m := range t.ttl {
		if m.gt {
			p.ZAddGT(ctx, m.key, m.members...)
		} else {
			p.ZAdd(ctx, m.key, m.members...)
		}
	}
	for i, m := range t.ttl {
		if !slices.ContainsFunc(t.ttl[:i], func(o ttlMembers) bool { return o.key == m.key }) {
			prune(ctx, p, m.key)
		}
	}
}

// ops writes the operations idx of b (nil: all of them), recording the
// commands whose replies Apply returns in c.
func (t *txWriter) ops(ctx context.Context, s *Store, p goredis.Pipeliner, b *store.Batch, idx []int, c *batchCmds) {
	if idx == nil {
		for i := range b.Ops {
			t.op(ctx, s, p, b, i, c)
		}
		return
	}
	for _, i := range idx {
		t.op(ctx, s, p, b, i, c)
	}
}

// appendOnceCall is the keys and arguments of op's appendOnce script, the
// seen mark's member of the user's ttl zset and its ttl.
func (s *Store) appendOnceCall(op store.Op) (keys []string, args []any, member string, ttl time.Duration) {
	u := s.user(op.Queue.Bridge, op.Queue.JID)
	member, ttl = seenMember(op.Key), ttlArg(op.TTL)
	args = make([]any, 0, 1+len(op.Payloads))
	args = append(args, strconv.FormatInt(ttl.Milliseconds(), 10))
	for _, pl := range op.Payloads {
		args = append(args, pl)
	}
	return []string{u + member, queueKey(u, op.Queue.Kind)}, args, member, ttl
}

// indexQueue adds the SADD of q's user to the queue index, once per
// transaction (on Cluster, Apply did it before).
func (t *txWriter) indexQueue(ctx context.Context, s *Store, p goredis.Pipeliner, q store.Queue) {
	if s.cluster || t.queues[q] {
		return
	}
	if t.queues == nil {
		t.queues = map[store.Queue]bool{}
	}
	t.queues[q] = true
	p.SAdd(ctx, s.bridgeKey(q.Bridge, "queues:"+string(q.Kind)), q.JID)
}

// op writes operation i of b.
func (t *txWriter) op(ctx context.Context, s *Store, p goredis.Pipeliner, b *store.Batch, i int, c *batchCmds) {
	op := b.Ops[i]
	u, uttl := t.userKeys(s, op.Queue.Bridge, op.Queue.JID)
	switch op.Kind {
	case store.OpAppend:
		t.indexQueue(ctx, s, p, op.Queue)
		key := queueKey(u, op.Queue.Kind)
		c.adds[i] = make([]*goredis.StringCmd, len(op.Payloads))
		for j, pl := range op.Payloads {
			c.adds[i][j] = p.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []any{"p", pl}})
		}
	case store.OpAppendOnce:
		// The index may name a user whose queue stays empty: harmless,
		// as after an Ack of everything.
		t.indexQueue(ctx, s, p, op.Queue)
		keys, args, m, ttl := s.appendOnceCall(op)
		c.once[i] = appendOnce.EvalSha(ctx, p, keys, args...)
		t.track(uttl, m, ttl, true)
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
		t.track(uttl, m, ttl, false)
	case store.OpMarkSeen:
		m, ttl := seenMember(op.Key), ttlArg(op.TTL)
		c.seen[i] = p.SetNX(ctx, u+m, "1", ttl)
		// GT: when the mark already exists, never shorten its tracking.
		t.track(uttl, m, ttl, true)
	}
}

// groupTx queues batches for shared transactions (see the top of the
// file).
type groupTx struct {
	store.Group[*txReq]
	txs atomic.Int64
}

// txReq is one Apply waiting for a transaction.
type txReq struct {
	b    *store.Batch
	cmds *batchCmds
	done chan error
}

// maxGroup bounds the batches of one shared transaction.
const maxGroup = 256

// Transactions returns how many MULTI/EXEC round trips Apply has sent on
// one server (shared ones count once): what group commit saves, for
// benchmarks and tests.
func (s *Store) Transactions() int64 { return s.group.txs.Load() }

// apply sends r in a transaction shared with concurrent callers and
// returns r's own error once the transaction is done.
func (g *groupTx) apply(ctx context.Context, s *Store, r *txReq) error {
	r.done = make(chan error, 1)
	if lead, _ := g.Join(r, true); !lead {
		return <-r.done
	}
	ctx = context.WithoutCancel(ctx) // the transaction carries others' batches too
	return g.Lead(r.done, maxGroup, func(reqs []*txReq) { g.round(ctx, s, reqs) })
}

// round sends reqs in one MULTI/EXEC and tells each its result: the
// first error among its own commands (or the pruning's, or the
// transaction's).
func (g *groupTx) round(ctx context.Context, s *Store, reqs []*txReq) {
	g.txs.Add(1)
	ends := make([]int, len(reqs)) // each batch's commands end here
	cmds, err := s.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		var t txWriter
		for k, r := range reqs {
			t.ops(ctx, s, p, r.b, nil, r.cmds)
			ends[k] = p.Len()
		}
		t.end(ctx, p)
		return nil
	})
	if err != nil {
		retried := false
		for _, r := range reqs {
			retried = r.cmds.retryNoScript(ctx, s, r.b) || retried
		}
		if retried {
			err = firstErr(cmds)
		}
	}
	if err == nil {
		for _, r := range reqs {
			r.done <- nil
		}
		return
	}
	// Which batch failed: its own commands' errors (go-redis sets every
	// command's error when the transaction as a whole failed).
	var pruneErr error
	if last := ends[len(ends)-1]; last <= len(cmds) {
		pruneErr = firstErr(cmds[last:])
	}
	start := 0
	for k, r := range reqs {
		e := err
		if ends[k] <= len(cmds) {
			if e = firstErr(cmds[start:ends[k]]); e == nil {
				e = pruneErr
			}
		}
		start = ends[k]
		r.done <- e
	}
}

func firstErr(cmds []goredis.Cmder) error {
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return err
		}
	}
	return nil
}
