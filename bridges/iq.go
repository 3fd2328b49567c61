package bridges

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/jabbergate/jabbergate/bridges/jidmap"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
)

// handleIQ answers every IQ get/set exactly once (RFC 6120 §8.2.3) and never
// answers results or errors.
func (b *Bridge) handleIQ(ctx context.Context, iq *stanza.Element, from, to jid.JID) {
	typ := iq.Type()
	switch typ {
	case "get", "set":
	case "result", "error":
		return // for a request we did not make (or one the link already matched)
	default:
		// RFC 6120 §8.2.3: the type is required and one of the four.
		b.log.Info("IQ of an invalid type refused", "type", typ, "id", iq.ID(), "user", jidmap.OwnerKey(b.domain, from.Bare().String()))
		b.reply(ctx, stanza.ErrorReply(iq, stanza.NewError(stanza.BadRequest, "an IQ's type must be get, set, result or error")))
		return
	}
	children := iq.Children()
	if len(children) != 1 || iq.ID() == "" {
		b.reply(ctx, stanza.ErrorReply(iq, stanza.NewError(stanza.BadRequest, "an IQ get or set needs an id and exactly one payload element")))
		return
	}
	payload := children[0]
	toGateway := to.Localpart() == ""
	var res *stanza.Element
	var serr *stanza.Error
	switch {
	case payload.Space == nsPing && payload.Local == "ping" && typ == "get" && toGateway:
		res = stanza.Result(iq, nil)
	case payload.Space == nsPing && payload.Local == "ping" && typ == "get":
		// A contact answers only if a message to it could go out: the
		// address is one the network takes and the sender is registered
		// (clients ping a contact to learn whether it is reachable).
		if serr = b.badContact(ctx, from, to); serr == nil && b.getUser(from.Bare().String()) == nil {
			serr = stanza.NewError(stanza.RegistrationRequired, "register with "+b.domain+" first to reach "+b.info.DisplayName+" contacts")
		}
		if serr == nil {
			res = stanza.Result(iq, nil)
		}
	case payload.Space == nsCommands && payload.Local == "command" && toGateway: // XEP-0050, commands.go
		b.handleCommand(ctx, iq, payload, from)
		return
	case payload.Space == nsDiscoItems && payload.Local == "query" && typ == "get" && toGateway && payload.Attr("node") == nsCommands:
		res = b.commandItems(iq, from)
	case payload.Space == nsDiscoInfo && payload.Local == "query" && typ == "get" && toGateway && payload.Attr("node") == nsCommands:
		res = b.commandListInfo(iq)
	case payload.Space == nsDiscoInfo && payload.Local == "query" && typ == "get" && toGateway && b.isCommandNode(payload.Attr("node"), from):
		res = b.commandInfo(iq, payload.Attr("node"))
	case (payload.Space == nsDiscoInfo || payload.Space == nsDiscoItems) && payload.Local == "query" && typ == "get" && !toGateway:
		// An address no contact can have is told so, as a message to it is.
		if serr = b.badContact(ctx, from, to); serr == nil && payload.Space == nsDiscoInfo {
			res, serr = b.discoInfo(iq, payload, false)
		} else if serr == nil {
			res, serr = b.discoItems(iq, payload)
		}
	case payload.Space == nsDiscoInfo && payload.Local == "query" && typ == "get":
		res, serr = b.discoInfo(iq, payload, toGateway)
	case payload.Space == nsDiscoItems && payload.Local == "query" && typ == "get":
		res, serr = b.discoItems(iq, payload) // disco.go
	case typ == "get" && !toGateway && isOMEMOQuery(payload): // disco.go: contacts have no OMEMO devices
		serr = omemoNotFound()
	case !toGateway && payload.Space == nsVCard && payload.Local == "vCard": // avatar.go: XEP-0054
		if serr = b.badContact(ctx, from, to); serr == nil {
			res, serr = b.vcardIQ(ctx, iq, from, to)
		}
	case !toGateway && isAvatarQuery(payload): // avatar.go: XEP-0084 emulation
		if serr = b.badContact(ctx, from, to); serr == nil {
			res, serr = b.avatarItems(ctx, iq, payload, from, to)
		}
	case payload.Space == nsVersion && payload.Local == "query" && typ == "get" && toGateway:
		q := stanza.New(nsVersion, "query")
		q.TextChild(nsVersion, "name", "Jabbergate")
		q.TextChild(nsVersion, "version", Version)
		q.TextChild(nsVersion, "os", runtime.GOOS)
		res = stanza.Result(iq, q)
	case payload.Space == nsRegister && payload.Local == "query" && toGateway:
		if typ == "get" {
			res, serr = b.registerGet(ctx, iq, from)
		} else {
			res, serr = b.registerSet(ctx, iq, payload, from)
		}
	case payload.Space == nsGateway && payload.Local == "query" && toGateway && b.resolve != nil:
		res, serr = b.gatewayIQ(ctx, iq, payload)
	default:
		serr = stanza.NewError(stanza.ServiceUnavailable, "")
	}
	if serr != nil {
		b.reply(ctx, stanza.ErrorReply(iq, serr))
		return
	}
	b.reply(ctx, res)
}

// gatewayIQ implements XEP-0100 jabber:iq:gateway: the prompt, and turning
// what the user typed into a contact JID.
func (b *Bridge) gatewayIQ(ctx context.Context, iq, q *stanza.Element) (*stanza.Element, *stanza.Error) {
	if iq.Type() == "get" {
		r := stanza.New(nsGateway, "query")
		desc := b.info.PromptDesc
		if desc == "" {
			desc = "Enter the " + b.info.DisplayName + " address of the contact."
		}
		prompt := b.info.Prompt
		if prompt == "" {
			prompt = "Address"
		}
		r.TextChild(nsGateway, "desc", desc)
		r.TextChild(nsGateway, "prompt", prompt)
		return stanza.Result(iq, r), nil
	}
	input := q.ChildText(nsGateway, "prompt")
	chat, err := b.resolve.Resolve(ctx, input)
	if err != nil {
		text := "not a valid " + b.info.DisplayName + " address"
		if errors.Is(err, legacy.ErrNotFound) {
			return nil, stanza.NewError(stanza.ItemNotFound, text)
		}
		if !errors.Is(err, legacy.ErrInvalidAddress) {
			return nil, stanza.NewError(stanza.RemoteServerTimeout, "could not look up the address now")
		}
		return nil, &stanza.Error{Condition: stanza.NotAcceptable, Type: stanza.ErrModify, Text: b.addressError(err)}
	}
	j, err := jidmap.ContactJID(chat, b.domain)
	if err != nil {
		return nil, &stanza.Error{Condition: stanza.NotAcceptable, Type: stanza.ErrModify, Text: err.Error()}
	}
	r := stanza.New(nsGateway, "query")
	r.TextChild(nsGateway, "jid", j.String())
	return stanza.Result(iq, r), nil
}

// fastIQ answers, from the link's read loop (no shard hop), the two
// stateless requests to the gateway domain that servers, monitors and
// clients send most: ping, and disco#info without a node. Both answers
// depend on nothing a shard could be changing, so answering them ahead of
// earlier stanzas of the same sender changes nothing observable. The
// admission rules of dispatch still apply (a from in our own domain is
// left to dispatch, which drops it; the per-user rate limit is charged);
// anything else — other payloads, nodes, a to with a localpart or a
// resource, a malformed request — goes the normal way. It reports whether
// it answered.
// fastIQOff turns fastIQ off (benchmarks compare with the shard path).
var fastIQOff atomic.Bool

func (b *Bridge) fastIQ(ctx context.Context, iq *stanza.Element) bool {
	if fastIQOff.Load() || iq.Local != "iq" || iq.Space != stanza.NSComponent || iq.To() != b.domain || iq.ID() == "" || iq.Type() != "get" {
		return false
	}
	var p *stanza.Element
	for _, n := range iq.Nodes {
		if n.El == nil {
			continue
		}
		if p != nil {
			return false // more than one payload: dispatch answers bad-request
		}
		p = n.El
	}
	if p == nil {
		return false
	}
	from := iq.From()
	bare := bareOf(from)
	local, dom, hasLocal := strings.Cut(bare, "@")
	if !hasLocal {
		dom, local = bare, ""
	}
	if from == "" || dom == "" || hasLocal && local == "" || strings.EqualFold(dom, b.domain) {
		return false
	}
	var res *stanza.Element
	switch {
	case p.Space == nsPing && p.Local == "ping" && len(p.Nodes) == 0:
		res = stanza.Result(iq, nil)
	case p.Space == nsDiscoInfo && p.Local == "query" && len(p.Attrs) == 0:
		res = stanza.Result(iq, b.gatewayDiscoQuery())
	default:
		return false
	}
	if hasLocal && !b.limiter.allow(strings.ToLower(bare), time.Now()) {
		return false // dispatch answers resource-constraint
	}
	// Written with the other answers of the same burst once the read loop
	// has worked through its input: one write, no hand-over to the writer.
	if err := b.link.SendFromHandler(res); err != nil {
		b.log.Debug("reply not sent", "err", err, "kind", res.Local)
	}
	return true
}

// gatewayDiscoQuery returns the gateway's disco#info <query/>, built once
// and shared by every reply (elements are only read once sent).
func (b *Bridge) gatewayDiscoQuery() *stanza.Element {
	b.discoOnce.Do(func() { b.discoQuery = b.caps.gateway.query("").Freeze(stanza.NSComponent) })
	return b.discoQuery
}

// badContact returns the error for a contact address (to) the network
// refuses, nil when it may name a contact: the check a message to it gets
// (validChat), with the sender's stored contacts when she is registered.
func (b *Bridge) badContact(ctx context.Context, from, to jid.JID) *stanza.Error {
	lp := to.Localpart()
	if _, err := b.validChat(ctx, b.getUser(from.Bare().String()), lp); err != nil {
		return b.contactAddressError(lp, err)
	}
	return nil
}
