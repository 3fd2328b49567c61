package bridges_test

// Benchmarks of the bridge's message paths, end to end inside the process:
// a bridges.Bridge with the echo network, a real store (bolt on disk, or a
// real redis-server from redistest) and a minimal in-process XEP-0114 peer
// (benchPeer) on loopback TCP that answers pings (the barrier) and counts
// the messages the component writes. The peer does no XML parsing: a byte
// splitter finds stanza boundaries, so its cost per stanza is small (it is
// nevertheless included in ns/op and allocs/op, as is the whole TCP round
// trip of the barrier).
//
// Completion is observed through bridges.Options.Observer: Delivered("in",
// true) is reported after the barrier confirmed the written stanza and the
// inbox entry was acknowledged — the full durable path.
//
// Custom metrics: store-reads/op and store-writes/op count calls on the
// store.Store interface (each one is at least one bolt transaction or one
// Redis round trip; a bolt write is one fsync).
//
// Benchmarks are not tests: nothing here asserts a time.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"github.com/jabbergate/jabbergate/component/componenttest"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/bolt"
	pebblestore "github.com/jabbergate/jabbergate/bridges/store/pebble"
	"github.com/jabbergate/jabbergate/bridges/store/redis"
	"github.com/jabbergate/jabbergate/bridges/store/redistest"
	"github.com/jabbergate/jabbergate/bridges/vault"
	"github.com/jabbergate/jabbergate/component"
	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/echo"
)

const benchUser = "bench@localhost"

// benchCountingStore wraps a store.Store and counts the calls.
type benchCountingStore struct {
	store.Store
	reads, writes atomic.Int64
	mu            sync.Mutex
	calls         map[string]int64 // per method
}

func (c *benchCountingStore) r(name string) { c.reads.Add(1); c.count(name) }
func (c *benchCountingStore) w(name string) { c.writes.Add(1); c.count(name) }

func (c *benchCountingStore) count(name string) {
	c.mu.Lock()
	if c.calls == nil {
		c.calls = map[string]int64{}
	}
	c.calls[name]++
	c.mu.Unlock()
}

// committer is a store that counts its commits (bolt: transactions,
// pebble: synced batches; shared ones once).
type committer interface{ Commits() int64 }

func (c *benchCountingStore) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := maps.Clone(c.calls)
	if bs, ok := c.Store.(committer); ok {
		if m == nil {
			m = map[string]int64{}
		}
		m["commits"] = bs.Commits() // transactions, shared ones once
	}
	if m == nil {
		m = map[string]int64{}
	}
	m[cpuKey] = processCPU().Microseconds()
	return m
}

// cpuKey is the snapshot entry holding the process's CPU time (µs).
const cpuKey = "process.cpu-us"

// processCPU returns the CPU time (user + system) this process used so
// far: the benchmarks report it per op, which says what a message costs
// whatever the wall time (fsync waits) on a noisy machine.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (c *benchCountingStore) PutAccount(ctx context.Context, a *store.Account) error {
	c.w("PutAccount")
	return c.Store.PutAccount(ctx, a)
}
func (c *benchCountingStore) GetAccount(ctx context.Context, bridge, jid string) (*store.Account, error) {
	c.r("GetAccount")
	return c.Store.GetAccount(ctx, bridge, jid)
}
func (c *benchCountingStore) DeleteAccount(ctx context.Context, bridge, jid string) error {
	c.w("DeleteAccount")
	return c.Store.DeleteAccount(ctx, bridge, jid)
}
func (c *benchCountingStore) ListAccounts(ctx context.Context, bridge string) ([]*store.Account, error) {
	c.r("ListAccounts")
	return c.Store.ListAccounts(ctx, bridge)
}
func (c *benchCountingStore) PutContact(ctx context.Context, bridge, jid string, ct *store.Contact) error {
	c.w("PutContact")
	return c.Store.PutContact(ctx, bridge, jid, ct)
}
func (c *benchCountingStore) GetContact(ctx context.Context, bridge, jid, lp string) (*store.Contact, error) {
	c.r("GetContact")
	return c.Store.GetContact(ctx, bridge, jid, lp)
}
func (c *benchCountingStore) ListContacts(ctx context.Context, bridge, jid string) ([]*store.Contact, error) {
	c.r("ListContacts")
	return c.Store.ListContacts(ctx, bridge, jid)
}
func (c *benchCountingStore) DeleteContact(ctx context.Context, bridge, jid, lp string) error {
	c.w("DeleteContact")
	return c.Store.DeleteContact(ctx, bridge, jid, lp)
}
func (c *benchCountingStore) Append(ctx context.Context, q store.Queue, p ...[]byte) ([]string, error) {
	c.w("Append")
	return c.Store.Append(ctx, q, p...)
}
func (c *benchCountingStore) Read(ctx context.Context, q store.Queue, after string, limit int) ([]store.Entry, error) {
	c.r("Read")
	return c.Store.Read(ctx, q, after, limit)
}
func (c *benchCountingStore) Ack(ctx context.Context, q store.Queue, ids ...string) error {
	c.w("Ack")
	return c.Store.Ack(ctx, q, ids...)
}
func (c *benchCountingStore) Len(ctx context.Context, q store.Queue) (int, error) {
	c.r("Len")
	return c.Store.Len(ctx, q)
}
func (c *benchCountingStore) Queues(ctx context.Context, bridge string, kind store.QueueKind) ([]store.Queue, error) {
	c.r("Queues")
	return c.Store.Queues(ctx, bridge, kind)
}
func (c *benchCountingStore) PutMapping(ctx context.Context, bridge, jid, ns, key, value string, ttl time.Duration) error {
	c.w("PutMapping")
	return c.Store.PutMapping(ctx, bridge, jid, ns, key, value, ttl)
}
func (c *benchCountingStore) GetMapping(ctx context.Context, bridge, jid, ns, key string) (string, error) {
	c.r("GetMapping")
	return c.Store.GetMapping(ctx, bridge, jid, ns, key)
}
func (c *benchCountingStore) MarkSeen(ctx context.Context, bridge, jid, key string, ttl time.Duration) (bool, error) {
	c.w("MarkSeen")
	return c.Store.MarkSeen(ctx, bridge, jid, key, ttl)
}

// benchApplyOpNames names the operations of a batch, by store.OpKind, as
// counted (built once: the counting must not add allocations of its own to
// the figures).
var benchApplyOpNames = [...]string{"Apply.?", "Apply.Append", "Apply.Ack", "Apply.PutMapping", "Apply.MarkSeen", "Apply.AppendOnce"}

// Apply counts one write per batch (one commit), and the operations in
// it under "Apply.<op>".
func (c *benchCountingStore) Apply(ctx context.Context, b *store.Batch) (*store.BatchResult, error) {
	c.w("Apply")
	for _, op := range b.Ops {
		name := benchApplyOpNames[0]
		if k := int(op.Kind); k > 0 && k < len(benchApplyOpNames) {
			name = benchApplyOpNames[k]
		}
		c.count(name)
	}
	return store.Apply(ctx, c.Store, b)
}

// benchObs counts deliveries: inbound ones (after barrier and ack) and
// outbound ones (sent to the legacy network).
type benchObs struct {
	in   atomic.Int64
	out  atomic.Int64
	kick chan struct{}
}

func (o *benchObs) QueueDepth(store.QueueKind, int) {}
func (o *benchObs) Sessions(int)                    {}
func (o *benchObs) Delivered(dir string, ok bool) {
	if !ok {
		return
	}
	switch dir {
	case "in":
		o.in.Add(1)
	case "out":
		o.out.Add(1)
	default:
		return
	}
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// waitIn waits until n inbound deliveries have been counted.
func (o *benchObs) waitIn(b *testing.B, n int64) { o.wait(b, &o.in, n, "inbound") }

// waitOut waits until n outbound deliveries have been counted.
func (o *benchObs) waitOut(b *testing.B, n int64) { o.wait(b, &o.out, n, "outbound") }

func (o *benchObs) wait(b *testing.B, count *atomic.Int64, n int64, what string) {
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for count.Load() < n {
		select {
		case <-o.kick:
		case <-deadline.C:
			dumpGoroutines()
			b.Fatalf("only %d of %d %s deliveries within 30 s", count.Load(), n, what)
		}
	}
}

// benchCapturingNet is the echo network, remembering the sink of the session
// it opens so the benchmark can emit legacy events directly.
type benchCapturingNet struct {
	*echo.Network
	silent bool // contacts never answer (benchSilentSession)
	mu     sync.Mutex
	sink   legacy.Sink
	got    chan struct{}
}

func (n *benchCapturingNet) Open(ctx context.Context, acct legacy.Account, sink legacy.Sink) (legacy.Session, error) {
	n.mu.Lock()
	n.sink = sink
	n.mu.Unlock()
	select {
	case n.got <- struct{}{}:
	default:
	}
	sess, err := n.Network.Open(ctx, acct, sink)
	if err != nil || !n.silent {
		return sess, err
	}
	return benchSilentSession{sess}, nil
}

// benchSilentSession is an echo session whose contacts never answer: Send
// takes the message and returns its id, so a benchmark measures the path
// from XMPP to the legacy network alone.
type benchSilentSession struct{ legacy.Session }

func (benchSilentSession) Send(_ context.Context, m *legacy.Message) (legacy.MessageID, error) {
	return legacy.MessageID("out-" + m.Key), nil
}

// benchPeer is a minimal XEP-0114 server side for one component: it
// accepts the stream without checking the secret, answers every iq get/set
// with an empty result and counts messages.
type benchPeer struct {
	ln   net.Listener
	up   chan struct{}
	wmu  sync.Mutex
	w    *bufio.Writer
	nc   net.Conn
	msgs atomic.Int64
	// results counts iq results the component wrote (answers to the
	// requests a benchmark injected).
	results atomic.Int64
	resKick chan struct{} // signalled after each result
}

func newBenchPeer(b *testing.B) *benchPeer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	p := &benchPeer{ln: ln, up: make(chan struct{}), resKick: make(chan struct{}, 1)}
	go p.accept()
	b.Cleanup(func() {
		ln.Close()
		p.wmu.Lock()
		if p.nc != nil {
			p.nc.Close()
		}
		p.wmu.Unlock()
	})
	return p
}

func (p *benchPeer) accept() {
	nc, err := p.ln.Accept()
	if err != nil {
		return
	}
	p.wmu.Lock()
	p.nc = nc
	p.w = bufio.NewWriterSize(nc, 64<<10)
	p.wmu.Unlock()
	r := bufio.NewReaderSize(nc, 64<<10)
	// Stream header: read up to the '>' closing <stream:stream ...>.
	var hdr []byte
	for !bytes.Contains(hdr, []byte("stream:stream")) || hdr[len(hdr)-1] != '>' {
		c, err := r.ReadByte()
		if err != nil {
			return
		}
		hdr = append(hdr, c)
	}
	p.write([]byte("<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:component:accept' from='echo.localhost' id='bench1'>"))
	var buf []byte
	if buf, err = componenttest.SplitStanza(r, buf[:0]); err != nil { // <handshake>
		return
	}
	p.write([]byte("<handshake/>"))
	close(p.up)
	var out []byte
	for {
		if buf, err = componenttest.SplitStanza(r, buf[:0]); err != nil {
			return
		}
		switch {
		case bytes.HasPrefix(buf, []byte("<iq")):
			t := componenttest.RawAttr(buf, "type")
			if t != "get" && t != "set" {
				if t == "result" {
					p.results.Add(1)
					select {
					case p.resKick <- struct{}{}:
					default:
					}
				}
				continue
			}
			out = append(componenttest.AppendIQResult(out[:0], buf), "/>"...)
			p.writeBuffered(out, false)
		case bytes.HasPrefix(buf, []byte("<message")):
			p.msgs.Add(1)
		}
		// Flushed once the input runs dry after any stanza, answered or
		// not: a result written while a message was still buffered
		// behind its iq must not wait for the next input (the barrier
		// ping it answers would stall until the component's retry).
		if r.Buffered() == 0 {
			p.flush()
		}
	}
}

func (p *benchPeer) write(b []byte) { p.writeBuffered(b, true) }

func (p *benchPeer) flush() {
	p.wmu.Lock()
	p.w.Flush()
	p.wmu.Unlock()
}

func (p *benchPeer) writeBuffered(b []byte, flush bool) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.w.Write(b)
	if flush {
		p.w.Flush()
	}
}

// benchBridge is a running bridge with one registered user.
type benchBridge struct {
	peer *benchPeer
	st   *benchCountingStore
	obs  *benchObs
	net  *benchCapturingNet
	sink legacy.Sink
}

func openBenchStore(b *testing.B, kind string) store.Store {
	switch kind {
	case "bolt":
		st, err := bolt.Open(filepath.Join(b.TempDir(), "jg.db"))
		if err != nil {
			b.Fatal(err)
		}
		return st
	case "pebble":
		st, err := pebblestore.Open(filepath.Join(b.TempDir(), "jg.pebble"))
		if err != nil {
			b.Fatal(err)
		}
		return st
	case "redis":
		url := redistest.Start(b)
		st, err := redis.Open(context.Background(), url, redis.Options{})
		if err != nil {
			b.Fatal(err)
		}
		return st
	}
	b.Fatalf("unknown store %q", kind)
	return nil
}

func newBenchBridge(b *testing.B, kind string) *benchBridge {
	b.Helper()
	return newBenchBridgeOf(b, kind, false)
}

// newBenchBridgeOf is newBenchBridge; with silent, the echo contacts never
// answer (benchSilentSession).
func newBenchBridgeOf(b *testing.B, kind string, silent bool) *benchBridge {
	b.Helper()
	raw := openBenchStore(b, kind)
	ctx := context.Background()
	if err := raw.PutAccount(ctx, &store.Account{Bridge: domain, JID: benchUser, LegacyID: "bench",
		Fields: map[string]string{}, Created: time.Now().UTC(), Subscription: "both"}); err != nil {
		b.Fatal(err)
	}
	en, _ := echo.New(nil)
	bb := &benchBridge{
		peer: newBenchPeer(b),
		st:   &benchCountingStore{Store: raw},
		obs:  &benchObs{kick: make(chan struct{}, 1)},
		net:  &benchCapturingNet{Network: en, silent: silent, got: make(chan struct{}, 1)},
	}
	v, _ := vault.New(map[int][]byte{1: bytes.Repeat([]byte{7}, 32)})
	br, err := bridges.New(bridges.Options{
		Domain:         domain,
		Network:        bb.net,
		Store:          bb.st,
		Vault:          v,
		AllowedDomains: []string{"localhost"},
		Logger:         benchLogger(),
		Observer:       bb.obs,
		RateLimit:      -1, // the load is far above the default per-user limit
		Link: component.Config{
			Addr: bb.peer.ln.Addr().String(), Secret: "s3cret",
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- br.Run(rctx) }()
	b.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			b.Errorf("bridge did not stop")
		}
		raw.Close()
	})
	select {
	case <-bb.peer.up:
	case <-time.After(10 * time.Second):
		b.Fatal("no component connection")
	}
	select {
	case <-bb.net.got:
	case <-time.After(10 * time.Second):
		b.Fatal("user session not opened")
	}
	bb.net.mu.Lock()
	bb.sink = bb.net.sink
	bb.net.mu.Unlock()
	return bb
}

// emitIn hands an incoming legacy message to the bridge (returns once it
// is durable in the inbox).
func (bb *benchBridge) emitIn(b *testing.B, i int) {
	err := bb.sink.Emit(context.Background(), legacy.Incoming{ID: legacy.MessageID("m" + strconv.Itoa(i)), Chat: "hello", Text: "hello there"})
	if err != nil {
		b.Fatal(err)
	}
}

// sendOut writes a message from the user to an echo contact, as the server
// would route it to the component.
func (bb *benchBridge) sendOut(i int, flush bool) {
	bb.peer.writeBuffered(fmt.Appendf(nil, "<message xmlns='jabber:component:accept' type='chat' id='o%d' from='%s/r' to='hello@%s'><body>hello there</body></message>", i, benchUser, domain), flush)
}

func (bb *benchBridge) report(b *testing.B, r0, w0 int64, calls0 map[string]int64) {
	n := float64(b.N)
	var per []string
	now := bb.st.snapshot()
	b.ReportMetric(float64(now[cpuKey]-calls0[cpuKey])/n, "cpu-µs/op")
	delete(now, cpuKey)
	for name, v := range now {
		if d := v - calls0[name]; d > 0 {
			per = append(per, fmt.Sprintf("%s=%.2f", name, float64(d)/n))
		}
	}
	slices.Sort(per)
	b.Logf("store calls per message: %s", strings.Join(per, " "))
	b.ReportMetric(float64(bb.st.reads.Load()-r0)/n, "store-reads/op")
	b.ReportMetric(float64(bb.st.writes.Load()-w0)/n, "store-writes/op")
	if bs, ok := bb.st.Store.(committer); ok {
		b.ReportMetric(float64(bs.Commits()-calls0["commits"])/n, "commits/op")
	}
}

// warm sends a few messages both ways so one-time work (contact
// introduction, caches) is out of the measurement.
func (bb *benchBridge) warm(b *testing.B) int64 {
	for i := range 5 {
		bb.emitIn(b, -1-i)
		bb.sendOut(-1-i, true)
	}
	bb.obs.waitIn(b, 10)
	time.Sleep(50 * time.Millisecond) // let trailing introductions settle
	return bb.obs.in.Load()
}

var benchStores = []string{"bolt", "pebble", "redis"}

// BenchmarkInbound: legacy Emit → inbox → stanza written → barrier →
// delivered mark and ack. Serial: one message at a time (latency of the
// whole durable path). Pipelined: b.N emits back to back, then wait for
// all (the drainer batches what has accumulated).
func BenchmarkInbound(b *testing.B) {
	for _, kind := range benchStores {
		b.Run(kind+"/serial", func(b *testing.B) {
			bb := newBenchBridge(b, kind)
			base := bb.warm(b)
			r0, w0, c0 := bb.st.reads.Load(), bb.st.writes.Load(), bb.st.snapshot()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				bb.emitIn(b, i)
				bb.obs.waitIn(b, base+int64(i)+1)
			}
			b.StopTimer()
			bb.report(b, r0, w0, c0)
		})
		b.Run(kind+"/pipelined", func(b *testing.B) {
			bb := newBenchBridge(b, kind)
			base := bb.warm(b)
			r0, w0, c0 := bb.st.reads.Load(), bb.st.writes.Load(), bb.st.snapshot()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				bb.emitIn(b, i)
			}
			bb.obs.waitIn(b, base+int64(b.N))
			b.StopTimer()
			bb.report(b, r0, w0, c0)
		})
		// window: at most 64 events outstanding, handed over with
		// EmitAsync (as the echo network's answers are): the steady state
		// of the legacy → XMPP path, one legacy event per op.
		b.Run(kind+"/window", func(b *testing.B) {
			bb := newBenchBridge(b, kind)
			base := bb.warm(b)
			async, ok := bb.sink.(legacy.AsyncSink)
			if !ok {
				b.Fatal("the bridge's sink has no EmitAsync")
			}
			r0, w0, c0 := bb.st.reads.Load(), bb.st.writes.Load(), bb.st.snapshot()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i >= 64 && bb.obs.in.Load()-base <= int64(i-64) {
					bb.obs.waitIn(b, base+int64(i-64)+1)
				}
				ev := legacy.Incoming{ID: legacy.MessageID("m" + strconv.Itoa(i)), Chat: "hello", Text: "hello there"}
				if err := async.EmitAsync(context.Background(), ev); err != nil {
					b.Fatal(err)
				}
			}
			bb.obs.waitIn(b, base+int64(b.N))
			b.StopTimer()
			bb.report(b, r0, w0, c0)
		})
	}
}

// BenchmarkOutbound: message stanza read from the link → outbox → Send
// to a legacy contact that does not answer → id maps and ack: the path of
// one inbound stanza, from XMPP to the legacy network. Serial: one message
// at a time. Window: at most 64 messages outstanding, as jgbench's load
// (the outbox's in-memory tail stays warm, unlike the pipelined mode of
// the benchmarks above, which overflows it on purpose).
func BenchmarkOutbound(b *testing.B) {
	for _, kind := range benchStores {
		for _, window := range []int{1, 64} {
			mode := "serial"
			if window > 1 {
				mode = "window"
			}
			b.Run(kind+"/"+mode, func(b *testing.B) {
				bb := newBenchBridgeOf(b, kind, true)
				// The contact is known, as one the network has introduced
				// (the echo network does so at its first message).
				if err := bb.sink.Emit(context.Background(), legacy.Contact{Chat: "hello", Name: "Hello"}); err != nil {
					b.Fatal(err)
				}
				for i := range 5 {
					bb.sendOut(-1-i, true)
				}
				bb.obs.waitOut(b, 5)
				time.Sleep(50 * time.Millisecond) // let trailing introductions settle
				base := bb.obs.out.Load()
				r0, w0, c0 := bb.st.reads.Load(), bb.st.writes.Load(), bb.st.snapshot()
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if i >= window && bb.obs.out.Load()-base <= int64(i-window) {
						bb.peer.flush()
						bb.obs.waitOut(b, base+int64(i-window)+1)
					}
					bb.sendOut(i, window == 1)
				}
				bb.peer.flush()
				bb.obs.waitOut(b, base+int64(b.N))
				b.StopTimer()
				bb.report(b, r0, w0, c0)
			})
		}
	}
}

// BenchmarkOutboundEcho: message stanza read from the link → outbox →
// echo Send → echo emitted into the inbox → echo stanza written →
// barrier → delivered. Serial and pipelined as in BenchmarkInbound.
func BenchmarkOutboundEcho(b *testing.B) {
	for _, kind := range benchStores {
		b.Run(kind+"/serial", func(b *testing.B) {
			bb := newBenchBridge(b, kind)
			base := bb.warm(b)
			r0, w0, c0 := bb.st.reads.Load(), bb.st.writes.Load(), bb.st.snapshot()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				bb.sendOut(i, true)
				bb.obs.waitIn(b, base+int64(i)+1)
			}
			b.StopTimer()
			bb.report(b, r0, w0, c0)
		})
		b.Run(kind+"/pipelined", func(b *testing.B) {
			bb := newBenchBridge(b, kind)
			base := bb.warm(b)
			r0, w0, c0 := bb.st.reads.Load(), bb.st.writes.Load(), bb.st.snapshot()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				bb.sendOut(i, i%64 == 63 || i == b.N-1)
			}
			bb.obs.waitIn(b, base+int64(b.N))
			b.StopTimer()
			bb.report(b, r0, w0, c0)
		})
	}
}

// BenchmarkDomainIQ: an iq ping or disco#info to the gateway domain, from
// a user, read off the link, answered, the answer written back: the
// in-process cost of the simplest round trips (answered in the link's
// read loop, without the shard hop: "fast"; "shard" turns that off for
// comparison). Window of 64 outstanding requests, as jgbench.
func BenchmarkDomainIQ(b *testing.B) {
	for _, kind := range []struct{ name, payload string }{
		{"ping", "<ping xmlns='urn:xmpp:ping'/>"},
		{"disco", "<query xmlns='http://jabber.org/protocol/disco#info'/>"},
	} {
		for _, path := range []string{"fast", "shard"} {
			b.Run(kind.name+"/"+path, func(b *testing.B) {
				bridges.SetFastIQ(path == "fast")
				defer bridges.SetFastIQ(true)
				bb := newBenchBridge(b, "bolt")
				req := func(i int, flush bool) {
					bb.peer.writeBuffered(fmt.Appendf(nil, "<iq xmlns='jabber:component:accept' type='get' id='q%d' from='%s/r' to='%s'>%s</iq>", i, benchUser, domain, kind.payload), flush)
				}
				wait := func(n int64) {
					deadline := time.NewTimer(30 * time.Second)
					defer deadline.Stop()
					for bb.peer.results.Load() < n {
						select {
						case <-bb.peer.resKick:
						case <-deadline.C:
							b.Fatalf("%d of %d answers within 30 s", bb.peer.results.Load(), n)
						}
					}
				}
				for i := range 100 { // warm up
					req(-1-i, true)
				}
				wait(100)
				base := bb.peer.results.Load()
				const window = 64
				b.ReportAllocs()
				cpu0 := processCPU()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if i >= window {
						wait(base + int64(i-window+1))
					}
					req(i, i%16 == 15 || i == b.N-1)
				}
				wait(base + int64(b.N))
				b.StopTimer()
				// The in-process peer's share included (it parses nothing).
				b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
			})
		}
	}
}

// benchLogger is the bridges' logger in benchmarks: discarded, or with
// JG_BENCH_LOG set, everything down to debug on stderr.
func benchLogger() *slog.Logger {
	if os.Getenv("JG_BENCH_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// dumpGoroutines writes every goroutine's stack to stderr when JG_BENCH_LOG
// is set: what a stalled benchmark was waiting for.
func dumpGoroutines() {
	if os.Getenv("JG_BENCH_LOG") != "" {
		pprof.Lookup("goroutine").WriteTo(os.Stderr, 2)
	}
}
