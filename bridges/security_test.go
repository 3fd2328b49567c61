package bridges_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/bolt"
	"github.com/jabbergate/jabbergate/bridges/vault"
	"github.com/jabbergate/jabbergate/component"
	"github.com/jabbergate/jabbergate/component/componenttest"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy/echo"
)

func registerAs(h *harness, user, username string) *stanza.Element {
	h.t.Helper()
	return h.iq(user+"/res", domain, "set", `<query xmlns='jabber:iq:register'><username>`+username+`</username><password>right</password></query>`)
}

// TestLegacyAccountIsExclusive: a second XMPP user registering the same
// legacy account gets conflict and the first user's registration and
// session stay as they were.
func TestLegacyAccountIsExclusive(t *testing.T) {
	e, _ := echo.New(nil)
	h := newHarness(t, fieldsNetwork{e})
	const carol = "carol@localhost"
	ctx := context.Background()
	if r := registerAs(h, alice, "bob"); r.Type() != "result" {
		t.Fatalf("alice registers bob = %s", r)
	}
	r := registerAs(h, carol, "bob")
	if errCond(r) != stanza.Conflict || stanza.ParseError(r).Type != stanza.ErrCancel ||
		!strings.Contains(stanza.ParseError(r).Text, "already registered") || strings.Contains(r.String(), alice) {
		t.Fatalf("carol registers alice's legacy account = %s (want conflict naming why, not whom)", r)
	}
	if _, err := h.st.GetAccount(ctx, domain, carol); err == nil {
		t.Errorf("refused registration was stored")
	}
	if a, err := h.st.GetAccount(ctx, domain, alice); err != nil || a.LegacyID != "bob" {
		t.Errorf("first user's account = %+v, %v", a, err)
	}
	// The owner may register the same account again, another user another one.
	if r := registerAs(h, alice, "bob"); r.Type() != "result" {
		t.Errorf("alice re-registers = %s", r)
	}
	if r := registerAs(h, carol, "dave"); r.Type() != "result" {
		t.Errorf("carol registers another account = %s", r)
	}
	// Switching to a taken account is refused too.
	if r := registerAs(h, carol, "bob"); errCond(r) != stanza.Conflict {
		t.Errorf("carol switches to bob = %s", r)
	}
	// An account registered through another instance (only in the store).
	if err := h.st.PutAccount(ctx, &store.Account{Bridge: domain, JID: "zed@localhost", LegacyID: "zed", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if r := registerAs(h, carol, "zed"); errCond(r) != stanza.Conflict {
		t.Errorf("account known only to the store = %s", r)
	}
	// Once alice unregisters, the account is free.
	if r := h.iq(alice, domain, "set", `<query xmlns='jabber:iq:register'><remove/></query>`); r.Type() != "result" {
		t.Fatalf("remove = %s", r)
	}
	if r := registerAs(h, carol, "bob"); r.Type() != "result" {
		t.Errorf("carol registers the freed account = %s", r)
	}
}

// TestSharedAccountIDNotExclusive: echo gives everyone the same id (there is
// no personal account), so several users register.
func TestSharedAccountIDNotExclusive(t *testing.T) {
	h := newHarness(t, nil)
	h.register(alice)
	h.register("carol@localhost")
}

// TestForeignAndSpoofedSenders: users of domains outside allowed_domains can
// neither register nor write to contacts; a from in the gateway's own domain
// is dropped.
func TestForeignAndSpoofedSenders(t *testing.T) {
	h := newHarness(t, nil)
	h.register(alice)
	if r := h.iq("mallory@evil.example/x", domain, "set", `<query xmlns='jabber:iq:register'/>`); errCond(r) != stanza.Forbidden {
		t.Errorf("foreign register = %s", r)
	}
	id := h.id()
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='` + id + `' from='mallory@evil.example/x' to='hello@` + domain + `'><body>hi</body></message>`)
	r := h.expect("error to a foreign sender", func(e *stanza.Element) bool { return e.ID() == id })
	if errCond(r) != stanza.Forbidden || !strings.Contains(stanza.ParseError(r).Text, "evil.example") {
		t.Errorf("foreign message = %s", r)
	}
	// Service discovery stays open to the federation.
	if r := h.iq("mallory@evil.example/x", domain, "get", `<query xmlns='http://jabber.org/protocol/disco#info'/>`); r.Type() != "result" {
		t.Errorf("foreign disco = %s", r)
	}
	// A from in our own domain: dropped, no echo, no answer.
	seen := h.markSeen()
	spoof := h.id()
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='` + spoof + `' from='hello@` + domain + `' to='hello@` + domain + `'><body>loop</body></message>`)
	spoofIQ := h.id()
	h.send(`<iq xmlns='jabber:component:accept' type='get' id='` + spoofIQ + `' from='` + domain + `' to='` + domain + `'><ping xmlns='urn:xmpp:ping'/></iq>`)
	// A later stanza is answered, so the two before were handled (dropped).
	if r := h.iq(alice+"/res", domain, "get", `<ping xmlns='urn:xmpp:ping'/>`); r.Type() != "result" {
		t.Fatalf("ping = %s", r)
	}
	for _, e := range h.srv.Received() {
		if !seen[e] && (e.ID() == spoof || e.ID() == spoofIQ || strings.Contains(e.String(), "loop")) {
			t.Errorf("spoofed stanza answered: %s", e)
		}
	}
	if !strings.Contains(h.log.String(), "gateway's own domain dropped") {
		t.Errorf("no log line for the spoofed stanza")
	}
}

// TestPerUserRateLimit: past the burst a user's requests get
// resource-constraint (wait); other users are not affected; the bucket
// refills.
func TestPerUserRateLimit(t *testing.T) {
	srv := componenttest.NewServer(t, domain, "s3cret")
	st, err := bolt.Open(filepath.Join(t.TempDir(), "jg.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	v, _ := vault.New(map[int][]byte{1: bytes.Repeat([]byte{7}, 32)})
	nw, _ := echo.New(nil)
	b, err := bridges.New(bridges.Options{
		Domain: domain, Network: nw, Store: st, Vault: v,
		AllowedDomains: []string{"localhost"},
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		RateLimit:      2, RateBurst: 5,
		Link: component.Config{Addr: srv.Addr(), Secret: "s3cret", MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(wait):
			t.Errorf("bridge did not stop")
		}
	}()
	if err := srv.WaitHandshakes(1, wait); err != nil {
		t.Fatal(err)
	}
	ping := func(from, id string) *stanza.Element {
		t.Helper()
		if err := srv.Inject(stanza.MustParse(fmt.Sprintf(`<iq xmlns='jabber:component:accept' type='get' id='%s' from='%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>`, id, from, domain))); err != nil {
			t.Fatal(err)
		}
		r, err := srv.WaitFor(wait, reply(id))
		if err != nil {
			t.Fatalf("no answer to %s: %v", id, err)
		}
		return r
	}
	const n = 40
	ok, limited := 0, 0
	for i := range n {
		r := ping(alice+"/r", fmt.Sprintf("a%d", i))
		switch {
		case r.Type() == "result":
			ok++
		case errCond(r) == stanza.ResourceConstraint && stanza.ParseError(r).Type == stanza.ErrWait:
			limited++
		default:
			t.Fatalf("unexpected answer %s", r)
		}
	}
	// The burst passes; the rest passes only as fast as the bucket refills
	// (2/s), which is far below 40 answered round trips.
	if ok < 5 || limited == 0 || ok+limited != n {
		t.Errorf("ok=%d limited=%d of %d; want the burst of 5 through and the rest mostly limited", ok, limited, n)
	}
	if r := ping("carol@localhost/r", "c1"); r.Type() != "result" {
		t.Errorf("another user is limited too: %s", r)
	}
	// Server-originated stanzas (no localpart) are never limited.
	for i := range 10 {
		if r := ping("localhost", fmt.Sprintf("s%d", i)); r.Type() != "result" {
			t.Fatalf("server ping limited: %s", r)
		}
	}
	// The bucket refills: poll (bounded) until alice is answered again.
	deadline := time.Now().Add(wait)
	for i := 0; ; i++ {
		if r := ping(alice+"/r", fmt.Sprintf("late%d", i)); r.Type() == "result" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the bucket never refilled")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
