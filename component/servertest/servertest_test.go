package servertest_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/xmppo/go-xmpp"

	"github.com/jabbergate/jabbergate/component/servertest"
)

const (
	handshakeDomain = "echo.localhost"
	messageDomain   = "msg.localhost"
	privDomain      = "priv.localhost"
	restartDomain   = "restart.localhost"
	secret          = "s3cret"
)

// TestServers starts one server of each kind (in parallel: two servers at
// the same time) and checks everything the gateway's integration tests rely
// on.
func TestServers(t *testing.T) {
	for _, kind := range servertest.Kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			begin := time.Now()
			s := servertest.Start(t, kind, servertest.Options{
				Components: map[string]string{
					handshakeDomain: secret,
					messageDomain:   secret,
					privDomain:      secret,
					restartDomain:   "another secret with 'quotes' \"and\" \\",
				},
				Users:      map[string]string{"alice": "alice-pw", "bob": "bob pw"},
				Privileged: true,
			})
			t.Logf("TIMING %s start (incl. 2 users): %v", kind, time.Since(begin).Round(time.Millisecond))
			if s.Kind != kind || s.Domain != "localhost" || s.Dir == "" {
				t.Fatalf("server fields: %+v", s)
			}
			for _, a := range []string{s.C2SAddr, s.ComponentAddr} {
				host, _, err := net.SplitHostPort(a)
				if err != nil || host != "127.0.0.1" {
					t.Fatalf("address %q is not on 127.0.0.1", a)
				}
			}

			t.Run("ComponentHandshake", func(t *testing.T) {
				c, err := dialComponent(s.ComponentAddr, handshakeDomain, secret)
				if err != nil {
					t.Fatalf("handshake: %v\n%s", err, s.Log())
				}
				c.close()
			})

			t.Run("WrongSecretRejected", func(t *testing.T) {
				c, err := dialComponent(s.ComponentAddr, handshakeDomain, "wrong")
				if err == nil {
					c.close()
					t.Fatal("handshake with a wrong secret succeeded")
				}
				if !errors.Is(err, errStreamError) || !strings.Contains(err.Error(), "not-authorized") {
					t.Fatalf("want a not-authorized stream error, got %v", err)
				}
			})

			t.Run("UnknownDomainRejected", func(t *testing.T) {
				c, err := dialComponent(s.ComponentAddr, "nobody.localhost", secret)
				if err == nil {
					c.close()
					t.Fatal("handshake for an unconfigured domain succeeded")
				}
			})

			t.Run("Privileges", func(t *testing.T) {
				c, err := dialComponent(s.ComponentAddr, privDomain, secret)
				if err != nil {
					t.Fatalf("handshake: %v", err)
				}
				defer c.close()
				st, skipped, err := c.nextMatching(10*time.Second, func(st stanza) bool {
					return st.XMLName.Local == "message" && strings.Contains(st.Inner, "urn:xmpp:privilege:")
				})
				if err != nil {
					t.Fatalf("no XEP-0356 advertisement: %v (skipped %v)\n%s", err, skipped, s.Log())
				}
				t.Logf("advertisement: %s", st)
				for _, want := range []string{`access="roster"`, `type="both"`, `access="message"`, `type="outgoing"`} {
					if !strings.Contains(strings.ReplaceAll(st.Inner, "'", `"`), want) {
						t.Errorf("advertisement lacks %s: %s", want, st)
					}
				}
			})

			t.Run("ClientComponentRoundTrip", func(t *testing.T) {
				roundTrip(t, s, messageDomain, secret, "alice", "alice-pw")
			})

			t.Run("RegisterUser", func(t *testing.T) {
				s.RegisterUser(t, "carol", "carol-pw")
				c := s.Client(t, "carol", "carol-pw")
				if !strings.HasPrefix(c.JID(), "carol@localhost/") {
					t.Fatalf("bound JID %q", c.JID())
				}
			})

			t.Run("WrongPasswordRejected", func(t *testing.T) {
				ok, err := plainAuth(s.C2SAddr, s.Domain, "bob", "nope")
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					t.Fatal("SASL PLAIN with a wrong password succeeded")
				}
				if ok, err := plainAuth(s.C2SAddr, s.Domain, "bob", "bob pw"); err != nil || !ok {
					t.Fatalf("SASL PLAIN with the right password: ok=%v err=%v", ok, err)
				}
			})

			t.Run("Restart", func(t *testing.T) {
				begin := time.Now()
				s.Stop(t)
				t.Logf("TIMING %s stop: %v", kind, time.Since(begin).Round(time.Millisecond))
				if s.Running() {
					t.Fatal("still running after Stop")
				}
				if c, err := net.DialTimeout("tcp", s.C2SAddr, time.Second); err == nil {
					c.Close()
					t.Fatal("c2s port still accepts connections after Stop")
				}
				begin = time.Now()
				s.Start(t)
				t.Logf("TIMING %s restart: %v", kind, time.Since(begin).Round(time.Millisecond))
				// Same ports, same data: bob (registered at the first start)
				// still logs in, and components connect again.
				roundTrip(t, s, restartDomain, "another secret with 'quotes' \"and\" \\", "bob", "bob pw")
			})
		})
	}
}

// roundTrip: a go-xmpp client sends a message to someone@domain, the raw
// component receives it and answers; the client receives the answer.
func roundTrip(t *testing.T, s *servertest.Server, domain, secret, user, password string) {
	t.Helper()
	comp, err := dialComponent(s.ComponentAddr, domain, secret)
	if err != nil {
		t.Fatalf("component handshake: %v\n%s", err, s.Log())
	}
	defer comp.close()
	client := s.Client(t, user, password)
	jid := client.JID()
	bare, _, _ := strings.Cut(jid, "/")
	if bare != user+"@"+s.Domain {
		t.Fatalf("bound JID %q", jid)
	}

	body := "hello <component> & co " + s.Kind
	if _, _, err := client.Send(xmpp.Chat{Remote: "someone@" + domain, Type: "chat", Text: body}); err != nil {
		t.Fatal(err)
	}
	msg, skipped, err := comp.nextMatching(10*time.Second, func(st stanza) bool {
		return st.XMLName.Local == "message" && strings.Contains(st.Inner, "<body")
	})
	if err != nil {
		t.Fatalf("component got no message: %v (skipped %v)\n%s", err, skipped, s.Log())
	}
	if got := msg.attr("to"); got != "someone@"+domain {
		t.Errorf("to = %q", got)
	}
	if got := msg.attr("from"); got != jid {
		t.Errorf("from = %q, want %q", got, jid)
	}
	if !strings.Contains(msg.Inner, xmlEscape(body)) {
		t.Errorf("body missing: %s", msg)
	}

	// Answer to the bare JID, as a gateway does.
	reply := "reply from " + domain + " <&>"
	if err := comp.send("<message from='someone@%s' to='%s' type='chat' id='r1'><body>%s</body></message>", domain, bare, xmlEscape(reply)); err != nil {
		t.Fatal(err)
	}
	got := servertest.RecvChat(t, client, 10*time.Second, func(m xmpp.Chat) bool { return m.Text != "" })
	if got.Text != reply || got.Remote != "someone@"+domain || got.Type != "chat" {
		t.Fatalf("client got %+v", got)
	}
}
