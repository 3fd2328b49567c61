package bridges

// XEP-0144 roster item exchange: the second level of roster population,
// used when the user's server grants no roster privilege and one of the
// user's online resources advertises http://jabber.org/protocol/rosterx.
//
// The gateway learns the user's resources from what they send it: the
// full JID that registered, and available presence (with XEP-0115 caps)
// that reaches the gateway or a contact. Whether a resource supports
// rosterx is asked once per resource (and again when its caps change) with
// a disco#info query, node#ver when the presence carried caps.

import (
	"context"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/jabbergate/jabbergate/component"
	"github.com/jabbergate/jabbergate/component/stanza"
)

const (
	nsRosterX = "http://jabber.org/protocol/rosterx"
	nsCaps    = "http://jabber.org/protocol/caps"

	methodRosterX = "xep0144"

	// discoTimeout bounds the disco#info query to one resource.
	discoTimeout = 3 * time.Second
	// maxTrackedUsers and maxResources bound the resource table.
	maxTrackedUsers = 100000
	maxResources    = 16
)

// resourceInfo is what the gateway knows about one resource of a user.
type resourceInfo struct {
	node    string // caps node#ver, "" when unknown
	checked bool   // disco#info answered (or failed)
	rosterx bool
}

// observeResource records the user's resources from stanzas that pass
// through dispatch; it never consumes them.
func (b *Bridge) observeResource(st *stanza.Element, from *parsedJID, to jid.JID) {
	if from.j.Resourcepart() == "" || from.j.Localpart() == "" {
		return
	}
	bare, full := from.bare, from.full
	switch st.Local {
	case "presence":
		switch st.Type() {
		case "":
			node := ""
			if c := st.Child(nsCaps, "c"); c != nil && c.Attr("node") != "" && c.Attr("ver") != "" {
				node = c.Attr("node") + "#" + c.Attr("ver")
			}
			b.setResource(bare, full, node, true)
		case "unavailable":
			ps := b.privOf()
			ps.mu.Lock()
			if rs := ps.resources[bare]; rs != nil {
				delete(rs, full)
				if len(rs) == 0 {
					delete(ps.resources, bare)
				}
			}
			ps.mu.Unlock()
		}
	case "iq":
		if to.Localpart() == "" && st.Child(nsRegister, "query") != nil && st.Type() == "set" {
			b.setResource(bare, full, "", false)
		}
	}
}

// setResource records a resource; with replace, a changed caps node makes
// the resource be asked again.
func (b *Bridge) setResource(bare, full, node string, replace bool) {
	ps := b.privOf()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.resources == nil {
		ps.resources = map[string]map[string]*resourceInfo{}
	}
	rs := ps.resources[bare]
	if rs == nil {
		if len(ps.resources) >= maxTrackedUsers {
			return
		}
		rs = map[string]*resourceInfo{}
		ps.resources[bare] = rs
	}
	old := rs[full]
	if old != nil && (!replace || old.node == node) {
		return
	}
	if old == nil && len(rs) >= maxResources {
		return
	}
	rs[full] = &resourceInfo{node: node}
}

// rosterxResource returns a full JID of u that supports roster item
// exchange, asking the resources not asked yet, or "".
func (b *Bridge) rosterxResource(ctx context.Context, conn *component.Conn, u *user) string {
	ps := b.privOf()
	type ask struct {
		full string
		info resourceInfo
	}
	var todo []ask
	ps.mu.Lock()
	for full, ri := range ps.resources[u.jid] {
		if ri.checked && ri.rosterx {
			ps.mu.Unlock()
			return full
		}
		if !ri.checked {
			todo = append(todo, ask{full, *ri})
		}
	}
	ps.mu.Unlock()
	found := ""
	for _, a := range todo {
		q := stanza.New(nsDiscoInfo, "query")
		if a.info.node != "" {
			q.SetAttr("node", a.info.node)
		}
		iq := stanza.New(stanza.NSComponent, "iq", "type", "get", "from", b.domain, "to", a.full).Add(q)
		rctx, cancel := context.WithTimeout(ctx, discoTimeout)
		r, err := conn.Request(rctx, iq)
		cancel()
		if ctx.Err() != nil {
			return ""
		}
		yes := false
		if err == nil {
			if rq := r.Child(nsDiscoInfo, "query"); rq != nil {
				for _, f := range rq.Children() {
					if f.Local == "feature" && f.Attr("var") == nsRosterX {
						yes = true
					}
				}
			}
		}
		ps.mu.Lock()
		if ri := ps.resources[u.jid][a.full]; ri != nil && ri.node == a.info.node {
			ri.checked, ri.rosterx = true, yes
		}
		ps.mu.Unlock()
		if yes && found == "" {
			found = a.full
		}
	}
	return found
}

// rosterExchange suggests items to the resource full (XEP-0144): adds and
// deletes in separate messages, never mixed; the gateway's own item is left
// to the registration flow. It reports whether it sent anything.
func (b *Bridge) rosterExchange(ctx context.Context, conn *component.Conn, u *user, full string, items []rosterItem) error {
	adds := stanza.New(nsRosterX, "x")
	dels := stanza.New(nsRosterX, "x")
	var added []rosterItem
	nAdd, nDel := 0, 0
	for _, it := range items {
		switch {
		case it.gateway:
		case it.remove:
			dels.Add(stanza.New(nsRosterX, "item", "action", "delete", "jid", it.jid))
			nDel++
		default:
			if c, err := b.st.GetContact(ctx, b.domain, u.jid, it.local); err == nil && c.Subscription != subNone {
				continue // already in the roster
			}
			if _, err := b.st.GetMapping(ctx, b.domain, u.jid, mapAsked, it.local); err == nil {
				continue // suggested or asked before
			}
			item := stanza.New(nsRosterX, "item", "action", "add", "jid", it.jid)
			if it.name != "" {
				item.SetAttr("name", it.name)
			}
			if g := b.info.DisplayName; g != "" {
				item.TextChild(nsRosterX, "group", g)
			}
			adds.Add(item)
			added = append(added, it)
			nAdd++
		}
	}
	for _, x := range []struct {
		el *stanza.Element
		n  int
	}{{adds, nAdd}, {dels, nDel}} {
		if x.n == 0 {
			continue
		}
		if err := conn.Send(ctx, stanza.New(stanza.NSComponent, "message", "id", "rx-"+newKey(), "from", b.domain, "to", full).Add(x.el)); err != nil {
			return err
		}
	}
	b.log.Info("roster population", "user", u.owner, "method", methodRosterX, "items", len(items), "suggested", nAdd, "removed", nDel)
	if nAdd+nDel == 0 {
		return nil
	}
	b.recordAsked(ctx, u, added)
	return conn.Barrier(ctx)
}
