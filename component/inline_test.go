package component

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/component/componenttest"
	"github.com/jabbergate/jabbergate/component/stanza"
)

// Answers the handler sends with SendFromHandler are written together once
// the read loop has worked through its input: a burst of requests read in
// one go costs a few writes, not one per answer; a lone request on an idle
// link is answered at once (the read loop flushes before it blocks); and
// the answers are counted by the Observer like any other stanza.
func TestSendFromHandlerWritesBursts(t *testing.T) {
	srv := componenttest.NewServer(t, testDomain, testSecret)
	logs := &logBuf{}
	cfg := testConfig(srv, logs)
	o := newObs()
	cfg.Observer = o
	var l *Link
	h := HandlerFunc(func(st *stanza.Element) {
		if st.Local == "iq" && st.Type() == "get" {
			if err := l.SendFromHandler(stanza.Result(st, nil)); err != nil {
				t.Errorf("SendFromHandler: %v", err)
			}
		}
	})
	l, err := New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	conns := dialGated(l)
	runLink(t, l)
	if _, err := l.WaitUp(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	g := <-conns
	isResult := func(id string) func(*stanza.Element) bool {
		return func(e *stanza.Element) bool { return e.Local == "iq" && e.ID() == id && e.Type() == "result" }
	}

	// A lone ping on an idle link.
	before := g.writes.Load()
	if err := srv.InjectRaw(fmt.Sprintf("<iq type='get' id='lone' from='a@localhost/r' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>", testDomain)); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.WaitFor(waitLong, isResult("lone")); err != nil {
		t.Fatalf("lone ping not answered: %v", err)
	}
	if w := g.writes.Load() - before; w != 1 {
		t.Errorf("lone ping answered in %d writes, want 1", w)
	}

	// A burst of 200 pings (≈ 25 KB) in one write from the server.
	const n = 200
	var burst strings.Builder
	for i := range n {
		fmt.Fprintf(&burst, "<iq type='get' id='b%d' from='a@localhost/r' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>", i, testDomain)
	}
	before = g.writes.Load()
	if err := srv.InjectRaw(burst.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.WaitFor(waitLong, isResult(fmt.Sprintf("b%d", n-1))); err != nil {
		t.Fatalf("burst not answered: %v", err)
	}
	writes := g.writes.Load() - before
	// The decoder reads 4 KiB at a time (≈ 30 pings): one write per read
	// at most, however the bytes arrive.
	if writes > int32(n/20) {
		t.Errorf("%d answers took %d writes; want them gathered (≤ %d)", n, writes, n/20)
	}
	answered := 0
	for _, e := range srv.Received() {
		if e.Local == "iq" && e.Type() == "result" && strings.HasPrefix(e.ID(), "b") {
			answered++
		}
	}
	if answered != n {
		t.Errorf("%d of %d pings answered", answered, n)
	}
	deadline := time.Now().Add(waitLong)
	for {
		o.mu.Lock()
		out := o.out["iq"]
		o.mu.Unlock()
		if out >= n+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("observer counted %d iq out, want %d", out, n+1)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Outside the handler it is Send.
	if err := l.SendFromHandler(stanza.New(stanza.NSComponent, "message", "from", testDomain, "to", "a@localhost", "id", "outside")); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.WaitFor(waitLong, func(e *stanza.Element) bool { return e.ID() == "outside" }); err != nil {
		t.Fatalf("SendFromHandler outside the handler: %v", err)
	}
}
