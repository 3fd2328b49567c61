package email

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/jabbergate/jabbergate/bridges/jidmap"
	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/email/emailtest"
)

// A quoted local part (RFC 5322: "john doe"@example.net) is a contact like
// any other, both ways: its id keeps the quotes (the core escapes the space
// and the quotes, \20 and \22, XEP-0106), mail from it is from it (not "a
// mail without a valid From address"), and mail to it goes to it. The
// prompt's error text uses plain quotes, not Go's \" escapes.
func TestQuotedLocalPart(t *testing.T) {
	n := testNetwork(t)
	const chat = legacy.ChatID(`"john doe"@example.net`)
	for _, in := range []string{`"John Doe"@Example.net`, `John Doe <"john doe"@example.net>`, `mailto:"john doe"@example.net`} {
		if got, err := n.Resolve(context.Background(), in); err != nil || got != chat {
			t.Errorf("Resolve(%q) = %q, %v; want %q", in, got, err, chat)
		}
	}
	if got, err := n.Resolve(context.Background(), `"john.doe"@example.net`); err != nil || got != "john.doe@example.net" {
		t.Errorf("a needlessly quoted local part: %q, %v", got, err)
	}
	j, err := jidmap.ContactJID(chat, "mail.localhost")
	if err != nil || j.String() != `\22john\20doe\22\40example.net@mail.localhost` || jidmap.ChatFromLocalpart(j.Localpart()) != chat {
		t.Errorf("JID %v, %v", j, err)
	}
	_, err = n.Resolve(context.Background(), `say "hi" to me`)
	if !isErr(err, legacy.ErrInvalidAddress) || strings.Contains(err.Error(), `\"`) || !strings.Contains(err.Error(), `"say "hi" to me" is not an email address`) {
		t.Errorf("Resolve error %v: want plain quotes", err)
	}

	d := emailtest.StartDovecot(t, testUser)
	sm := startSMTP(t)
	r := runSession(t, n, fields(d.Addr, sm.addr), nil)
	r.waitState(t, 0)
	waitStatus(t, r.rec, legacy.StatusConnected)
	d.Deliver(t, "From: \"John Doe\" <\"john doe\"@example.net>\nTo: alice@example.com\nSubject: hi\nMessage-ID: <q1@example.net>\n\nhello\n")
	in := r.waitIncoming(t, 1)
	if in[0].Chat != chat || in[0].Text != "hello" {
		t.Errorf("incoming from %q: %q; want from %q", in[0].Chat, in[0].Text, chat)
	}
	for _, ev := range r.rec.Events() {
		if c, ok := ev.(legacy.Contact); ok && (c.Chat != chat || c.Name != "John Doe") {
			t.Errorf("contact %+v", c)
		}
	}
	if _, err := r.sess.Send(context.Background(), &legacy.Message{Chat: chat, Text: "hi John", Key: "q1"}); err != nil {
		t.Fatal(err)
	}
	rcpts, h := lastSent(t, sm)
	// go-smtp's server unquotes the path it parsed: RCPT TO:<"john doe"@…>
	// (unquoted, the space would make it refuse the command).
	if !slices.Equal(rcpts, []string{`john doe@example.net`}) || !slices.Equal(headerAddrs(h, "To"), []string{"john doe@example.net"}) ||
		h.Get("To") != `<"john doe"@example.net>` {
		t.Errorf("RCPT %v, To %q", rcpts, h.Get("To"))
	}
}
