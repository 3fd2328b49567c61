package bridges

import (
	"context"
	"errors"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/jabbergate/jabbergate/bridges/caps"
	"github.com/jabbergate/jabbergate/bridges/jidmap"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/component"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
)

// Subscription states, as in RFC 6121 roster items, from our side.
const (
	subNone = ""
	subFrom = "from" // the user receives our presence
	subTo   = "to"   // we receive the user's presence
	subBoth = "both"
)

func addSub(s, add string) string {
	if s == subBoth || s == add {
		return s
	}
	if s == subNone {
		return add
	}
	return subBoth
}

func delSub(s, del string) string {
	switch {
	case s == subBoth && del == subFrom:
		return subTo
	case s == subBoth && del == subTo:
		return subFrom
	case s == del:
		return subNone
	}
	return s
}

func hasFrom(s string) bool { return s == subFrom || s == subBoth }

// presence builds a bare presence stanza. Available presences (typ "")
// from the gateway or a contact must carry caps: build them with
// gatewayPresenceStanza, contactPresenceStanza or b.withCaps; subscription
// requests with b.gatewaySubscribe or b.subscribeFrom (they add the nick).
func presence(typ, from, to string) *stanza.Element {
	return stanza.New(stanza.NSComponent, "presence", "type", typ, "from", from, "to", to)
}

// withCaps adds the XEP-0115 <c/> of the sender (the gateway domain, or a
// contact) to p when p is an available presence without one; it returns
// p. Every available presence the bridge sends goes through it.
func (b *Bridge) withCaps(p *stanza.Element) *stanza.Element {
	if p == nil || p.Local != "presence" || p.Type() != "" || p.Child(caps.NS, "c") != nil {
		return p
	}
	from := p.From()
	switch {
	case from == b.domain:
		p.Add(b.caps.gateway.capsElement())
	case strings.HasSuffix(from, "@"+b.domain) || strings.Contains(from, "@"+b.domain+"/"):
		p.Add(b.caps.contact.capsElement())
	}
	return p
}

// subscribeFrom is a subscription request from a contact (or the gateway)
// to the user, with the XEP-0172 nick when one is known.
func subscribeFrom(from, to, nick string) *stanza.Element {
	p := presence("subscribe", from, to)
	if nick != "" {
		p.Add(stanza.New(nsNick, "nick").AddText(nick))
	}
	return p
}

// askGateway is the gateway's subscription request to a user who has just
// registered (XEP-0100 §4.1.1), or nil when the user's server grants
// privileged roster sets: roster population then writes the gateway's
// item with subscription 'both' and asks only if the server did not store
// that — a request sent anyway would stay pending next to a 'both' item,
// and Prosody shows pending requests again at every login.
func (b *Bridge) askGateway(bare string) *stanza.Element {
	if u := b.getUser(bare); u != nil {
		if j, err := jid.Parse(bare); err == nil {
			if g := b.currentGrant(j.Domainpart()); g.rosterSet() && !b.setFails(g) {
				u.gatewayAsk.Store(true)
				return nil
			}
		}
	}
	return b.gatewaySubscribe(bare)
}

// gatewaySubscribe is the gateway's subscription request to the user
// (XEP-0100 §4.1.1), named with the gateway's display name.
func (b *Bridge) gatewaySubscribe(bare string) *stanza.Element {
	return subscribeFrom(b.domain, bare, b.caps.gateway.info.Identities[0].Name)
}

// handlePresence plays the contacts' server (RFC 6121 §3, §4.3) and the
// gateway's own subscription (XEP-0100).
func (b *Bridge) handlePresence(ctx context.Context, st *stanza.Element, from, to jid.JID) {
	bare := from.Bare().String()
	typ := st.Type()
	switch typ {
	case "", "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe":
	case "error":
		return // nothing to answer (RFC 6120 §8.3.1)
	default:
		// RFC 6121 §4.7.1: no other type exists.
		b.log.Info("presence of an invalid type refused", "type", typ, "user", jidmap.OwnerKey(b.domain, bare))
		b.reply(ctx, stanza.ErrorReply(st, stanza.NewError(stanza.BadRequest, "a presence's type must be one of those of RFC 6121 §4.7.1")))
		return
	}
	u := b.getUser(bare)
	if u != nil && from.Resourcepart() != "" && (typ == "" || typ == "unavailable") {
		b.userPresence(u, from.String(), typ == "")
	}
	if to.Localpart() == "" {
		b.gatewayPresence(ctx, u, typ, bare)
		return
	}
	switch typ {
	case "subscribe":
		if u == nil {
			b.reply(ctx, presence("unsubscribed", to.Bare().String(), bare))
			return
		}
		// An address the network refuses (or spells otherwise) is not
		// approved: the contact could never be written to.
		if _, err := b.validChat(ctx, u, to.Localpart()); err != nil {
			b.reply(ctx, stanza.ErrorReply(st, b.contactAddressError(to.Localpart(), err)))
			b.reply(ctx, presence("unsubscribed", to.Bare().String(), bare))
			return
		}
		b.updateContactSub(ctx, u, to.Localpart(), func(s string) string { return addSub(s, subFrom) })
		b.reply(ctx, presence("subscribed", to.Bare().String(), bare))
		b.sendContactPresence(ctx, u, b.chatFor(ctx, u, to.Localpart()), nil)
	case "unsubscribe":
		if u != nil {
			b.updateContactSub(ctx, u, to.Localpart(), func(s string) string { return delSub(s, subFrom) })
		}
		b.reply(ctx, presence("unavailable", to.Bare().String(), bare))
	case "subscribed":
		if u != nil {
			b.updateContactSub(ctx, u, to.Localpart(), func(s string) string { return addSub(s, subTo) })
		}
	case "unsubscribed":
		if u != nil {
			b.updateContactSub(ctx, u, to.Localpart(), func(s string) string { return delSub(s, subTo) })
		}
	case "probe":
		if u == nil {
			b.reply(ctx, presence("unavailable", to.Bare().String(), bare))
			return
		}
		c, err := b.st.GetContact(ctx, b.domain, u.jid, to.Localpart())
		if err != nil || !hasFrom(c.Subscription) {
			b.reply(ctx, presence("unavailable", to.Bare().String(), bare))
			return
		}
		b.sendContactPresence(ctx, u, legacy.ChatID(c.LegacyID), c)
	case "", "unavailable", "error":
		// The user's own availability: legacy sessions stay connected
		// regardless (see the package doc); sessions that care were told
		// above.
	}
}

// subscriptionWriteTimeout bounds a subscription-state write. The write
// is detached from the stanza's context: the server has already applied
// the subscription change it reports, so a bridge stopping (SIGTERM, a
// reload) must not lose it — a contact recorded without "from" would
// answer every later probe with unavailable.
const subscriptionWriteTimeout = 5 * time.Second

func (b *Bridge) updateContactSub(ctx context.Context, u *user, localpart string, f func(string) string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), subscriptionWriteTimeout)
	defer cancel()
	c, err := b.st.GetContact(ctx, b.domain, u.jid, localpart)
	if errors.Is(err, store.ErrNotFound) {
		c = &store.Contact{Localpart: localpart, LegacyID: string(b.chatFor(ctx, u, localpart))}
	} else if err != nil {
		b.log.Warn("read contact", "user", u.owner, "err", err)
		return
	}
	next := f(c.Subscription)
	if next == c.Subscription && err == nil {
		return
	}
	if err == nil && c.Subscription != "" && next == "" {
		// No subscription left either way: the user removed the
		// contact from her roster (the server sends unsubscribe and
		// unsubscribed), so it leaves the gateway's contacts too
		// (XEP-0100: a contact removed from the roster is removed from
		// the legacy contact list). It comes back if the contact writes.
		if err := b.st.DeleteContact(ctx, b.domain, u.jid, localpart); err != nil {
			b.log.Warn("delete contact", "user", u.owner, "err", err)
		}
		return
	}
	c.Subscription = next
	if err := b.st.PutContact(ctx, b.domain, u.jid, c); err != nil {
		b.log.Warn("store contact", "user", u.owner, "err", err)
	}
}

// gatewayPresence handles presence addressed to the gateway domain.
func (b *Bridge) gatewayPresence(ctx context.Context, u *user, typ, bare string) {
	switch typ {
	case "subscribe":
		if u == nil {
			b.reply(ctx, presence("unsubscribed", b.domain, bare))
			return
		}
		b.updateAccountSub(ctx, u, func(s string) string { return addSub(s, subFrom) })
		b.reply(ctx, presence("subscribed", b.domain, bare))
		b.sendGatewayPresence(ctx, u)
	case "unsubscribe":
		if u != nil {
			b.updateAccountSub(ctx, u, func(s string) string { return delSub(s, subFrom) })
		}
		b.reply(ctx, presence("unavailable", b.domain, bare))
	case "subscribed":
		if u != nil {
			b.updateAccountSub(ctx, u, func(s string) string { return addSub(s, subTo) })
		}
	case "unsubscribed":
		if u != nil {
			b.updateAccountSub(ctx, u, func(s string) string { return delSub(s, subTo) })
		}
	case "probe":
		if u == nil {
			b.reply(ctx, presence("unavailable", b.domain, bare))
			return
		}
		b.sendGatewayPresence(ctx, u)
	}
}

func (b *Bridge) updateAccountSub(ctx context.Context, u *user, f func(string) string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), subscriptionWriteTimeout) // see updateContactSub
	defer cancel()
	u.mu.Lock()
	a := *u.acct
	u.mu.Unlock()
	next := f(a.Subscription)
	if next == a.Subscription {
		return
	}
	a.Subscription = next
	if err := b.st.PutAccount(ctx, &a); err != nil {
		b.log.Warn("store account subscription", "user", u.owner, "err", err)
		return
	}
	u.mu.Lock()
	u.acct = &a
	u.mu.Unlock()
}

// gatewayPresenceStanza is the gateway's presence for u: available with the
// session state as status, or away when the session is down.
func (b *Bridge) gatewayPresenceStanza(u *user) *stanza.Element {
	u.mu.Lock()
	status, text := u.status, u.lastErr
	u.mu.Unlock()
	p := presence("", b.domain, u.jid)
	switch status {
	case legacy.StatusConnected:
		if text != "" {
			p.TextChild(stanza.NSComponent, "status", text)
		}
	case legacy.StatusUnauthorized:
		p.TextChild(stanza.NSComponent, "show", "xa")
		p.TextChild(stanza.NSComponent, "status", "Login failed: "+text)
	case legacy.StatusConnecting:
		p.TextChild(stanza.NSComponent, "show", "away")
		p.TextChild(stanza.NSComponent, "status", "Connecting to "+b.info.DisplayName+"…")
	default:
		p.TextChild(stanza.NSComponent, "show", "away")
		p.TextChild(stanza.NSComponent, "status", "Disconnected from "+b.info.DisplayName+": "+text)
	}
	return b.withCaps(p)
}

func (b *Bridge) sendGatewayPresence(ctx context.Context, u *user) {
	b.reply(ctx, b.gatewayPresenceStanza(u))
}

// contactPresenceStanza is a contact's presence: what the adapter reported
// (since this process started, or else the unavailability the contact
// record keeps: stored, or read when nil), or available when the network
// has no presence concept.
func (b *Bridge) contactPresenceStanza(ctx context.Context, u *user, chat legacy.ChatID, stored *store.Contact) *stanza.Element {
	from, err := b.contactJID(chat)
	if err != nil {
		return nil
	}
	u.mu.Lock()
	p, known := u.presence[chat]
	u.mu.Unlock()
	if b.info.Caps.Presence && !known {
		if stored == nil {
			if lp, err := jidmap.Localpart(chat, b.domain); err == nil {
				stored, _ = b.st.GetContact(ctx, b.domain, u.jid, lp)
			}
		}
		if stored != nil && stored.Unavailable {
			p, known = legacy.Presence{Chat: chat, Status: stored.UnavailableStatus}, true
		}
	}
	if !b.info.Caps.Presence || !known {
		return b.withCaps(b.withIdentity(u, chat, presence("", from, u.jid)))
	}
	if !p.Available {
		st := presence("unavailable", from, u.jid)
		if p.Status != "" { // "blocked your bot", "left the network": worth reading
			st.TextChild(stanza.NSComponent, "status", p.Status)
		}
		return st
	}
	st := presence("", from, u.jid)
	if p.Away {
		st.TextChild(stanza.NSComponent, "show", "away")
	}
	if p.Status != "" {
		st.TextChild(stanza.NSComponent, "status", p.Status)
	}
	return b.withCaps(b.withIdentity(u, chat, st))
}

func (b *Bridge) sendContactPresence(ctx context.Context, u *user, chat legacy.ChatID, stored *store.Contact) {
	b.reply(ctx, b.contactPresenceStanza(ctx, u, chat, stored))
}

// linkUp runs after every handshake: it announces the gateway and the
// contacts the users subscribed to (nothing is replayed by servers on a
// component link), wakes every inbox drainer, and when the connection ends
// because we are shutting down, says goodbye.
func (b *Bridge) linkUp(ctx context.Context, c *component.Conn) {
	if b.cl != nil {
		kick(b.cl.linkUp) // accounts are taken while the link works (cluster.go)
	}
	b.mu.Lock()
	users := b.snapshotUsers()
	b.mu.Unlock()
	for _, u := range users {
		// A warm tail is complete in memory when this process is the
		// store's only writer: every append it made since the tail got
		// warm is in it. Its drainer is woken; the others read the store.
		if b.cl != nil || !u.inq.wakeWarm() {
			kick(u.kickIn)
		}
		u.mu.Lock()
		sub := u.acct.Subscription
		u.mu.Unlock()
		if hasFrom(sub) {
			_ = c.Send(ctx, b.gatewayPresenceStanza(u))
		}
		if sub == subTo || sub == subBoth {
			// Learn which of the user's resources are online (nothing is
			// replayed to a component after a reconnect).
			_ = c.Send(ctx, presence("probe", b.domain, u.jid))
		}
		contacts, err := b.st.ListContacts(ctx, b.domain, u.jid)
		if err != nil {
			if ctx.Err() == nil { // not the link going down meanwhile
				b.log.Warn("list contacts", "user", u.owner, "err", err)
			}
			continue
		}
		for _, ct := range contacts {
			if hasFrom(ct.Subscription) {
				if p := b.contactPresenceStanza(ctx, u, legacy.ChatID(ct.LegacyID), ct); p != nil {
					_ = c.Send(ctx, p)
				}
			}
		}
	}
}

// goodbye tells every subscribed user that the gateway and its contacts
// are going away, and waits (bounded by ctx) until the server has them.
func (b *Bridge) goodbye(ctx context.Context) {
	if !b.link.Up() {
		return
	}
	conn, err := b.link.WaitUp(ctx)
	if err != nil {
		return
	}
	b.mu.Lock()
	users := b.snapshotUsers()
	b.mu.Unlock()
	for _, u := range users {
		u.mu.Lock()
		sub := u.acct.Subscription
		u.mu.Unlock()
		if hasFrom(sub) {
			p := presence("unavailable", b.domain, u.jid)
			p.TextChild(stanza.NSComponent, "status", "Gateway shutting down")
			_ = conn.Send(ctx, p)
		}
		contacts, err := b.st.ListContacts(ctx, b.domain, u.jid)
		if err != nil {
			continue
		}
		for _, ct := range contacts {
			if from, err := b.contactJID(legacy.ChatID(ct.LegacyID)); err == nil && hasFrom(ct.Subscription) {
				_ = conn.Send(ctx, presence("unavailable", from, u.jid))
			}
		}
	}
	_ = conn.Barrier(ctx)
}
