package redis_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/redis"
	"github.com/jabbergate/jabbergate/bridges/store/redistest"
	"github.com/jabbergate/jabbergate/bridges/store/storetest"
	goredis "github.com/redis/go-redis/v9"
)

var prefixes atomic.Int64

// uniquePrefix gives each store of a test run its own key namespace on a
// shared server.
func uniquePrefix() string { return fmt.Sprintf("jgt%d", prefixes.Add(1)) }

func open(t testing.TB, url, prefix string) *redis.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := redis.Open(ctx, url, redis.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// where remembers which server and prefix a store uses, for Reopen and
// Advance.
type where struct {
	url, prefix string
	mini        *miniredis.Miniredis
}

type registry struct {
	mu sync.Mutex
	m  map[store.Store]where
}

func (r *registry) add(s store.Store, w where) store.Store {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m[s] = w
	return s
}

func (r *registry) get(s store.Store) where {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[s]
}

func (r *registry) reopen(t *testing.T, old store.Store) store.Store {
	w := r.get(old)
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	return r.add(open(t, w.url, w.prefix), w)
}

// TestConformanceMiniredis runs the suite on an in-process miniredis, one
// per subtest, with FastForward for TTLs.
func TestConformanceMiniredis(t *testing.T) {
	r := &registry{m: map[store.Store]where{}}
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T) store.Store {
			m := miniredis.RunT(t)
			w := where{url: "redis://" + m.Addr(), prefix: "jg", mini: m}
			return r.add(open(t, w.url, w.prefix), w)
		},
		Reopen: r.reopen,
		Advance: func(t *testing.T, s store.Store, d time.Duration) {
			r.get(s).mini.FastForward(d)
		},
	})
}

// TestConformanceRedisServer runs the suite on a real redis-server, each
// subtest under its own key prefix. TTLs pass in real time.
func TestConformanceRedisServer(t *testing.T) {
	url := redistest.Start(t)
	r := &registry{m: map[store.Store]where{}}
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T) store.Store {
			w := where{url: url, prefix: uniquePrefix()}
			return r.add(open(t, w.url, w.prefix), w)
		},
		Reopen: r.reopen,
	})
}

func TestOpenErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m := miniredis.RunT(t)
	if _, err := redis.Open(ctx, "redis://"+m.Addr(), redis.Options{Prefix: "a{b}"}); err == nil || !strings.Contains(err.Error(), "prefix") {
		t.Errorf("Open with a braced prefix: %v", err)
	}
	if _, err := redis.Open(ctx, "http://"+m.Addr(), redis.Options{}); err == nil {
		t.Error("Open with an http URL: no error")
	}
	// Nothing listens on a closed server's port.
	m2 := miniredis.RunT(t)
	addr := m2.Addr()
	m2.Close()
	start := time.Now()
	if _, err := redis.Open(ctx, "redis://user:hunter2@"+addr+"?dial_timeout=1s&max_retries=-1", redis.Options{}); err == nil {
		t.Error("Open of a closed port: no error")
	} else if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error leaks the password: %v", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("Open of a closed port took %v", d)
	}
}

// TestDeleteAccountLeavesNoKeys checks, below the interface, that
// DeleteAccount removes every key of the user (including mappings and seen
// marks), and only those.
func TestDeleteAccountLeavesNoKeys(t *testing.T) {
	ctx := context.Background()
	m := miniredis.RunT(t)
	s := open(t, "redis://"+m.Addr(), "jg")
	fill := func(bridge, jid string, mappings int) {
		must(t, s.PutAccount(ctx, &store.Account{Bridge: bridge, JID: jid}))
		must(t, s.PutContact(ctx, bridge, jid, &store.Contact{Localpart: "c"}))
		for _, k := range []store.QueueKind{store.Inbox, store.Outbox} {
			_, err := s.Append(ctx, store.Queue{Bridge: bridge, JID: jid, Kind: k}, []byte("x"))
			must(t, err)
		}
		for i := range mappings {
			ttl := time.Duration(i%3) * time.Hour // some without TTL
			must(t, s.PutMapping(ctx, bridge, jid, "msg", fmt.Sprint(i), "v", ttl))
		}
		for i := range 10 {
			_, err := s.MarkSeen(ctx, bridge, jid, fmt.Sprint(i), time.Duration(i%2)*time.Hour)
			must(t, err)
		}
	}
	fill("b", "u@x", 1100) // more than one delete page
	fill("b", "v@x", 20)
	fill("c", "u@x", 20)
	tag := "jg:{b|u@x}:"
	if n := countKeys(m, tag); n < 1100 {
		t.Fatalf("only %d keys with %s before delete", n, tag)
	}
	before := len(m.Keys())
	must(t, s.DeleteAccount(ctx, "b", "u@x"))
	if n := countKeys(m, tag); n != 0 {
		t.Errorf("%d keys with %s left after DeleteAccount", n, tag)
	}
	if n := countKeys(m, "jg:{b|v@x}:"); n < 20 {
		t.Errorf("other user lost keys: %d left", n)
	}
	if n := countKeys(m, "jg:{c|u@x}:"); n < 20 {
		t.Errorf("same user on another bridge lost keys: %d left", n)
	}
	after := len(m.Keys())
	if before-after < 1100 {
		t.Errorf("DeleteAccount removed %d keys", before-after)
	}
	for _, k := range []string{"jg:{b}:accounts", "jg:{b}:queues:in", "jg:{b}:queues:out"} {
		if ok, _ := m.SIsMember(k, "u@x"); ok {
			t.Errorf("%s still lists u@x", k)
		}
		if ok, _ := m.SIsMember(k, "v@x"); !ok {
			t.Errorf("%s lost v@x", k)
		}
	}
}

func countKeys(m *miniredis.Miniredis, prefix string) int {
	n := 0
	for _, k := range m.Keys() {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}

// TestTTLIndexPruned checks that the per-user ttl zset does not keep
// members long expired.
func TestTTLIndexPruned(t *testing.T) {
	ctx := context.Background()
	m := miniredis.RunT(t)
	s := open(t, "redis://"+m.Addr(), "jg")
	// A mapping that expired two minutes ago, written through the store
	// with a TTL that has long passed by the score's clock: emulate with a
	// 1 ms TTL and a backdated score.
	must(t, s.PutMapping(ctx, "b", "u", "ns", "old", "v", time.Millisecond))
	_, err := m.ZAdd("jg:{b|u}:ttl", float64(time.Now().Add(-2*time.Minute).UnixMilli()), "map:ns:old")
	must(t, err)
	must(t, s.PutMapping(ctx, "b", "u", "ns", "new", "v", time.Hour))
	members, err := m.ZMembers("jg:{b|u}:ttl")
	must(t, err)
	if strings.Join(members, ",") != "map:ns:new" {
		t.Errorf("ttl index = %q, want only map:ns:new", members)
	}
}

// TestSeenTrackingNotShortened: marking an existing permanent seen key
// again with a TTL must not let its tracking expire.
func TestSeenTrackingNotShortened(t *testing.T) {
	ctx := context.Background()
	m := miniredis.RunT(t)
	s := open(t, "redis://"+m.Addr(), "jg")
	if ok, err := s.MarkSeen(ctx, "b", "u", "k", 0); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if ok, err := s.MarkSeen(ctx, "b", "u", "k", time.Millisecond); err != nil || ok {
		t.Fatal(ok, err)
	}
	score, err := m.ZScore("jg:{b|u}:ttl", "seen:k")
	must(t, err)
	if score < 1e300 {
		t.Errorf("tracking score of a permanent mark = %v, want +inf", score)
	}
}

// TestRestartMidStream restarts a real redis-server between Append and Read:
// the entries survive (append-only file) and the client reconnects.
func TestRestartMidStream(t *testing.T) {
	srv := redistest.StartServer(t)
	s := open(t, srv.URL(), uniquePrefix())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	q := store.Queue{Bridge: "b", JID: "u@x", Kind: store.Outbox}
	ids, err := s.Append(ctx, q, []byte("1"), []byte("2"))
	must(t, err)
	srv.Stop()
	downCtx, downCancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer downCancel()
	if _, err := s.Append(downCtx, q, []byte("lost")); err == nil {
		t.Fatal("Append with the server down succeeded")
	}
	srv.Start()
	var es []store.Entry
	for range 50 { // the pool may hold dead connections for a few calls
		if es, err = s.Read(ctx, q, "", 10); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	must(t, err)
	if len(es) != 2 || es[0].ID != ids[0] || string(es[1].Payload) != "2" {
		t.Fatalf("after restart: %+v", es)
	}
	more, err := s.Append(ctx, q, []byte("3"))
	must(t, err)
	es, err = s.Read(ctx, q, ids[1], 10)
	must(t, err)
	if len(es) != 1 || es[0].ID != more[0] {
		t.Fatalf("after restart and append: %+v", es)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func BenchmarkAppendAck(b *testing.B) {
	storetest.BenchAppendAck(b, open(b, redistest.Start(b), "bench"))
}

func BenchmarkPutGetMapping(b *testing.B) {
	storetest.BenchPutGetMapping(b, open(b, redistest.Start(b), "bench"))
}

func BenchmarkMarkSeen(b *testing.B) {
	storetest.BenchMarkSeen(b, open(b, redistest.Start(b), "bench"))
}

// TestConformanceMiniredisCluster runs the suite through go-redis's Cluster
// client (miniredis answers CLUSTER SLOTS as a one-node cluster), which
// rejects cross-slot transactions the way a real cluster does.
func TestConformanceMiniredisCluster(t *testing.T) {
	r := &registry{m: map[store.Store]where{}}
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T) store.Store {
			m := miniredis.RunT(t)
			w := where{url: "redis+cluster://" + m.Addr(), prefix: "jg", mini: m}
			s := open(t, w.url, w.prefix)
			if _, ok := s.Client().(*goredis.ClusterClient); !ok {
				t.Fatalf("client is %T, want a cluster client", s.Client())
			}
			return r.add(s, w)
		},
		Reopen: r.reopen,
		Advance: func(t *testing.T, s store.Store, d time.Duration) {
			r.get(s).mini.FastForward(d)
		},
	})
}

// TestConformanceRedisCluster runs the suite on a real one-node Redis
// Cluster, where every transaction must stay within one hash slot.
func TestConformanceRedisCluster(t *testing.T) {
	url := redistest.StartCluster(t).URL()
	r := &registry{m: map[store.Store]where{}}
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T) store.Store {
			w := where{url: url, prefix: uniquePrefix()}
			return r.add(open(t, w.url, w.prefix), w)
		},
		Reopen: r.reopen,
	})
}

// TestSentinel: the store runs through a real Redis Sentinel (the master
// it monitors answers the store's operations), and a master name no
// sentinel knows is said to be that, not "all sentinels are unreachable".
func TestSentinel(t *testing.T) {
	master := redistest.StartServer(t)
	sentinel := redistest.StartSentinel(t, master)
	ctx := context.Background()
	s := open(t, "redis+sentinel://"+sentinel+"/mymaster", uniquePrefix())
	must(t, s.PutAccount(ctx, &store.Account{Bridge: "b", JID: "u@x", LegacyID: "via-sentinel"}))
	if a, err := s.GetAccount(ctx, "b", "u@x"); err != nil || a.LegacyID != "via-sentinel" {
		t.Fatalf("GetAccount through the sentinel = %+v, %v", a, err)
	}
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := redis.Open(octx, "redis+sentinel://"+sentinel+"/nomaster?max_retries=-1", redis.Options{})
	if err == nil || !strings.Contains(err.Error(), `no sentinel knows a master named "nomaster"`) {
		t.Errorf("Open with an unknown master name: %v", err)
	}
}

func TestCorruptAccount(t *testing.T) {
	m := miniredis.RunT(t)
	s := open(t, "redis://"+m.Addr(), "rv")
	storetest.CorruptAccount(t, s, func(bridge, jid string) string {
		key := "rv:{" + bridge + "|" + jid + "}:acct"
		if err := m.Set(key, "garbage"); err != nil {
			t.Fatal(err)
		}
		return key
	})
}
