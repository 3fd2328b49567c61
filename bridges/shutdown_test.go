package bridges_test

import (
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges"
	"github.com/jabbergate/jabbergate/component/stanza"
)

// TestMessageReadWhileStoppingIsQueued: a message the link reads after
// the bridge began to stop (during the goodbye presences) is queued in
// the outbox, not dropped, and sent once the bridge runs again.
func TestMessageReadWhileStoppingIsQueued(t *testing.T) {
	// No keepalive verdict while the test holds the pings.
	h := newTunedHarness(t, nil, func(o *bridges.Options) {
		o.Link.PingInterval, o.Link.PingTimeout = time.Minute, 10*time.Second
	})
	h.register(alice)
	h.srv.SetAnswerPings(false) // the goodbye's barrier waits: the link stays open
	cancel := h.cancel
	stopped := make(chan struct{})
	go func() { defer close(stopped); cancel(); <-h.done }()
	time.Sleep(100 * time.Millisecond) // stopping: in the goodbye, waiting for its barrier
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='late1' from='` + alice + `/p' to='hello@` + domain + `'><body>sent while stopping</body></message>`)
	time.Sleep(50 * time.Millisecond) // let the read loop hand it over
	h.srv.SetAnswerPings(true)
	select {
	case <-stopped:
	case <-time.After(wait):
		t.Fatal("bridge did not stop")
	}
	h.cancel = nil // stopped: what h.stop does besides
	h.st.Close()
	for _, e := range h.srv.Received() {
		if e.ID() == "late1" && e.Type() == "error" {
			t.Fatalf("message read while stopping answered with an error: %s", e)
		}
	}
	h.start(nil)
	h.expect("echo after the restart", func(e *stanza.Element) bool {
		return e.Local == "message" && e.ChildText("", "body") == "sent while stopping"
	})
}
