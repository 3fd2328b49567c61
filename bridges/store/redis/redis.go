// Package redis is the store.Store on Redis (7.0 or later), through a
// go-redis UniversalClient: one server, Sentinel or Cluster, chosen by the
// URL given to Open (see ParseURL).
//
// # Key layout
//
// Every key starts with Options.Prefix (default "jg"). A user's keys carry
// the Cluster hash tag {bridge|jid}, so they share one slot and one
// MULTI/EXEC can cover them; per-bridge indexes carry {bridge}:
//
//	jg:{B|J}:acct              string  record-encoded store.Account
//	jg:{B|J}:contacts          hash    localpart → record-encoded store.Contact
//	jg:{B|J}:q:in, :q:out      stream  one entry per payload, field "p"
//	jg:{B|J}:map:NS:KEY        string  mapping value (SET … PX ttl)
//	jg:{B|J}:seen:KEY          string  "1" (SET … NX PX ttl)
//	jg:{B|J}:ttl               zset    member "map:NS:KEY" or "seen:KEY",
//	                                   score = expiry in Unix ms (+inf: none)
//	jg:{B}:accounts            set     JIDs with an account on bridge B
//	jg:{B}:queues:in, :out     set     JIDs that have had that queue on B
//
// B, J, NS and KEY are escaped: '%', '{', '}', '|' and ':' become %XX, so a
// component never contains a separator and two different (bridge, jid, ns,
// key) tuples never share a key; the prefix may not contain '{' or '}', so
// stores with different prefixes never share keys either.
//
// # Queues
//
// A queue is a Redis Stream: Append is MULTI + XADD per payload (one round
// trip, atomic), Read is XRANGE from "(after" (exclusive), Ack is
// XDEL, Len is XLEN. Entry ids are the stream ids ("1700000000000-0"): they
// increase in queue order but do not sort as strings. Durability is the
// server's: run Redis with appendonly yes (and appendfsync always where a
// lost second of queue is not acceptable). The queues:in/out index sets only
// grow, by one member per user and kind, until DeleteAccount; Queues checks
// each member with XLEN and lists the non-empty ones.
//
// # Expiry and DeleteAccount
//
// Mappings and seen marks expire by Redis TTL. Each one's key is also
// tracked in the user's ttl zset so DeleteAccount can find them without
// SCAN (which on Cluster would walk every node's whole keyspace). Writes
// prune the zset of members expired more than a minute ago (a margin for
// clock skew between gateway and Redis), so it stays proportional to the
// live keys. DeleteAccount deletes the tracked keys in pages of 1 000, then
// the account, contacts, queues and the zset in one MULTI, then the JID's
// index memberships. Writes for the same user racing with DeleteAccount may
// survive it.
package redis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/internal/record"
	goredis "github.com/redis/go-redis/v9"
)

// Options tune Open.
type Options struct {
	// Prefix namespaces every key ("<Prefix>:{...}:..."), so several
	// deployments can share a database. Default "jg". It may not contain
	// '{' or '}'.
	Prefix string
}

// Store is the Redis-backed store.Store. It is safe for concurrent use.
type Store struct {
	c       goredis.UniversalClient
	prefix  string
	cluster bool    // c is a Cluster client: transactions cover one slot
	group   groupTx // shared transactions of Apply (batch.go)

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Open connects to the Redis at url (see ParseURL for the forms), checks it
// answers PING within ctx, and returns the store.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	uo, err := ParseURL(url)
	if err != nil {
		return nil, err
	}
	if uo.Protocol == 0 {
		// RESP2 unless the URL asks for 3 (protocol=3): the store uses
		// nothing of RESP3, and go-redis's RESP3 client looks for push
		// notifications around every reply (6 % of the gateway's CPU per
		// echoed message on Redis).
		uo.Protocol = 2
	}
	// A context's deadline bounds the command (go-redis otherwise waits
	// for its read timeout, retries included): lease renewals must give
	// up in time when Redis hangs, or an instance would act on a lease
	// another may already hold.
	uo.ContextTimeoutEnabled = true
	s, err := New(goredis.NewUniversalClient(uo), opts)
	if err != nil {
		return nil, err
	}
	if err := s.c.Ping(ctx).Err(); err != nil {
		s.Close()
		if uo.MasterName != "" && strings.Contains(err.Error(), "all sentinels specified in configuration are unreachable: redis: nil") {
			// go-redis's words when every sentinel answered that it does
			// not know the master (a nil reply), not that none answered.
			err = fmt.Errorf("no sentinel knows a master named %q (the name after the addresses in the URL; `SENTINEL MASTERS` on a sentinel lists them): %w", uo.MasterName, err)
		}
		return nil, fmt.Errorf("store: redis %s: %w", redact(url), err)
	}
	// Best effort: a server without it gets the script's text once
	// (batch.go, retryNoScript).
	_ = appendOnce.Load(ctx, s.c).Err()
	return s, nil
}

// New returns a store using c, which it closes on Close. It does no I/O.
func New(c goredis.UniversalClient, opts Options) (*Store, error) {
	p := opts.Prefix
	if p == "" {
		p = "jg"
	}
	if strings.ContainsAny(p, "{}") {
		c.Close()
		return nil, fmt.Errorf("store: redis key prefix %q may not contain '{' or '}'", p)
	}
	_, cluster := c.(*goredis.ClusterClient)
	return &Store{c: c, prefix: p, cluster: cluster}, nil
}

// Client returns the underlying client, for other users of the same Redis
// (leases). Keys they write must not start with the store's prefix.
func (s *Store) Client() goredis.UniversalClient { return s.c }

// Close closes the client. Calling it again returns the first result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.c.Close() })
	return s.closeErr
}

// Ping sends PING.
func (s *Store) Ping(ctx context.Context) error {
	return wrap(s.c.Ping(ctx).Err())
}

func wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("store: redis: %w", err)
}

// --- keys -------------------------------------------------------------------

// esc percent-escapes the separators of the key layout.
func esc(s string) string {
	if !strings.ContainsAny(s, "%{}|:") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '%', '{', '}', '|', ':':
			b.WriteByte('%')
			b.WriteByte("0123456789ABCDEF"[c>>4])
			b.WriteByte("0123456789ABCDEF"[c&15])
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// user returns "<prefix>:{B|J}:", the start of a user's keys.
func (s *Store) user(bridge, jid string) string {
	return s.prefix + ":{" + esc(bridge) + "|" + esc(jid) + "}:"
}

// bridgeKey returns "<prefix>:{B}:<name>".
func (s *Store) bridgeKey(bridge, name string) string {
	return s.prefix + ":{" + esc(bridge) + "}:" + name
}

func mapMember(ns, key string) string { return "map:" + esc(ns) + ":" + esc(key) }
func seenMember(key string) string    { return "seen:" + esc(key) }

func queueKey(u string, kind store.QueueKind) string { return u + "q:" + string(kind) }

func validKind(kind store.QueueKind) error {
	if kind != store.Inbox && kind != store.Outbox {
		return fmt.Errorf("store: unknown queue kind %q", kind)
	}
	return nil
}

// --- accounts ---------------------------------------------------------------

// PutAccount creates or replaces the account.
func (s *Store) PutAccount(ctx context.Context, a *store.Account) error {
	v, err := record.EncodeAccount(a)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err = s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		// Index first: ListAccounts skips members without an account.
		p.SAdd(ctx, s.bridgeKey(a.Bridge, "accounts"), a.JID)
		p.Set(ctx, s.user(a.Bridge, a.JID)+"acct", v, 0)
		return nil
	})
	return wrap(err)
}

// GetAccount returns the account or store.ErrNotFound.
func (s *Store) GetAccount(ctx context.Context, bridge, jid string) (*store.Account, error) {
	key := s.user(bridge, jid) + "acct"
	v, err := s.c.Get(ctx, key).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, wrap(err)
	}
	a, err := record.DecodeAccount(v)
	if err != nil {
		return nil, &store.CorruptRecordError{Bridge: bridge, JID: jid, Key: "key " + key, Err: err}
	}
	return a, nil
}

const deletePage = 1000

// DeleteAccount removes every key of the user and the user's index entries.
func (s *Store) DeleteAccount(ctx context.Context, bridge, jid string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	u := s.user(bridge, jid)
	ttlKey := u + "ttl"
	// Tracked mappings and seen marks, a page at a time. Each round
	// removes the page from the zset, so the loop ends; the bound guards
	// against a writer adding as fast as we delete.
	for range 1_000_000 {
		members, err := s.c.ZRange(ctx, ttlKey, 0, deletePage-1).Result()
		if err != nil {
			return wrap(err)
		}
		if len(members) == 0 {
			break
		}
		keys := make([]string, len(members))
		ms := make([]any, len(members))
		for i, m := range members {
			keys[i], ms[i] = u+m, m
		}
		if _, err := s.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.Del(ctx, keys...)
			p.ZRem(ctx, ttlKey, ms...)
			return nil
		}); err != nil {
			return wrap(err)
		}
	}
	if _, err := s.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.Del(ctx, u+"acct", u+"contacts", queueKey(u, store.Inbox), queueKey(u, store.Outbox), ttlKey)
		return nil
	}); err != nil {
		return wrap(err)
	}
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.SRem(ctx, s.bridgeKey(bridge, "accounts"), jid)
		p.SRem(ctx, s.bridgeKey(bridge, "queues:"+string(store.Inbox)), jid)
		p.SRem(ctx, s.bridgeKey(bridge, "queues:"+string(store.Outbox)), jid)
		return nil
	})
	return wrap(err)
}

// pageSize bounds the commands of one pipeline over many users.
const pageSize = 500

// ListAccounts returns every account of bridge, ordered by JID; records
// that do not decode are named by a *store.CorruptAccountsError returned
// with the others.
func (s *Store) ListAccounts(ctx context.Context, bridge string) ([]*store.Account, error) {
	jids, err := s.c.SMembers(ctx, s.bridgeKey(bridge, "accounts")).Result()
	if err != nil {
		return nil, wrap(err)
	}
	slices.Sort(jids)
	var as []*store.Account
	var corrupt store.CorruptAccounts
	for page := range slices.Chunk(jids, pageSize) {
		cmds := make([]*goredis.StringCmd, len(page))
		_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, jid := range page {
				cmds[i] = p.Get(ctx, s.user(bridge, jid)+"acct")
			}
			return nil
		})
		if err != nil && !errors.Is(err, goredis.Nil) {
			return nil, wrap(err)
		}
		for i, cmd := range cmds {
			v, err := cmd.Bytes()
			if errors.Is(err, goredis.Nil) {
				continue // deleted meanwhile, or index written first
			}
			if err != nil {
				return nil, wrap(err)
			}
			a, err := record.DecodeAccount(v)
			if err != nil {
				corrupt.Add(bridge, page[i], "key "+s.user(bridge, page[i])+"acct", err)
				continue
			}
			as = append(as, a)
		}
	}
	return as, corrupt.Err()
}

// --- contacts ---------------------------------------------------------------

// PutContact creates or replaces the contact c.Localpart.
func (s *Store) PutContact(ctx context.Context, bridge, jid string, c *store.Contact) error {
	v, err := record.EncodeContact(c)
	if err != nil {
		return err
	}
	return wrap(s.c.HSet(ctx, s.user(bridge, jid)+"contacts", c.Localpart, v).Err())
}

// GetContact returns the contact or store.ErrNotFound.
func (s *Store) GetContact(ctx context.Context, bridge, jid, localpart string) (*store.Contact, error) {
	v, err := s.c.HGet(ctx, s.user(bridge, jid)+"contacts", localpart).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, wrap(err)
	}
	return record.DecodeContact(v)
}

// ListContacts returns the user's contacts sorted by Localpart.
func (s *Store) ListContacts(ctx context.Context, bridge, jid string) ([]*store.Contact, error) {
	m, err := s.c.HGetAll(ctx, s.user(bridge, jid)+"contacts").Result()
	if err != nil {
		return nil, wrap(err)
	}
	lps := make([]string, 0, len(m))
	for lp := range m {
		lps = append(lps, lp)
	}
	slices.Sort(lps)
	cs := make([]*store.Contact, 0, len(lps))
	for _, lp := range lps {
		c, err := record.DecodeContact([]byte(m[lp]))
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

// DeleteContact removes the contact; missing is not an error.
func (s *Store) DeleteContact(ctx context.Context, bridge, jid, localpart string) error {
	return wrap(s.c.HDel(ctx, s.user(bridge, jid)+"contacts", localpart).Err())
}

// --- queues -----------------------------------------------------------------

// Append adds payloads to q with one MULTI of XADDs, after recording q in
// the bridge's queue index (in the same MULTI on one server, one round trip
// earlier on Cluster), and returns the stream ids. When it returns nil
// the server has the entries (durable as its appendfsync setting makes them).
func (s *Store) Append(ctx context.Context, q store.Queue, payloads ...[]byte) ([]string, error) {
	if err := validKind(q.Kind); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil || len(payloads) == 0 {
		return nil, err
	}
	key := queueKey(s.user(q.Bridge, q.JID), q.Kind)
	index := s.bridgeKey(q.Bridge, "queues:"+string(q.Kind))
	if s.cluster {
		// The index is in another slot, and a Cluster transaction covers
		// one slot: index first, in its own round trip.
		if err := s.c.SAdd(ctx, index, q.JID).Err(); err != nil {
			return nil, wrap(err)
		}
	}
	cmds := make([]*goredis.StringCmd, len(payloads))
	_, err := s.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		if !s.cluster {
			p.SAdd(ctx, index, q.JID)
		}
		for i, pl := range payloads {
			cmds[i] = p.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []any{"p", pl}})
		}
		return nil
	})
	if err != nil {
		return nil, wrap(err)
	}
	ids := make([]string, len(cmds))
	for i, c := range cmds {
		ids[i] = c.Val()
	}
	return ids, nil
}

// Read returns up to limit entries of q after id after ("" for the head),
// with XRANGE. limit <= 0 returns nothing.
func (s *Store) Read(ctx context.Context, q store.Queue, after string, limit int) ([]store.Entry, error) {
	if err := validKind(q.Kind); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, ctx.Err()
	}
	start := "-"
	if after != "" {
		if !validID(after) {
			return nil, fmt.Errorf("store: invalid entry id %q", after)
		}
		start = "(" + after
	}
	msgs, err := s.c.XRangeN(ctx, queueKey(s.user(q.Bridge, q.JID), q.Kind), start, "+", int64(limit)).Result()
	if err != nil {
		return nil, wrap(err)
	}
	es := make([]store.Entry, len(msgs))
	for i, m := range msgs {
		p, _ := m.Values["p"].(string)
		es[i] = store.Entry{ID: m.ID, Payload: []byte(p)}
	}
	return es, nil
}

// validID reports whether id has the form of a stream id, "ms-seq".
func validID(id string) bool {
	ms, seq, ok := strings.Cut(id, "-")
	if !ok {
		return false
	}
	_, err1 := strconv.ParseUint(ms, 10, 64)
	_, err2 := strconv.ParseUint(seq, 10, 64)
	return err1 == nil && err2 == nil
}

// Ack deletes entries from q with XDEL; unknown and malformed ids are
// ignored.
func (s *Store) Ack(ctx context.Context, q store.Queue, ids ...string) error {
	if err := validKind(q.Kind); err != nil {
		return err
	}
	valid := make([]string, 0, len(ids))
	for _, id := range ids {
		if validID(id) {
			valid = append(valid, id)
		}
	}
	if len(valid) == 0 {
		return ctx.Err()
	}
	return wrap(s.c.XDel(ctx, queueKey(s.user(q.Bridge, q.JID), q.Kind), valid...).Err())
}

// Len returns XLEN of q.
func (s *Store) Len(ctx context.Context, q store.Queue) (int, error) {
	if err := validKind(q.Kind); err != nil {
		return 0, err
	}
	n, err := s.c.XLen(ctx, queueKey(s.user(q.Bridge, q.JID), q.Kind)).Result()
	return int(n), wrap(err)
}

// Queues lists the non-empty queues of kind on bridge, ordered by JID.
func (s *Store) Queues(ctx context.Context, bridge string, kind store.QueueKind) ([]store.Queue, error) {
	if err := validKind(kind); err != nil {
		return nil, err
	}
	jids, err := s.c.SMembers(ctx, s.bridgeKey(bridge, "queues:"+string(kind))).Result()
	if err != nil {
		return nil, wrap(err)
	}
	slices.Sort(jids)
	var qs []store.Queue
	for page := range slices.Chunk(jids, pageSize) {
		cmds := make([]*goredis.IntCmd, len(page))
		if _, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, jid := range page {
				cmds[i] = p.XLen(ctx, queueKey(s.user(bridge, jid), kind))
			}
			return nil
		}); err != nil {
			return nil, wrap(err)
		}
		for i, c := range cmds {
			if c.Val() > 0 {
				qs = append(qs, store.Queue{Bridge: bridge, JID: page[i], Kind: kind})
			}
		}
	}
	return qs, nil
}

// --- mappings and seen marks ------------------------------------------------

// pruneMargin is how long after its expiry a ttl zset member is kept, to
// absorb clock skew between the gateway and Redis.
const pruneMargin = time.Minute

// track adds member to the user's ttl zset with the expiry of ttl, and
// prunes long-expired members (a transaction of one operation: txWriter).
// gt keeps a later existing score.
func track(ctx context.Context, p goredis.Pipeliner, ttlKey, member string, ttl time.Duration, gt bool) {
	var t txWriter
	t.track(ttlKey, member, ttl, gt)
	t.end(ctx, p)
}

// ttlScore is a ttl zset member's score: when it expires, in Unix
// milliseconds; +inf for no expiry.
func ttlScore(ttl time.Duration) float64 {
	if ttl <= 0 {
		return math.Inf(1)
	}
	return float64(time.Now().Add(ttl).UnixMilli())
}

// prune removes the members of a ttl zset that expired more than
// pruneMargin ago.
func prune(ctx context.Context, p goredis.Pipeliner, ttlKey string) {
	p.ZRemRangeByScore(ctx, ttlKey, "-inf", "("+strconv.FormatInt(time.Now().Add(-pruneMargin).UnixMilli(), 10))
}

// ttlArg rounds ttl up to whole milliseconds (Redis PX); <= 0 is no expiry.
func ttlArg(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return 0
	}
	return (ttl + time.Millisecond - 1).Truncate(time.Millisecond)
}

// PutMapping stores key → value in namespace ns of the user, expiring after
// ttl (<= 0: never), with SET PX.
func (s *Store) PutMapping(ctx context.Context, bridge, jid, ns, key, value string, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	u, m := s.user(bridge, jid), mapMember(ns, key)
	ttl = ttlArg(ttl)
	_, err := s.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.Set(ctx, u+m, value, ttl)
		track(ctx, p, u+"ttl", m, ttl, false)
		return nil
	})
	return wrap(err)
}

// GetMapping returns the value or store.ErrNotFound.
func (s *Store) GetMapping(ctx context.Context, bridge, jid, ns, key string) (string, error) {
	v, err := s.c.Get(ctx, s.user(bridge, jid)+mapMember(ns, key)).Result()
	if errors.Is(err, goredis.Nil) {
		return "", store.ErrNotFound
	}
	return v, wrap(err)
}

// MarkSeen sets the seen mark with SET NX PX and reports whether it was set.
func (s *Store) MarkSeen(ctx context.Context, bridge, jid, key string, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	u, m := s.user(bridge, jid), seenMember(key)
	ttl = ttlArg(ttl)
	var set *goredis.BoolCmd
	_, err := s.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		set = p.SetNX(ctx, u+m, "1", ttl)
		// GT: when the mark already exists, never shorten its tracking.
		track(ctx, p, u+"ttl", m, ttl, true)
		return nil
	})
	if err != nil {
		return false, wrap(err)
	}
	return set.Val(), nil
}
