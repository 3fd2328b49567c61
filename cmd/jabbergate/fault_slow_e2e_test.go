package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestFaultSlowConsumer is fault 5: the XMPP server stops reading from the
// gateway (a TCP proxy between them stops reading) while the legacy side
// sends m large messages. The gateway's memory must not grow with the
// messages: they wait in the durable inbox (on disk), the link's writes
// block, the keepalive ping declares the link dead and it reconnects once
// the server reads again; and once a user's undelivered inbox reaches
// bridges[].inbox_limit, Emit refuses with a retryable error, so the rest
// stays on the legacy side (back-pressure), to be taken once XMPP reads
// again. The test measures the real binary's anonymous resident memory
// (RssAnon: heap and stacks, not the store's mapped file) and asserts that
// its growth stays under half the payload it was sent, that the adapter
// was refused, and that the inbox never held more than the limit.
func TestFaultSlowConsumer(t *testing.T) {
	m := faultN(4000)
	const size = 4096 // bytes of text per message
	srv := faultServer(t, "prosody")
	fs := startFaultNet(t)
	proxy := newFaultProxy(t, srv.ComponentAddr)
	httpAddr := freeAddr(t)
	limit := m / 4 // the fault bridge's inbox_limit
	g := newBinGateway(t, faultConfig(proxy.Addr, httpAddr, fs.URL, fmt.Sprintf("    inbox_limit: %d", limit), faultBoltStore(t)), httpAddr)
	// Go's own collector setting: the gateway's heap floor (gctune.go)
	// would let the heap grow by up to 32 MiB before collecting, which is
	// not the growth this test looks for (memory following the backlog).
	g.env = []string{"GOGC=100"}
	g.start()
	peer := "peer@" + faultDomain

	alice := dialClient(t, srv, "alice", "alicepw", "fault")
	registerFault(t, alice)
	view := newFaultView()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	view.adopt(ctx, alice)

	pad := strings.Repeat("x", size-12)
	text := func(i int) string { return fmt.Sprintf("in %05d %s", i, pad) }
	const warm = 100
	for i := range warm {
		fs.Push("peer", text(i))
	}
	if !faultWaitUntil(time.Minute, func() bool { return view.count(peer) >= warm }) {
		t.Fatalf("warm-up: %d of %d within 1 min", view.count(peer), warm)
	}
	base := g.rss("RssAnon")

	proxy.Pause(true)
	// Two halves: memory may grow while the first fills the in-memory
	// buffers (bounded by a number of entries), but the second half must
	// not add memory in proportion to its messages.
	peak := base
	half := m / 2
	var peaks [2]int64
	for h := range 2 {
		refused := fs.Refused()
		for i := warm + h*half; i < warm+(h+1)*half; i++ {
			fs.Push("peer", text(i))
		}
		if !faultWaitUntil(3*time.Minute, func() bool {
			peak = max(peak, g.rss("RssAnon"))
			return fs.Taken() >= warm+(h+1)*half || fs.Refused() > refused
		}) {
			t.Logf("half %d: the adapter had only %d of %d messages taken and none refused", h+1, fs.Taken()-warm, (h+1)*half)
		}
		// Keep the server deaf a little longer: the link's writes block,
		// its keepalive gives up, reconnections fail the handshake.
		for range 10 {
			peak = max(peak, g.rss("RssAnon"))
			time.Sleep(500 * time.Millisecond)
		}
		peaks[h] = peak
	}
	atPause := view.count(peer)
	payload := int64(half * size)
	t.Logf("server not reading: the adapter had %d of %d messages taken; %d reached the client meanwhile; RssAnon %d KiB before, %d KiB after the first %d messages (%d KiB), %d KiB after the second %d (%d KiB)",
		fs.Taken()-warm, 2*half, atPause-warm, base/1024, peaks[0]/1024, half, payload/1024, peaks[1]/1024, half, payload/1024)
	if growth := peaks[1] - peaks[0]; growth > payload/2 {
		t.Errorf("memory grew by %d KiB during the second %d messages (%d KiB): it follows the backlog, not bounded", growth/1024, half, payload/1024)
	}
	if growth := peaks[1] - base; growth > 64<<20 {
		t.Errorf("memory grew by %d KiB while the server did not read", growth/1024)
	}
	// Back-pressure: the inbox stopped at its limit (plus one batch in
	// flight) and the adapter was told to keep the rest.
	if fs.Refused() == 0 {
		t.Errorf("the adapter was never refused while %d messages waited (inbox_limit %d): no back-pressure", fs.Taken()-atPause, limit)
	}
	if waiting := fs.Taken() - atPause; waiting > limit+64 {
		t.Errorf("%d messages taken into the inbox while the server did not read; inbox_limit is %d", waiting, limit)
	}
	t.Logf("back-pressure: the adapter was refused %d times; %d messages waited in the inbox (limit %d), %d stayed on the legacy side",
		fs.Refused(), fs.Taken()-atPause, limit, warm+m-fs.Taken())
	m = 2 * half

	// The keepalive gave up on the deaf link meanwhile; the server only
	// learns that the old stream closed once it reads again, and until then
	// answers a new handshake with conflict, which the link waits out
	// (AuthBackoff: 30 s, doubling). Hence the long idle bound.
	proxy.Pause(false)
	resumed := time.Now()
	faultWaitProgress(5*time.Minute, 100*time.Second, func() bool { return view.count(peer) >= warm+m }, func() int { return view.count(peer) })
	t.Logf("all delivered %v after the server read again", time.Since(resumed).Round(time.Second))
	time.Sleep(time.Second)
	view.result("fault→xmpp", peer, warm+m, text).log(t, "slow consumer")
}
