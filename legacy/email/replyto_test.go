package email

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-message/mail"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/email/emailtest"
)

// lastSent returns the envelope recipients and the header of the last
// mail the SMTP server got.
func lastSent(t *testing.T, sm *smtpServer) (rcpts []string, h mail.Header) {
	t.Helper()
	ms := sm.mails()
	if len(ms) == 0 {
		t.Fatal("no mail sent")
	}
	m := ms[len(ms)-1]
	mr, err := mail.CreateReader(bytes.NewReader(m.data))
	if err != nil {
		t.Fatal(err)
	}
	return m.to, mr.Header
}

func headerAddrs(h mail.Header, key string) []string {
	list, _ := h.AddressList(key)
	var out []string
	for _, a := range list {
		out = append(out, a.Address)
	}
	return out
}

// A mail with a Reply-To (RFC 5322 §3.6.2) arrives from its From address,
// says where answers go, and the user's answer in that chat goes to the
// Reply-To addresses: a no-reply sender's support address, a mailing
// list rather than its member. Without a Reply-To it goes to the sender.
func TestReplyToIsHonoured(t *testing.T) {
	d := emailtest.StartDovecot(t, testUser)
	sm := startSMTP(t)
	r := runSession(t, testNetwork(t), fields(d.Addr, sm.addr), nil)
	r.waitState(t, 0)
	waitStatus(t, r.rec, legacy.StatusConnected)
	d.Deliver(t, "From: No Reply <noreply@shop.example>\nReply-To: Support Team <support@shop.example>\nTo: alice@example.com\n"+
		"Subject: Your order\nMessage-ID: <o1@shop.example>\n\nThanks for your order.\n")
	d.Deliver(t, "From: eve@example.net\nReply-To: dev-list@lists.example.org\nList-Id: <dev.lists.example.org>\nTo: dev-list@lists.example.org\n"+
		"Subject: Release plan\nMessage-ID: <l1@example.net>\n\nShip on Friday?\n")
	d.Deliver(t, "From: Bob <bob@example.org>\nReply-To: Bob <Bob@Example.org>\nTo: alice@example.com\n"+
		"Subject: Plain\nMessage-ID: <p1@example.org>\n\nhi\n")
	in := r.waitIncoming(t, 3)
	r.waitState(t, 3)
	if in[0].Chat != "noreply@shop.example" || !strings.Contains(in[0].Text, "Reply-To: Support Team <support@shop.example>") {
		t.Errorf("shop mail: chat %q, text %q; want the From address and a Reply-To line", in[0].Chat, in[0].Text)
	}
	if in[1].Chat != "eve@example.net" || !strings.Contains(in[1].Text, "Reply-To: dev-list@lists.example.org") {
		t.Errorf("list mail: chat %q, text %q", in[1].Chat, in[1].Text)
	}
	if strings.Contains(in[2].Text, "Reply-To") {
		t.Errorf("a Reply-To naming the sender itself is shown: %q", in[2].Text)
	}

	ctx := context.Background()
	for i, c := range []struct {
		chat string
		want []string
	}{
		{"noreply@shop.example", []string{"support@shop.example"}},
		{"eve@example.net", []string{"dev-list@lists.example.org"}},
		{"bob@example.org", []string{"bob@example.org"}},
		{"carol@example.net", []string{"carol@example.net"}}, // no thread at all
	} {
		if _, err := r.sess.Send(ctx, &legacy.Message{Chat: legacy.ChatID(c.chat), Text: "answer", Key: "rt" + string(rune('a'+i))}); err != nil {
			t.Fatal(err)
		}
		rcpts, h := lastSent(t, sm)
		if !slices.Equal(rcpts, c.want) || !slices.Equal(headerAddrs(h, "To"), c.want) {
			t.Errorf("answer in chat %s: RCPT %v, To %v; want %v", c.chat, rcpts, headerAddrs(h, "To"), c.want)
		}
	}
	// An explicit reply to the shop mail goes to its Reply-To too.
	if _, err := r.sess.Send(ctx, &legacy.Message{Chat: "noreply@shop.example", Text: "again", ReplyTo: "o1@shop.example", Key: "rt-x"}); err != nil {
		t.Fatal(err)
	}
	if rcpts, h := lastSent(t, sm); !slices.Equal(rcpts, []string{"support@shop.example"}) || h.Get("In-Reply-To") != "<o1@shop.example>" {
		t.Errorf("explicit reply: RCPT %v, In-Reply-To %q", rcpts, h.Get("In-Reply-To"))
	}
}
