package bridges

// XEP-0356 (privileged entity): the grants the server advertises right
// after the handshake, and the message permission used to show messages the
// user sent from the legacy network's own app as sent by the user.
//
// The server sends, once per connection,
//
//	<message from='example.org' to='gw.example.org'>
//	  <privilege xmlns='urn:xmpp:privilege:2'>
//	    <perm access='roster' type='both' push='true'/>
//	    <perm access='message' type='outgoing'/>
//	    <perm access='iq'><namespace ns='…' type='both'/></perm>
//	  </privilege>
//	</message>
//
// (urn:xmpp:privilege:1 on older servers, e.g. ejabberd before 23.10). One
// such message arrives per virtual host that grants something, so grants
// are kept per server domain; they belong to the connection they arrived
// on and are forgotten when it ends (a reconnect re-sends them, possibly
// changed). Privileges only ever apply to users of the server the component
// is attached to, so a user whose domain has no grant gets the unprivileged
// paths.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/jabbergate/jabbergate/component"
	"github.com/jabbergate/jabbergate/component/stanza"
)

const (
	nsPrivilege1 = "urn:xmpp:privilege:1"
	nsPrivilege2 = "urn:xmpp:privilege:2"
	nsForward    = "urn:xmpp:forward:0"
	nsRoster     = "jabber:iq:roster"

	// sentIDPrefix marks the id of a message the gateway reflects through
	// the message permission: the server routes the forwarded message to
	// its recipient, a contact of ours, and it must not be sent to the
	// legacy network a second time.
	sentIDPrefix = "jg-sent-"

	// advertWait bounds how long roster population waits, after a barrier
	// on a fresh connection, for the privilege advertisement to be handled.
	advertWait = time.Second
)

// privGrant is what one server domain granted on one connection.
type privGrant struct {
	ns      string            // nsPrivilege2 or nsPrivilege1
	roster  string            // "none", "get", "set", "both"
	push    bool              // roster pushes requested
	message string            // "none", "outgoing"
	iq      map[string]string // namespace → "get", "set", "both"
	conn    *component.Conn
	// setFails is set (under privState.mu) once the server refused a
	// privileged roster set on this connection: ejabberd 23.01 grants
	// roster access but fails every set (internal-server-error), so later
	// populations go straight to the fallback instead of failing again.
	setFails bool
}

func (g *privGrant) rosterSet() bool { return g != nil && (g.roster == "set" || g.roster == "both") }
func (g *privGrant) rosterGet() bool { return g != nil && (g.roster == "get" || g.roster == "both") }
func (g *privGrant) messageOut() bool {
	return g != nil && g.message == "outgoing"
}

// privState is the per-bridge XEP-0356 and roster-population state. It
// lives outside Bridge (see privOf) so this file stays self-contained.
type privState struct {
	mu      sync.Mutex
	grants  map[string]*privGrant // by server domain
	seen    map[*component.Conn]bool
	changed chan struct{} // closed and replaced on every advertisement
	queues  map[string]*rosterQueue
	// resources: bare JID → full JID → what is known (rosterx.go).
	resources map[string]map[string]*resourceInfo
}

func newPrivState() *privState {
	return &privState{
		grants:  map[string]*privGrant{},
		seen:    map[*component.Conn]bool{},
		changed: make(chan struct{}),
		queues:  map[string]*rosterQueue{},
	}
}

func (b *Bridge) privOf() *privState { return b.priv }

// interceptPrivileged handles, before the normal dispatch, the stanzas of
// XEP-0356 that are not addressed to a user-facing entity: the server's
// privilege advertisement, roster pushes, and the reflection of messages
// the gateway itself sent through the message permission. It reports
// whether st was consumed.
func (b *Bridge) interceptPrivileged(ctx context.Context, st *stanza.Element, from, to jid.JID) bool {
	switch st.Local {
	case "message":
		if from.Localpart() == "" && from.Resourcepart() == "" && to.Localpart() == "" {
			for _, ns := range []string{nsPrivilege2, nsPrivilege1} {
				if p := st.Child(ns, "privilege"); p != nil {
					b.takeAdvertisement(ctx, from.Domainpart(), ns, p)
					return true
				}
			}
		}
		if strings.HasPrefix(st.ID(), sentIDPrefix) && from.Resourcepart() == "" && from.Localpart() != "" && to.Localpart() != "" {
			b.log.Debug("own privileged message routed back; dropped")
			return true
		}
	case "iq":
		// Roster pushes (XEP-0356 §roster, push='true'): acknowledge.
		if st.Type() == "set" && to.Localpart() == "" && from.Resourcepart() == "" && from.Localpart() != "" &&
			st.Child(nsRoster, "query") != nil {
			b.reply(ctx, stanza.Result(st, nil))
			return true
		}
	}
	return false
}

// takeAdvertisement parses and stores a <privilege/> advertisement from
// the server domain dom, replacing the previous grant of that domain.
func (b *Bridge) takeAdvertisement(ctx context.Context, dom, ns string, p *stanza.Element) {
	g := &privGrant{ns: ns, roster: "none", message: "none", iq: map[string]string{}}
	for _, perm := range p.Children() {
		if perm.Local != "perm" || perm.Space != ns {
			continue
		}
		switch perm.Attr("access") {
		case "roster":
			g.roster = perm.Attr("type")
			// XEP-0356: push defaults to false; servers set it explicitly.
			g.push = perm.Attr("push") == "true" || perm.Attr("push") == "1"
		case "message":
			g.message = perm.Attr("type")
		case "iq":
			for ns, typ := range IQGrants(perm) {
				g.iq[ns] = typ
			}
		}
	}
	if c, err := b.link.WaitUp(ctx); err == nil {
		g.conn = c
	}
	ps := b.privOf()
	ps.mu.Lock()
	ps.grants[dom] = g
	if g.conn != nil {
		ps.seen[g.conn] = true
	}
	close(ps.changed)
	ps.changed = make(chan struct{})
	ps.mu.Unlock()
	var iqs []string
	for n, t := range g.iq {
		iqs = append(iqs, n+"="+t)
	}
	b.log.Info("XEP-0356 privileges granted", "server", dom, "namespace", ns,
		"roster", g.roster, "roster_push", g.push, "message", g.message, "iq", strings.Join(iqs, ","))
}

// grant returns the grant of server domain dom valid on conn, or nil.
func (b *Bridge) grant(dom string, conn *component.Conn) *privGrant {
	ps := b.privOf()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	g := ps.grants[dom]
	if g == nil || g.conn == nil || g.conn != conn {
		return nil
	}
	select {
	case <-g.conn.Done():
		return nil
	default:
	}
	return g
}

// setFails reports whether privileged roster sets failed on g's connection.
func (b *Bridge) setFails(g *privGrant) bool {
	ps := b.privOf()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return g != nil && g.setFails
}

// currentGrant is grant on the current connection, without waiting.
func (b *Bridge) currentGrant(dom string) *privGrant {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // WaitUp returns the current connection at once, if any
	c, err := b.link.WaitUp(ctx)
	if err != nil {
		return nil
	}
	return b.grant(dom, c)
}

// awaitGrant returns the grant for dom on conn, first making sure the
// advertisement the server sends right after the handshake has been
// handled: after a barrier (the server has written everything it sent
// before its answer, and the read loop has queued it), it waits at most
// advertWait for the first advertisement on conn. A connection that
// produced none is remembered and not waited for again.
func (b *Bridge) awaitGrant(ctx context.Context, dom string, conn *component.Conn) *privGrant {
	ps := b.privOf()
	ps.mu.Lock()
	seen, known := ps.seen[conn]
	ps.mu.Unlock()
	if !known {
		if err := conn.Barrier(ctx); err == nil {
			t := time.NewTimer(advertWait)
			defer t.Stop()
		wait:
			for {
				ps.mu.Lock()
				seen = ps.seen[conn]
				ch := ps.changed
				ps.mu.Unlock()
				if seen {
					break
				}
				select {
				case <-ch:
				case <-t.C:
					break wait
				case <-ctx.Done():
					return nil
				}
			}
			ps.mu.Lock()
			if !ps.seen[conn] {
				ps.seen[conn] = false
			}
			ps.mu.Unlock()
		}
		// Forget connections that ended, so the map stays small.
		ps.mu.Lock()
		for c := range ps.seen {
			select {
			case <-c.Done():
				delete(ps.seen, c)
			default:
			}
		}
		ps.mu.Unlock()
	}
	return b.grant(dom, conn)
}

// privilegedMessage wraps inner, a message "sent by the user" (from the
// user's bare JID to a contact JID of this gateway), for the XEP-0356
// message permission:
//
//	<message from='gw.example.org' to='example.org' id='…'>
//	  <privilege xmlns='urn:xmpp:privilege:2'>          (or :1)
//	    <forwarded xmlns='urn:xmpp:forward:0'>
//	      <message xmlns='jabber:client' from='juliet@example.org'
//	               to='123@gw.example.org' type='chat' id='jg-sent-…'>…</message>
//	    </forwarded>
//	  </privilege>
//	</message>
//
// The server then handles the inner message as if the user had sent it:
// her other clients get it as a sent carbon and it is archived (ejabberd
// runs user_send_packet; Prosody's mod_privilege routes it directly). The
// inner id gets the sentIDPrefix so that the copy the server routes to the
// contact, i.e. back to us, is recognised and dropped; the outer message
// keeps inner's original id. It returns nil when the user's server granted
// no outgoing message permission on the current connection (or inner is
// not such a message): the caller then uses its unprivileged rendering.
// inner is not modified.
func (b *Bridge) privilegedMessage(inner *stanza.Element) *stanza.Element {
	if inner == nil || inner.Local != "message" {
		return nil
	}
	from, err := jid.Parse(inner.From())
	if err != nil || from.Localpart() == "" || from.Resourcepart() != "" {
		return nil // XEP-0356: the sender must be the bare JID of a local user
	}
	g := b.currentGrant(from.Domainpart())
	if !g.messageOut() {
		return nil
	}
	m := inner.Copy()
	toClientNS(m)
	id := inner.ID()
	if id == "" {
		id = fmt.Sprintf("%016x", rand.Uint64())
	}
	if !strings.HasPrefix(id, sentIDPrefix) {
		m.SetAttr("id", sentIDPrefix+id)
	}
	out := stanza.New(stanza.NSComponent, "message", "from", b.domain, "to", from.Domainpart(), "id", id)
	out.Add(stanza.New(g.ns, "privilege").Add(stanza.New(nsForward, "forwarded").Add(m)))
	return out
}

// toClientNS moves el and the descendants that inherited its stanza
// namespace into jabber:client, as a forwarded stanza must be.
func toClientNS(el *stanza.Element) {
	from := el.Space
	var walk func(e *stanza.Element)
	walk = func(e *stanza.Element) {
		e.Space = stanza.NSClient
		for _, n := range e.Nodes {
			if n.El != nil && n.El.Space == from {
				walk(n.El)
			}
		}
	}
	walk(el)
}

// IQGrants returns the namespaces of an XEP-0356 iq <perm/> with their
// type. <namespace/> elements nested inside one another count too: Prosody's
// mod_privilege (Debian's prosody-modules) writes the second one inside the
// first.
func IQGrants(perm *stanza.Element) map[string]string {
	out := map[string]string{}
	var walk func(e *stanza.Element)
	walk = func(e *stanza.Element) {
		for _, n := range e.Children() {
			if n.Local != "namespace" {
				continue
			}
			if n.Attr("ns") != "" {
				out[n.Attr("ns")] = n.Attr("type")
			}
			walk(n)
		}
	}
	walk(perm)
	return out
}
