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
//     and only then considered taken. A worker per user sends it through
//     the adapter, retrying transient failures with backoff until the
//     network's TTL; a permanent failure comes back to the sender as a
//     stanza error with the original id.
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
package bridges

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
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
	// Media stores inbound files and fetches outbound ones (attachments.go);
	// nil: inbound files become a text note, outbound file URLs are sent
	// as text.
	Media *media.Store
}

// Observer receives the engine's metrics. Methods must not block.
type Observer interface {
	QueueDepth(kind store.QueueKind, delta int)
	Delivered(direction string, ok bool)
	Sessions(delta int)
}

type nopObserver struct{}

func (nopObserver) QueueDepth(store.QueueKind, int) {}
func (nopObserver) Delivered(string, bool)          {}
func (nopObserver) Sessions(int)                    {}

// Bridge is one component domain bound to one legacy network.
type Bridge struct {
	opts    Options
	domain  string
	info    legacy.Info
	st      store.Store
	log     *slog.Logger
	obs     Observer
	link    *component.Link
	shards  []chan *stanza.Element
	ttl     time.Duration
	resolve legacy.Resolver
	caps    bridgeCaps // disco#info answers and XEP-0115 vers, computed once in New (disco.go)

	cmds *cmdState  // ad-hoc command sessions and chat conversations
	priv *privState // XEP-0356 grants and roster population queues

	mu    sync.Mutex
	users map[string]*user // by bare JID
	ctx   context.Context  // the Run context, set when Run starts
	wg    sync.WaitGroup
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

// Info returns the network's description.
func (b *Bridge) Info() legacy.Info { return b.info }

// Run loads the registered users, starts their legacy sessions and queue
// workers, and serves the component link until ctx ends. On the way out it
// tells every user the gateway is unavailable.
func (b *Bridge) Run(ctx context.Context) error {
	accts, err := b.st.ListAccounts(ctx, b.domain)
	if err != nil {
		return fmt.Errorf("bridges: %s: load accounts: %w", b.domain, err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	b.mu.Lock()
	b.ctx = runCtx
	for _, a := range accts {
		u := b.newUser(a)
		b.users[a.JID] = u
	}
	users := b.snapshotUsers()
	b.mu.Unlock()
	for _, u := range users {
		for _, k := range []store.QueueKind{store.Inbox, store.Outbox} {
			if n, err := b.st.Len(ctx, store.Queue{Bridge: b.domain, JID: u.jid, Kind: k}); err == nil && n > 0 {
				b.obs.QueueDepth(k, n)
			}
		}
		b.startUser(u)
	}
	b.log.Info("bridge started", "users", len(users))

	for _, ch := range b.shards {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.serveShard(runCtx, ch)
		}()
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
		gctx, gcancel := context.WithTimeout(linkCtx, 5*time.Second)
		b.goodbye(gctx)
		gcancel()
		stopLink()
		linkErr = <-linkDone
	}
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
	from := st.From()
	if i := strings.IndexByte(from, '/'); i >= 0 {
		from = from[:i]
	}
	h := fnv.New32a()
	h.Write([]byte(from))
	ch := b.shards[int(h.Sum32()%uint32(len(b.shards)))]
	b.mu.Lock()
	ctx := b.ctx
	b.mu.Unlock()
	if ctx == nil {
		return
	}
	select {
	case ch <- st:
	case <-ctx.Done():
	}
}

func (b *Bridge) serveShard(ctx context.Context, ch chan *stanza.Element) {
	for {
		select {
		case <-ctx.Done():
			return
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
	from, err := jid.Parse(st.From())
	if err != nil {
		b.log.Warn("stanza with invalid from dropped", "kind", st.Local, "err", err)
		return
	}
	// Errors about the address itself come from the gateway domain: the
	// bad address cannot be a from, and one bad from closes the link.
	to, err := jid.Parse(st.To())
	if err != nil {
		if r := stanza.ErrorReply(st, stanza.NewError(stanza.JIDMalformed, "the recipient address is not a valid JID")); r != nil {
			b.reply(ctx, r.SetAttr("from", b.domain))
		}
		return
	}
	if to.Domainpart() != b.domain {
		if r := stanza.ErrorReply(st, stanza.NewError(stanza.ItemNotFound, "this gateway only serves "+b.domain)); r != nil {
			b.reply(ctx, r.SetAttr("from", b.domain))
		}
		return
	}
	if b.interceptPrivileged(ctx, st, from, to) {
		return
	}
	switch st.Local {
	case "iq":
		b.handleIQ(ctx, st, from, to)
	case "presence":
		b.handlePresence(ctx, st, from, to)
	case "message":
		b.handleMessage(ctx, st, from, to)
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
	return slices.Contains(b.opts.AllowedDomains, "*") || slices.Contains(b.opts.AllowedDomains, domain)
}

// contactJID returns the contact JID string for a legacy chat.
func (b *Bridge) contactJID(chat legacy.ChatID) (string, error) {
	j, err := jidmap.ContactJID(chat, b.domain)
	if err != nil {
		return "", err
	}
	return j.String(), nil
}
