package servertest

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppo/go-xmpp"
)

// clientTimeout bounds the login of Client.
const clientTimeout = 30 * time.Second

// Client logs user (a localpart, or a full user@domain) in on the server's
// c2s port with github.com/xmppo/go-xmpp (plain TCP, no STARTTLS, SASL PLAIN
// over the unencrypted stream, a random resource, no legacy session, initial
// presence sent) and
// closes it in t.Cleanup.
//
// go-xmpp's Recv and Close read the same stream: do not leave a Recv running
// when the test ends (RecvChat returns once it has its stanza).
func (s *Server) Client(t testing.TB, user, password string) *xmpp.Client {
	t.Helper()
	bypassProxyForLoopback()
	opts := xmpp.Options{
		Host:                         s.C2SAddr,
		User:                         s.JID(user),
		Password:                     password,
		Resource:                     "servertest-" + randomHex(4),
		NoTLS:                        true,
		StartTLS:                     false,
		InsecureAllowUnencryptedAuth: true,
		// go-xmpp v0.4.1's SCRAM without channel binding sends the gs2
		// header "y,," but then c=biws (base64 of "n,,"): Prosody rightly
		// rejects that ("Invalid channel binding value"), ejabberd lets it
		// pass. PLAIN works on both.
		Mechanism:   "PLAIN",
		DialTimeout: 10 * time.Second,
	}
	type result struct {
		c   *xmpp.Client
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := opts.NewClient()
		ch <- result{c, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-time.After(clientTimeout):
		t.Fatalf("servertest: %s login on %s %s: no answer after %v\n%s", opts.User, s.Kind, s.C2SAddr, clientTimeout, s.logTail())
	}
	if r.err != nil {
		t.Fatalf("servertest: %s login on %s %s: %v\n%s", opts.User, s.Kind, s.C2SAddr, r.err, s.logTail())
	}
	t.Cleanup(func() {
		done := make(chan struct{})
		go func() {
			_ = r.c.Close()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Logf("servertest: closing %s's client timed out", opts.User)
		}
	})
	return r.c
}

// RecvChat reads stanzas from c until a message for which match returns true
// (match nil: any message with a body) and returns it. Other stanzas are
// skipped. It fails the test after timeout.
func RecvChat(t testing.TB, c *xmpp.Client, timeout time.Duration, match func(xmpp.Chat) bool) xmpp.Chat {
	t.Helper()
	if match == nil {
		match = func(m xmpp.Chat) bool { return m.Text != "" }
	}
	type result struct {
		chat    xmpp.Chat
		skipped []string
		err     error
	}
	ch := make(chan result, 1)
	go func() {
		var skipped []string
		for {
			st, err := c.Recv()
			if err != nil {
				ch <- result{skipped: skipped, err: err}
				return
			}
			if m, ok := st.(xmpp.Chat); ok && m.Type != "roster" && match(m) {
				ch <- result{chat: m, skipped: skipped}
				return
			}
			if len(skipped) < 20 {
				skipped = append(skipped, fmt.Sprintf("%T %+v", st, st))
			}
		}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("servertest: Recv: %v (skipped: %s)", r.err, strings.Join(r.skipped, "; "))
		}
		return r.chat
	case <-time.After(timeout):
		t.Fatalf("servertest: no matching message within %v", timeout)
	}
	return xmpp.Chat{}
}

var proxyOnce sync.Once

// bypassProxyForLoopback: go-xmpp dials through $HTTP_PROXY unless
// $NO_PROXY matches the address; make sure loopback never goes through a
// proxy.
func bypassProxyForLoopback() {
	proxyOnce.Do(func() {
		proxy := os.Getenv("HTTP_PROXY")
		if proxy == "" {
			proxy = os.Getenv("http_proxy")
		}
		if proxy == "" {
			return
		}
		noProxy := os.Getenv("NO_PROXY")
		if noProxy == "" {
			noProxy = os.Getenv("no_proxy")
		}
		// go-xmpp bypasses the proxy when the address contains an entry.
		for _, p := range strings.Split(noProxy, ",") {
			if strings.Contains("127.0.0.1", strings.ToLower(p)) {
				return
			}
		}
		if noProxy != "" {
			noProxy += ","
		}
		os.Setenv("NO_PROXY", noProxy+"127.0.0.1")
	})
}
