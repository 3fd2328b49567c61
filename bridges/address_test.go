package bridges_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/component/stanza"
)

// TestContactAddressChecked: an address the network refuses, or spells
// otherwise, is refused both as a message destination and as a
// subscription, with a jid-malformed error that says why (and, for another
// spelling, which JID to use); a subscription is not approved and no
// contact is stored. Echo refuses spaces and trims/lower-cases.
func TestContactAddressChecked(t *testing.T) {
	h := newHarness(t, nil)
	h.register(alice)
	invalid, spaced := `two\20words@`+domain, `\20lead@`+domain

	h.send(`<message xmlns='jabber:component:accept' type='chat' id='m1' from='` + alice + `/phone' to='` + spaced + `'><body>hi</body></message>`)
	r := h.expect("error for m1", func(e *stanza.Element) bool { return e.ID() == "m1" && e.Type() == "error" })
	if pe := stanza.ParseError(r); pe == nil || pe.Condition != stanza.JIDMalformed || !strings.Contains(pe.Text, "lead@"+domain+";") || r.From() != spaced {
		t.Errorf("message to another spelling = %s", r)
	}

	for _, to := range []string{invalid, spaced} {
		h.send(`<presence xmlns='jabber:component:accept' type='subscribe' from='` + alice + `' to='` + to + `'/>`)
		e := h.expect("presence error from "+to, func(e *stanza.Element) bool {
			return e.Local == "presence" && e.Type() == "error" && e.From() == to && e.To() == alice
		})
		if pe := stanza.ParseError(e); pe == nil || pe.Condition != stanza.JIDMalformed || pe.Text == "" || strings.Contains(pe.Text, "legacy:") {
			t.Errorf("subscription error from %s = %s", to, e)
		} else if to == invalid && !strings.HasSuffix(pe.Text, "contains spaces") {
			t.Errorf("the error does not end with the network's reason: %q", pe.Text)
		}
		h.expect("unsubscribed from "+to, func(e *stanza.Element) bool {
			return e.Local == "presence" && e.Type() == "unsubscribed" && e.From() == to && e.To() == alice
		})
	}
	time.Sleep(100 * time.Millisecond)
	for _, r := range h.srv.Received() {
		if r.Local == "presence" && (r.Type() == "subscribed" || r.Type() == "") && (r.From() == invalid || r.From() == spaced) {
			t.Errorf("refused address approved or shown online: %s", r)
		}
	}
	for _, lp := range []string{`two\20words`, `\20lead`} {
		if c, err := h.st.GetContact(context.Background(), domain, alice, lp); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("contact %s stored: %+v, %v", lp, c, err)
		}
	}

	// The XEP-0100 prompt refuses it with the network's reason, in the
	// same words as the other paths: no Go package prefix, no sentinel.
	h.send(`<iq xmlns='jabber:component:accept' type='set' id='p1' from='` + alice + `/phone' to='` + domain + `'><query xmlns='jabber:iq:gateway'><prompt>two words</prompt></query></iq>`)
	e := h.expect("prompt error", func(e *stanza.Element) bool { return e.ID() == "p1" && e.Type() == "error" })
	if pe := stanza.ParseError(e); pe == nil || pe.Condition != stanza.NotAcceptable ||
		!strings.HasSuffix(pe.Text, "contains spaces") || strings.Contains(pe.Text, "legacy:") || strings.Contains(pe.Text, "echo:") {
		t.Errorf("prompt error = %s", e)
	}

	// The canonical spelling is approved as before.
	h.send(`<presence xmlns='jabber:component:accept' type='subscribe' from='` + alice + `' to='lead@` + domain + `'/>`)
	h.expect("subscribed from lead", func(e *stanza.Element) bool {
		return e.Local == "presence" && e.Type() == "subscribed" && e.From() == "lead@"+domain
	})
}

// Service discovery on an address no contact can have is refused as a
// message to it is, for registered users and for anyone else; a valid
// address answers as a contact.
func TestDiscoOnImpossibleContact(t *testing.T) {
	h := newHarness(t, nil)
	h.register(alice)
	invalid := `two\20words@` + domain
	for _, who := range []string{alice, bobJID} {
		for _, ns := range []string{"http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/disco#items"} {
			r := h.iq(who+"/r", invalid, "get", `<query xmlns='`+ns+`'/>`)
			if pe := stanza.ParseError(r); r.Type() != "error" || pe.Condition != stanza.JIDMalformed || !strings.HasSuffix(pe.Text, "contains spaces") {
				t.Errorf("%s from %s = %s", ns, who, r)
			}
		}
		if r := h.iq(who+"/r", "hello@"+domain, "get", `<query xmlns='http://jabber.org/protocol/disco#info'/>`); r.Type() != "result" {
			t.Errorf("disco#info on a valid contact from %s = %s", who, r)
		}
	}
}
