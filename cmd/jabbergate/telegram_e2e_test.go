package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xmppo/go-xmpp"

	"github.com/jabbergate/jabbergate/component/servertest"
	"github.com/jabbergate/jabbergate/legacy/telegram/telegramtest"
)

// TestTelegramEndToEnd runs the whole path: a real XMPP client on a real
// Prosody, the gateway with the Telegram adapter, and the fake Bot API.
func TestTelegramEndToEnd(t *testing.T) {
	const tgDomain = "telegram.localhost"
	api := telegramtest.New(t)
	srv := servertest.Start(t, "prosody", servertest.Options{
		Components: map[string]string{tgDomain: gwSecret},
		Users:      map[string]string{"alice": "alicepw"},
	})
	g := newGatewayProc(t)
	yaml := fmt.Sprintf(`
xmpp:
  server: %s
bridges:
  - network: telegram
    domain: %s
    secret: %s
    options:
      api_url: %s
      poll_timeout: 1s
store:
  backend: bolt
  path: %s
http:
  listen: %s
access:
  allowed_domains: [localhost]
log:
  level: debug
`, srv.ComponentAddr, tgDomain, gwSecret, api.URL, filepath.Join(t.TempDir(), "jg.db"), g.http)
	runGateway(t, g, yaml)

	alice := dialClient(t, srv, "alice", "alicepw", "tg")
	// A wrong token is refused with not-authorized and a clear text.
	alice.send(`<iq type='set' id='r0' to='%s'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'><field var='token'><value>987654321:AAWrongTokenWrongTokenWrongToken0123</value></field></x></query></iq>`, tgDomain)
	if r := alice.waitIQ("r0"); r.Type != "error" || !strings.Contains(strings.ToLower(fmt.Sprintf("%+v", r.Error)), "not-authorized") {
		t.Errorf("wrong token = %+v", r)
	}
	alice.send(`<iq type='set' id='r1' to='%s'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'><field var='token'><value>%s</value></field></x></query></iq>`, tgDomain, telegramtest.Token)
	if r := alice.waitIQ("r1"); r.Type != "result" {
		t.Fatalf("register = %+v", r)
	}
	if strings.Contains(g.log.String(), telegramtest.Token) {
		t.Errorf("the bot token appears in the log")
	}

	// Telegram → XMPP.
	api.AddUpdate(telegramtest.PrivateText(5551, "Bob", 1, "hello from telegram ✈️"))
	m := alice.waitChat("message from Telegram", func(m xmpp.Chat) bool { return m.Text != "" && bare(m.Remote) == "5551@"+tgDomain })
	if m.Text != "hello from telegram ✈️" {
		t.Errorf("inbound = %+v", m)
	}

	// XMPP → Telegram.
	alice.send(`<message type='chat' id='o1' to='5551@%s'><body>hi Bob</body></message>`, tgDomain)
	deadline := time.Now().Add(e2eWait)
	for {
		sent := api.Messages(5551)
		if len(sent) > 0 && sent[len(sent)-1].Text == "hi Bob" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Bot API never got the message; sent: %+v", sent)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A user who blocked the bot: a message error with the Telegram code.
	api.SetChatError(7777, telegramtest.Fault{Status: 403, Description: "Forbidden: bot was blocked by the user"})
	alice.send(`<message type='chat' id='o2' to='7777@%s'><body>are you there?</body></message>`, tgDomain)
	e := alice.waitChat("error for a blocked bot", func(m xmpp.Chat) bool { return m.ID == "o2" })
	if e.Type != "error" || errorCondition(e) != "forbidden" {
		t.Errorf("blocked = %+v", e)
	}
}
