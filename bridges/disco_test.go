package bridges_test

// Stanza-level tests of service discovery and entity capabilities
// (XEP-0030, XEP-0115) and of the OMEMO device-list answer.

import (
	"fmt"
	"slices"
	"testing"

	"github.com/jabbergate/jabbergate/bridges/caps"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/echo"
)

const (
	nsDiscoInfo = "http://jabber.org/protocol/disco#info"
	capsNode    = "https://jabbergate.im/caps"
)

// discoNetwork is a network with the Info given (and, through the embedded
// interface, only Info and Open: not a Resolver).
type discoNetwork struct {
	legacy.Network
	info legacy.Info
}

func (n discoNetwork) Info() legacy.Info { return n.info }

func newDiscoNetwork(t *testing.T, c legacy.Caps) discoNetwork {
	e, err := echo.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	info := e.Info()
	info.Caps = c
	return discoNetwork{Network: e, info: info}
}

// discoCaps reads a disco#info <query/> into caps.Info (identities,
// features and extended forms), failing the test on anything a caps
// answer may not contain.
func discoCaps(t *testing.T, q *stanza.Element) caps.Info {
	t.Helper()
	var in caps.Info
	for _, c := range q.Children() {
		switch {
		case c.Space == nsDiscoInfo && c.Local == "identity":
			in.Identities = append(in.Identities, caps.Identity{Category: c.Attr("category"), Type: c.Attr("type"), Lang: c.Lang(), Name: c.Attr("name")})
		case c.Space == nsDiscoInfo && c.Local == "feature":
			in.Features = append(in.Features, c.Attr("var"))
		case c.Space == "jabber:x:data" && c.Local == "x":
			var f caps.Form
			for _, fl := range c.Children() {
				cf := caps.Field{Var: fl.Attr("var")}
				for _, v := range fl.Children() {
					cf.Values = append(cf.Values, v.Text())
				}
				f.Fields = append(f.Fields, cf)
			}
			in.Forms = append(in.Forms, f)
		default:
			t.Errorf("unexpected child in disco#info: %s", c)
		}
	}
	return in
}

// capsOf returns the <c/> of a presence, checking its fixed attributes.
func capsOf(t *testing.T, p *stanza.Element) string {
	t.Helper()
	c := p.Child(caps.NS, "c")
	if c == nil {
		t.Fatalf("presence without caps: %s", p)
	}
	if c.Attr("hash") != "sha-1" || c.Attr("node") != capsNode || c.Attr("ver") == "" {
		t.Errorf("caps element = %s", c)
	}
	return c.Attr("ver")
}

// fresh wraps match so that it skips the stanzas received before now.
func (h *harness) fresh(match func(*stanza.Element) bool) func(*stanza.Element) bool {
	old := map[*stanza.Element]bool{}
	for _, e := range h.srv.Received() {
		old[e] = true
	}
	return func(e *stanza.Element) bool { return !old[e] && match(e) }
}

func presenceFrom(from, typ string) func(*stanza.Element) bool {
	return func(e *stanza.Element) bool {
		return e.Local == "presence" && e.From() == from && e.To() == alice && e.Type() == typ
	}
}

// checkNodeRoundTrip asks to for disco#info, plain and on node#ver, and
// checks that both answers list the same identities and features, the
// node is echoed, and ver recomputed from the answer is ver.
func checkNodeRoundTrip(t *testing.T, h *harness, to, ver string) caps.Info {
	t.Helper()
	plain := h.iq(alice+"/res", to, "get", `<query xmlns='http://jabber.org/protocol/disco#info'/>`)
	node := capsNode + "#" + ver
	withNode := h.iq(alice+"/res", to, "get", fmt.Sprintf(`<query xmlns='http://jabber.org/protocol/disco#info' node='%s'/>`, node))
	if plain.Type() != "result" || withNode.Type() != "result" {
		t.Fatalf("disco#info on %s: %s / %s", to, plain, withNode)
	}
	pq, nq := plain.Child(nsDiscoInfo, "query"), withNode.Child(nsDiscoInfo, "query")
	if pq.Attr("node") != "" || nq.Attr("node") != node {
		t.Errorf("node not echoed exactly: %s / %s", pq, nq)
	}
	// Same children, same order: compare the queries without the node.
	if got, want := nq.Copy().SetAttr("node", "").String(), pq.String(); got != want {
		t.Errorf("node#ver answer differs from the plain one:\n%s\n%s", got, want)
	}
	info := discoCaps(t, nq)
	if got, err := info.Ver(); err != nil || got != ver {
		t.Errorf("ver recomputed from the disco answer of %s = %q, %v; presence said %q", to, got, err, ver)
	}
	return info
}

func TestCapsOnGatewayPresence(t *testing.T) {
	h := newHarness(t, nil)
	h.register(alice)
	sub := h.expect("subscribe from the gateway", presenceFrom(domain, "subscribe"))
	if nick := sub.ChildText("http://jabber.org/protocol/nick", "nick"); nick != "Echo gateway" {
		t.Errorf("gateway subscribe nick = %q: %s", nick, sub)
	}
	h.send(`<presence xmlns='jabber:component:accept' type='subscribed' from='` + alice + `' to='` + domain + `'/>`)
	h.send(`<presence xmlns='jabber:component:accept' type='subscribe' from='` + alice + `' to='` + domain + `'/>`)
	ver := capsOf(t, h.expect("gateway presence", presenceFrom(domain, "")))

	// A probe (a new resource of alice logs in) gets the same caps.
	probe := h.fresh(presenceFrom(domain, ""))
	h.send(`<presence xmlns='jabber:component:accept' type='probe' from='` + alice + `' to='` + domain + `'/>`)
	if got := capsOf(t, h.expect("gateway presence on probe", probe)); got != ver {
		t.Errorf("probe ver %q != %q", got, ver)
	}

	info := checkNodeRoundTrip(t, h, domain, ver)
	if len(info.Identities) != 1 || info.Identities[0] != (caps.Identity{Category: "gateway", Type: "xmpp", Name: "Echo gateway"}) {
		t.Errorf("gateway identities = %+v", info.Identities)
	}
	want := []string{
		"http://jabber.org/protocol/caps", "http://jabber.org/protocol/commands",
		"http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/disco#items",
		"jabber:iq:gateway", "jabber:iq:register", "jabber:iq:version", `jid\20escaping`, "urn:xmpp:ping",
	}
	if !slices.Equal(info.Features, want) {
		t.Errorf("gateway features =\n%q\nwant\n%q", info.Features, want)
	}
	// The golden caps element, with the ver the test computed itself.
	wantVer, _ := caps.Info{Identities: []caps.Identity{{Category: "gateway", Type: "xmpp", Name: "Echo gateway"}}, Features: want}.Ver()
	c := h.expect("gateway presence", presenceFrom(domain, "")).Child(caps.NS, "c")
	if got, golden := c.String(), `<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://jabbergate.im/caps' ver='`+wantVer+`'/>`; got != golden {
		t.Errorf("caps element\n%s\nwant\n%s", got, golden)
	}

	// The contact ver is not the gateway's node; neither is garbage.
	for _, node := range []string{capsNode + "#nope", capsNode, "#" + ver, capsNode + "#" + ver + "x"} {
		if r := h.iq(alice, domain, "get", `<query xmlns='http://jabber.org/protocol/disco#info' node='`+node+`'/>`); errCond(r) != stanza.ItemNotFound {
			t.Errorf("node %q = %s", node, r)
		}
	}
}

func TestCapsOnContactPresence(t *testing.T) {
	h := newHarness(t, nil)
	h.register(alice)
	hello := "hello@" + domain
	h.send(`<presence xmlns='jabber:component:accept' type='subscribe' from='` + alice + `' to='` + hello + `'/>`)
	h.expect("subscribed", presenceFrom(hello, "subscribed"))
	ver := capsOf(t, h.expect("contact presence", presenceFrom(hello, "")))

	probe := h.fresh(presenceFrom(hello, ""))
	h.send(`<presence xmlns='jabber:component:accept' type='probe' from='` + alice + `' to='` + hello + `'/>`)
	if got := capsOf(t, h.expect("contact presence on probe", probe)); got != ver {
		t.Errorf("probe ver %q != %q", got, ver)
	}
	// Every contact shares the ver; the gateway has its own.
	gw := capsOf(t, h.expect("gateway presence", func(e *stanza.Element) bool {
		return e.Local == "presence" && e.From() == domain && e.Type() == ""
	}))
	if gw == ver {
		t.Errorf("gateway and contacts share ver %q", ver)
	}

	info := checkNodeRoundTrip(t, h, hello, ver)
	// The same on a full JID of a contact and on another contact.
	checkNodeRoundTrip(t, h, hello+"/whatever", ver)
	checkNodeRoundTrip(t, h, "robot@"+domain, ver)
	if len(info.Identities) != 1 || info.Identities[0].Category != "client" || info.Identities[0].Type != "pc" {
		t.Errorf("contact identities = %+v", info.Identities)
	}
	// The gateway's node#ver is not a contact's.
	if r := h.iq(alice, hello, "get", `<query xmlns='http://jabber.org/protocol/disco#info' node='`+capsNode+"#"+gw+`'/>`); errCond(r) != stanza.ItemNotFound {
		t.Errorf("gateway node on a contact = %s", r)
	}
	// The features follow what echo declares, whatever it declares.
	e, _ := echo.New(nil)
	if got, want := info.Features, expectedContactFeatures(e.Info().Caps); !slices.Equal(got, want) {
		t.Errorf("contact features =\n%q\nwant (from echo's Caps)\n%q", got, want)
	}
}

// expectedContactFeatures is the contact feature list for c, as the
// issue specifies it, sorted.
func expectedContactFeatures(c legacy.Caps) []string {
	f := []string{"http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#info", "urn:xmpp:ping"}
	add := func(ok bool, ns string) {
		if ok {
			f = append(f, ns)
		}
	}
	add(c.Receipts, "urn:xmpp:receipts")
	add(c.ChatStates, "http://jabber.org/protocol/chatstates")
	add(c.Markers, "urn:xmpp:chat-markers:0")
	add(c.Edits, "urn:xmpp:message-correct:0")
	add(c.Retractions, "urn:xmpp:message-retract:1")
	add(c.Reactions, "urn:xmpp:reactions:0")
	add(c.Replies, "urn:xmpp:reply:0")
	add(c.Files, "jabber:x:oob")
	slices.Sort(f)
	return f
}

// TestContactFeaturesFollowCaps: with no optional capability, contacts
// advertise only disco#info, caps and ping, and a network that is not a
// Resolver has no jabber:iq:gateway; with every one, all of them.
func TestContactFeaturesFollowCaps(t *testing.T) {
	all := legacy.Caps{Edits: true, Retractions: true, Reactions: true, ChatStates: true, Markers: true, Receipts: true, Files: true, Replies: true, Presence: true}
	for name, c := range map[string]legacy.Caps{"none": {}, "all": all, "receipts only": {Receipts: true}} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, newDiscoNetwork(t, c))
			r := h.iq(alice, "x@"+domain, "get", `<query xmlns='http://jabber.org/protocol/disco#info'/>`)
			got := discoCaps(t, r.Child(nsDiscoInfo, "query")).Features
			if want := expectedContactFeatures(c); !slices.Equal(got, want) {
				t.Errorf("features =\n%q\nwant\n%q", got, want)
			}
			r = h.iq(alice, domain, "get", `<query xmlns='http://jabber.org/protocol/disco#info'/>`)
			if slices.Contains(discoCaps(t, r.Child(nsDiscoInfo, "query")).Features, "jabber:iq:gateway") {
				t.Errorf("jabber:iq:gateway advertised without a Resolver: %s", r)
			}
		})
	}
}

// TestCapsWithReactionRestrictions: a network that limits reactions puts
// the XEP-0444 restrictions form in the contacts' disco#info, and the ver
// covers it (XEP-0115 §5.1 extended forms).
func TestCapsWithReactionRestrictions(t *testing.T) {
	n := newDiscoNetwork(t, legacy.Caps{Reactions: true})
	n.info.MaxReactions, n.info.AllowedReactions = 1, []string{"👍", "❤️"}
	h := newHarness(t, n)
	h.register(alice)
	hello := "hello@" + domain
	h.send(`<presence xmlns='jabber:component:accept' type='subscribe' from='` + alice + `' to='` + hello + `'/>`)
	ver := capsOf(t, h.expect("contact presence", presenceFrom(hello, "")))
	info := checkNodeRoundTrip(t, h, hello, ver)
	if len(info.Forms) != 1 {
		t.Fatalf("forms = %+v", info.Forms)
	}
	noForm := info
	noForm.Forms = nil
	if v, _ := noForm.Ver(); v == ver {
		t.Errorf("ver does not cover the restrictions form")
	}
}

// TestOMEMODeviceListNotFound: OMEMO clients ask a contact for its device
// list before encrypting; item-not-found makes them send plaintext.
func TestOMEMODeviceListNotFound(t *testing.T) {
	h := newHarness(t, nil)
	for _, node := range []string{"eu.siacs.conversations.axolotl.devicelist", "urn:xmpp:omemo:2:devices", "eu.siacs.conversations.axolotl.bundles:1234", "urn:xmpp:omemo:2:bundles"} {
		for _, from := range []string{alice + "/phone", "bob@localhost/x"} {
			r := h.iq(from, "hello@"+domain, "get", `<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='`+node+`'/></pubsub>`)
			if errCond(r) != stanza.ItemNotFound || r.From() != "hello@"+domain || r.To() != from {
				t.Errorf("%s from %s = %s", node, from, r)
			}
			if pe := stanza.ParseError(r); pe == nil || pe.Type != stanza.ErrCancel {
				t.Errorf("%s: error type = %s", node, r)
			}
		}
	}
	// Other pubsub requests are not swallowed by the OMEMO rule.
	if r := h.iq(alice, "hello@"+domain, "set", `<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='eu.siacs.conversations.axolotl.devicelist'/></pubsub>`); errCond(r) == stanza.ItemNotFound {
		t.Errorf("publish = %s", r)
	}
}

// TestCapsAfterReconnect: the presences re-announced on a new link carry
// caps too.
func TestCapsAfterReconnect(t *testing.T) {
	h := newHarness(t, nil)
	h.register(alice)
	hello := "hello@" + domain
	h.send(`<presence xmlns='jabber:component:accept' type='subscribe' from='` + alice + `' to='` + domain + `'/>`)
	h.send(`<presence xmlns='jabber:component:accept' type='subscribe' from='` + alice + `' to='` + hello + `'/>`)
	h.expect("gateway presence", presenceFrom(domain, ""))
	h.expect("contact presence", presenceFrom(hello, ""))
	gwAgain := h.fresh(presenceFrom(domain, ""))
	ctAgain := h.fresh(presenceFrom(hello, ""))
	h.stop()
	h.start(nil)
	capsOf(t, h.expect("gateway presence after restart", gwAgain))
	capsOf(t, h.expect("contact presence after restart", ctAgain))
}
