package bridges_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/bolt"
	"github.com/jabbergate/jabbergate/bridges/vault"
	"github.com/jabbergate/jabbergate/component"
	"github.com/jabbergate/jabbergate/component/componenttest"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/echo"
)

const (
	domain = "echo.localhost"
	alice  = "alice@localhost"
	wait   = 10 * time.Second
)

// harness runs a bridge against the fake component server.
type harness struct {
	t      *testing.T
	srv    *componenttest.Server
	st     store.Store
	path   string
	cancel context.CancelFunc
	done   chan error
	ids    int
	log    *syncBuffer
	// tune, when set, adjusts the bridge options before each start.
	tune func(*bridges.Options)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newHarness(t *testing.T, network legacy.Network) *harness {
	t.Helper()
	return newTunedHarness(t, network, nil)
}

// newTunedHarness is newHarness with tune applied to the bridge options.
func newTunedHarness(t *testing.T, network legacy.Network, tune func(*bridges.Options)) *harness {
	t.Helper()
	h := &harness{t: t, srv: componenttest.NewServer(t, domain, "s3cret"), path: filepath.Join(t.TempDir(), "jg.db"), log: &syncBuffer{}, tune: tune}
	h.start(network)
	t.Cleanup(func() {
		h.stop()
		if t.Failed() {
			t.Logf("bridge log:\n%s", h.log.String())
		}
	})
	return h
}

func (h *harness) start(network legacy.Network) {
	h.t.Helper()
	st, err := bolt.Open(h.path)
	if err != nil {
		h.t.Fatal(err)
	}
	h.st = st
	v, _ := vault.New(map[int][]byte{1: bytes.Repeat([]byte{7}, 32)})
	if network == nil {
		network, _ = echo.New(nil)
	}
	opts := bridges.Options{
		Domain:         domain,
		Network:        network,
		Store:          st,
		Vault:          v,
		AllowedDomains: []string{"localhost"},
		Logger:         slog.New(slog.NewTextHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		RetryMin:       20 * time.Millisecond,
		RetryMax:       100 * time.Millisecond,
		Link: component.Config{
			Addr: h.srv.Addr(), Secret: "s3cret",
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
			PingInterval: time.Second, PingTimeout: 500 * time.Millisecond,
		},
	}
	if h.tune != nil {
		h.tune(&opts)
	}
	b, err := bridges.New(opts)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	before := h.srv.Handshakes() // a restart waits for its own handshake
	go func() { h.done <- b.Run(ctx) }()
	if err := h.srv.WaitHandshakes(before+1, wait); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	select {
	case <-h.done:
	case <-time.After(wait):
		h.t.Errorf("bridge did not stop")
	}
	h.cancel = nil
	h.st.Close()
}

func (h *harness) id() string {
	h.ids++
	return fmt.Sprintf("t%d", h.ids)
}

// send injects a stanza written as XML with %s placeholders already filled.
func (h *harness) send(raw string) {
	h.t.Helper()
	if err := h.srv.Inject(stanza.MustParse(raw)); err != nil {
		h.t.Fatal(err)
	}
}

// expect waits for a stanza the component writes that matches.
func (h *harness) expect(what string, match func(*stanza.Element) bool) *stanza.Element {
	h.t.Helper()
	el, err := h.srv.WaitFor(wait, match)
	if err != nil {
		var got []string
		for _, r := range h.srv.Received() {
			got = append(got, r.String())
		}
		h.t.Fatalf("no %s: %v\nreceived:\n%s", what, err, strings.Join(got, "\n"))
	}
	return el
}

func reply(id string) func(*stanza.Element) bool {
	return func(e *stanza.Element) bool { return e.ID() == id && (e.Type() == "result" || e.Type() == "error") }
}

func errCond(e *stanza.Element) stanza.Condition {
	if pe := stanza.ParseError(e); pe != nil {
		return pe.Condition
	}
	return ""
}

func (h *harness) iq(from, to, typ, payload string) *stanza.Element {
	h.t.Helper()
	id := h.id()
	h.send(fmt.Sprintf(`<iq xmlns='jabber:component:accept' type='%s' id='%s' from='%s' to='%s'>%s</iq>`, typ, id, from, to, payload))
	return h.expect("reply to iq "+id, reply(id))
}

func (h *harness) register(user string) {
	h.t.Helper()
	r := h.iq(user+"/res", domain, "set", `<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>jabber:iq:register</value></field></x></query>`)
	if r.Type() != "result" {
		h.t.Fatalf("register: %s", r)
	}
}

func TestDisco(t *testing.T) {
	h := newHarness(t, nil)
	r := h.iq(alice+"/res", domain, "get", `<query xmlns='http://jabber.org/protocol/disco#info'/>`)
	q := r.Child("http://jabber.org/protocol/disco#info", "query")
	id := q.Child("", "identity")
	if r.Type() != "result" || id.Attr("category") != "gateway" || id.Attr("type") != "xmpp" {
		t.Fatalf("disco#info = %s", r)
	}
	want := map[string]bool{"http://jabber.org/protocol/disco#info": false, "jabber:iq:register": false, "jabber:iq:gateway": false, `jid\20escaping`: false, "urn:xmpp:ping": false, "jabber:iq:version": false}
	for _, f := range q.Children() {
		if f.Local == "feature" {
			if _, ok := want[f.Attr("var")]; ok {
				want[f.Attr("var")] = true
			}
		}
	}
	for f, ok := range want {
		if !ok {
			t.Errorf("feature %s missing: %s", f, r)
		}
	}
	// On a contact: a client identity, never a gateway or conference.
	r = h.iq(alice+"/res", "hello@"+domain, "get", `<query xmlns='http://jabber.org/protocol/disco#info'/>`)
	if ident := r.Child("", "query").Child("", "identity"); ident == nil || ident.Attr("category") != "client" {
		t.Errorf("contact disco#info = %s", r)
	}
	// An unknown node is item-not-found; disco#items is empty.
	if r := h.iq(alice, domain, "get", `<query xmlns='http://jabber.org/protocol/disco#info' node='x'/>`); errCond(r) != stanza.ItemNotFound {
		t.Errorf("unknown node = %s", r)
	}
	if r := h.iq(alice, domain, "get", `<query xmlns='http://jabber.org/protocol/disco#items'/>`); r.Type() != "result" || len(r.Child("", "query").Children()) != 0 {
		t.Errorf("disco#items = %s", r)
	}
	if r := h.iq(alice, domain, "get", `<query xmlns='jabber:iq:version'/>`); r.Child("", "query").ChildText("", "name") != "Jabbergate" {
		t.Errorf("version = %s", r)
	}
	// A contact answers a ping as a message to it would go: not before
	// registering, never for an address the network refuses.
	if r := h.iq(alice, "hello@"+domain, "get", `<ping xmlns='urn:xmpp:ping'/>`); errCond(r) != stanza.RegistrationRequired {
		t.Errorf("ping contact unregistered = %s", r)
	}
	h.register(alice)
	if r := h.iq(alice, "hello@"+domain, "get", `<ping xmlns='urn:xmpp:ping'/>`); r.Type() != "result" {
		t.Errorf("ping contact = %s", r)
	}
	for _, q := range []string{`<ping xmlns='urn:xmpp:ping'/>`, `<vCard xmlns='vcard-temp'/>`} {
		if r := h.iq(alice, `two\20words@`+domain, "get", q); errCond(r) != stanza.JIDMalformed {
			t.Errorf("%s to an invalid address = %s", q, r)
		}
	}
}

func TestUnknownIQAndErrorsAnsweredOnce(t *testing.T) {
	h := newHarness(t, nil)
	for _, to := range []string{domain, "hello@" + domain} {
		for _, typ := range []string{"get", "set"} {
			r := h.iq(alice+"/r", to, typ, `<query xmlns='urn:example:unknown'/>`)
			if errCond(r) != stanza.ServiceUnavailable || r.To() != alice+"/r" || r.From() != to {
				t.Errorf("unknown %s to %s = %s", typ, to, r)
			}
		}
	}
	if r := h.iq(alice, domain, "get", `<a xmlns='x'/><b xmlns='y'/>`); errCond(r) != stanza.BadRequest {
		t.Errorf("two payloads = %s", r)
	}
	// An invalid type, or none (RFC 6120 §8.2.3), and a presence of an
	// invalid type (RFC 6121 §4.7.1): bad-request.
	if r := h.iq(alice, domain, "bogus", `<ping xmlns='urn:xmpp:ping'/>`); errCond(r) != stanza.BadRequest {
		t.Errorf("iq of type bogus = %s", r)
	}
	h.send(`<iq xmlns='jabber:component:accept' id='nt1' from='` + alice + `' to='` + domain + `'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if r := h.expect("reply to an iq without type", reply("nt1")); errCond(r) != stanza.BadRequest {
		t.Errorf("iq without type = %s", r)
	}
	for i, to := range []string{domain, "hello@" + domain} {
		id := fmt.Sprintf("pt%d", i)
		h.send(`<presence xmlns='jabber:component:accept' type='bogus' id='` + id + `' from='` + alice + `/r' to='` + to + `'/>`)
		if r := h.expect("reply to a presence of type bogus", reply(id)); r.Local != "presence" || errCond(r) != stanza.BadRequest {
			t.Errorf("presence of type bogus to %s = %s", to, r)
		}
	}
	// Results and errors are never answered.
	before := len(h.srv.Received())
	h.send(`<iq xmlns='jabber:component:accept' type='result' id='zz1' from='` + alice + `' to='` + domain + `'/>`)
	h.send(`<iq xmlns='jabber:component:accept' type='error' id='zz2' from='` + alice + `' to='` + domain + `'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`)
	h.send(`<message xmlns='jabber:component:accept' type='error' id='zz3' from='` + alice + `' to='hello@` + domain + `'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`)
	// A ping after them proves they were processed (per-sender order).
	h.iq(alice, domain, "get", `<ping xmlns='urn:xmpp:ping'/>`)
	for _, r := range h.srv.Received()[before:] {
		if strings.HasPrefix(r.ID(), "zz") {
			t.Errorf("answered a result/error: %s", r)
		}
	}
}

func TestRegistrationFlow(t *testing.T) {
	h := newHarness(t, nil)
	r := h.iq(alice+"/res", domain, "get", `<query xmlns='jabber:iq:register'/>`)
	q := r.Child("jabber:iq:register", "query")
	if q == nil || q.Child("", "registered") != nil || q.Child("jabber:x:data", "x") == nil {
		t.Fatalf("register get = %s", r)
	}
	if ft := q.Child("jabber:x:data", "x").Child("", "field"); ft.Attr("var") != "FORM_TYPE" || ft.ChildText("", "value") != "jabber:iq:register" {
		t.Errorf("form lacks FORM_TYPE: %s", r)
	}
	// Other domains may not register.
	if r := h.iq("mallory@evil.example/x", domain, "set", `<query xmlns='jabber:iq:register'/>`); errCond(r) != stanza.Forbidden {
		t.Errorf("foreign register = %s", r)
	}
	// Removing before registering.
	if r := h.iq(alice, domain, "set", `<query xmlns='jabber:iq:register'><remove/></query>`); errCond(r) != stanza.RegistrationRequired {
		t.Errorf("remove unregistered = %s", r)
	}
	h.register(alice)
	sub := h.expect("subscribe from the gateway", func(e *stanza.Element) bool {
		return e.Local == "presence" && e.Type() == "subscribe" && e.From() == domain && e.To() == alice
	})
	_ = sub
	r = h.iq(alice+"/res", domain, "get", `<query xmlns='jabber:iq:register'/>`)
	if r.Child("", "query").Child("", "registered") == nil {
		t.Errorf("register get after registering lacks <registered/>: %s", r)
	}
	// The user approves and subscribes back.
	h.send(`<presence xmlns='jabber:component:accept' type='subscribed' from='` + alice + `' to='` + domain + `'/>`)
	h.send(`<presence xmlns='jabber:component:accept' type='subscribe' from='` + alice + `' to='` + domain + `'/>`)
	h.expect("subscribed from the gateway", func(e *stanza.Element) bool {
		return e.Local == "presence" && e.Type() == "subscribed" && e.From() == domain
	})
	h.expect("gateway presence", func(e *stanza.Element) bool {
		return e.Local == "presence" && e.Type() == "" && e.From() == domain && e.To() == alice
	})
	// A contact, stored once it wrote back.
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='c1' from='` + alice + `/res' to='hello@` + domain + `'><body>hi</body></message>`)
	h.expect("echo from the contact", func(e *stanza.Element) bool {
		return e.Local == "message" && e.From() == "hello@"+domain && e.ChildText("", "body") == "hi"
	})
	// Remove: result, then unsubscribe + unsubscribed + unavailable from
	// the gateway and from every contact (unsubscribe cancels a contact's
	// subscription request the user never answered: the server would
	// otherwise show it again at every login).
	r = h.iq(alice+"/res", domain, "set", `<query xmlns='jabber:iq:register'><remove/></query>`)
	if r.Type() != "result" {
		t.Fatalf("remove = %s", r)
	}
	for _, from := range []string{domain, "hello@" + domain} {
		for _, typ := range []string{"unsubscribe", "unsubscribed", "unavailable"} {
			h.expect(typ+" from "+from+" after remove", func(e *stanza.Element) bool {
				return e.Local == "presence" && e.Type() == typ && e.From() == from && e.To() == alice
			})
		}
	}
	if acct, err := h.st.GetAccount(context.Background(), domain, alice); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("account still stored after remove: %+v %v", acct, err)
	}
}

// fieldsNetwork is echo with a required secret field, to test forms.
type fieldsNetwork struct{ *echo.Network }

func (f fieldsNetwork) Info() legacy.Info {
	i := f.Network.Info()
	i.Fields = []legacy.Field{
		{Var: "username", Label: "User", Required: true},
		{Var: "password", Label: "Password", Type: legacy.TextPrivate, Required: true, Secret: true},
	}
	return i
}

func (f fieldsNetwork) Register(ctx context.Context, fields map[string]string) (legacy.AccountID, error) {
	if fields["password"] != "right" {
		return "", fmt.Errorf("bad password: %w", legacy.ErrUnauthorized)
	}
	return legacy.AccountID(fields["username"]), nil
}

func TestRegistrationFieldsAndSecrets(t *testing.T) {
	e, _ := echo.New(nil)
	h := newHarness(t, fieldsNetwork{e})
	r := h.iq(alice, domain, "get", `<query xmlns='jabber:iq:register'/>`)
	q := r.Child("", "query")
	if q.Child("jabber:iq:register", "username") == nil || q.Child("jabber:iq:register", "password") == nil {
		t.Errorf("plain fields missing: %s", r)
	}
	// Empty required field → not-acceptable naming it.
	r = h.iq(alice, domain, "set", `<query xmlns='jabber:iq:register'><username>bob</username><password/></query>`)
	if errCond(r) != stanza.NotAcceptable || !strings.Contains(stanza.ParseError(r).Text, "password") {
		t.Errorf("empty password = %s", r)
	}
	// Wrong credentials → not-authorized.
	r = h.iq(alice, domain, "set", `<query xmlns='jabber:iq:register'><username>bob</username><password>wrong</password></query>`)
	if errCond(r) != stanza.NotAuthorized {
		t.Errorf("wrong password = %s", r)
	}
	r = h.iq(alice, domain, "set", `<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'><field var='username'><value>bob</value></field><field var='password'><value>right</value></field></x></query>`)
	if r.Type() != "result" {
		t.Fatalf("register with form = %s", r)
	}
	acct, err := h.st.GetAccount(context.Background(), domain, alice)
	if err != nil || acct.LegacyID != "bob" || acct.Fields["username"] != "bob" || strings.Contains(acct.Fields["password"], "right") || acct.Fields["password"] == "" {
		t.Fatalf("stored account = %+v, %v (password must be sealed)", acct, err)
	}
	// The stored password is never echoed; an empty one keeps it.
	r = h.iq(alice, domain, "get", `<query xmlns='jabber:iq:register'/>`)
	if strings.Contains(r.String(), "right") || r.Child("", "query").ChildText("", "username") != "bob" {
		t.Errorf("register get leaks or lacks data: %s", r)
	}
	r = h.iq(alice, domain, "set", `<query xmlns='jabber:iq:register'><username>bob</username><password></password></query>`)
	if r.Type() != "result" {
		t.Errorf("re-register with empty password = %s", r)
	}
}

func TestMessagesBothWays(t *testing.T) {
	h := newHarness(t, nil)
	// Unregistered: registration-required, same id.
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='m0' from='bob@localhost/x' to='hello@` + domain + `'><body>hi</body></message>`)
	r := h.expect("error for unregistered sender", func(e *stanza.Element) bool { return e.ID() == "m0" })
	if r.Type() != "error" || errCond(r) != stanza.RegistrationRequired || r.From() != "hello@"+domain || r.To() != "bob@localhost/x" {
		t.Errorf("unregistered message = %s", r)
	}
	h.register(alice)
	// Subscribe to a contact: subscribed, then available presence.
	h.send(`<presence xmlns='jabber:component:accept' type='subscribe' from='` + alice + `' to='hello@` + domain + `'/>`)
	h.expect("subscribed", func(e *stanza.Element) bool {
		return e.Local == "presence" && e.Type() == "subscribed" && e.From() == "hello@"+domain
	})
	h.expect("contact presence", func(e *stanza.Element) bool {
		return e.Local == "presence" && e.Type() == "" && e.From() == "hello@"+domain
	})
	for i := range 5 {
		body := fmt.Sprintf("hello %d & <ünïcode> 🎉", i)
		h.send(fmt.Sprintf(`<message xmlns='jabber:component:accept' type='chat' id='m%d' from='%s/phone' to='hello@%s'><body>%s</body><request xmlns='urn:xmpp:receipts'/></message>`,
			i+1, alice, domain, strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(body)))
		echoMsg := h.expect("echo "+body, func(e *stanza.Element) bool {
			return e.Local == "message" && e.ChildText("", "body") == body
		})
		if echoMsg.From() != "hello@"+domain || echoMsg.To() != alice || echoMsg.Type() != "chat" || !strings.HasPrefix(echoMsg.ID(), "jg-") {
			t.Errorf("echo = %s", echoMsg)
		}
		if o := echoMsg.Child("urn:xmpp:sid:0", "origin-id"); o == nil || o.Attr("id") != echoMsg.ID() {
			t.Errorf("echo lacks origin-id = id: %s", echoMsg)
		}
		h.expect("receipt", func(e *stanza.Element) bool {
			rc := e.Child("urn:xmpp:receipts", "received")
			return rc != nil && rc.Attr("id") == fmt.Sprintf("m%d", i+1) && e.To() == alice+"/phone" && e.Type() == "chat" // typed: carbon-copied
		})
	}
	// An empty or blank body is refused, not passed to the network.
	for id, body := range map[string]string{"empty": "<body></body>", "blank": "<body>  \n </body>", "selfclosed": "<body/>"} {
		h.send(`<message xmlns='jabber:component:accept' type='chat' id='` + id + `' from='` + alice + `/phone' to='hello@` + domain + `'>` + body + `</message>`)
		if r := h.expect("error for an "+id+" body", func(e *stanza.Element) bool { return e.ID() == id }); r.Type() != "error" || errCond(r) != stanza.NotAcceptable {
			t.Errorf("%s body = %s", id, r)
		}
	}
	// Encrypted messages are refused with a clear error: OMEMO with its
	// fallback body, OpenPGP (XEP-0373) with or without one.
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='enc' from='` + alice + `/phone' to='hello@` + domain + `'><body>I sent you an OMEMO message</body><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>`)
	if r := h.expect("error for OMEMO", func(e *stanza.Element) bool { return e.ID() == "enc" }); errCond(r) != stanza.NotAcceptable {
		t.Errorf("encrypted = %s", r)
	}
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='ox' from='` + alice + `/phone' to='hello@` + domain + `'><openpgp xmlns='urn:xmpp:openpgp:0'>BASE64</openpgp></message>`)
	if r := h.expect("error for OpenPGP", func(e *stanza.Element) bool { return e.ID() == "ox" }); errCond(r) != stanza.NotAcceptable {
		t.Errorf("OpenPGP = %s", r)
	}
	// Queues are empty once everything was confirmed.
	for _, k := range []store.QueueKind{store.Inbox, store.Outbox} {
		deadline := time.Now().Add(wait)
		for {
			n, _ := h.st.Len(context.Background(), store.Queue{Bridge: domain, JID: alice, Kind: k})
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s queue still has %d entries", k, n)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func TestMalformedRecipient(t *testing.T) {
	h := newHarness(t, nil)
	h.register(alice)
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='bad1' from='` + alice + `/p' to='a@b@` + domain + `'><body>x</body></message>`)
	if r := h.expect("jid-malformed", func(e *stanza.Element) bool { return e.ID() == "bad1" }); errCond(r) != stanza.JIDMalformed {
		t.Errorf("malformed to = %s", r)
	}
	// A localpart that the network rejects: the echo network refuses
	// nothing but an empty name, so use a space (escaped as \20).
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='bad2' from='` + alice + `/p' to='two\20words@` + domain + `'><body>x</body></message>`)
	if r := h.expect("error for an invalid legacy address", func(e *stanza.Element) bool { return e.ID() == "bad2" }); r.Type() != "error" {
		t.Errorf("invalid address = %s", r)
	}
}

func TestChatCommands(t *testing.T) {
	h := newHarness(t, nil)
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='c1' from='` + alice + `/x' to='` + domain + `'><body>help</body></message>`)
	h.expect("help", func(e *stanza.Element) bool { return strings.Contains(e.ChildText("", "body"), "register") })
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='c2' from='` + alice + `/x' to='` + domain + `'><body>register</body></message>`)
	h.expect("registered", func(e *stanza.Element) bool { return strings.Contains(e.ChildText("", "body"), "You are registered") })
	h.expect("subscribe", func(e *stanza.Element) bool { return e.Local == "presence" && e.Type() == "subscribe" })
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='c3' from='` + alice + `/x' to='` + domain + `'><body>status</body></message>`)
	h.expect("status", func(e *stanza.Element) bool { return strings.Contains(e.ChildText("", "body"), "Registered") })
}

// flaky fails Send with a chosen error.
type flaky struct {
	*echo.Network
	mu    sync.Mutex
	fails int
	err   error
}

func (f *flaky) Open(ctx context.Context, a legacy.Account, s legacy.Sink) (legacy.Session, error) {
	inner, err := f.Network.Open(ctx, a, s)
	return &flakySession{Session: inner, f: f}, err
}

type flakySession struct {
	legacy.Session
	f *flaky
}

func (s *flakySession) Send(ctx context.Context, m *legacy.Message) (legacy.MessageID, error) {
	s.f.mu.Lock()
	if s.f.fails != 0 {
		if s.f.fails > 0 {
			s.f.fails--
		}
		s.f.mu.Unlock()
		return "", s.f.err
	}
	s.f.mu.Unlock()
	return s.Session.Send(ctx, m)
}

func TestTransientFailuresAreRetried(t *testing.T) {
	e, _ := echo.New(nil)
	f := &flaky{Network: e, fails: 3, err: fmt.Errorf("HTTP 502: %w", legacy.ErrUnavailable)}
	h := newHarness(t, f)
	h.register(alice)
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='r1' from='` + alice + `/p' to='hello@` + domain + `'><body>persist</body></message>`)
	h.expect("echo after retries", func(e *stanza.Element) bool { return e.ChildText("", "body") == "persist" })
	if !strings.Contains(h.log.String(), "will retry") {
		t.Errorf("retries not logged")
	}
}

func TestPermanentFailureBecomesStanzaError(t *testing.T) {
	e, _ := echo.New(nil)
	f := &flaky{Network: e, fails: -1, err: &legacy.CodeError{Code: "403", Text: "bot was blocked by the user", Err: legacy.ErrForbidden}}
	h := newHarness(t, f)
	h.register(alice)
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='p1' from='` + alice + `/p' to='hello@` + domain + `'><body>nope</body></message>`)
	r := h.expect("error", func(e *stanza.Element) bool { return e.ID() == "p1" })
	pe := stanza.ParseError(r)
	if r.Type() != "error" || pe.Condition != stanza.Forbidden || pe.App == nil || pe.App.Attr("code") != "403" || r.To() != alice+"/p" {
		t.Errorf("permanent failure = %s", r)
	}
}

func TestRejectionReasonReachesTheSender(t *testing.T) {
	e, _ := echo.New(nil)
	f := &flaky{Network: e, fails: -1, err: fmt.Errorf("sms: too long: %w", &legacy.ReasonError{Reason: "needs 6 SMS segments, more than the limit of 5", Err: legacy.ErrRejected})}
	h := newHarness(t, f)
	h.register(alice)
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='r1' from='` + alice + `/p' to='hello@` + domain + `'><body>long</body></message>`)
	r := h.expect("error", func(e *stanza.Element) bool { return e.ID() == "r1" })
	pe := stanza.ParseError(r)
	if pe.Condition != stanza.NotAcceptable || !strings.HasSuffix(pe.Text, ": needs 6 SMS segments, more than the limit of 5") || strings.Contains(pe.Text, "sms:") {
		t.Errorf("rejection = %s", r)
	}
}

func TestInboxSurvivesLinkLossAndRestart(t *testing.T) {
	h := newHarness(t, nil)
	h.register(alice)
	// The server stops answering: the barrier cannot complete, so the
	// echo must stay in the inbox and be delivered again after reconnect.
	h.srv.SetAnswerPings(false)
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='l1' from='` + alice + `/p' to='hello@` + domain + `'><body>keep me</body></message>`)
	first := h.expect("echo written", func(e *stanza.Element) bool { return e.ChildText("", "body") == "keep me" })
	// Stop the gateway while unconfirmed, then restart it on the same store.
	h.stop()
	h.srv.SetAnswerPings(true)
	n, err := func() (int, error) {
		s, err := bolt.Open(h.path)
		if err != nil {
			return 0, err
		}
		defer s.Close()
		return s.Len(context.Background(), store.Queue{Bridge: domain, JID: alice, Kind: store.Inbox})
	}()
	if err != nil || n != 1 {
		t.Fatalf("inbox after unconfirmed delivery = %d, %v; want 1", n, err)
	}
	h.start(nil)
	var again *stanza.Element
	deadline := time.Now().Add(wait)
	for again == nil && time.Now().Before(deadline) {
		n := 0
		for _, e := range h.srv.Received() {
			if e.ChildText("", "body") == "keep me" {
				if n++; n == 2 {
					again = e
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if again == nil {
		t.Fatalf("echo not redelivered after restart")
	}
	if again.ID() != first.ID() {
		t.Errorf("redelivered id %q differs from first %q", again.ID(), first.ID())
	}
	// Once confirmed, the inbox is empty.
	deadline = time.Now().Add(wait)
	for {
		n, _ := h.st.Len(context.Background(), store.Queue{Bridge: domain, JID: alice, Kind: store.Inbox})
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("inbox not drained: %d", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var _ = io.Discard

// failingRegistrar is echo whose Register fails with err.
type failingRegistrar struct {
	*echo.Network
	err error
}

func (f failingRegistrar) Register(ctx context.Context, fields map[string]string) (legacy.AccountID, error) {
	return "", f.err
}

// Registration errors say what the adapter has for the user, never the Go
// error chain.
func TestRegistrationErrorsSpeakPlainly(t *testing.T) {
	for _, c := range []struct {
		err       error
		cond      stanza.Condition
		want, not string
	}{
		{fmt.Errorf("telegram: getMe: %w", &legacy.ReasonError{Reason: "the token was revoked: ask @BotFather for a new one", Err: legacy.ErrUnauthorized}),
			stanza.NotAuthorized, "rejected these credentials: the token was revoked: ask @BotFather for a new one", "getMe"},
		{fmt.Errorf("telegram: getMe: 429: %w", &legacy.RateLimitError{RetryAfter: 3 * time.Second}),
			stanza.ResourceConstraint, "asked us to slow down while checking your registration; try again in 3s", "getMe"},
		{fmt.Errorf("telegram: getMe: dial tcp 127.0.0.1:1: connection refused: %w", legacy.ErrUnavailable),
			stanza.RemoteServerTimeout, "could not reach", "dial tcp"},
	} {
		e, _ := echo.New(nil)
		h := newHarness(t, failingRegistrar{e, c.err})
		r := h.iq(alice+"/res", domain, "set", `<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>jabber:iq:register</value></field></x></query>`)
		pe := stanza.ParseError(r)
		if pe.Condition != c.cond || !strings.Contains(pe.Text, c.want) || strings.Contains(pe.Text, c.not) {
			t.Errorf("%v: %s", c.err, r)
		}
	}
}
