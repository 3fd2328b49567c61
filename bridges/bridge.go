// Package bridges is Jabbergate's engine: a Bridge joins one XMPP component
// domain (one XEP-0114 link) to one legacy network adapter.
//
// It answers service discovery (XEP-0030), version (XEP-0092), ping
// (XEP-0199), in-band registration (XEP-0077 with XEP-0004 forms) and the
// XEP-0100 gateway protocol (jabber:iq:gateway); it plays the contacts'
// server for presence subscriptions (RFC 6121 §3, §4.3); and it carries
// 1:1 messages both ways through durable queues:
//
//   - XMPP → legacy: a message is validated, appended to the user's outbox
//     (by the outbox appender, which group-commits the messages of all
//     users that arrived meanwhile; the shard does not wait for it) and
//     only then handed to the user's worker, which sends it through the
//     adapter, retrying transient failures with backoff until the
//     network's TTL; a permanent failure comes back to the sender as a
//     stanza error with the original id. Once warm, neither direction
//     reads the store per message (in-memory queue tails, contact cache:
//     inbox.go, outbox.go, storecache.go) and writes are batched
//     (store.Batcher).
//   - legacy → XMPP: the adapter's Sink.Emit returns once the event is in
//     the user's inbox. A drainer per user writes the stanzas with
//     deterministic ids, then waits for a barrier ping on the same
//     connection before it removes them from the inbox, so nothing is
//     lost when the link drops; replays carry the same ids and are
//     recognised.
//
// Stanzas are handed from the link's read loop to a fixed set of shards by
// the sender's bare JID: per-user order is kept, the read loop never waits
// for the store or a legacy network, and a full shard pushes back on the
// link (bounded memory).
//
// Contacts use bare JIDs (no resource) in every stanza, for the whole life
// of a deployment: corrections and receipts are matched on the exact
// counterpart by some clients, so this choice must not change.
//
// Legacy sessions stay connected whether or not the user is online (as
// modern gateways do); the user's server stores what arrives while they are
// away.
//
// With Options.Cluster, several instances share one store (Redis): each
// account runs on the instance holding its lease, any instance accepts
// stanzas and queues them for the owner, and with one component link per
// domain the instances are active/standby (cluster.go, lease.go,
// docs/scale-out.md, which lists what does not work yet).
//
// Security (docs/security.md): only users of AllowedDomains register or
// write to contacts; a legacy account belongs to one XMPP user per bridge
// (a second registration gets conflict; register.go) — not yet across two
// bridges of the same network; each user has a token bucket on inbound
// stanzas (resource-constraint; ratelimit.go); a from in the gateway's own
// domain is dropped.
package bridges

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/jabbergate/jabbergate/bridges/jidmap"
	"github.com/jabbergate/jabbergate/bridges/media"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/vault"
	"github.com/jabbergate/jabbergate/component"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
)

// Version is the software version reported by XEP-0092; cmd/jabbergate sets
// it from the build.
var Version = "dev"

// Options configures a Bridge.
type Options struct {
	// Domain is the component domain.
	Domain string
	// Name overrides the network's display name in service discovery.
	Name string
	// Network is the legacy adapter.
	Network legacy.Network
	// Store keeps the state.
	Store store.Store
	// Vault seals secret registration fields at rest.
	Vault *vault.Vault
	// AllowedDomains lists the user domains that may register; "*" allows
	// every domain.
	AllowedDomains []string
	// Admins are bare JIDs with administrative rights.
	Admins []string
	// Link configures the component link; Domain is filled in.
	Link component.Config
	// Logger, default slog.Default().
	Logger *slog.Logger
	// Observer receives queue and session metrics; may be nil.
	Observer Observer
	// Shards is the number of stanza workers (default 8).
	Shards int
	// OutboxTTL overrides the network's OutboxTTL (default 1 h).
	OutboxTTL time.Duration
	// RetryMin and RetryMax bound the outbox retry backoff (default 1 s, 5 min).
	RetryMin, RetryMax time.Duration
	// DelayNotice is how long a message may wait on transient failures
	// before its sender is told it is delayed (notice.go; default 1 min).
	DelayNotice time.Duration
	// Media stores inbound files and fetches outbound ones (attachments.go);
	// nil: inbound files become a text note, outbound file URLs are sent
	// as text.
	Media *media.Store
	// RateLimit is the sustained number of stanzas per second one user
	// (bare JID) may send to the bridge, RateBurst how many at once
	// (ratelimit.go). 0 selects DefaultRateLimit / DefaultRateBurst; a
	// negative RateLimit disables the limit.
	RateLimit float64
	RateBurst int
	// InboxLimit is how many legacy events one user may have waiting for
	// delivery before Emit refuses new ones with legacy.ErrUnavailable
	// (back-pressure: the adapter keeps them and retries). 0: 10000;
	// negative: no limit.
	InboxLimit int
	// Cluster, when set, makes this bridge one of several instances on a
	// shared store (cluster.go); nil: the only instance.
	Cluster *Cluster
}

// Observer receives the engine's metrics. Methods must not block.
type Observer interface {
	QueueDepth(kind store.QueueKind, delta int)
	Delivered(direction string, ok bool)
	Sessions(delta int)
}

// OutboxObserver is an optional Observer extension for the age of the
// oldest queued outgoing message. OutboxOldest is called with the time the
// entry now at the head of one user's outbox was queued, and with the zero
// time when that outbox is empty or its worker stopped; user is an opaque
// key (never a JID) that only tells users apart. It must not block.
type OutboxObserver interface {
	OutboxOldest(user string, enqueued time.Time)
}

// StandbyObserver is an optional Observer extension told whether the
// bridge is a standby: clustered with one component link per domain, and
// another instance holds the link (Bridge.Standby). It must not block.
type StandbyObserver interface {
	LinkStandby(standby bool)
}

// SessionObserver is an optional Observer extension counting legacy
// session failures. reason is one of SessionFailureReasons. It must not
// block.
type SessionObserver interface {
	SessionFailed(network, reason string)
}

// SessionFailureReasons are the reasons a SessionObserver is given:
// unauthorized (credentials rejected), credentials (stored credentials
// could not be unsealed), open (Network.Open failed), rate_limited,
// unavailable (legacy.ErrUnavailable or a network error), ended (Run
// returned nil while not asked to stop), error (anything else).
var SessionFailureReasons = []string{"unauthorized", "credentials", "open", "rate_limited", "unavailable", "ended", "error"}

// outboxOldest tells an OutboxObserver about a user's outbox head.
func (b *Bridge) outboxOldest(u *user, enqueued time.Time) {
	if o, ok := b.obs.(OutboxObserver); ok {
		o.OutboxOldest(u.owner, enqueued)
	}
}

// sessionFailed tells a SessionObserver that a legacy session failed.
func (b *Bridge) sessionFailed(reason string) {
	if o, ok := b.obs.(SessionObserver); ok {
		o.SessionFailed(b.info.Name, reason)
	}
}

type nopObserver struct{}

func (nopObserver) QueueDepth(store.QueueKind, int) {}
func (nopObserver) Delivered(string, bool)          {}
func (nopObserver) Sessions(int)                    {}

// Bridge is one component domain bound to one legacy network.
type Bridge struct {
	standby atomic.Bool // a standby of a cluster with one link (lease.go)
	opts    Options
	domain  string
	jids    jidCache // addresses parsed and rendered per stanza (jidcache.go)
	info    legacy.Info
	st      store.Store
	log     *slog.Logger
	obs     Observer
	link    *component.Link
	shards  []chan *stanza.Element
	ttl     time.Duration
	resolve legacy.Resolver
	caps    bridgeCaps // disco#info answers and XEP-0115 vers, computed once in New (disco.go)

	outApp     appender[*appendReq] // outbox appends, group-committed (outbox.go)
	inApp      appender[*emitReq]   // inbox appends from legacy sessions, group-committed (emit.go)
	ackApp     appender[*ackReq]    // outbox acks after sending, group-committed (outbox.go)
	discoOnce  sync.Once            // gatewayDiscoQuery (iq.go)
	discoQuery *stanza.Element      // the gateway's disco#info query, shared by fastIQ replies

	cmds *cmdState  // ad-hoc command sessions and chat conversations
	priv *privState // XEP-0356 grants and roster population queues

	regMu   sync.Mutex   // serialises registrations (checkAccountFree, register.go)
	limiter *rateLimiter // per-user inbound rate limit (ratelimit.go)
	// inboxLimit bounds each user's undelivered inbox (inbox.go backlog);
	// <= 0: unbounded.
	inboxLimit int64

	accessMu sync.RWMutex // guards opts.AllowedDomains and opts.Admins (SetAccess)

	cl *cluster // leases when one of several instances (cluster.go); nil alone

	mu    sync.Mutex
	users map[string]*user // by bare JID
	// corrupt holds the bare JIDs whose account records ListAccounts
	// could not read, logged once (skipCorrupt); guarded by mu.
	corrupt map[string]bool
	ctx     context.Context // the Run context, set when Run starts
	// serveCtx is the shards' context: it outlives ctx until the link
	// has stopped reading, so that a stanza read during the shutdown is
	// handled (a message is queued), not dropped.
	serveCtx context.Context
	wg       sync.WaitGroup
}

// New validates opts and builds a bridge. It does no I/O.
func New(opts Options) (*Bridge, error) {
	if opts.Network == nil || opts.Store == nil {
		return nil, errors.New("bridges: Network and Store are required")
	}
	d, err := jid.Parse(opts.Domain)
	if err != nil || d.Localpart() != "" || d.Resourcepart() != "" {
		return nil, fmt.Errorf("bridges: invalid domain %q", opts.Domain)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Shards <= 0 {
		opts.Shards = 8
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = time.Second
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 5 * time.Minute
	}
	if opts.DelayNotice <= 0 {
		opts.DelayNotice = time.Minute
	}
	b := &Bridge{
		opts:   opts,
		domain: d.Domainpart(),
		info:   opts.Network.Info(),
		st:     opts.Store,
		obs:    opts.Observer,
		users:  map[string]*user{},
		cmds:   newCmdState(),
		priv:   newPrivState(),
	}
	b.limiter = newRateLimiter(opts.RateLimit, opts.RateBurst)
	b.inboxLimit = int64(opts.InboxLimit)
	if b.inboxLimit == 0 {
		b.inboxLimit = defaultInboxLimit
	}
	b.st = newContactCache(opts.Store, opts.Cluster == nil) // storecache.go: no contact reads on the message path
	if b.cl, err = newCluster(b, opts.Cluster); err != nil {
		return nil, err
	}
	if b.obs == nil {
		b.obs = nopObserver{}
	}
	b.log = opts.Logger.With("bridge", b.domain, "network", b.info.Name)
	b.ttl = opts.OutboxTTL
	if b.ttl <= 0 {
		b.ttl = b.info.OutboxTTL
	}
	if b.ttl <= 0 {
		b.ttl = time.Hour
	}
	b.resolve, _ = opts.Network.(legacy.Resolver)
	if b.caps, err = b.newCaps(); err != nil {
		return nil, err
	}
	lc := opts.Link
	lc.Domain = b.domain
	if lc.Logger == nil {
		lc.Logger = b.log
	}
	userOnUp := lc.OnUp
	lc.OnUp = func(ctx context.Context, c *component.Conn) {
		b.linkUp(ctx, c)
		if userOnUp != nil {
			userOnUp(ctx, c)
		}
	}
	b.link, err = component.New(lc, component.HandlerFunc(b.handle))
	if err != nil {
		return nil, err
	}
	b.shards = make([]chan *stanza.Element, opts.Shards)
	for i := range b.shards {
		b.shards[i] = make(chan *stanza.Element, 256)
	}
	return b, nil
}

// Domain returns the component domain.
func (b *Bridge) Domain() string { return b.domain }

// Link returns the component link (for readiness checks).
func (b *Bridge) Link() *component.Link { return b.link }

// Standby reports whether the bridge waits as a standby: clustered with
// one component link per domain while another instance holds the link, so
// its own link is down by design.
func (b *Bridge) Standby() bool { return b.standby.Load() }

// setStandby records and reports whether the bridge is a standby.
func (b *Bridge) setStandby(standby bool) {
	b.standby.Store(standby)
	if o, ok := b.obs.(StandbyObserver); ok {
		o.LinkStandby(standby)
	}
}

// Info returns the network's description.
func (b *Bridge) Info() legacy.Info { return b.info }

// skipCorrupt reports whether err, from ListAccounts, only names account
// records that do not decode (a *store.CorruptAccountsError): their users
// are left out, and the accounts returned with it are used. Each record is
// logged at error level once per process, naming the record. It is left
// as it is, for an admin to restore or delete (jabbergate delete-user):
// the user is not started, so nothing writes it, and a registration of
// that user is refused while it is there (storeRegistration).
func (b *Bridge) skipCorrupt(err error) bool {
	var ce *store.CorruptAccountsError
	if !errors.As(err, &ce) {
		return false
	}
	for _, r := range ce.Records {
		b.mu.Lock()
		seen := b.corrupt[r.JID]
		if b.corrupt == nil {
			b.corrupt = map[string]bool{}
		}
		b.corrupt[r.JID] = true
		b.mu.Unlock()
		if !seen {
			b.log.Error("account record cannot be read: the user is not started; the record is left as it is for an admin to restore or delete (jabbergate delete-user)",
				"user", jidmap.OwnerKey(b.domain, r.JID), "record", r.Key, "err", r.Err)
		}
	}
	return true
}

// Run loads the registered users, starts their legacy sessions and queue
// workers, and serves the component link until ctx ends. On the way out it
// tells every user the gateway is unavailable.
func (b *Bridge) Run(ctx context.Context) error {
	if b.cl.standby() {
		return b.runStandby(ctx) // one link for the domain: active/standby (lease.go)
	}
	return b.run(ctx)
}

// run is Run once the bridge may serve its domain.
func (b *Bridge) run(ctx context.Context) error {
	accts, err := b.st.ListAccounts(ctx, b.domain)
	if err != nil && !b.skipCorrupt(err) {
		return fmt.Errorf("bridges: %s: load accounts: %w", b.domain, err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	serveCtx, stopServing := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServing()
	b.mu.Lock()
	b.ctx, b.serveCtx = runCtx, serveCtx
	for _, a := range accts {
		u := b.newUser(a)
		b.users[a.JID] = u
	}
	users := b.snapshotUsers()
	b.mu.Unlock()
	// Which queues hold entries: one scan per kind instead of a read per
	// user and queue (nil: unknown, every queue is read).
	nonEmpty := map[store.QueueKind]map[string]bool{}
	for _, k := range []store.QueueKind{store.Inbox, store.Outbox} {
		qs, err := b.st.Queues(ctx, b.domain, k)
		if err != nil {
			b.log.Warn("cannot list the queues with entries; every user's are read", "err", err)
			nonEmpty = nil
			break
		}
		nonEmpty[k] = make(map[string]bool, len(qs))
		for _, q := range qs {
			nonEmpty[k][q.JID] = true
		}
	}
	if nonEmpty != nil && len(nonEmpty[store.Inbox])+len(nonEmpty[store.Outbox]) > 0 {
		b.log.Info("resuming queued messages", "inboxes", len(nonEmpty[store.Inbox]), "outboxes", len(nonEmpty[store.Outbox]))
	}
	for _, u := range users {
		for i, k := range []store.QueueKind{store.Inbox, store.Outbox} {
			if nonEmpty != nil && !nonEmpty[k][u.jid] {
				// Empty now, and nothing appends to it before its
				// worker starts without kicking it (memtail.go).
				u.mu.Lock()
				u.emptyAtStart[i] = b.cl == nil
				u.mu.Unlock()
				continue
			}
			if b.cl != nil {
				continue // accounts start where their lease is taken; counted from there on (countQueued)
			}
			if n, err := b.st.Len(ctx, store.Queue{Bridge: b.domain, JID: u.jid, Kind: k}); err == nil && n > 0 {
				b.countQueued(u, i, n)
			}
		}
		if b.cl == nil {
			b.startUser(u)
		}
	}
	b.log.Info("bridge started", "users", len(users))
	if b.cl != nil { // users start where their account lease is taken (cluster.go)
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.cl.run(runCtx)
		}()
	}

	var shards sync.WaitGroup
	for _, ch := range b.shards {
		shards.Go(func() { b.serveShard(serveCtx, ch) })
	}
	// The link gets its own context so that, on shutdown, the goodbye
	// presences can still be written before it closes.
	linkCtx, stopLink := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLink()
	linkDone := make(chan error, 1)
	go func() { linkDone <- b.link.Run(linkCtx) }()
	var linkErr error
	select {
	case linkErr = <-linkDone:
	case <-ctx.Done():
		// Bounds the shutdown should a shard be stuck: handle then stops
		// waiting for it (serveShardsBound).
		defer time.AfterFunc(serveShardsBound, stopServing).Stop()
		if !b.cl.skipGoodbye(ctx) { // other instances keep serving (lease.go)
			gctx, gcancel := context.WithTimeout(linkCtx, 5*time.Second)
			b.goodbye(gctx)
			gcancel()
		}
		stopLink()
		linkErr = <-linkDone
	}
	// The link reads no more: the shards handle what it handed them (a
	// message read during the goodbye or the stream's close is queued in
	// the outbox and sent after the restart), then stop.
	stopServing()
	shards.Wait()
	cancel()
	b.wg.Wait()
	b.log.Info("bridge stopped")
	return linkErr
}

func (b *Bridge) snapshotUsers() []*user {
	out := make([]*user, 0, len(b.users))
	for _, u := range b.users {
		out = append(out, u)
	}
	return out
}

// handle is the component.Handler: called from the read loop, it only
// routes the stanza to its shard.
func (b *Bridge) handle(st *stanza.Element) {
	if b.cl.forwardReply(st) { // a reply for another instance's link (cluster.go)
		return
	}
	from := bareOf(st.From())
	h := fnv.New32a()
	h.Write([]byte(from))
	ch := b.shards[int(h.Sum32()%uint32(len(b.shards)))]
	b.mu.Lock()
	ctx := b.serveCtx
	b.mu.Unlock()
	if ctx == nil {
		return
	}
	if b.fastIQ(ctx, st) { // ping and disco#info to the domain, no shard hop (iq.go)
		return
	}
	select {
	case ch <- st:
	case <-ctx.Done():
		b.log.Warn("stanza read while stopping not handled: its shard did not take it in time", "kind", st.Local, "id", st.ID())
	}
}

// serveShardsBound bounds how long the shards keep serving once the
// bridge is stopping: the goodbye (5 s) and the link's orderly close
// (closing tags, at most 2 s each way) fit in it.
const serveShardsBound = 15 * time.Second

// serveShard dispatches the stanzas of one shard until ctx ends, then
// the ones still waiting in ch (Bridge.run ends ctx once the link has
// stopped reading, so nothing is added after them).
func (b *Bridge) serveShard(ctx context.Context, ch chan *stanza.Element) {
	for {
		select {
		case <-ctx.Done():
			rest, cancel := context.WithTimeout(context.WithoutCancel(ctx), serveShardsBound)
			defer cancel()
			for {
				select {
				case st := <-ch:
					b.dispatch(rest, st)
				default:
					return
				}
			}
		case st := <-ch:
			b.dispatch(ctx, st)
		}
	}
}

// dispatch handles one stanza. Panics are contained so one bad stanza can
// not stop a shard.
func (b *Bridge) dispatch(ctx context.Context, st *stanza.Element) {
	defer func() {
		if r := recover(); r != nil {
			b.log.Error("panic while handling stanza", "panic", r, "kind", st.Local)
			b.reply(ctx, stanza.ErrorReply(st, stanza.NewError(stanza.InternalServerError, "the gateway failed on this stanza")))
		}
	}()
	pf, err := b.jids.parse(st.From())
	if err != nil {
		b.log.Warn("stanza with invalid from dropped", "kind", st.Local, "type", st.Type(), "id", st.ID(), "to", st.To(), "err", err)
		return
	}
	from := pf.j
	// Errors about the address itself come from the gateway domain: the
	// bad address cannot be a from, and one bad from closes the link.
	pt, err := b.jids.parse(st.To())
	if err != nil {
		if r := stanza.ErrorReply(st, stanza.NewError(stanza.JIDMalformed, "the recipient address is not a valid JID")); r != nil {
			b.reply(ctx, r.SetAttr("from", b.domain))
		}
		return
	}
	to := pt.j
	if to.Domainpart() != b.domain {
		if r := stanza.ErrorReply(st, stanza.NewError(stanza.ItemNotFound, "this gateway only serves "+b.domain)); r != nil {
			b.reply(ctx, r.SetAttr("from", b.domain))
		}
		return
	}
	if !b.admit(ctx, st, from) { // own-domain from, foreign domains, rate limit (ratelimit.go)
		return
	}
	b.observeResource(st, pf, to) // XEP-0144 targets: the user's resources (rosterx.go)
	if b.interceptPrivileged(ctx, st, from, to) {
		return
	}
	switch st.Local {
	case "iq":
		b.handleIQ(ctx, st, from, to)
	case "presence":
		b.handlePresence(ctx, st, from, to)
	case "message":
		b.handleMessage(ctx, st, pf, pt)
	default:
		b.log.Debug("unknown top-level element ignored", "name", st.Local)
	}
}

// reply sends a stanza on the current link, best effort; a nil stanza is
// ignored (ErrorReply returns nil for errors, which are never answered).
func (b *Bridge) reply(ctx context.Context, st *stanza.Element) {
	if st == nil {
		return
	}
	if err := b.link.Send(ctx, st); err != nil {
		b.log.Debug("reply not sent", "err", err, "kind", st.Local)
	}
}

// allowed reports whether a user of domain may register.
func (b *Bridge) allowed(domain string) bool {
	b.accessMu.RLock()
	defer b.accessMu.RUnlock()
	return slices.Contains(b.opts.AllowedDomains, "*") || slices.Contains(b.opts.AllowedDomains, domain)
}

// SetAccess replaces Options.AllowedDomains and Options.Admins of a
// running bridge (configuration reload); they apply from the next check
// on, and no registration is removed. Safe for concurrent use.
func (b *Bridge) SetAccess(allowedDomains, admins []string) {
	b.accessMu.Lock()
	defer b.accessMu.Unlock()
	b.opts.AllowedDomains = slices.Clone(allowedDomains)
	b.opts.Admins = slices.Clone(admins)
}

// contactJID returns the contact JID string for a legacy chat.
func (b *Bridge) contactJID(chat legacy.ChatID) (string, error) {
	return b.jids.contact(chat, b.domain)
}
