package component

import (
	"strings"
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

// TestKeepaliveSlowStanzaNotDead: one stanza that takes several ping
// timeouts to arrive (a huge one, skipped, on a slow network) holds the
// keepalive answer behind it; the bytes still coming are a sign of life.
func TestKeepaliveSlowStanzaNotDead(t *testing.T) {
	hs := start(t, func(c *Config) {
		c.PingInterval = 20 * time.Millisecond
		c.PingTimeout = 100 * time.Millisecond
	}, nil)
	hs.up(t)
	if err := hs.srv.InjectRaw("<message from='carol@localhost/xc' to='" + testDomain + "' id='slow' type='chat'><body>"); err != nil {
		t.Fatal(err)
	}
	chunk := strings.Repeat("slow text ", 1<<12) // 40 KiB, every 20 ms: 600 ms, 1.2 MB, over the limit
	for range 30 {
		if err := hs.srv.InjectRaw(chunk); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := hs.srv.InjectRaw("</body></message>"); err != nil {
		t.Fatal(err)
	}
	if err := hs.srv.Inject(msg("a@localhost", testDomain, "after")); err != nil {
		t.Fatal(err)
	}
	if got := hs.rec.next(t); got.ChildText(stanza.NSComponent, "body") != "after" {
		t.Fatalf("the stanza after the slow one = %s", got)
	}
	if n := hs.srv.Handshakes(); n != 1 {
		t.Errorf("%d handshakes: the link was dropped while a stanza was still arriving", n)
	}
}
