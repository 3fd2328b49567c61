package bridges

// Scale-out: several gateway processes share one store (Redis). The store's
// optional store.Leaser decides which instance runs what:
//
//   - one lease per account ("acct:<bridge>|<jid>"): only its holder runs
//     the user's legacy session, outbox worker and inbox drainer (so only
//     one instance polls Telegram's getUpdates for a bot, keeps an IMAP
//     IDLE open, and so on);
//   - with Cluster.MultiLink false (Prosody, Openfire: one component link
//     per domain), one lease per bridge ("link:<bridge>"): only its holder
//     connects the component link and runs the bridge at all; the others
//     wait in standby (lease.go).
//
// Every instance that is up accepts stanzas: a message for a user this
// instance does not run is appended to the user's outbox in the shared
// store and the owner is woken through store.Notifier (or finds it at its
// next check when the store has no Notifier). Legacy events reach the
// shared inbox of the user through the owner's session (webhook requests
// that land on another instance are refused with 503 by the adapters, and
// the provider retries).
//
// Leases are renewed every LeaseTTL/4. An instance stops acting on a lease
// at a local deadline, 4/5 of LeaseTTL after it sent the last successful
// renewal, so it has stopped before the store lets anyone else take the
// lease (margin for clock rate differences and latency); a renewal the
// store refuses stops the user's machinery at once. Each instance also
// holds a liveness lease ("inst:<bridge>|<instance>"); the accounts of an
// instance whose liveness lease is gone, and accounts nobody holds, are
// taken at the next check, so accounts move within one LeaseTTL plus one
// check interval. Accounts whose owner is alive are not tried (one store
// call per instance per check), except in a full pass every fullPass
// lease periods.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/component"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
)

// Cluster configures a bridge that runs as one of several instances on a
// shared store.
type Cluster struct {
	// Leaser holds the account and link leases; required. It is usually
	// the store itself (store/redis).
	Leaser store.Leaser
	// Notifier wakes the instance that runs a user when another instance
	// changed something for them (a queued message, a registration). Nil:
	// owners look at the outboxes of their users at every check
	// (LeaseTTL/4) and learn of registrations at the next rescan.
	Notifier store.Notifier
	// Instance names this process in the leases; it must be unique among
	// the instances. Default: host name, process id and a random suffix.
	Instance string
	// LeaseTTL is the lease period (default 15 s): a dead instance's
	// accounts move within it.
	LeaseTTL time.Duration
	// MultiLink says the XMPP server accepts several component links for
	// the bridge's domain (ejabberd): every instance connects. False
	// (Prosody, Openfire): only the holder of the bridge's link lease
	// connects and serves; the others are standby.
	MultiLink bool
}

// DefaultLeaseTTL is Cluster.LeaseTTL's default.
const DefaultLeaseTTL = 15 * time.Second

// Notification topics (store.Notifier). The account topic carries the
// publishing instance ("acct:<instance>") so an instance ignores its own.
const (
	topicOutbox  = "out"
	topicAccount = "acct"
	topicReply   = "iq" // the "jid" is an IQ result or error, as XML
)

// errNotOwner refuses, as retryable, the events a legacy session emits
// after this instance lost the account's lease: the legacy side keeps them
// (no cursor advances) and the new owner's session receives them.
var errNotOwner = fmt.Errorf("bridges: this instance no longer runs the account: %w", legacy.ErrUnavailable)

// errLeaseLost is the cancellation cause of a context that ended because
// its lease was lost.
var errLeaseLost = errors.New("bridges: lease lost")

// errLinkDown is the cancellation cause of an active instance that gives
// up its link lease because its own component link stayed down (a wrong
// secret, a domain the server does not know): a standby whose link may
// work takes over.
var errLinkDown = errors.New("bridges: component link down; link lease handed over")

// linkGrace is how long an instance's component link may stay down before
// it hands its leases to other instances: two lease periods (30 s by
// default), more than a server restart takes.
func (c *cluster) linkGrace() time.Duration { return 2 * c.ttl }

// cluster is the lease state of one clustered Bridge; nil when the bridge
// runs alone. Its methods accept a nil receiver and then do what a single
// instance does.
type cluster struct {
	b        *Bridge
	leaser   store.Leaser
	notifier store.Notifier
	instance string
	ttl      time.Duration
	multi    bool

	mu   sync.Mutex
	held map[string]*heldLease // by bare JID

	replies chan string   // IQ replies for other instances' links, to publish
	linkUp  chan struct{} // kicked when the link comes up: accounts are taken at once

	// Used by the run goroutine only (acquireFree, keepInstance):
	owners   map[string]string // jid → the instance last seen holding its lease
	lastFull time.Time         // when owners was last cleared
	instTok  int64             // token of this instance's liveness lease, 0: not held

	nonce  string      // per process: tells two processes with one instance name apart
	instOK atomic.Bool // the liveness lease is ours: accounts may be taken
}

// fullPass is how often (in lease periods) every account not held here is
// tried again even though its owner is alive: a safety net, as an owner
// that loses an account's lease retakes it itself.
const fullPass = 8

// heldLease is one account lease this instance holds.
type heldLease struct {
	token    int64
	deadline time.Time   // local: stop acting after this
	timer    *time.Timer // fires at deadline
}

func newCluster(b *Bridge, o *Cluster) (*cluster, error) {
	if o == nil {
		return nil, nil
	}
	if o.Leaser == nil {
		return nil, errors.New("bridges: Cluster.Leaser is required (a store shared by the instances, such as redis)")
	}
	c := &cluster{b: b, leaser: o.Leaser, notifier: o.Notifier, instance: o.Instance, ttl: o.LeaseTTL,
		multi: o.MultiLink, held: map[string]*heldLease{}, replies: make(chan string, 1024), linkUp: make(chan struct{}, 1)}
	var r [6]byte
	_, _ = rand.Read(r[:])
	c.nonce = hex.EncodeToString(r[:])
	if c.instance == "" {
		c.instance = DefaultInstance()
	}
	if strings.ContainsAny(c.instance, " |") {
		return nil, fmt.Errorf("bridges: cluster instance name %q may not contain spaces or '|'", c.instance)
	}
	if c.ttl <= 0 {
		c.ttl = DefaultLeaseTTL
	}
	if c.ttl < 100*time.Millisecond {
		return nil, fmt.Errorf("bridges: lease ttl %s is too short", c.ttl)
	}
	return c, nil
}

// DefaultInstance returns a name unique to this process: host name, process
// id and a random suffix.
func DefaultInstance() string {
	h, _ := os.Hostname()
	if h == "" {
		h = "jabbergate"
	}
	var r [3]byte
	_, _ = rand.Read(r[:])
	return strings.NewReplacer(" ", "_", "|", "_").Replace(h) + "-" + fmt.Sprint(os.Getpid()) + "-" + hex.EncodeToString(r[:])
}

func (c *cluster) check() time.Duration { return c.ttl / 4 }

// deadline is when an instance stops acting on a lease whose last
// successful Acquire or Renew was sent at sent: 4/5 of the ttl, a margin
// before the store can let another instance take it.
func (c *cluster) deadline(sent time.Time) time.Time { return sent.Add(c.ttl * 4 / 5) }

func (c *cluster) accountLease(jid string) string { return "acct:" + c.b.domain + "|" + jid }
func (c *cluster) linkLease() string              { return "link:" + c.b.domain }

// instanceLease is the liveness lease of an instance: others try to take
// the accounts of an instance only once it is gone.
func (c *cluster) instanceLease(name string) string { return "inst:" + c.b.domain + "|" + name }

// standby reports whether the bridge must hold the link lease before it
// runs (active/standby).
func (c *cluster) standby() bool { return c != nil && !c.multi }

// holds reports whether this instance holds jid's account lease and its
// local deadline has not passed.
func (c *cluster) holds(jid string) bool {
	if c == nil {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	hl := c.held[jid]
	return hl != nil && time.Now().Before(hl.deadline)
}

// mayAct reports whether u's machinery may still act on this instance: a
// local check (no store round trip) made before each side effect on the
// legacy network.
func (b *Bridge) mayAct(u *user) bool { return b.cl.holds(u.jid) }

// claim is called by startUser: it takes u's account lease (or finds it
// already held) and reports whether u's machinery may start here. In both
// cases the other instances are told the account changed, so they reload
// it (the owner restarts the user with the new registration).
func (c *cluster) claim(ctx context.Context, u *user) bool {
	if c == nil {
		return true
	}
	ok := c.take(ctx, u.jid)
	c.notify(ctx, u.jid, topicAccount+":"+c.instance)
	return ok
}

// take acquires jid's account lease unless held already.
func (c *cluster) take(ctx context.Context, jid string) bool {
	if c.holds(jid) {
		return true
	}
	if !c.instOK.Load() {
		return false // not yet, or the same instance name runs elsewhere
	}
	sent := time.Now()
	actx, cancel := context.WithTimeout(ctx, c.check())
	tok, ok, err := c.leaser.Acquire(actx, c.accountLease(jid), c.instance, c.ttl)
	cancel()
	if err != nil {
		c.b.log.Warn("cluster: cannot acquire account lease", "err", err)
		return false
	}
	if !ok {
		return false
	}
	hl := &heldLease{token: tok, deadline: c.deadline(sent)}
	hl.timer = time.AfterFunc(time.Until(hl.deadline), func() { c.lose(jid, hl, "not renewed in time") })
	c.mu.Lock()
	if old := c.held[jid]; old != nil {
		old.timer.Stop()
	}
	c.held[jid] = hl
	c.mu.Unlock()
	c.b.log.Debug("cluster: account lease acquired", "token", tok)
	return true
}

// lose forgets a lease and stops its user's machinery at once.
func (c *cluster) lose(jid string, hl *heldLease, why string) {
	c.mu.Lock()
	if c.held[jid] != hl {
		c.mu.Unlock()
		return
	}
	delete(c.held, jid)
	c.mu.Unlock()
	hl.timer.Stop()
	if u := c.b.getUser(jid); u != nil {
		c.b.log.Warn("cluster: account lease lost; the user's session stops on this instance", "user", u.owner, "why", why, "token", hl.token)
		c.b.stopUser(u)
	}
}

// wakeOwner tells the instance running u that its outbox grew (called
// after an append by handleMessage). Nothing to do when it is us.
func (b *Bridge) wakeOwner(ctx context.Context, u *user) {
	if b.cl == nil || b.cl.holds(u.jid) {
		return
	}
	b.cl.notify(ctx, u.jid, topicOutbox)
}

func (c *cluster) notify(ctx context.Context, jid, topic string) {
	if c.notifier == nil {
		return
	}
	// Not canceled with ctx: a change committed while this instance
	// stops or loses its leases must still reach the owner, or nothing
	// would tell it before the next full pass.
	nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := c.notifier.Notify(nctx, c.b.domain, jid, topic); err != nil {
		c.b.log.Warn("cluster: notification not sent; the owner finds the change at its next check", "topic", topic, "err", err)
	}
}

// run keeps the account leases of a running bridge until ctx ends: renew
// the held ones, take free ones, rescan the accounts, and listen to
// notifications. On the way out it stops the users it ran and releases
// their leases so other instances take them over at once.
func (c *cluster) run(ctx context.Context) {
	var wg sync.WaitGroup
	if c.notifier != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				err := c.notifier.Subscribe(ctx, c.b.domain, func(jid, topic string) { c.notified(ctx, jid, topic) }, c.resync)
				if ctx.Err() == nil {
					c.b.log.Warn("cluster: notification subscription ended; resubscribing", "err", err)
					sleep(ctx, jitter(time.Second))
				}
			}
		}()
	}
	if c.multi && c.notifier != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.publishReplies(ctx)
		}()
	}
	t := time.NewTicker(c.check())
	defer t.Stop()
	var lastScan time.Time
	c.owners = map[string]string{}
	linkDown := time.Now() // since when the link is down; zero while up
	for {
		c.renewAll(ctx)
		c.keepInstance(ctx) // after the accounts: it expires after them
		if time.Since(lastScan) >= c.ttl {
			if c.rescan(ctx) {
				lastScan = time.Now()
			}
		}
		// Accounts are taken only while this instance's link works, and
		// given back when it has been down for linkGrace (several links:
		// the other instances' links serve them meanwhile).
		switch {
		case c.b.link.Up():
			linkDown = time.Time{}
			c.acquireFree(ctx)
		case linkDown.IsZero():
			linkDown = time.Now()
		case c.multi && time.Since(linkDown) >= c.linkGrace() && c.heldCount() > 0:
			c.b.log.Warn("cluster: component link down; handing the accounts to the other instances",
				"down", time.Since(linkDown).Round(time.Second), "accounts", c.heldCount())
			c.releaseAccounts()
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			c.releaseAll()
			return
		case <-t.C:
		case <-c.linkUp:
		}
	}
}

// instHolder is the holder of this process's liveness lease: the
// instance name and a per-process nonce, so that a second process started
// with the same name is found out (account leases carry the name alone).
func (c *cluster) instHolder() string { return c.instance + "#" + c.nonce }

// keepInstance takes or renews this instance's liveness lease. While
// another process holds it (the same cluster.instance twice), this one
// takes no accounts.
func (c *cluster) keepInstance(ctx context.Context) {
	name := c.instanceLease(c.instance)
	lctx, cancel := context.WithTimeout(ctx, c.check())
	defer cancel()
	if c.instTok != 0 {
		if ok, err := c.leaser.Renew(lctx, name, c.instHolder(), c.instTok, c.ttl); ok || err != nil {
			return
		}
	}
	tok, ok, err := c.leaser.Acquire(lctx, name, c.instHolder(), c.ttl)
	switch {
	case err != nil:
		c.b.log.Warn("cluster: instance lease not taken", "err", err)
	case !ok:
		if c.instOK.Swap(false) || c.instTok == 0 {
			c.b.log.Error("cluster: another running process uses this cluster.instance name; this one takes no accounts until it is gone (give each instance a unique name)", "instance", c.instance)
		}
		c.instTok = -1
	default:
		c.instTok = tok
		c.instOK.Store(true)
	}
}

// alive reports, for each instance in owners, whether it holds its
// liveness lease (one store call per instance).
func (c *cluster) alive(ctx context.Context) map[string]bool {
	out := map[string]bool{}
	for _, o := range c.owners {
		if _, done := out[o]; done {
			continue
		}
		h, _, err := c.leaser.Holder(ctx, c.instanceLease(o))
		out[o] = err == nil && strings.HasPrefix(h, o+"#") || err != nil && !errors.Is(err, store.ErrNotFound) // unknown: assume alive
	}
	return out
}

// forwardReply is called from the link's read loop for every stanza: an
// IQ result or error that reached the handler answers no request of this
// instance's link, and with several links for the domain it is most likely
// the reply to another instance's ping or request (the server routes each
// stanza for the domain to any one link). It is queued for publication and
// true returned; it never blocks (a full queue drops the reply: the
// requester then times out as without a cluster).
func (c *cluster) forwardReply(st *stanza.Element) bool {
	if c == nil || !c.multi || c.notifier == nil || st.Local != "iq" || (st.Type() != "result" && st.Type() != "error") {
		return false
	}
	select {
	case c.replies <- st.String():
	default:
		c.b.log.Warn("cluster: IQ reply for another instance dropped: forwarding queue full")
	}
	return true
}

func (c *cluster) publishReplies(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case x := <-c.replies:
			c.notify(ctx, x, topicReply)
		}
	}
}

// barrier is conn.Barrier. With several links for the domain the reply
// to a ping may be routed to an instance that is dying and never arrive;
// a later ping proves as much (the server processes a link in order), so
// a ping unanswered for LeaseTTL/4 (at least 2 s) is followed by another
// until one is answered, the connection closes or ctx ends.
func (b *Bridge) barrier(ctx context.Context, conn *component.Conn) error {
	if b.cl == nil || !b.cl.multi {
		return conn.Barrier(ctx)
	}
	for {
		bctx, cancel := context.WithTimeout(ctx, max(b.cl.check(), 2*time.Second))
		err := conn.Barrier(bctx)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		b.log.Info("cluster: barrier ping unanswered (its reply may have gone to another instance); pinging again")
	}
}

// notified handles one notification; it must not block (Subscribe).
func (c *cluster) notified(ctx context.Context, jid, topic string) {
	switch {
	case topic == topicReply:
		if !c.multi {
			return
		}
		if el, err := stanza.Parse(jid); err == nil {
			c.b.link.Deliver(el)
		}
	case topic == topicOutbox:
		if u := c.b.getUser(jid); u != nil && c.holds(jid) {
			kick(u.kickOut)
		}
	case strings.HasPrefix(topic, topicAccount+":"):
		if strings.TrimPrefix(topic, topicAccount+":") == c.instance {
			return
		}
		c.b.wg.Add(1)
		go func() {
			defer c.b.wg.Done()
			c.reload(ctx, jid)
		}()
	}
}

// resync runs after every (re)subscription: notifications may have been
// missed, so every user this instance runs looks at its outbox.
func (c *cluster) resync() {
	c.b.mu.Lock()
	users := c.b.snapshotUsers()
	c.b.mu.Unlock()
	for _, u := range users {
		if c.holds(u.jid) {
			kick(u.kickOut)
		}
	}
}

// reload re-reads one account after another instance changed it: gone →
// stop and forget the user; changed → restart it here if we run it, else
// keep the new record for the stanzas this instance accepts.
func (c *cluster) reload(ctx context.Context, jid string) {
	a, err := c.b.st.GetAccount(ctx, c.b.domain, jid)
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.forget(ctx, jid)
		return
	case err != nil:
		c.b.log.Warn("cluster: reload account", "err", err)
		return
	}
	c.replace(ctx, a, c.holds(jid))
}

// replace puts a fresh user for a into the bridge, keeping what this
// instance knows of the user's presence, and starts its machinery when
// start is true (the caller holds the lease).
func (c *cluster) replace(ctx context.Context, a *store.Account, start bool) {
	b := c.b
	nu := b.newUser(a)
	b.mu.Lock()
	if b.ctx == nil || b.ctx.Err() != nil {
		b.mu.Unlock()
		return
	}
	old := b.users[a.JID]
	b.users[a.JID] = nu
	b.mu.Unlock()
	if old != nil {
		b.stopUser(old)
		nu.inheritOnline(old)
	}
	if start {
		b.runUser(nu)
	}
}

// forget stops and removes a user whose account is gone, and releases its
// lease.
func (c *cluster) forget(ctx context.Context, jid string) {
	b := c.b
	b.mu.Lock()
	u := b.users[jid]
	delete(b.users, jid)
	b.mu.Unlock()
	if u != nil {
		b.stopUser(u)
	}
	c.drop(ctx, jid)
}

// drop releases jid's lease if held.
func (c *cluster) drop(ctx context.Context, jid string) {
	c.mu.Lock()
	hl := c.held[jid]
	delete(c.held, jid)
	c.mu.Unlock()
	if hl != nil {
		hl.timer.Stop()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.check())
		_ = c.leaser.Release(rctx, c.accountLease(jid), c.instance, hl.token)
		cancel()
	}
}

// renewAll renews every held lease; a refused renewal stops that user at
// once, an error leaves the lease to its local deadline.
func (c *cluster) renewAll(ctx context.Context) {
	c.mu.Lock()
	held := make(map[string]*heldLease, len(c.held))
	for j, hl := range c.held {
		held[j] = hl
	}
	c.mu.Unlock()
	for jid, hl := range held {
		if ctx.Err() != nil {
			return
		}
		sent := time.Now()
		rctx, cancel := context.WithTimeout(ctx, c.check())
		ok, err := c.leaser.Renew(rctx, c.accountLease(jid), c.instance, hl.token, c.ttl)
		cancel()
		switch {
		case err != nil:
			c.b.log.Warn("cluster: account lease not renewed; retrying", "err", err)
		case !ok:
			c.lose(jid, hl, "taken by another instance or expired")
		default:
			c.mu.Lock()
			if c.held[jid] == hl {
				hl.deadline = c.deadline(sent)
				hl.timer.Reset(time.Until(hl.deadline))
			}
			c.mu.Unlock()
		}
	}
}

// rescan loads the account list: new accounts (registered through another
// instance) get a user, deleted ones are forgotten. It reports success.
func (c *cluster) rescan(ctx context.Context) bool {
	b := c.b
	accts, err := b.st.ListAccounts(ctx, b.domain)
	var ce *store.CorruptAccountsError
	if err != nil && !b.skipCorrupt(err) {
		b.log.Warn("cluster: rescan accounts", "err", err)
		return false
	}
	present := make(map[string]bool, len(accts))
	if errors.As(err, &ce) {
		for _, r := range ce.Records {
			present[r.JID] = true // still registered: not forgotten
		}
	}
	for _, a := range accts {
		present[a.JID] = true
		b.mu.Lock()
		if b.users[a.JID] == nil {
			b.users[a.JID] = b.newUser(a)
		}
		b.mu.Unlock()
	}
	b.mu.Lock()
	var gone []string
	for j := range b.users {
		if !present[j] {
			gone = append(gone, j)
		}
	}
	b.mu.Unlock()
	for _, j := range gone {
		// The account may have been registered on this instance since
		// the list was read.
		if _, err := b.st.GetAccount(ctx, b.domain, j); errors.Is(err, store.ErrNotFound) {
			c.forget(ctx, j)
		}
	}
	return true
}

// acquireFree takes the free leases of users nobody runs, starting each
// with its account as stored (the previous owner's cursors), and stops
// machinery that runs here without a lease. Without a Notifier it also wakes
// the outbox of every user it runs.
//
// Accounts whose owner (learned when taking failed) is alive are not
// tried: the steady cost is one store call per instance per check, not
// one per account. Every fullPass lease periods all are tried again.
func (c *cluster) acquireFree(ctx context.Context) {
	b := c.b
	b.mu.Lock()
	users := b.snapshotUsers()
	b.mu.Unlock()
	full := time.Since(c.lastFull) >= fullPass*c.ttl
	if full {
		c.owners, c.lastFull = map[string]string{}, time.Now()
	}
	alive := c.alive(ctx)
	for _, u := range users {
		if ctx.Err() != nil {
			return
		}
		if c.holds(u.jid) {
			// Without notifications, at every check; with them, at every
			// full pass: the outbox is read again, for messages queued
			// by another instance whose notification was lost.
			if c.notifier == nil || full {
				kick(u.kickOut)
			}
			continue
		}
		if running(u) {
			b.log.Warn("cluster: user machinery running without a lease; stopped", "user", u.owner)
			b.stopUser(u)
		}
		if o, ok := c.owners[u.jid]; ok && alive[o] {
			continue
		}
		if !c.take(ctx, u.jid) {
			hctx, cancel := context.WithTimeout(ctx, c.check())
			if h, _, err := c.leaser.Holder(hctx, c.accountLease(u.jid)); err == nil && h != c.instance {
				c.owners[u.jid] = h
			} else {
				delete(c.owners, u.jid)
			}
			cancel()
			continue
		}
		delete(c.owners, u.jid)
		a, err := b.st.GetAccount(ctx, b.domain, u.jid)
		if errors.Is(err, store.ErrNotFound) {
			c.forget(ctx, u.jid)
			continue
		}
		if err != nil {
			c.drop(ctx, u.jid) // retried at the next check
			continue
		}
		b.log.Info("cluster: running user on this instance", "user", u.owner)
		c.replace(ctx, a, true)
	}
}

// running reports whether u's machinery runs.
func running(u *user) bool {
	u.mu.Lock()
	done := u.done
	u.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// heldCount returns how many account leases this instance holds.
func (c *cluster) heldCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.held)
}

// releaseAll stops every user this instance ran and releases their leases
// and its liveness lease (ctx has ended: the store calls get their own
// short deadline).
func (c *cluster) releaseAll() {
	c.releaseAccounts()
	c.releaseInstance()
}

// releaseInstance gives this instance's liveness lease back (if held), so
// that a restart under the same name is not taken for a second process.
func (c *cluster) releaseInstance() {
	if c.instTok > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.leaser.Release(ctx, c.instanceLease(c.instance), c.instHolder(), c.instTok)
		c.instTok = 0
		c.instOK.Store(false)
	}
}

// releaseAccounts stops every user this instance ran and releases their
// leases, so other instances take them at their next check.
func (c *cluster) releaseAccounts() {
	b := c.b
	c.mu.Lock()
	held := c.held
	c.held = map[string]*heldLease{}
	c.mu.Unlock()
	for jid, hl := range held {
		hl.timer.Stop()
		if u := b.getUser(jid); u != nil {
			b.stopUser(u)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for jid, hl := range held {
		if err := c.leaser.Release(ctx, c.accountLease(jid), c.instance, hl.token); err != nil {
			b.log.Warn("cluster: release account lease", "err", err)
			return
		}
	}
	if len(held) > 0 {
		b.log.Info("cluster: account leases released", "count", len(held))
	}
}
