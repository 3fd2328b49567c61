package component

import (
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/component/stanza"
)

// TestKeepaliveBusyHandlerNotDead: a handler blocked by back-pressure
// leaves the keepalive answer unread behind the stanzas in the socket. The
// link must not be declared dead then: closing it would lose every stanza
// the server already sent (found by cmd/jabbergate TestFaultKillGateway:
// a flood after a restart lost thousands of messages silently).
func TestKeepaliveBusyHandlerNotDead(t *testing.T) {
	release := make(chan struct{})
	got := make(chan string, 100)
	h := HandlerFunc(func(st *stanza.Element) {
		body := st.ChildText(stanza.NSComponent, "body")
		if body == "slow" {
			<-release
		}
		got <- body
	})
	hs := start(t, func(c *Config) {
		c.PingInterval = 20 * time.Millisecond
		c.PingTimeout = 100 * time.Millisecond
	}, h)
	hs.up(t)
	if err := hs.srv.Inject(msg("a@localhost", testDomain, "slow")); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := hs.srv.Inject(msg("a@localhost", testDomain, "m"+itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(600 * time.Millisecond) // several ping timeouts while the handler is blocked
	close(release)
	for i := range 21 {
		select {
		case <-got:
		case <-time.After(waitLong):
			t.Fatalf("only %d of 21 stanzas handled", i)
		}
	}
	if n := hs.srv.Handshakes(); n != 1 {
		t.Errorf("%d handshakes: the link was dropped while its handler was busy", n)
	}
}
