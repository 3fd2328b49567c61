package bridges_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/bolt"
	"github.com/jabbergate/jabbergate/bridges/vault"
	"github.com/jabbergate/jabbergate/component"
	"github.com/jabbergate/jabbergate/component/componenttest"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/echo"
	_ "github.com/jabbergate/jabbergate/legacy/telegram"
	"github.com/jabbergate/jabbergate/legacy/telegram/telegramtest"
)

// Cluster tests run two bridges of one domain in this process on one bolt
// store, whose in-process leases and notifications (store.Local) stand in
// for Redis; each bridge has its own fake XMPP server, so the test sees
// which instance writes what. The real thing (three processes, Redis,
// ejabberd, kill -9) is cmd/jabbergate/cluster_e2e_test.go.

const clusterTTL = time.Second

type instance struct {
	t      *testing.T
	name   string
	srv    *componenttest.Server
	cancel context.CancelFunc
	done   chan error
	log    *syncBuffer
}

func startInstance(t *testing.T, name string, st store.Store, c bridges.Cluster, nw ...legacy.Network) *instance {
	t.Helper()
	return startObservedInstance(t, name, st, c, nil, nw...)
}

// startObservedInstance is startInstance with an Observer (nil: none).
func startObservedInstance(t *testing.T, name string, st store.Store, c bridges.Cluster, obs bridges.Observer, nw ...legacy.Network) *instance {
	t.Helper()
	in := &instance{t: t, name: name, srv: componenttest.NewServer(t, domain, "s3cret"), log: &syncBuffer{}}
	var e legacy.Network
	if len(nw) > 0 {
		e = nw[0]
	} else {
		e, _ = echo.New(nil)
	}
	v, _ := vault.New(map[int][]byte{1: bytes.Repeat([]byte{7}, 32)})
	c.Instance = name
	c.LeaseTTL = clusterTTL
	if c.Leaser == nil {
		c.Leaser = st.(store.Leaser)
	}
	c.Notifier = st.(store.Notifier)
	b, err := bridges.New(bridges.Options{
		Domain: domain, Network: e, Store: st, Vault: v,
		AllowedDomains: []string{"localhost"},
		Logger:         slog.New(slog.NewTextHandler(in.log, &slog.HandlerOptions{Level: slog.LevelDebug})).With("instance", name),
		RetryMin:       20 * time.Millisecond, RetryMax: 100 * time.Millisecond,
		Cluster: &c, Observer: obs,
		Link: component.Config{
			Addr: in.srv.Addr(), Secret: "s3cret",
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
			PingInterval: time.Second, PingTimeout: 500 * time.Millisecond,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel, in.done = cancel, make(chan error, 1)
	go func() { in.done <- b.Run(ctx) }()
	t.Cleanup(func() {
		in.stop()
		if t.Failed() {
			t.Logf("instance %s log:\n%s", name, in.log.String())
		}
	})
	return in
}

func (in *instance) stop() {
	if in.cancel == nil {
		return
	}
	in.cancel()
	select {
	case <-in.done:
	case <-time.After(wait):
		in.t.Errorf("instance %s did not stop", in.name)
	}
	in.cancel = nil
}

func (in *instance) send(raw string) {
	in.t.Helper()
	if err := in.srv.Inject(stanza.MustParse(raw)); err != nil {
		in.t.Fatal(err)
	}
}

// echoed waits for the echo of text on this instance's link.
func (in *instance) echoed(text string) {
	in.t.Helper()
	_, err := in.srv.WaitFor(wait, func(e *stanza.Element) bool {
		return e.Local == "message" && e.From() == "hello@"+domain && e.To() == alice && e.ChildText("", "body") == text
	})
	if err != nil {
		in.t.Fatalf("no echo of %q on instance %s: %v", text, in.name, err)
	}
}

// registerAlice registers alice through this instance and waits for the
// result.
func (in *instance) registerAlice() {
	in.t.Helper()
	in.send(`<iq xmlns='jabber:component:accept' type='set' id='r1' from='` + alice + `/res' to='` + domain + `'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>jabber:iq:register</value></field></x></query></iq>`)
	if r, err := in.srv.WaitFor(wait, reply("r1")); err != nil || r.Type() != "result" {
		in.t.Fatalf("register alice on instance %s: %v %v", in.name, r, err)
	}
}

func (in *instance) message(id, text string) {
	in.send(fmt.Sprintf(`<message xmlns='jabber:component:accept' type='chat' id='%s' from='%s/res' to='hello@%s'><body>%s</body></message>`, id, alice, domain, text))
}

func openShared(t *testing.T) *bolt.Store {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "jg.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func waitHolder(t *testing.T, l store.Leaser, name, want string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		h, _, err := l.Holder(context.Background(), name)
		if err == nil && (h == want || strings.HasPrefix(h, want+"#")) || want == "" && errors.Is(err, store.ErrNotFound) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease %s: holder %q (%v), want %q", name, h, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const aliceLease = "acct:" + domain + "|" + alice

// TestClusterMessageThroughOtherInstance: with several links, a message
// arriving at the instance that does not run the user is queued and sent
// by the owner (woken by a notification); when the owner stops, the other
// instance takes the user over and answers on its own link.
func TestClusterMessageThroughOtherInstance(t *testing.T) {
	st := openShared(t)
	a := startInstance(t, "a", st, bridges.Cluster{MultiLink: true})
	if err := a.srv.WaitHandshakes(1, wait); err != nil {
		t.Fatal(err)
	}
	b := startInstance(t, "b", st, bridges.Cluster{MultiLink: true})
	if err := b.srv.WaitHandshakes(1, wait); err != nil {
		t.Fatal(err)
	}
	a.registerAlice()
	waitHolder(t, st, aliceLease, "a")

	// B learns of the registration by notification: the message it gets
	// is queued, not refused, and A sends it.
	deadline := time.Now().Add(wait)
	for i := 0; ; i++ {
		id := fmt.Sprintf("m%d", i)
		b.message(id, "via b")
		// This message's error only (WaitFor looks at every stanza
		// received: an earlier message's error would match forever).
		if _, err := b.srv.WaitFor(200*time.Millisecond, func(e *stanza.Element) bool { return e.Type() == "error" && e.ID() == id }); err != nil {
			break // no registration-required error: B knows alice
		}
		if time.Now().After(deadline) {
			t.Fatal("instance b never learned of the registration")
		}
	}
	a.echoed("via b")

	a.stop() // releases the lease: b takes over at its next check
	waitHolder(t, st, aliceLease, "b")
	b.message("m-after", "after a stopped")
	b.echoed("after a stopped")
}

// revocable is a Leaser whose renewals for one holder can be refused, as
// when another instance took the lease during a partition.
type revocable struct {
	store.Leaser
	holder string
	refuse atomic.Bool
}

// refused reports whether holder's calls are refused now: the instance
// name (account leases) or name#nonce (its liveness and link leases).
func (r *revocable) refused(holder string) bool {
	return r.refuse.Load() && (holder == r.holder || strings.HasPrefix(holder, r.holder+"#"))
}

func (r *revocable) Acquire(ctx context.Context, name, holder string, ttl time.Duration) (int64, bool, error) {
	if r.refused(holder) {
		return 0, false, nil
	}
	return r.Leaser.Acquire(ctx, name, holder, ttl)
}

func (r *revocable) Renew(ctx context.Context, name, holder string, token int64, ttl time.Duration) (bool, error) {
	if r.refused(holder) {
		return false, nil
	}
	return r.Leaser.Renew(ctx, name, holder, token, ttl)
}

func (r *revocable) Release(ctx context.Context, name, holder string, token int64) error {
	if r.refused(holder) {
		return nil // the lease runs out on its own
	}
	return r.Leaser.Release(ctx, name, holder, token)
}

// TestClusterLeaseLost: an instance whose renewal is refused stops the
// user's machinery at once; the other instance takes the account when the
// lease runs out, and a message accepted by the first is sent by the
// second.
func TestClusterLeaseLost(t *testing.T) {
	st := openShared(t)
	rl := &revocable{Leaser: st, holder: "a"}
	a := startInstance(t, "a", st, bridges.Cluster{MultiLink: true, Leaser: rl})
	if err := a.srv.WaitHandshakes(1, wait); err != nil {
		t.Fatal(err)
	}
	a.registerAlice()
	waitHolder(t, st, aliceLease, "a")
	b := startInstance(t, "b", st, bridges.Cluster{MultiLink: true, Leaser: rl})
	if err := b.srv.WaitHandshakes(1, wait); err != nil {
		t.Fatal(err)
	}
	a.message("m1", "before")
	a.echoed("before")

	rl.refuse.Store(true)
	waitHolder(t, st, aliceLease, "b")
	if !bytes.Contains([]byte(a.log.String()), []byte("account lease lost")) {
		t.Errorf("instance a did not log the lost lease")
	}
	a.message("m2", "after the lease moved")
	b.echoed("after the lease moved")
}

// TestClusterStandby: with one link per domain, only the holder of the
// link lease connects; when it stops, the standby connects and serves.
func TestClusterStandby(t *testing.T) {
	st := openShared(t)
	a := startInstance(t, "a", st, bridges.Cluster{})
	if err := a.srv.WaitHandshakes(1, wait); err != nil {
		t.Fatal(err)
	}
	sb := &standbyObserver{}
	b := startObservedInstance(t, "b", st, bridges.Cluster{}, sb)
	waitHolder(t, st, "link:"+domain, "a")
	time.Sleep(2 * clusterTTL) // a standby check period or more: b must still not connect
	if n := len(b.srv.Attempts()); n != 0 {
		t.Fatalf("standby connected %d times while the active holds the link", n)
	}
	if !sb.standby.Load() {
		t.Error("the standby is not reported as one")
	}
	a.stop()
	if err := b.srv.WaitHandshakes(1, wait); err != nil {
		t.Fatalf("standby did not take over: %v", err)
	}
	waitHolder(t, st, "link:"+domain, "b")
	if sb.standby.Load() {
		t.Error("the active instance is still reported as a standby")
	}
	b.registerAlice()
	b.message("m1", "served by the standby")
	b.echoed("served by the standby")
}

// TestClusterTelegramOnePoller: with the Telegram adapter on two instances,
// only the holder of the account's lease polls getUpdates (no 409 Conflict
// between instances, each update delivered once); when it stops, the other
// instance polls and delivers.
func TestClusterTelegramOnePoller(t *testing.T) {
	api := telegramtest.New(t)
	st := openShared(t)
	tg := func() legacy.Network {
		n, err := legacy.New("telegram", map[string]string{"api_url": api.URL, "poll_timeout": "1s"})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	a := startInstance(t, "a", st, bridges.Cluster{MultiLink: true}, tg())
	b := startInstance(t, "b", st, bridges.Cluster{MultiLink: true}, tg())
	for _, in := range []*instance{a, b} {
		if err := in.srv.WaitHandshakes(1, wait); err != nil {
			t.Fatal(err)
		}
	}
	a.send(`<iq xmlns='jabber:component:accept' type='set' id='r1' from='` + alice + `/res' to='` + domain + `'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'><field var='token'><value>` + telegramtest.Token + `</value></field></x></query></iq>`)
	if r, err := a.srv.WaitFor(wait, reply("r1")); err != nil || r.Type() != "result" {
		t.Fatalf("register: %v %v", r, err)
	}
	waitHolder(t, st, aliceLease, "a")
	from := "5551@" + domain
	fromBob := func(text string) func(*stanza.Element) bool {
		return func(e *stanza.Element) bool {
			return e.Local == "message" && e.From() == from && e.ChildText("", "body") == text
		}
	}
	api.AddUpdate(telegramtest.PrivateText(5551, "Bob", 1, "first"))
	if _, err := a.srv.WaitFor(wait, fromBob("first")); err != nil {
		t.Fatalf("update not delivered by the owner: %v", err)
	}
	time.Sleep(3 * clusterTTL) // several poll rounds and lease checks on both
	a.stop()
	waitHolder(t, st, aliceLease, "b")
	api.AddUpdate(telegramtest.PrivateText(5551, "Bob", 2, "second"))
	if _, err := b.srv.WaitFor(wait, fromBob("second")); err != nil {
		t.Fatalf("update not delivered by the new owner: %v", err)
	}
	time.Sleep(clusterTTL)
	for _, in := range []*instance{a, b} {
		if strings.Contains(in.log.String(), "getUpdates conflict") {
			t.Errorf("instance %s saw a getUpdates conflict: two pollers", in.name)
		}
	}
	n := 0
	for _, e := range append(a.srv.Received(), b.srv.Received()...) {
		if fromBob("first")(e) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("first update delivered %d times", n)
	}
	if calls := len(api.Calls("getUpdates")); calls == 0 {
		t.Error("nobody polled")
	}
}

// TestClusterDuplicateName: a second process started with an instance name
// already running says so and takes no accounts (they would otherwise run
// twice, the account leases being held by name).
func TestClusterDuplicateName(t *testing.T) {
	st := openShared(t)
	a1 := startInstance(t, "a", st, bridges.Cluster{MultiLink: true})
	if err := a1.srv.WaitHandshakes(1, wait); err != nil {
		t.Fatal(err)
	}
	a2 := startInstance(t, "a", st, bridges.Cluster{MultiLink: true})
	if err := a2.srv.WaitHandshakes(1, wait); err != nil {
		t.Fatal(err)
	}
	// Whichever of the two took the name's liveness lease first keeps it
	// (both start at once); the other must notice and take no accounts.
	const notice = "another running process uses this cluster.instance name"
	var dup, owner *instance
	for deadline := time.Now().Add(wait); dup == nil; time.Sleep(20 * time.Millisecond) {
		switch {
		case strings.Contains(a2.log.String(), notice):
			dup, owner = a2, a1
		case strings.Contains(a1.log.String(), notice):
			dup, owner = a1, a2
		case time.Now().After(deadline):
			t.Fatal("neither process with the same name noticed the other")
		}
	}
	if strings.Contains(owner.log.String(), notice) {
		t.Fatal("both processes with the same name think the other one holds it")
	}
	dup.registerAlice()
	dup.message("m1", "once")
	owner.echoed("once")
	time.Sleep(clusterTTL)
	for _, e := range dup.srv.Received() {
		if e.Local == "message" && e.ChildText("", "body") == "once" {
			t.Fatalf("the duplicate process ran the account: %s", e)
		}
	}
}

// TestClusterStandbyTakesOverABrokenLink: an active instance whose own
// link stays down (its server refuses the secret) hands the link lease
// over, and the standby, whose link works, serves.
func TestClusterStandbyTakesOverABrokenLink(t *testing.T) {
	st := openShared(t)
	a := startInstance(t, "a", st, bridges.Cluster{})
	if err := a.srv.WaitHandshakes(1, wait); err != nil {
		t.Fatal(err)
	}
	b := startInstance(t, "b", st, bridges.Cluster{})
	waitHolder(t, st, "link:"+domain, "a")
	a.srv.SetSecret("not-the-secret")
	if err := a.srv.CloseConn(); err != nil {
		t.Fatal(err)
	}
	if err := b.srv.WaitHandshakes(1, wait); err != nil {
		t.Fatalf("the standby did not take over from an instance whose link fails: %v", err)
	}
	waitHolder(t, st, "link:"+domain, "b")
	if !strings.Contains(a.log.String(), "link lease released for a standby") {
		t.Error("instance a did not log why it released the link lease")
	}
	b.registerAlice()
	b.message("m1", "served by the standby")
	b.echoed("served by the standby")
}

// TestClusterBrokenLinkGivesAccountsAway: with several links, an instance
// whose link stays down gives its accounts to an instance whose link
// works, which then answers the user.
func TestClusterBrokenLinkGivesAccountsAway(t *testing.T) {
	st := openShared(t)
	a := startInstance(t, "a", st, bridges.Cluster{MultiLink: true})
	if err := a.srv.WaitHandshakes(1, wait); err != nil {
		t.Fatal(err)
	}
	a.registerAlice()
	waitHolder(t, st, aliceLease, "a")
	b := startInstance(t, "b", st, bridges.Cluster{MultiLink: true})
	if err := b.srv.WaitHandshakes(1, wait); err != nil {
		t.Fatal(err)
	}
	a.srv.SetSecret("not-the-secret")
	if err := a.srv.CloseConn(); err != nil {
		t.Fatal(err)
	}
	waitHolder(t, st, aliceLease, "b")
	b.message("m1", "after a's link broke")
	b.echoed("after a's link broke")
}

// depthObserver sums the queue depth an instance reports.
type depthObserver struct {
	mu    sync.Mutex
	depth map[store.QueueKind]int
	low   map[store.QueueKind]int // the lowest sum seen
}

func (o *depthObserver) QueueDepth(k store.QueueKind, delta int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.depth[k] += delta
	o.low[k] = min(o.low[k], o.depth[k])
}
func (o *depthObserver) Delivered(string, bool) {}
func (o *depthObserver) Sessions(int)           {}

func (o *depthObserver) get() (in, out, low int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.depth[store.Inbox], o.depth[store.Outbox], min(o.low[store.Inbox], o.low[store.Outbox])
}

// TestClusterQueueDepthDoesNotDrift: with several links, messages queued
// through the instance that does not run the user are not counted by it,
// and the owner's count never goes below zero: both end at zero once
// everything is delivered, and a stopped instance gives its count back.
func TestClusterQueueDepthDoesNotDrift(t *testing.T) {
	st := openShared(t)
	oa := &depthObserver{depth: map[store.QueueKind]int{}, low: map[store.QueueKind]int{}}
	ob := &depthObserver{depth: map[store.QueueKind]int{}, low: map[store.QueueKind]int{}}
	a := startObservedInstance(t, "a", st, bridges.Cluster{MultiLink: true}, oa)
	if err := a.srv.WaitHandshakes(1, wait); err != nil {
		t.Fatal(err)
	}
	a.registerAlice()
	waitHolder(t, st, aliceLease, "a")
	b := startObservedInstance(t, "b", st, bridges.Cluster{MultiLink: true}, ob)
	if err := b.srv.WaitHandshakes(1, wait); err != nil {
		t.Fatal(err)
	}
	// b learns of the registration by notification before it accepts.
	deadline := time.Now().Add(wait)
	for i := 0; ; i++ {
		id := fmt.Sprintf("p%d", i)
		b.message(id, "probe")
		if _, err := b.srv.WaitFor(200*time.Millisecond, func(e *stanza.Element) bool { return e.Type() == "error" && e.ID() == id }); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("instance b never learned of the registration")
		}
	}
	for i := range 10 {
		b.message(fmt.Sprintf("b%d", i), fmt.Sprintf("via b %d", i))
		a.message(fmt.Sprintf("a%d", i), fmt.Sprintf("via a %d", i))
	}
	a.echoed("via b 9")
	a.echoed("via a 9")
	deadline = time.Now().Add(wait)
	for {
		ai, ao, alow := oa.get()
		bi, bo, blow := ob.get()
		if alow < 0 || blow < 0 {
			t.Fatalf("queue depth below zero: a %d, b %d", alow, blow)
		}
		if ai == 0 && ao == 0 && bi == 0 && bo == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue depth after delivery: a in %d out %d, b in %d out %d", ai, ao, bi, bo)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// standbyObserver records whether the bridge reports itself a standby.
type standbyObserver struct{ standby atomic.Bool }

func (o *standbyObserver) QueueDepth(store.QueueKind, int) {}
func (o *standbyObserver) Delivered(string, bool)          {}
func (o *standbyObserver) Sessions(int)                    {}
func (o *standbyObserver) LinkStandby(s bool)              { o.standby.Store(s) }

// TestClusterDuplicateNameStandby: with one link per domain, a second
// process started with an instance name in use says so while it waits
// as a standby.
func TestClusterDuplicateNameStandby(t *testing.T) {
	st := openShared(t)
	a1 := startInstance(t, "a", st, bridges.Cluster{})
	if err := a1.srv.WaitHandshakes(1, wait); err != nil {
		t.Fatal(err)
	}
	waitHolder(t, st, "link:"+domain, "a")
	a2 := startInstance(t, "a", st, bridges.Cluster{})
	const notice = "another running process uses this cluster.instance name"
	for deadline := time.Now().Add(wait); !strings.Contains(a2.log.String(), notice); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second process with the same name did not say so")
		}
	}
	if n := len(a2.srv.Attempts()); n != 0 {
		t.Errorf("the second process connected %d times", n)
	}
}

// hanging is a Leaser whose renewals of the link lease hang, whatever
// their context says, while hang is set: a Redis that stopped answering
// but keeps its connections.
type hanging struct {
	store.Leaser
	hang atomic.Bool
}

func (h *hanging) Renew(ctx context.Context, name, holder string, token int64, ttl time.Duration) (bool, error) {
	if h.hang.Load() && strings.HasPrefix(name, "link:") {
		time.Sleep(5 * clusterTTL)
		return false, errors.New("store timed out")
	}
	return h.Leaser.Renew(ctx, name, holder, token, ttl)
}

// TestClusterHungStoreDropsTheLink: when the store hangs, the active
// instance closes its link at the lease's local deadline (4/5 of its
// ttl), not when the hung renewal returns: by then a standby may hold
// the link lease, and two links would serve the domain.
func TestClusterHungStoreDropsTheLink(t *testing.T) {
	st := openShared(t)
	hl := &hanging{Leaser: st}
	a := startInstance(t, "a", st, bridges.Cluster{Leaser: hl})
	if err := a.srv.WaitHandshakes(1, wait); err != nil {
		t.Fatal(err)
	}
	waitHolder(t, st, "link:"+domain, "a")
	hl.hang.Store(true)
	start := time.Now()
	if err := a.srv.WaitDisconnected(3 * clusterTTL); err != nil {
		t.Fatalf("link not closed while the store hangs: %v", err)
	}
	if took := time.Since(start); took >= 5*clusterTTL {
		t.Errorf("link closed after %v: it waited for the hung renewal", took)
	}
	if !strings.Contains(a.log.String(), "link lease not renewed in time") {
		t.Errorf("no log of the missed deadline")
	}
}

// TestClusterStoppedStandbyReleasesItsName: a standby that stops cleanly
// gives its liveness lease back, so that it can start again under its
// name at once (a rolling restart) instead of being taken for a second
// process for a lease period.
func TestClusterStoppedStandbyReleasesItsName(t *testing.T) {
	st := openShared(t)
	a := startInstance(t, "a", st, bridges.Cluster{})
	if err := a.srv.WaitHandshakes(1, wait); err != nil {
		t.Fatal(err)
	}
	waitHolder(t, st, "link:"+domain, "a")
	b := startInstance(t, "b", st, bridges.Cluster{})
	waitHolder(t, st, "inst:"+domain+"|b", "b")
	b.stop()
	// At once, not when it lapses a lease period later.
	if h, _, err := st.Holder(context.Background(), "inst:"+domain+"|b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after a clean stop the standby's liveness lease is still held by %q (%v)", h, err)
	}
}
