package bridges_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/echo"
)

// contactsNetwork is the echo network whose sessions report a contact
// list (legacy.Contact events) when they start.
type contactsNetwork struct {
	*echo.Network
	contacts []legacy.Contact
	mu       sync.Mutex
	sink     legacy.Sink // of the last session opened
}

// emit reports ev on the last session opened.
func (n *contactsNetwork) emit(t *testing.T, ev legacy.Event) {
	t.Helper()
	n.mu.Lock()
	s := n.sink
	n.mu.Unlock()
	if s == nil {
		t.Fatal("no session")
	}
	if err := s.Emit(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
}

func newContactsNetwork(contacts ...legacy.Contact) *contactsNetwork {
	n, _ := echo.New(nil)
	return &contactsNetwork{Network: n, contacts: contacts}
}

func (n *contactsNetwork) Open(ctx context.Context, a legacy.Account, s legacy.Sink) (legacy.Session, error) {
	inner, err := n.Network.Open(ctx, a, s)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.sink = s
	n.mu.Unlock()
	return &contactsSession{Session: inner, sink: s, contacts: n.contacts}, nil
}

type contactsSession struct {
	legacy.Session
	sink     legacy.Sink
	contacts []legacy.Contact
}

func (s *contactsSession) Run(ctx context.Context) error {
	for _, c := range s.contacts {
		if err := s.sink.Emit(ctx, c); err != nil {
			return err
		}
	}
	return s.Session.Run(ctx)
}

var twoContacts = []legacy.Contact{{Chat: "ann", Name: "Ann Example"}, {Chat: "ben", Name: "Ben"}}

// fakeRoster plays the user's server for privileged roster IQs: it stores
// sets (keeping the subscription attribute like Prosody, or the stored
// subscription like ejabberd) and answers gets with what it stored.
type fakeRoster struct {
	h          *harness
	honourSub  bool
	mu         sync.Mutex
	items      map[string]*stanza.Element
	sets, gets []*stanza.Element
	stop       chan struct{}
	done       chan struct{}
}

func startFakeRoster(h *harness, honourSub bool) *fakeRoster {
	f := &fakeRoster{h: h, honourSub: honourSub, items: map[string]*stanza.Element{}, stop: make(chan struct{}), done: make(chan struct{})}
	answered := map[string]bool{}
	go func() {
		defer close(f.done)
		for {
			select {
			case <-f.stop:
				return
			default:
			}
			iq, err := h.srv.WaitFor(100*time.Millisecond, func(e *stanza.Element) bool {
				return e.Local == "iq" && e.To() == alice && e.Child("jabber:iq:roster", "query") != nil && !answered[e.ID()]
			})
			if err != nil {
				continue
			}
			answered[iq.ID()] = true
			f.answer(iq)
		}
	}()
	h.t.Cleanup(func() { close(f.stop); <-f.done })
	return f
}

func (f *fakeRoster) answer(iq *stanza.Element) {
	f.mu.Lock()
	q := iq.Child("jabber:iq:roster", "query")
	res := stanza.New(stanza.NSComponent, "iq", "type", "result", "id", iq.ID(), "from", alice, "to", domain)
	switch iq.Type() {
	case "set":
		f.sets = append(f.sets, iq)
		for _, it := range q.Children() {
			j := it.Attr("jid")
			if it.Attr("subscription") == "remove" {
				delete(f.items, j)
				continue
			}
			sub := "none"
			if old := f.items[j]; old != nil {
				sub = old.Attr("subscription")
			}
			if f.honourSub && it.Attr("subscription") != "" {
				sub = it.Attr("subscription")
			}
			stored := stanza.New("jabber:iq:roster", "item", "jid", j, "name", it.Attr("name"), "subscription", sub)
			f.items[j] = stored
		}
	case "get":
		f.gets = append(f.gets, iq)
		rq := stanza.New("jabber:iq:roster", "query")
		for _, it := range f.items {
			rq.Add(it.Copy())
		}
		res.Add(rq)
	}
	f.mu.Unlock()
	if err := f.h.srv.Inject(res); err != nil {
		f.h.t.Error(err)
	}
}

func (f *fakeRoster) snapshot() (sets, gets []*stanza.Element) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*stanza.Element(nil), f.sets...), append([]*stanza.Element(nil), f.gets...)
}

func advertisement(ns string) string {
	return fmt.Sprintf(`<message xmlns='jabber:component:accept' from='localhost' to='%s'><privilege xmlns='%s'>`+
		`<perm access='roster' type='both' push='true'/><perm access='message' type='outgoing'/>`+
		`<perm access='iq'><namespace ns='http://jabber.org/protocol/pubsub' type='both'/></perm></privilege></message>`, domain, ns)
}

// waitLog waits until the bridge log contains s.
func (h *harness) waitLog(s string) {
	h.t.Helper()
	deadline := time.After(wait)
	for !strings.Contains(h.log.String(), s) {
		select {
		case <-deadline:
			h.t.Fatalf("log never contained %q", s)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func isPresence(typ, from string) func(*stanza.Element) bool {
	return func(e *stanza.Element) bool {
		return e.Local == "presence" && e.Type() == typ && e.From() == from && e.To() == alice
	}
}

// wantRosterSet checks the shape of the privileged roster set for jid:
// from the component domain to the user's bare JID, one item with the
// name, subscription='both' and the network's group.
func wantRosterSet(t *testing.T, sets []*stanza.Element, jid, name string) {
	t.Helper()
	for _, iq := range sets {
		items := iq.Child("jabber:iq:roster", "query").Children()
		if len(items) != 1 {
			t.Fatalf("roster set with %d items (want one per IQ): %s", len(items), iq)
		}
		it := items[0]
		if it.Attr("jid") != jid {
			continue
		}
		got := iq.String()
		want := fmt.Sprintf(`<iq xmlns='jabber:component:accept' type='set' from='%s' to='%s' id='%s'><query xmlns='jabber:iq:roster'><item jid='%s' name='%s' subscription='both'><group>Echo</group></item></query></iq>`,
			domain, alice, iq.ID(), jid, name)
		if got != want {
			t.Errorf("roster set for %s:\n got %s\nwant %s", jid, got, want)
		}
		return
	}
	t.Fatalf("no roster set for %s among %d", jid, len(sets))
}

func TestPrivilegedRosterV2(t *testing.T) {
	h := newHarness(t, newContactsNetwork(twoContacts...))
	roster := startFakeRoster(h, true) // Prosody: subscription='both' is stored
	h.send(advertisement("urn:xmpp:privilege:2"))
	h.waitLog(`server=localhost namespace=urn:xmpp:privilege:2 roster=both roster_push=true message=outgoing iq="http://jabber.org/protocol/pubsub=both"`)
	h.register(alice)

	// Everything ends in 'both': presences follow, no subscribe requests.
	h.expect("gateway presence after the roster set", isPresence("", domain))
	h.expect("ann's presence", isPresence("", "ann@"+domain))
	h.expect("ben's presence", isPresence("", "ben@"+domain))
	h.waitLog(`method=xep0356 namespace=urn:xmpp:privilege:2`)
	sets, gets := roster.snapshot()
	wantRosterSet(t, sets, domain, "Echo")
	wantRosterSet(t, sets, "ann@"+domain, "Ann Example")
	wantRosterSet(t, sets, "ben@"+domain, "Ben")
	if len(gets) == 0 {
		t.Errorf("the roster was not read back")
	}
	// Not even the gateway's own (XEP-0100) request: it would stay pending
	// next to the 'both' item, shown again by Prosody at every login.
	for _, st := range h.srv.Received() {
		if st.Local == "presence" && st.Type() == "subscribe" {
			t.Errorf("subscribe sent although the roster holds 'both': %s", st)
		}
	}
	// The stored subscription now answers probes with presence.
	h.send(fmt.Sprintf(`<presence xmlns='jabber:component:accept' type='probe' id='p1' from='%s' to='ann@%s'/>`, alice, domain))
	h.expect("presence on probe", func(e *stanza.Element) bool {
		return e.Local == "presence" && e.From() == "ann@"+domain && e.Type() == "" && e.ID() == ""
	})

}

func TestPrivilegedRosterV1KeepsStoredSubscription(t *testing.T) {
	h := newHarness(t, newContactsNetwork(twoContacts...))
	roster := startFakeRoster(h, false) // ejabberd: the stored subscription stays
	h.send(advertisement("urn:xmpp:privilege:1"))
	h.waitLog(`namespace=urn:xmpp:privilege:1 roster=both`)
	h.register(alice)

	// The items exist but at 'none': each contact still asks, with a nick.
	for _, c := range twoContacts {
		p := h.expect("subscribe from "+string(c.Chat), isPresence("subscribe", string(c.Chat)+"@"+domain))
		if got := p.ChildText("http://jabber.org/protocol/nick", "nick"); got != c.Name {
			t.Errorf("nick = %q, want %q: %s", got, c.Name, p)
		}
	}
	h.waitLog(`method=xep0356 namespace=urn:xmpp:privilege:1`)
	// The gateway's item is at 'none' too: the gateway asks, once.
	h.expect("subscribe from the gateway", isPresence("subscribe", domain))
	gatewayAsks(t, h, 1)
	sets, _ := roster.snapshot()
	wantRosterSet(t, sets, domain, "Echo")
	wantRosterSet(t, sets, "ann@"+domain, "Ann Example")
	wantRosterSet(t, sets, "ben@"+domain, "Ben")
}

func TestRosterFallbackSubscribeWithNick(t *testing.T) {
	h := newHarness(t, newContactsNetwork(twoContacts...))
	h.register(alice)
	for _, c := range twoContacts {
		p := h.expect("subscribe from "+string(c.Chat), isPresence("subscribe", string(c.Chat)+"@"+domain))
		want := fmt.Sprintf(`<presence xmlns='jabber:component:accept' type='subscribe' from='%s@%s' to='%s'><nick xmlns='http://jabber.org/protocol/nick'>%s</nick></presence>`, c.Chat, domain, alice, c.Name)
		if p.String() != want {
			t.Errorf("subscribe:\n got %s\nwant %s", p, want)
		}
	}
	h.waitLog(`method=subscribe reason="no roster privilege"`)
	for _, st := range h.srv.Received() {
		if st.Local == "iq" && st.Child("jabber:iq:roster", "query") != nil {
			t.Errorf("roster IQ without privileges: %s", st)
		}
	}
	// The user approves ann and leaves ben unanswered; after a restart the
	// network reports both again, and nobody asks a second time.
	h.send(fmt.Sprintf(`<presence xmlns='jabber:component:accept' type='subscribed' from='%s' to='ann@%s'/>`, alice, domain))
	h.send(fmt.Sprintf(`<presence xmlns='jabber:component:accept' type='subscribe' from='%s' to='ann@%s'/>`, alice, domain))
	h.expect("subscribed", isPresence("subscribed", "ann@"+domain))
	count := func() int {
		n := 0
		for _, st := range h.srv.Received() {
			if st.Local == "presence" && st.Type() == "subscribe" && st.From() != domain {
				n++
			}
		}
		return n
	}
	h.waitLog("roster requests recorded")
	before := count()
	logged := strings.Count(h.log.String(), "roster population")
	h.stop()
	h.start(newContactsNetwork(append(twoContacts, legacy.Contact{Chat: "cy", Name: "Cy"})...))
	// A new contact is still asked; the barrier after it proves the
	// others were handled (same user, one queue, in order).
	h.expect("subscribe from cy", isPresence("subscribe", "cy@"+domain))
	if got := count() - before; got != 1 {
		t.Errorf("%d subscribe requests after the restart, want 1 (cy)", got)
	}
	if strings.Count(h.log.String(), "roster population") <= logged {
		t.Errorf("no population logged after the restart")
	}
}

func TestPrivilegedRosterSetRefusedFallsBack(t *testing.T) {
	h := newHarness(t, newContactsNetwork(twoContacts...))
	// The server advertises, but refuses the sets.
	answered := map[string]bool{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			iq, err := h.srv.WaitFor(100*time.Millisecond, func(e *stanza.Element) bool {
				return e.Local == "iq" && e.To() == alice && e.Child("jabber:iq:roster", "query") != nil && !answered[e.ID()]
			})
			if err != nil {
				continue
			}
			answered[iq.ID()] = true
			_ = h.srv.Inject(stanza.ErrorReply(iq, stanza.NewError(stanza.Forbidden, "no")))
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	h.send(advertisement("urn:xmpp:privilege:2"))
	h.waitLog("XEP-0356 privileges granted")
	h.register(alice)
	for _, c := range twoContacts {
		h.expect("subscribe from "+string(c.Chat), isPresence("subscribe", string(c.Chat)+"@"+domain))
	}
	h.waitLog(`reason="privileged set refused"`)
	// The registration left the gateway's request to population, which
	// fell back: it asks, once.
	h.expect("subscribe from the gateway", isPresence("subscribe", domain))
	gatewayAsks(t, h, 1)
}

// gatewayAsks checks how many subscription requests the gateway itself
// sent the user.
func gatewayAsks(t *testing.T, h *harness, want int) {
	t.Helper()
	n := 0
	for _, st := range h.srv.Received() {
		if st.Local == "presence" && st.Type() == "subscribe" && st.From() == domain {
			n++
		}
	}
	if n != want {
		t.Errorf("the gateway asked the user %d times, want %d", n, want)
	}
}

func TestRosterPushAcknowledged(t *testing.T) {
	h := newHarness(t, nil)
	r := h.iq(alice, domain, "set", `<query xmlns='jabber:iq:roster'><item jid='echo.localhost' subscription='remove'/></query>`)
	if r.Type() != "result" {
		t.Fatalf("roster push answer: %s", r)
	}
}

// answerDisco answers the gateway's disco#info queries to full with the
// given features, until the test ends.
func answerDisco(h *harness, full string, features ...string) {
	answered := map[string]bool{}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			iq, err := h.srv.WaitFor(100*time.Millisecond, func(e *stanza.Element) bool {
				return e.Local == "iq" && e.Type() == "get" && e.To() == full && e.Child("http://jabber.org/protocol/disco#info", "query") != nil && !answered[e.ID()]
			})
			if err != nil {
				continue
			}
			answered[iq.ID()] = true
			q := stanza.New("http://jabber.org/protocol/disco#info", "query")
			if n := iq.Child("http://jabber.org/protocol/disco#info", "query").Attr("node"); n != "" {
				q.SetAttr("node", n)
			}
			q.Add(stanza.New("http://jabber.org/protocol/disco#info", "identity", "category", "client", "type", "pc"))
			for _, f := range features {
				q.Add(stanza.New("http://jabber.org/protocol/disco#info", "feature", "var", f))
			}
			_ = h.srv.Inject(stanza.New(stanza.NSComponent, "iq", "type", "result", "id", iq.ID(), "from", full, "to", domain).Add(q))
		}
	}()
	h.t.Cleanup(func() { close(stop); <-done })
}

func TestRosterItemExchange(t *testing.T) {
	h := newHarness(t, newContactsNetwork(twoContacts...))
	// The registering resource supports XEP-0144 (h.register uses /res).
	answerDisco(h, alice+"/res", "http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/rosterx")
	h.register(alice)
	// The contacts arrive while the registration's population runs, so
	// they may come in one suggestion or two: check each item's shape.
	for _, c := range twoContacts {
		item := fmt.Sprintf(`<item action='add' jid='%s@%s' name='%s'><group>Echo</group></item>`, c.Chat, domain, c.Name)
		m := h.expect("suggestion of "+string(c.Chat), func(e *stanza.Element) bool {
			return e.Local == "message" && e.To() == alice+"/res" && e.Child("http://jabber.org/protocol/rosterx", "x") != nil &&
				strings.Contains(e.String(), item)
		})
		prefix := fmt.Sprintf(`<message xmlns='jabber:component:accept' id='%s' from='%s' to='%s/res'><x xmlns='http://jabber.org/protocol/rosterx'><item `, m.ID(), domain, alice)
		if !strings.HasPrefix(m.String(), prefix) || m.Child(stanza.NSComponent, "body") != nil {
			t.Errorf("suggestion = %s", m)
		}
	}
	h.waitLog("method=xep0144")
	h.waitLog("roster requests recorded")
	for _, st := range h.srv.Received() {
		if st.Local == "presence" && st.Type() == "subscribe" && st.From() != domain {
			t.Errorf("subscribe sent although the client takes suggestions: %s", st)
		}
	}
}

func TestRosterItemExchangeFromCaps(t *testing.T) {
	nw := newContactsNetwork()
	h := newHarness(t, nw)
	h.register(alice) // /res answers no disco: nothing to suggest yet anyway
	// A Gajim-like resource comes online with caps; when the network
	// reports a new contact the gateway asks node#ver and suggests it.
	full := alice + "/gajim"
	answerDisco(h, full, "http://jabber.org/protocol/rosterx")
	h.send(fmt.Sprintf(`<presence xmlns='jabber:component:accept' from='%s' to='%s'><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://gajim.org' ver='abc='/></presence>`, full, domain))
	h.expect("gateway presence", isPresence("", domain)) // the presence went through dispatch
	nw.emit(t, legacy.Contact{Chat: "cy", Name: "Cy"})
	q := h.expect("disco#info with the caps node", func(e *stanza.Element) bool {
		q := e.Child("http://jabber.org/protocol/disco#info", "query")
		return e.Local == "iq" && e.To() == full && q != nil
	})
	if n := q.Child("http://jabber.org/protocol/disco#info", "query").Attr("node"); n != "https://gajim.org#abc=" {
		t.Errorf("disco node = %q", n)
	}
	m := h.expect("suggestion to the gajim resource", func(e *stanza.Element) bool {
		return e.Local == "message" && e.To() == full && e.Child("http://jabber.org/protocol/rosterx", "x") != nil
	})
	want := fmt.Sprintf(`<message xmlns='jabber:component:accept' id='%[3]s' from='%[1]s' to='%[2]s'><x xmlns='http://jabber.org/protocol/rosterx'><item action='add' jid='cy@%[1]s' name='Cy'><group>Echo</group></item></x></message>`, domain, full, m.ID())
	if !strings.HasPrefix(m.ID(), "rx-") {
		t.Errorf("suggestion without an id of its own: %s", m)
	}
	if m.String() != want {
		t.Errorf("suggestion:\n got %s\nwant %s", m, want)
	}
	// Once offline, the resource is forgotten: the next contact is asked
	// with a subscribe.
	h.send(fmt.Sprintf(`<presence xmlns='jabber:component:accept' type='unavailable' from='%s' to='%s'/>`, full, domain))
	h.send(fmt.Sprintf(`<iq xmlns='jabber:component:accept' type='get' id='sync' from='%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>`, full, domain))
	h.expect("ping answer", reply("sync"))
	nw.emit(t, legacy.Contact{Chat: "dee", Name: "Dee"})
	p := h.expect("subscribe from dee", isPresence("subscribe", "dee@"+domain))
	if p.ChildText("http://jabber.org/protocol/nick", "nick") != "Dee" {
		t.Errorf("subscribe = %s", p)
	}
}

// TestIQGrantsNested: Prosody's mod_privilege (Debian's prosody-modules)
// nests the second <namespace/> inside the first; both grants count.
func TestIQGrantsNested(t *testing.T) {
	perm := stanza.MustParse(`<perm xmlns='urn:xmpp:privilege:2' access='iq'>` +
		`<namespace ns='http://jabber.org/protocol/pubsub' type='both'>` +
		`<namespace ns='http://jabber.org/protocol/pubsub#owner' type='set'/></namespace></perm>`)
	got := bridges.IQGrants(perm)
	want := map[string]string{"http://jabber.org/protocol/pubsub": "both", "http://jabber.org/protocol/pubsub#owner": "set"}
	if !maps.Equal(got, want) {
		t.Errorf("IQGrants = %v, want %v", got, want)
	}
}

// A legacy group is a group contact, named by its title (until groups are
// rooms): asked into the roster when reported, and again when the roster
// is populated after a registration.
func TestGroupsAreRosterContacts(t *testing.T) {
	n := newContactsNetwork(legacy.Contact{Chat: "friends", Name: "Friends", Group: true}, legacy.Contact{Chat: "ann", Name: "Ann"})
	h := newHarness(t, n)
	h.register(alice)
	h.expect("subscribe from ann", isPresence("subscribe", "ann@"+domain))
	g := h.expect("subscribe from the group", isPresence("subscribe", "friends@"+domain))
	if nick := g.Child("http://jabber.org/protocol/nick", "nick"); nick == nil || nick.Text() != "Friends" {
		t.Errorf("group's subscription request = %s, want the nick Friends", g)
	}
	h.waitLog("roster requests recorded")
	populated := strings.Count(h.log.String(), "msg=\"roster population\"")
	h.register(alice) // population again, from the stored contacts: the group is one of them
	deadline := time.Now().Add(wait)
	for strings.Count(h.log.String(), "msg=\"roster population\"") == populated {
		if time.Now().After(deadline) {
			t.Fatal("no population after the registration again")
		}
		time.Sleep(5 * time.Millisecond)
	}
	count := func(from string) (n int) {
		for _, st := range h.srv.Received() {
			if st.Local == "presence" && st.Type() == "subscribe" && st.From() == from {
				n++
			}
		}
		return n
	}
	if a, g := count("ann@"+domain), count("friends@"+domain); a != g {
		t.Errorf("subscription requests: ann %d, the group %d; want the same", a, g)
	}
}

// presenceNet is contactsNetwork with contact presence.
type presenceNet struct{ *contactsNetwork }

func (n presenceNet) Info() legacy.Info {
	i := n.contactsNetwork.Info()
	i.Caps.Presence = true
	return i
}

// A contact going away with a reason ("blocked your bot") keeps it in the
// unavailable presence; a contact the user did not subscribe to (a group,
// a request not answered) sends her no presence.
func TestUnavailableContactKeepsItsStatus(t *testing.T) {
	n := presenceNet{newContactsNetwork(legacy.Contact{Chat: "ann", Name: "Ann"}, legacy.Contact{Chat: "grp", Name: "Group", Group: true})}
	h := newHarness(t, n)
	h.register(alice)
	h.expect("subscribe from ann", isPresence("subscribe", "ann@"+domain))
	h.send(fmt.Sprintf(`<presence xmlns='jabber:component:accept' type='subscribe' from='%s' to='ann@%s'/>`, alice, domain))
	h.expect("subscribed", isPresence("subscribed", "ann@"+domain))
	n.emit(t, legacy.Presence{Chat: "grp", Available: true})
	n.emit(t, legacy.Presence{Chat: "ann", Status: "blocked your bot"})
	p := h.expect("unavailable", isPresence("unavailable", "ann@"+domain))
	if p.ChildText("", "status") != "blocked your bot" || p.To() != alice {
		t.Errorf("presence = %s", p)
	}
	for _, st := range h.srv.Received() {
		if st.Local == "presence" && st.From() == "grp@"+domain && st.Type() != "subscribe" {
			t.Errorf("presence from a group the user did not subscribe to: %s", st)
		}
	}
	// The contact record keeps it: after a restart (the adapter says
	// nothing new) the contact is still unavailable, with the reason.
	probe := fmt.Sprintf(`<presence xmlns='jabber:component:accept' type='probe' from='%s' to='ann@%s'/>`, alice, domain)
	restartAndProbe := func() *stanza.Element {
		h.stop()
		h.start(n)
		seen := h.markSeen()
		h.send(probe)
		return h.expectNew(seen, "ann's presence", func(st *stanza.Element) bool {
			return st.Local == "presence" && st.From() == "ann@"+domain && st.Type() != "subscribe"
		})
	}
	if p := restartAndProbe(); p.Type() != "unavailable" || p.ChildText("", "status") != "blocked your bot" {
		t.Errorf("after a restart: %s, want unavailable with the reason", p)
	}
	// Available again (unblocked): that is kept too.
	n.emit(t, legacy.Presence{Chat: "ann", Available: true})
	h.expect("available", func(st *stanza.Element) bool {
		return isPresence("", "ann@"+domain)(st) && st.Type() == ""
	})
	if p := restartAndProbe(); p.Type() != "" || p.ChildText("", "status") != "" {
		t.Errorf("after unblocking and a restart: %s, want available", p)
	}
}

// With privileged roster sets, unregistering takes the legacy contacts
// the gateway wrote out of the user's roster; the gateway's item stays.
func TestUnregisterRemovesPrivilegedRosterItems(t *testing.T) {
	h := newHarness(t, newContactsNetwork(twoContacts...))
	roster := startFakeRoster(h, true)
	h.send(advertisement("urn:xmpp:privilege:2"))
	h.waitLog(`namespace=urn:xmpp:privilege:2 roster=both`)
	h.register(alice)
	h.waitLog(`method=xep0356 namespace=urn:xmpp:privilege:2`)
	h.iq(alice+"/r", domain, "set", `<query xmlns='jabber:iq:register'><remove/></query>`)
	deadline := time.Now().Add(wait)
	for {
		roster.mu.Lock()
		_, ann := roster.items["ann@"+domain]
		_, ben := roster.items["ben@"+domain]
		_, gw := roster.items[domain]
		roster.mu.Unlock()
		if !ann && !ben {
			if !gw {
				t.Errorf("the gateway's own item was removed")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("roster items left after unregistering: ann %v, ben %v", ann, ben)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
