package bridges

// Service discovery (XEP-0030) and entity capabilities (XEP-0115).
//
// What the gateway and its contacts answer to disco#info is computed once,
// in New, from the network's legacy.Info (never per stanza): b.caps holds
// two discoSets, one for the gateway domain and one shared by every
// contact. Each set carries its XEP-0115 ver, which presence.go puts in
// the <c/> element of every available presence, and disco#info on
// node='https://jabbergate.im/caps#<ver>' is answered with exactly the same
// identities and features (the node echoed).
//
// Gateway (the domain): identity gateway/<Info.DiscoType>, features
// disco#info, disco#items, caps, jabber:iq:register, jabber:iq:gateway
// (only when the network is a legacy.Resolver), jid\20escaping,
// urn:xmpp:ping, jabber:iq:version, http://jabber.org/protocol/commands.
//
// Contacts (answered on the bare JID and on any full JID; contacts never
// use a resource in this gateway, see the package doc): identity
// client/pc, features disco#info, caps, urn:xmpp:ping, and only what
// Info.Caps declares — see contactCapsFeatures — plus the XEP-0444
// restrictions form (XEP-0128 extended info, covered by the ver) when the
// network limits reactions. Other code asks
// b.contactHas(feature) or b.contactFeatures() instead of re-deriving
// features from Caps, so that what the gateway advertises and what it
// does stay one decision.

import (
	"fmt"
	"slices"

	"github.com/jabbergate/jabbergate/bridges/caps"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
)

// CapsNode is the XEP-0115 node of every caps element the gateway sends.
const CapsNode = "https://jabbergate.im/caps"

// Features used only for discovery (the others are in ns.go and next to
// the code that implements them).
const (
	featCommands = "http://jabber.org/protocol/commands"
	nsPubsub     = "http://jabber.org/protocol/pubsub"
)

// contactCapsFeatures maps each optional legacy capability to the feature
// a contact advertises when the network declares it.
var contactCapsFeatures = []struct {
	feature  string
	declared func(legacy.Caps) bool
}{
	{nsReceipts, func(c legacy.Caps) bool { return c.Receipts }},                      // XEP-0184
	{nsChatStates, func(c legacy.Caps) bool { return c.ChatStates }},                  // XEP-0085
	{"urn:xmpp:chat-markers:0", func(c legacy.Caps) bool { return c.Markers }},        // XEP-0333
	{"urn:xmpp:message-correct:0", func(c legacy.Caps) bool { return c.Edits }},       // XEP-0308
	{"urn:xmpp:message-retract:1", func(c legacy.Caps) bool { return c.Retractions }}, // XEP-0424
	{"urn:xmpp:reactions:0", func(c legacy.Caps) bool { return c.Reactions }},         // XEP-0444
	{"urn:xmpp:reply:0", func(c legacy.Caps) bool { return c.Replies }},               // XEP-0461
	{"jabber:x:oob", func(c legacy.Caps) bool { return c.Files }},                     // XEP-0066
}

// discoSet is one entity's disco#info answer and its caps ver.
type discoSet struct {
	info  caps.Info
	forms []*stanza.Element // XEP-0128 extended forms, as sent (info.Forms mirrors them)
	ver   string
}

// node is the caps node#ver this set answers to.
func (s *discoSet) node() string { return CapsNode + "#" + s.ver }

// has reports whether the set advertises feature.
func (s *discoSet) has(feature string) bool { return slices.Contains(s.info.Features, feature) }

// query builds the disco#info <query/>, with node when not empty.
func (s *discoSet) query(node string) *stanza.Element {
	q := stanza.New(nsDiscoInfo, "query")
	if node != "" {
		q.SetAttr("node", node)
	}
	for _, id := range s.info.Identities {
		q.Add(stanza.New(nsDiscoInfo, "identity", "category", id.Category, "type", id.Type, "name", id.Name))
	}
	for _, f := range s.info.Features {
		q.Add(stanza.New(nsDiscoInfo, "feature", "var", f))
	}
	for _, x := range s.forms {
		q.Add(x.Copy())
	}
	return q
}

// capsForm reads an XEP-0004 form into the fields the caps hash uses.
func capsForm(x *stanza.Element) caps.Form {
	var f caps.Form
	for _, fl := range x.Children() {
		if fl.Space != nsData || fl.Local != "field" {
			continue
		}
		cf := caps.Field{Var: fl.Attr("var")}
		for _, v := range fl.Children() {
			if v.Space == nsData && v.Local == "value" {
				cf.Values = append(cf.Values, v.Text())
			}
		}
		f.Fields = append(f.Fields, cf)
	}
	return f
}

// capsElement is the XEP-0115 <c/> for presences of this entity.
func (s *discoSet) capsElement() *stanza.Element {
	return stanza.New(caps.NS, "c", "hash", caps.Hash, "node", CapsNode, "ver", s.ver)
}

// bridgeCaps is what the gateway and its contacts advertise.
type bridgeCaps struct {
	gateway, contact discoSet
}

// gatewayName is the gateway's display name: in disco and as the nick of
// its subscription requests.
func gatewayName(opts Options, info legacy.Info) string {
	if opts.Name != "" {
		return opts.Name
	}
	return info.DisplayName + " gateway"
}

// newCaps computes the disco answers and vers of a bridge, once, from
// b.opts, b.info and b.resolve (set before it in New). Contacts carry the
// XEP-0444 restrictions form when the network limits reactions
// (reactionRestrictions, extensions.go).
func (b *Bridge) newCaps() (bridgeCaps, error) {
	opts, info, resolver := b.opts, b.info, b.resolve != nil
	gwType := info.DiscoType
	if gwType == "" {
		gwType = "xmpp"
	}
	gw := caps.Info{
		Identities: []caps.Identity{{Category: "gateway", Type: gwType, Name: gatewayName(opts, info)}},
		Features:   []string{nsDiscoInfo, nsDiscoItems, caps.NS, nsRegister, featureJIDEscaping, nsPing, nsVersion, featCommands},
	}
	if resolver {
		gw.Features = append(gw.Features, nsGateway)
	}
	ct := caps.Info{
		Identities: []caps.Identity{{Category: "client", Type: "pc", Name: info.DisplayName + " contact"}},
		Features:   []string{nsDiscoInfo, caps.NS, nsPing},
	}
	for _, f := range contactCapsFeatures {
		if f.declared(info.Caps) {
			ct.Features = append(ct.Features, f.feature)
		}
	}
	var ctForms []*stanza.Element
	if x := b.reactionRestrictions(); x != nil {
		ctForms = append(ctForms, x)
	}
	var bc bridgeCaps
	for _, s := range []struct {
		dst   *discoSet
		info  caps.Info
		forms []*stanza.Element
		what  string
	}{{&bc.gateway, gw, nil, "gateway"}, {&bc.contact, ct, ctForms, "contact"}} {
		slices.Sort(s.info.Features)
		for _, x := range s.forms {
			s.info.Forms = append(s.info.Forms, capsForm(x))
		}
		ver, err := s.info.Ver()
		if err != nil {
			return bridgeCaps{}, fmt.Errorf("bridges: %s disco: %w", s.what, err)
		}
		*s.dst = discoSet{info: s.info, forms: s.forms, ver: ver}
	}
	return bc, nil
}

// contactFeatures returns the features every contact advertises (a copy,
// sorted).
func (b *Bridge) contactFeatures() []string { return slices.Clone(b.caps.contact.info.Features) }

// contactHas reports whether contacts advertise feature; code that
// translates an optional extension should check it.
func (b *Bridge) contactHas(feature string) bool { return b.caps.contact.has(feature) }

// gatewayFeatures returns the features the gateway domain advertises.
func (b *Bridge) gatewayFeatures() []string { return slices.Clone(b.caps.gateway.info.Features) }

// discoInfo answers XEP-0030 disco#info on the gateway and on contacts
// (bare or full JID): without a node, or with the caps node#ver of that
// entity; any other node is item-not-found. (Command nodes are answered
// before this, in iq.go.)
func (b *Bridge) discoInfo(iq, q *stanza.Element, toGateway bool) (*stanza.Element, *stanza.Error) {
	set := &b.caps.contact
	if toGateway {
		set = &b.caps.gateway
	}
	node := q.Attr("node")
	if node != "" && node != set.node() {
		return nil, stanza.NewError(stanza.ItemNotFound, "no such node")
	}
	return stanza.Result(iq, set.query(node)), nil
}

// discoItems answers disco#items: nothing, on the gateway and on contacts.
// (The commands node is answered before this, in iq.go.)
func (b *Bridge) discoItems(iq, q *stanza.Element) (*stanza.Element, *stanza.Error) {
	if q.Attr("node") != "" {
		return nil, stanza.NewError(stanza.ItemNotFound, "no such node")
	}
	return stanza.Result(iq, stanza.New(nsDiscoItems, "query")), nil
}

// omemoNodes are the PEP nodes OMEMO clients read on a contact before
// encrypting: the device lists (and bundles) of the legacy and the v2
// namespace.
func isOMEMONode(node string) bool {
	switch {
	case node == nsOMEMO+".devicelist", node == nsOMEMO2+":devices", node == nsOMEMO2+":bundles":
		return true
	case len(node) > len(nsOMEMO+".bundles:") && node[:len(nsOMEMO+".bundles:")] == nsOMEMO+".bundles:":
		return true
	}
	return false
}

// isOMEMOQuery reports whether a pubsub payload asks for an OMEMO node.
func isOMEMOQuery(p *stanza.Element) bool {
	if p.Space != nsPubsub || p.Local != "pubsub" {
		return false
	}
	items := p.Child(nsPubsub, "items")
	return items != nil && isOMEMONode(items.Attr("node"))
}

// omemoNotFound answers a contact's OMEMO device list or bundle query:
// contacts have no OMEMO devices, so clients stay on plaintext (the
// gateway can not decrypt).
func omemoNotFound() *stanza.Error {
	return stanza.NewError(stanza.ItemNotFound, "legacy contacts have no OMEMO devices; send unencrypted messages")
}
