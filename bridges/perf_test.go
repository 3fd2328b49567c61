package bridges_test

// Behaviour of the fast paths of issue 8 (group commit, in-memory queue
// tails, seen marks instead of store reads, ping/disco without the shard
// hop): they must not change what the gateway does.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/echo"
)

// count returns how many stanzas the server received that match.
func (h *harness) count(match func(*stanza.Element) bool) int {
	n := 0
	for _, e := range h.srv.Received() {
		if match(e) {
			n++
		}
	}
	return n
}

func withBody(body string) func(*stanza.Element) bool {
	return func(e *stanza.Element) bool { return e.Local == "message" && e.ChildText("", "body") == body }
}

// waitEmpty waits until the user's queue of kind is empty.
func (h *harness) waitEmpty(kind store.QueueKind) {
	h.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		n, err := h.st.Len(context.Background(), store.Queue{Bridge: domain, JID: alice, Kind: kind})
		if err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s queue still has %d entries (%v)", kind, n, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOriginIDResendIsDroppedOnce(t *testing.T) {
	h := newHarness(t, nil)
	h.register(alice)
	msg := func(id, oid, body string) {
		h.send(fmt.Sprintf(`<message xmlns='jabber:component:accept' type='chat' id='%s' from='%s/p' to='hello@%s'><body>%s</body><origin-id xmlns='urn:xmpp:sid:0' id='%s'/></message>`,
			id, alice, domain, body, oid))
	}
	msg("a1", "oid-1", "first")
	h.expect("echo of first", withBody("first"))
	msg("a2", "oid-1", "first") // the client's resend
	msg("a3", "oid-2", "second")
	h.expect("echo of second", withBody("second"))
	if n := h.count(withBody("first")); n != 1 {
		t.Errorf("the resend was sent again: %d echoes of it", n)
	}
	h.waitEmpty(store.Outbox)
	// Across a restart (nothing in memory), the resend is still known.
	handshakes := h.srv.Handshakes()
	h.stop()
	h.start(nil)
	if err := h.srv.WaitHandshakes(handshakes+1, wait); err != nil {
		t.Fatal(err)
	}
	msg("a4", "oid-1", "first")
	msg("a5", "oid-3", "third")
	h.expect("echo of third", withBody("third"))
	if n := h.count(withBody("first")); n != 1 {
		t.Errorf("the resend after a restart was sent again: %d echoes of it", n)
	}
	h.waitEmpty(store.Outbox)
}

// sinkNet is the echo network that hands the test the sink of the
// session it opens.
type sinkNet struct {
	*echo.Network
	sinks chan legacy.Sink
}

func (n *sinkNet) Open(ctx context.Context, acct legacy.Account, sink legacy.Sink) (legacy.Session, error) {
	select {
	case n.sinks <- sink:
	default:
	}
	return n.Network.Open(ctx, acct, sink)
}

func newSinkNet(t *testing.T) *sinkNet {
	en, err := echo.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &sinkNet{Network: en, sinks: make(chan legacy.Sink, 4)}
}

func (n *sinkNet) sink(t *testing.T) legacy.Sink {
	t.Helper()
	select {
	case s := <-n.sinks:
		return s
	case <-time.After(wait):
		t.Fatal("no legacy session opened")
		return nil
	}
}

func TestReplayedLegacyEventIsDeliveredOnce(t *testing.T) {
	net := newSinkNet(t)
	h := newHarness(t, net)
	h.register(alice)
	sink := net.sink(t)
	emit := func(s legacy.Sink, id, text string) {
		t.Helper()
		if err := s.Emit(context.Background(), legacy.Incoming{ID: legacy.MessageID(id), Chat: "hello", Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	emit(sink, "L1", "once")
	first := h.expect("first delivery", withBody("once"))
	h.waitEmpty(store.Inbox)
	emit(sink, "L1", "once") // the adapter replays it (same legacy id)
	emit(sink, "L2", "fence")
	h.expect("the next message", withBody("fence"))
	// A replay emitted back to back with the original, in one batch.
	emit(sink, "L3", "twice")
	emit(sink, "L3", "twice")
	emit(sink, "L4", "fence 2")
	h.expect("the next message", withBody("fence 2"))
	h.waitEmpty(store.Inbox)
	for body, want := range map[string]int{"once": 1, "twice": 1} {
		if n := h.count(withBody(body)); n != want {
			t.Errorf("%q delivered %d times, want %d", body, n, want)
		}
	}
	// After a restart (memory empty) the replay is still recognised.
	h.stop()
	h.start(net)
	sink = net.sink(t)
	emit(sink, "L1", "once")
	emit(sink, "L5", "fence 3")
	again := h.expect("the next message", withBody("fence 3"))
	if n := h.count(withBody("once")); n != 1 {
		t.Errorf("replay after restart delivered: %d deliveries", n)
	}
	if again.ID() == first.ID() {
		t.Errorf("different messages share the id %q", again.ID())
	}
}

func TestPingAndDiscoToTheDomain(t *testing.T) {
	h := newHarness(t, nil)
	for _, from := range []string{alice + "/r", "localhost", "bob@example.net"} {
		r := h.iq(from, domain, "get", `<ping xmlns='urn:xmpp:ping'/>`)
		if r.Type() != "result" || r.From() != domain || r.To() != from || len(r.Children()) != 0 {
			t.Errorf("ping from %s: %s", from, r)
		}
		r = h.iq(from, domain, "get", `<query xmlns='http://jabber.org/protocol/disco#info'/>`)
		q := r.Child("http://jabber.org/protocol/disco#info", "query")
		if r.Type() != "result" || q == nil || q.Child("http://jabber.org/protocol/disco#info", "identity") == nil {
			t.Errorf("disco#info from %s: %s", from, r)
		}
	}
	// The same request twice is answered with the same content (the
	// shared reply is not changed by sending it).
	a := h.iq(alice+"/r", domain, "get", `<query xmlns='http://jabber.org/protocol/disco#info'/>`)
	b := h.iq(alice+"/r", domain, "get", `<query xmlns='http://jabber.org/protocol/disco#info'/>`)
	if a.Child("", "query").String() != b.Child("", "query").String() {
		t.Errorf("disco#info answers differ:\n%s\n%s", a, b)
	}
	// A node is not the fast path: unknown nodes are item-not-found.
	r := h.iq(alice+"/r", domain, "get", `<query xmlns='http://jabber.org/protocol/disco#info' node='nope'/>`)
	if r.Type() != "error" || errCond(r) != stanza.ItemNotFound {
		t.Errorf("disco#info on an unknown node: %s", r)
	}
	// Two payloads: bad-request, as before.
	r = h.iq(alice+"/r", domain, "get", `<ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/>`)
	if r.Type() != "error" || errCond(r) != stanza.BadRequest {
		t.Errorf("two payloads: %s", r)
	}
	// A from in the gateway's own domain is dropped, never answered.
	h.send(`<iq xmlns='jabber:component:accept' type='get' id='own' from='x@` + domain + `' to='` + domain + `'><ping xmlns='urn:xmpp:ping'/></iq>`)
	h.iq(alice+"/r", domain, "get", `<ping xmlns='urn:xmpp:ping'/>`) // a fence
	for _, e := range h.srv.Received() {
		if e.ID() == "own" {
			t.Errorf("a ping from the gateway's own domain was answered: %s", e)
		}
	}
	if strings.Contains(h.log.String(), "panic") {
		t.Errorf("panic in the log:\n%s", h.log)
	}
}

// A resend of a message already sent, with a receipt request (the client
// lost the receipt), gets the receipt again instead of nothing; the
// message is not sent again.
func TestResendOfASentMessageGetsItsReceipt(t *testing.T) {
	h := newHarness(t, nil)
	h.register(alice)
	send := func() {
		h.send(fmt.Sprintf(`<message xmlns='jabber:component:accept' type='chat' id='r1' from='%s/p' to='hello@%s'><body>once</body><request xmlns='urn:xmpp:receipts'/><origin-id xmlns='urn:xmpp:sid:0' id='r1'/></message>`, alice, domain))
	}
	receipt := func(e *stanza.Element) bool {
		r := e.Child("urn:xmpp:receipts", "received")
		return e.Local == "message" && r != nil && r.Attr("id") == "r1" && e.To() == alice+"/p"
	}
	send()
	h.expect("echo", withBody("once"))
	h.expect("receipt", receipt)
	h.waitEmpty(store.Outbox)
	seen := h.markSeen()
	send() // the receipt was lost on the way: the client sends again
	h.expectNew(seen, "the receipt again", receipt)
	if n := h.count(withBody("once")); n != 1 {
		t.Errorf("the resend was sent again: %d echoes", n)
	}
}

// A resend of a message sent by a version whose resend marks held the
// origin-id alone (docs/upgrading.md) is not recognised: it is sent once
// more, with its receipt — a duplicate, never a loss.
func TestResendOfAMessageSentBeforeTheUpgradeIsSentAgain(t *testing.T) {
	h := newHarness(t, nil)
	h.register(alice)
	ctx := context.Background()
	if _, err := h.st.MarkSeen(ctx, domain, alice, "out-origin:old1", 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := h.st.PutMapping(ctx, domain, alice, "s2l", "old1", "L-old1", time.Hour); err != nil {
		t.Fatal(err)
	}
	h.send(fmt.Sprintf(`<message xmlns='jabber:component:accept' type='chat' id='old1' from='%s/p' to='hello@%s'><body>sent before</body><request xmlns='urn:xmpp:receipts'/><origin-id xmlns='urn:xmpp:sid:0' id='old1'/></message>`, alice, domain))
	h.expect("its receipt", func(e *stanza.Element) bool {
		r := e.Child("urn:xmpp:receipts", "received")
		return r != nil && r.Attr("id") == "old1"
	})
	h.expect("its echo", withBody("sent before"))
}

// Only the same message to the same contact is a resend: a message that
// reuses an origin-id for another contact or another text is sent, not
// dropped with the first one's receipt.
func TestOriginIDReusedForAnotherMessageIsSent(t *testing.T) {
	h := newHarness(t, nil)
	h.register(alice)
	send := func(to, body string) {
		h.send(fmt.Sprintf(`<message xmlns='jabber:component:accept' type='chat' id='q-%s' from='%s/p' to='%s@%s'><body>%s</body><request xmlns='urn:xmpp:receipts'/><origin-id xmlns='urn:xmpp:sid:0' id='same'/></message>`, body, alice, to, domain, body))
	}
	send("hello", "first")
	h.expect("echo of first", withBody("first"))
	send("another", "second") // another contact
	h.expect("echo of second", withBody("second"))
	send("hello", "third") // the same contact, another text
	h.expect("echo of third", withBody("third"))
	h.waitEmpty(store.Outbox)
	seen := h.markSeen()
	send("hello", "third") // a resend of the third: dropped, receipt again
	h.expectNew(seen, "the receipt of the third again", func(e *stanza.Element) bool {
		r := e.Child("urn:xmpp:receipts", "received")
		return r != nil && r.Attr("id") == "q-third"
	})
	if n := h.count(withBody("third")); n != 1 {
		t.Errorf("the resend of the third was sent again: %d echoes", n)
	}
}
