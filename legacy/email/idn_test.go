package email

import (
	"context"
	"slices"
	"testing"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/email/emailtest"
)

// An internationalised domain has one form in contact ids, the lower-cased
// U-label, whichever way the address came: typed with the A-label or in
// capitals, or in the From of incoming mail. Mail to it goes out with the
// A-label to a server without SMTPUTF8, and the answer from the A-label
// is the same contact, not a second one.
func TestIDNOneContact(t *testing.T) {
	n := testNetwork(t)
	for _, in := range []string{"greta@xn--bcher-kva.de", "Greta@BÜCHER.de", "greta@Xn--Bcher-Kva.De", "mailto:greta@bücher.de"} {
		if got, err := n.Resolve(context.Background(), in); err != nil || got != "greta@bücher.de" {
			t.Errorf("Resolve(%q) = %q, %v; want greta@bücher.de", in, got, err)
		}
	}

	d := emailtest.StartDovecot(t, testUser)
	sm := startSMTP(t) // no SMTPUTF8
	r := runSession(t, n, fields(d.Addr, sm.addr), nil)
	r.waitState(t, 0)
	waitStatus(t, r.rec, legacy.StatusConnected)
	const chat = legacy.ChatID("greta@bücher.de") // the JID greta\40bücher.de@…
	if _, err := r.sess.Send(context.Background(), &legacy.Message{Chat: chat, Text: "Hallo Greta", Key: "idn1"}); err != nil {
		t.Fatal(err)
	}
	if rcpts, _ := lastSent(t, sm); !slices.Equal(rcpts, []string{"greta@xn--bcher-kva.de"}) {
		t.Errorf("RCPT %v, want the A-label", rcpts)
	}
	d.Deliver(t, "From: Greta <greta@xn--bcher-kva.de>\nReply-To: greta@XN--BCHER-KVA.DE\nTo: alice@example.com\nSubject: Re: Hallo Greta\n"+
		"Message-ID: <g1@xn--bcher-kva.de>\n\nHallo!\n")
	in := r.waitIncoming(t, 1)
	if in[0].Chat != chat {
		t.Errorf("the answer comes from %q, want the contact %q", in[0].Chat, chat)
	}
	for _, ev := range r.rec.Events() {
		if c, ok := ev.(legacy.Contact); ok && c.Chat != chat {
			t.Errorf("a second contact %q", c.Chat)
		}
	}
	if in[0].Text != "Hallo!" {
		t.Errorf("text %q: a Reply-To naming the sender in another form is shown", in[0].Text)
	}
}
