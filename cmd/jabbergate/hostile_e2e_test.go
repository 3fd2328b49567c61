package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xmppo/go-xmpp"

	"github.com/jabbergate/jabbergate/component/servertest"
)

// TestHostileStanzasKeepTheLink: through a real Prosody and ejabberd, a
// user's stanza nested deeper than the gateway's limit, and one whose body
// takes it past the gateway's size limit (but not the server's), are
// refused to that user with policy-violation; the component link stays up,
// so the next message is echoed as usual and nobody else is cut off.
func TestHostileStanzasKeepTheLink(t *testing.T) {
	for _, kind := range []string{"prosody", "ejabberd"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := servertest.Start(t, kind, servertest.Options{
				Components: map[string]string{gwDomain: gwSecret},
				Users:      map[string]string{"alice": "alicepw"},
			})
			g := newGatewayProc(t)
			runGateway(t, g, fmt.Sprintf(`
xmpp:
  server: %s
  max_stanza_size: 10000
  max_element_depth: 8
bridges:
  - network: echo
    domain: %s
    secret: %s
store:
  backend: bolt
  path: %s
http:
  listen: %s
access:
  allowed_domains: [localhost]
`, srv.ComponentAddr, gwDomain, gwSecret, filepath.Join(t.TempDir(), "jg.db"), g.http))

			alice := dialClient(t, srv, "alice", "alicepw", "hostile")
			alice.send(`<iq type='set' id='r1' to='%s'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>jabber:iq:register</value></field></x></query></iq>`, gwDomain)
			if r := alice.waitIQ("r1"); r.Type != "result" {
				t.Fatalf("register = %+v", r)
			}
			hello := "hello@" + gwDomain

			// Deeper than 8 levels.
			deep := strings.Repeat("<a>", 12) + strings.Repeat("</a>", 12)
			alice.send(`<iq type='get' id='deep1' to='%s'><query xmlns='urn:example:deep'>%s</query></iq>`, gwDomain, deep)
			if r := alice.waitIQ("deep1"); r.Type != "error" || !strings.Contains(fmt.Sprintf("%+v%s", r.Error, r.Query), "policy-violation") {
				t.Errorf("deep iq answered %+v", r)
			}
			// Larger than 10 000 bytes, far under the servers' limits.
			alice.send(`<message type='chat' id='big1' to='%s'><body>%s</body></message>`, hello, strings.Repeat("big ", 5000))
			if m := alice.waitChat("error for big1", func(m xmpp.Chat) bool { return m.ID == "big1" }); m.Type != "error" || errorCondition(m) != "policy-violation" {
				t.Errorf("oversized message answered %+v", m)
			}
			// The link stayed up: an ordinary message is echoed.
			alice.send(`<message type='chat' id='ok1' to='%s'><body>still here</body></message>`, hello)
			alice.waitChat("echo after the refused stanzas", func(m xmpp.Chat) bool { return m.Text == "still here" && bare(m.Remote) == hello })
			if log := g.log.String(); strings.Contains(log, "component link disconnected") || strings.Count(log, "refused a stanza from the server") != 2 {
				t.Errorf("the gateway log should show two refused stanzas and no disconnection:\n%s", log)
			}
		})
	}
}
