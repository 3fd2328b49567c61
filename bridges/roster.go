package bridges

// Roster population: putting the gateway and the user's legacy contacts
// into the user's XMPP roster, best available method first, chosen per user
// from what the user's server granted on the current connection:
//
//  1. XEP-0356 privileged roster set (urn:xmpp:privilege:2, or :1): one
//     jabber:iq:roster set per item, to the user's bare JID, with
//     subscription='both'. Prosody's mod_privilege stores that
//     subscription; ejabberd handles the set like the user's own roster set
//     and keeps the stored subscription (a new item is 'none'). So when the
//     grant allows it, the roster is read back and each item's real
//     subscription decides the rest: 'both' needs nothing more (the store
//     is updated and the contact's presence sent); otherwise the contact
//     still sends a subscribe with a nick, as in 3.
//  2. XEP-0144 roster item exchange (rosterx.go), when one of the user's
//     resources known to the gateway advertises
//     http://jabber.org/protocol/rosterx: one suggestion message to that
//     resource; the client asks the user, adds the items and subscribes.
//  3. A subscribe presence from each contact with an XEP-0172 nick: the
//     user's client asks her, and approving it puts the contact in her
//     roster.
//
// The gateway's own item is written only with privileges: without them the
// registration flow already sends the gateway's subscribe (XEP-0100). With
// them the registration leaves that request to population (askGateway),
// which sends it when the privileged write did not end in a subscription
// carrying the user's presence, or when it falls back to another method.
//
// Population runs after every registration (the gateway and the contacts
// already known) and for every legacy.Contact event, in a goroutine per user
// that takes whatever has accumulated, at most rosterBatch items at a time.
// Users are logged by their owner key, never by JID.

import (
	"context"
	"errors"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/component"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
)

// rosterBatch is the most items handled in one go (XEP-0144 treats larger
// sets with suspicion; servers and clients deserve the same care for the
// other methods).
const rosterBatch = 150

// mapAsked records, per contact localpart, that the contact already asked
// the user with a subscribe: the request is not repeated at every session
// start while the user has not answered it.
const (
	mapAsked = "roster-asked"
	askedTTL = 30 * 24 * time.Hour
)

// Population methods, as logged.
const (
	methodPrivileged = "xep0356"
	methodSubscribe  = "subscribe"
)

// rosterItem is one roster entry to write.
type rosterItem struct {
	jid     string // bare JID
	name    string
	local   string // contact localpart; "" for the gateway
	chat    legacy.ChatID
	gateway bool
	remove  bool
}

// rosterQueue accumulates the items of one user between flushes.
type rosterQueue struct {
	pending map[string]rosterItem
	order   []string
	known   bool // also add the gateway and every stored contact
	running bool
}

// populateRoster puts the gateway and the user's known contacts into the
// user's roster (asynchronously). It is called after a registration.
func (b *Bridge) populateRoster(u *user) {
	b.enqueueRoster(u, true)
}

// rosterContact adds (or removes) the contact of a legacy.Contact event,
// whose JID localpart is lp, to the user's roster (asynchronously).
func (b *Bridge) rosterContact(u *user, lp string, ev legacy.Contact) {
	// Adapters report their whole list at every session start: only new
	// contacts, renamed ones and removals touch the roster, so a restart
	// does not overwrite what the user chose (names, groups).
	b.mu.Lock()
	ctx := b.ctx
	b.mu.Unlock()
	if ctx == nil {
		return
	}
	c, err := b.st.GetContact(ctx, b.domain, u.jid, lp)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if ev.Removed {
			return
		}
	case err != nil:
		b.log.Warn("read contact", "user", u.owner, "err", err)
		return
	case !ev.Removed && c.Name == ev.Name && c.Subscription != subNone:
		return
	}
	b.enqueueRoster(u, false, rosterItem{jid: lp + "@" + b.domain, name: ev.Name, local: lp, chat: ev.Chat, remove: ev.Removed})
}

func (b *Bridge) enqueueRoster(u *user, known bool, items ...rosterItem) {
	b.mu.Lock()
	ctx := b.ctx
	b.mu.Unlock()
	if ctx == nil || ctx.Err() != nil {
		return
	}
	ps := b.privOf()
	ps.mu.Lock()
	q := ps.queues[u.jid]
	if q == nil {
		q = &rosterQueue{pending: map[string]rosterItem{}}
		ps.queues[u.jid] = q
	}
	for _, it := range items {
		if _, ok := q.pending[it.jid]; !ok {
			q.order = append(q.order, it.jid)
		}
		q.pending[it.jid] = it
	}
	q.known = q.known || known
	start := !q.running
	q.running = true
	ps.mu.Unlock()
	if start {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.runRosterQueue(ctx, u.jid, q)
		}()
	}
}

// runRosterQueue flushes q until it is empty.
func (b *Bridge) runRosterQueue(ctx context.Context, bare string, q *rosterQueue) {
	ps := b.privOf()
	for {
		ps.mu.Lock()
		if ctx.Err() != nil || (len(q.order) == 0 && !q.known) {
			q.running = false
			if ps.queues[bare] == q {
				delete(ps.queues, bare)
			}
			ps.mu.Unlock()
			return
		}
		items := make([]rosterItem, 0, len(q.order))
		for _, j := range q.order {
			items = append(items, q.pending[j])
		}
		known := q.known
		q.order, q.pending, q.known = nil, map[string]rosterItem{}, false
		ps.mu.Unlock()

		u := b.getUser(bare)
		if u == nil {
			continue // unregistered meanwhile
		}
		if known {
			items = b.withKnown(ctx, u, items)
		}
		for tries := 0; len(items) > 0 && ctx.Err() == nil; {
			n := min(len(items), rosterBatch)
			if err := b.populate(ctx, u, items[:n]); err != nil {
				if ctx.Err() != nil {
					break
				}
				// A link that dropped mid-batch: the batch is redone on the
				// next connection (every step is idempotent), a few times.
				if tries++; errors.Is(err, component.ErrConnClosed) && tries < 3 {
					continue
				}
				b.log.Warn("roster population interrupted", "user", u.owner, "err", err)
				break
			}
			tries = 0
			items = items[n:]
		}
	}
}

// withKnown adds the gateway and the stored contacts to items.
func (b *Bridge) withKnown(ctx context.Context, u *user, items []rosterItem) []rosterItem {
	have := map[string]bool{}
	for _, it := range items {
		have[it.jid] = true
	}
	out := []rosterItem{}
	if !have[b.domain] {
		out = append(out, rosterItem{jid: b.domain, name: b.info.DisplayName, gateway: true})
	}
	contacts, err := b.st.ListContacts(ctx, b.domain, u.jid)
	if err != nil {
		b.log.Warn("list contacts for the roster", "user", u.owner, "err", err)
	}
	for _, c := range contacts {
		j := c.Localpart + "@" + b.domain
		if !have[j] { // groups too: they are group contacts (named by their title) until they are rooms
			out = append(out, rosterItem{jid: j, name: c.Name, local: c.Localpart, chat: legacy.ChatID(c.LegacyID)})
		}
	}
	return append(out, items...)
}

// populate writes one batch with the best method available for u.
func (b *Bridge) populate(ctx context.Context, u *user, items []rosterItem) error {
	conn, err := b.link.WaitUp(ctx)
	if err != nil {
		return err
	}
	userJID, err := jid.Parse(u.jid)
	if err != nil {
		return err
	}
	g := b.awaitGrant(ctx, userJID.Domainpart(), conn)
	ps := b.privOf()
	ps.mu.Lock()
	refused := g != nil && g.setFails
	ps.mu.Unlock()
	if g.rosterSet() && !refused {
		err := b.privilegedRoster(ctx, conn, g, u, items)
		if err == nil {
			return nil
		}
		if errors.Is(err, component.ErrConnClosed) || ctx.Err() != nil {
			return err
		}
		ps.mu.Lock()
		g.setFails = true
		ps.mu.Unlock()
		b.log.Warn("privileged roster set refused; falling back to subscription requests for this connection", "user", u.owner, "namespace", g.ns, "err", err)
	}
	if full := b.rosterxResource(ctx, conn, u); full != "" {
		if u.gatewayAsk.Swap(false) { // the exchange leaves the gateway's item alone
			if err := conn.Send(ctx, b.gatewaySubscribe(u.jid)); err != nil {
				u.gatewayAsk.Store(true)
				return err
			}
		}
		return b.rosterExchange(ctx, conn, u, full, items)
	}
	return b.subscribeRoster(ctx, conn, u, items, g)
}

// rosterIQ is a jabber:iq:roster IQ from the gateway to the user's bare JID.
func (b *Bridge) rosterIQ(u *user, typ string, item *stanza.Element) *stanza.Element {
	q := stanza.New(nsRoster, "query")
	if item != nil {
		q.Add(item)
	}
	return stanza.New(stanza.NSComponent, "iq", "type", typ, "from", b.domain, "to", u.jid).Add(q)
}

// rosterItemElement is the <item/> of a privileged roster set.
func (b *Bridge) rosterItemElement(it rosterItem) *stanza.Element {
	item := stanza.New(nsRoster, "item", "jid", it.jid)
	if it.remove {
		return item.SetAttr("subscription", "remove")
	}
	if it.name != "" {
		item.SetAttr("name", it.name)
	}
	item.SetAttr("subscription", "both")
	if g := b.info.DisplayName; g != "" {
		item.TextChild(nsRoster, "group", g)
	}
	return item
}

// privilegedRoster writes items with XEP-0356 roster sets, one item per
// IQ (RFC 6121 §2.3.2 allows one item per set and ejabberd enforces it),
// then reads the roster back when allowed and finishes each item according
// to the subscription the server really stored.
func (b *Bridge) privilegedRoster(ctx context.Context, conn *component.Conn, g *privGrant, u *user, items []rosterItem) error {
	for i, it := range items {
		if _, err := conn.Request(ctx, b.rosterIQ(u, "set", b.rosterItemElement(it))); err != nil {
			if i == 0 {
				return err // nothing written: the caller falls back
			}
			// Partly written: the rest go the unprivileged way.
			b.log.Warn("privileged roster set failed midway", "user", u.owner, "err", err)
			if errors.Is(err, component.ErrConnClosed) || ctx.Err() != nil {
				return err
			}
			return b.subscribeRoster(ctx, conn, u, items[i:], g)
		}
	}
	stored := map[string]string{} // jid → subscription in the user's roster
	verified := false
	if g.rosterGet() {
		r, err := conn.Request(ctx, b.rosterIQ(u, "get", nil))
		if err == nil {
			verified = true
			if q := r.Child(nsRoster, "query"); q != nil {
				for _, item := range q.Children() {
					if item.Local == "item" && (item.Attr("jid") == b.domain || strings.HasSuffix(item.Attr("jid"), "@"+b.domain)) {
						sub := item.Attr("subscription")
						if sub == "" {
							sub = "none"
						}
						stored[item.Attr("jid")] = sub
					}
				}
			}
		} else {
			b.log.Debug("privileged roster get failed", "user", u.owner, "err", err)
		}
	}
	var subscribe []rosterItem
	states := map[string]int{}
	for _, it := range items {
		if it.remove {
			continue
		}
		sub, ok := stored[it.jid]
		if !verified {
			// Unknown result: ask anyway; a server that stored 'both'
			// answers the request itself.
			subscribe = append(subscribe, it)
			states["unverified"]++
			continue
		}
		if !ok {
			sub = "none"
		}
		states[sub]++
		b.setRosterSub(ctx, u, it, storeSub(sub))
		if it.gateway && (sub == "both" || sub == "from") {
			u.gatewayAsk.Store(false) // the server stored it: nothing to ask
		}
		if sub == "both" || sub == "to" {
			// The user now expects the item's presence.
			if it.gateway {
				_ = conn.Send(ctx, b.gatewayPresenceStanza(u))
			} else if p := b.contactPresenceStanza(ctx, u, b.itemChat(ctx, u, it), nil); p != nil {
				_ = conn.Send(ctx, p)
			}
		}
		if sub != "both" && sub != "from" {
			subscribe = append(subscribe, it)
		}
	}
	b.log.Info("roster population", "user", u.owner, "method", methodPrivileged, "namespace", g.ns,
		"items", len(items), "stored", states)
	return b.sendSubscribes(ctx, conn, u, subscribe)
}

// storeSub maps a roster subscription (the user's view) to the store's
// (the contact's view).
func storeSub(rosterSub string) string {
	switch rosterSub {
	case "both":
		return subBoth
	case "to":
		return subFrom
	case "from":
		return subTo
	}
	return subNone
}

func (b *Bridge) itemChat(ctx context.Context, u *user, it rosterItem) legacy.ChatID {
	if it.chat != "" {
		return it.chat
	}
	return b.chatFor(ctx, u, it.local)
}

// setRosterSub records the subscription the user's server stored.
func (b *Bridge) setRosterSub(ctx context.Context, u *user, it rosterItem, sub string) {
	if it.gateway {
		b.updateAccountSub(ctx, u, func(string) string { return sub })
		return
	}
	c, err := b.st.GetContact(ctx, b.domain, u.jid, it.local)
	if errors.Is(err, store.ErrNotFound) {
		c = &store.Contact{Localpart: it.local, LegacyID: string(b.itemChat(ctx, u, it)), Name: it.name}
	} else if err != nil {
		b.log.Warn("read contact", "user", u.owner, "err", err)
		return
	} else if c.Subscription == sub {
		return
	}
	c.Subscription = sub
	if err := b.st.PutContact(ctx, b.domain, u.jid, c); err != nil {
		b.log.Warn("store contact", "user", u.owner, "err", err)
	}
}

// subscribeRoster is the unprivileged way: a subscribe with a nick from
// each contact that is not in the user's roster yet, and the RFC 6121 §3.3
// goodbye for removed ones. g is only logged.
func (b *Bridge) subscribeRoster(ctx context.Context, conn *component.Conn, u *user, items []rosterItem, g *privGrant) error {
	var subscribe []rosterItem
	removed := 0
	for _, it := range items {
		switch {
		case it.gateway:
			// The registration flow sent the gateway's subscribe, unless
			// it left it to population (sendSubscribes).
			subscribe = append(subscribe, it)
		case it.remove:
			removed++
			for _, t := range []string{"unsubscribe", "unsubscribed", "unavailable"} {
				if err := conn.Send(ctx, presence(t, it.jid, u.jid)); err != nil {
					return err
				}
			}
		default:
			if c, err := b.st.GetContact(ctx, b.domain, u.jid, it.local); err == nil && c.Subscription != subNone {
				continue // already in the roster
			}
			subscribe = append(subscribe, it)
		}
	}
	why := "no roster privilege"
	if g.rosterSet() {
		why = "privileged set refused"
	}
	b.log.Info("roster population", "user", u.owner, "method", methodSubscribe, "reason", why,
		"items", len(items), "subscribe", len(subscribe), "removed", removed)
	return b.sendSubscribes(ctx, conn, u, subscribe)
}

// sendSubscribes sends a subscribe with an XEP-0172 nick from each item,
// then waits until the server has them.
func (b *Bridge) sendSubscribes(ctx context.Context, conn *component.Conn, u *user, items []rosterItem) error {
	sent := items[:0:0]
	for _, it := range items {
		if it.gateway {
			// Only when the registration left it to population.
			if u.gatewayAsk.Swap(false) {
				if err := conn.Send(ctx, b.gatewaySubscribe(u.jid)); err != nil {
					u.gatewayAsk.Store(true)
					return err
				}
			}
			continue
		}
		if _, err := b.st.GetMapping(ctx, b.domain, u.jid, mapAsked, it.local); err == nil {
			continue // asked before; the user has not answered yet
		}
		sent = append(sent, it)
		p := presence("subscribe", it.jid, u.jid)
		if it.name != "" {
			p.TextChild(nsNick, "nick", it.name)
		}
		if err := conn.Send(ctx, p); err != nil {
			return err
		}
	}
	if len(sent) == 0 {
		return nil
	}
	b.recordAsked(ctx, u, sent)
	return conn.Barrier(ctx)
}

// recordAsked notes that items were asked (or suggested), once the
// stanzas are queued on the link, even if ctx ends meanwhile.
func (b *Bridge) recordAsked(ctx context.Context, u *user, items []rosterItem) {
	sctx := context.WithoutCancel(ctx)
	n := 0
	for _, it := range items {
		if it.local == "" {
			continue
		}
		if err := b.st.PutMapping(sctx, b.domain, u.jid, mapAsked, it.local, "1", askedTTL); err != nil {
			b.log.Warn("store roster request", "user", u.owner, "err", err)
			continue
		}
		n++
	}
	b.log.Debug("roster requests recorded", "user", u.owner, "n", n)
}
