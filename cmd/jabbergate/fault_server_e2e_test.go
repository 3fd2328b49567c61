package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/xmppo/go-xmpp"
)

// adopt hands the stanzas x received while a test waited with x.wait to
// the view, then collects the rest until ctx ends.
func (v *faultView) adopt(ctx context.Context, x *xclient) {
	x.mu.Lock()
	backlog := x.seen
	x.seen = nil
	x.mu.Unlock()
	for _, st := range backlog {
		if m, ok := st.(xmpp.Chat); ok {
			v.add(m)
		}
	}
	go v.collect(ctx, x)
}

// subscribeFault makes alice and the fault gateway, and alice and
// contact, subscribed both ways, waiting for their presences.
func subscribeFault(t *testing.T, x *xclient, contact string) {
	t.Helper()
	x.waitPresence("subscribe from the gateway", faultDomain, "subscribe")
	x.send(`<presence type='subscribed' to='%s'/>`, faultDomain)
	x.send(`<presence type='subscribe' to='%s'/>`, faultDomain)
	x.waitPresence("gateway presence", faultDomain, "")
	x.send(`<presence type='subscribe' to='%s'/>`, contact)
	x.waitPresence("contact presence", contact, "")
}

// TestFaultServerRestart is fault 2: the XMPP server (Prosody, then
// ejabberd) stops and starts again on the same ports while legacy→XMPP
// messages flow. The link reconnects by itself; nothing is lost (inbox
// entries are removed only after the barrier ping came back); the gateway
// and contact presences are announced again.
//
// The test servers keep no offline messages (servertest disables
// mod_offline), so a message routed while alice is logged out would be
// bounced by the server, not by us: the test lets the gateway's new link
// through (a TCP proxy holds it) only once alice is back.
func TestFaultServerRestart(t *testing.T) {
	for _, kind := range []string{"prosody", "ejabberd"} {
		t.Run(kind, func(t *testing.T) {
			n := faultN(600)
			srv := faultServer(t, kind)
			fs := startFaultNet(t)
			proxy := newFaultProxy(t, srv.ComponentAddr)
			g := newGatewayProc(t)
			runGateway(t, g, faultConfig(proxy.Addr, g.http, fs.URL, "", faultBoltStore(t)))
			peer := "peer@" + faultDomain

			alice := dialClient(t, srv, "alice", "alicepw", "fault")
			registerFault(t, alice)
			subscribeFault(t, alice, peer)
			view := newFaultView()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			view.adopt(ctx, alice)

			inText := func(i int) string { return fmt.Sprintf("in %05d", i) }
			pushed := make(chan struct{})
			go func() {
				defer close(pushed)
				for i := range n {
					fs.Push("peer", inText(i))
					if i%20 == 19 {
						select {
						case <-ctx.Done():
							return
						case <-time.After(100 * time.Millisecond):
						}
					}
				}
			}()
			if !faultWaitUntil(time.Minute, func() bool { return view.count(peer) >= n/4 }) {
				t.Fatalf("only %d of %d messages within 1 min before the restart", view.count(peer), n)
			}
			proxy.Hold(true)
			srv.Stop(t)
			atStop := view.count(peer)
			time.Sleep(2 * time.Second) // the legacy side keeps producing; the inbox fills
			srv.Start(t)
			alice2 := dialClient(t, srv, "alice", "alicepw", "fault2")
			proxy.Hold(false)
			up := time.Now()
			alice2.waitPresence("gateway presence re-announced", faultDomain, "")
			alice2.waitPresence("contact presence re-announced", peer, "")
			t.Logf("%s restarted: %d of %d received before the stop; presences back %v after the link was let through",
				kind, atStop, n, time.Since(up).Round(100*time.Millisecond))
			view.adopt(ctx, alice2)
			<-pushed
			faultWaitProgress(2*time.Minute, 20*time.Second, func() bool { return view.count(peer) >= n }, func() int { return view.count(peer) })
			time.Sleep(time.Second)
			r := view.result("fault→xmpp", peer, n, inText)
			r.Bounced = faultBounces(g.log.String(), faultDomain)
			for _, i := range r.Missing {
				if i >= atStop && i < atStop+2 {
					r.DroppedAtStop++
				}
			}
			r.log(t, kind+" restarted")
		})
	}
}

// faultBounces counts the message errors the XMPP server sent back to bridge
// domain for recipients that were not online (service-unavailable), as
// the gateway logs them.
func faultBounces(log, domain string) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, `msg="error message from the XMPP side"`) && strings.Contains(l, "bridge="+domain+" ") &&
			strings.Contains(l, "error=service-unavailable") {
			n++
		}
	}
	return n
}
