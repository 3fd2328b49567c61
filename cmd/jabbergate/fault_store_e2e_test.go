package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store/redistest"
)

// TestFaultRedisRestart is fault 3: Redis (append-only file on) stops and
// starts again while messages flow both ways. While it is down the legacy
// side's new messages are refused by Sink.Emit (the fake service counts
// the refusals and keeps the messages), a message from the XMPP user is
// answered with a type='wait' error (never dropped silently), and
// /readyz says the store is unreachable; afterwards the gateway recovers
// by itself and nothing is lost.
func TestFaultRedisRestart(t *testing.T) {
	n := faultN(400)
	srv := faultServer(t, "prosody")
	rs := redistest.StartServer(t)
	fs := startFaultNet(t)
	g := newGatewayProc(t)
	storeYAML := fmt.Sprintf("store:\n  backend: redis\n  redis:\n    url: %s\n    prefix: fault\nvault:\n  key_file: %s\n", rs.URL(), filepath.Join(t.TempDir(), "vault.key"))
	runGateway(t, g, faultConfig(srv.ComponentAddr, g.http, fs.URL, "", storeYAML))
	peer := "peer@" + faultDomain

	alice := dialClient(t, srv, "alice", "alicepw", "fault")
	registerFault(t, alice)
	view := newFaultView()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	view.adopt(ctx, alice)

	inText := func(i int) string { return fmt.Sprintf("in %05d", i) }
	outText := func(i int) string { return fmt.Sprintf("out %05d", i) }
	push := func(from, to int) {
		for i := from; i < to; i++ {
			fs.Push("peer", inText(i))
		}
	}
	sendOut := func(from, to int) {
		for i := from; i < to; i++ {
			faultSend(alice, fmt.Sprintf("o%05d", i), peer, outText(i))
		}
	}

	// Before: half of each direction, in flight when Redis stops.
	push(0, n/2)
	sendOut(0, n/2-1)
	if !faultWaitUntil(time.Minute, func() bool { return view.count(peer) >= n/8 }) {
		t.Fatalf("only %d messages within 1 min before the stop", view.count(peer))
	}
	rs.Stop()
	stopped := time.Now()
	t.Logf("redis stopped after %d inbound / %d outbound delivered", view.count(peer), len(fs.Sent()))

	// While down: the next inbound messages are refused upstream …
	push(n/2, n)
	refusedBefore := fs.Refused()
	if !faultWaitUntil(time.Minute, func() bool { return fs.Refused() > refusedBefore }) {
		t.Errorf("no Emit refused within 1 min of the stop (the adapter would have been told a message was taken)")
	}
	// … a message from the user gets a wait error …
	during := n/2 - 1
	sendOut(during, during+1)
	id := fmt.Sprintf("o%05d", during)
	errorOf := func() string {
		view.mu.Lock()
		defer view.mu.Unlock()
		return view.errors[id]
	}
	faultWaitUntil(time.Minute, func() bool { return errorOf() != "" })
	switch e := errorOf(); {
	case e == "":
		t.Errorf("no error for a message sent while redis was down (dropped silently?)")
	case !strings.HasPrefix(e, "wait "):
		t.Errorf("message sent while redis was down: error %q, want type wait", e)
	default:
		t.Logf("message sent while redis was down: error %s", e)
	}
	// … and the gateway says it is not ready.
	if code, body := g.get("/readyz"); code == 200 {
		t.Errorf("/readyz = %d %q while redis is down", code, body)
	}
	time.Sleep(2 * time.Second)
	rs.Start()
	t.Logf("redis back after %v; %d Emit refusals reported by the adapter", time.Since(stopped).Round(100*time.Millisecond), fs.Refused()-refusedBefore)

	// After: the gateway recovers by itself; the user resends what got an
	// error, the rest follows.
	if !faultWaitUntil(time.Minute, func() bool { code, _ := g.get("/readyz"); return code == 200 }) {
		t.Errorf("/readyz not ready within 1 min of redis coming back")
	}
	// Like a client, resend what got an error (type wait), then go on.
	retried := 0
	for i := range during {
		view.mu.Lock()
		_, failed := view.errors[fmt.Sprintf("o%05d", i)]
		view.mu.Unlock()
		if failed {
			sendOut(i, i+1)
			retried++
		}
	}
	t.Logf("resent %d earlier messages that got an error while redis was down", retried)
	sendOut(during, n)
	done := func() bool { return view.count(peer) >= n && len(fs.Sent()) >= n }
	for round := 0; round < 3 && !faultWaitProgress(2*time.Minute, 15*time.Second, done, func() int { return view.count(peer) + len(fs.Sent()) }); round++ {
		k := 0
		for i := range n {
			if rid := fmt.Sprintf("o%05d", i); !view.hasReceipt(rid) {
				faultSend(alice, rid, peer, outText(i))
				k++
			}
		}
		t.Errorf("stalled at %d inbound, %d sent (lost silently); resent %d without a receipt", view.count(peer), len(fs.Sent()), k)
	}
	time.Sleep(time.Second)
	view.result("fault→xmpp", peer, n, inText).log(t, "redis restarted")
	faultSentResult("xmpp→fault", fs.Sent(), n, outText).log(t, "redis restarted")
}
