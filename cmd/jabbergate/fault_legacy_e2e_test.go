package main

import (
	"encoding/xml"
	"testing"
	"time"

	"github.com/xmppo/go-xmpp"

	"github.com/jabbergate/jabbergate/legacy/legacytest/faultnet"
)

// faultErrorType returns the type attribute of a message error ("wait",
// "cancel", …).
func faultErrorType(m xmpp.Chat) string {
	for _, el := range m.OtherElem {
		if el.XMLName.Local == "error" {
			for _, a := range el.Attr {
				if a.Name.Local == "type" {
					return a.Value
				}
			}
		}
	}
	return ""
}

// faultErrorText returns the text of a message error.
func faultErrorText(m xmpp.Chat) string {
	for _, el := range m.OtherElem {
		if el.XMLName.Local == "error" {
			var e struct {
				Text string `xml:"text"`
			}
			_ = xml.Unmarshal([]byte("<e>"+el.InnerXML+"</e>"), &e)
			return e.Text
		}
	}
	return ""
}

// TestFaultLegacyDown is fault 4: the legacy network fails (503, then
// requests that hang past the adapter's timeout). The outbox retries with
// growing delays; a message sent while it recovers within the TTL arrives
// once; one that never gets through comes back to the sender as a message
// error with its original id when the TTL (here 20 s, shortened by the
// network's outbox_ttl) ends.
func TestFaultLegacyDown(t *testing.T) {
	srv := faultServer(t, "prosody")
	fs := startFaultNet(t)
	g := newGatewayProc(t)
	runGateway(t, g, faultConfig(srv.ComponentAddr, g.http, fs.URL, "      outbox_ttl: 20s\n      timeout: 2s", faultBoltStore(t)))
	alice := dialClient(t, srv, "alice", "alicepw", "fault")
	registerFault(t, alice)
	peer := "peer@" + faultDomain

	// 1. Down (503), back before the TTL: delivered exactly once.
	fs.SetMode(faultnet.ModeFail)
	faultSend(alice, "a1", peer, "recovers")
	if !faultWaitUntil(30*time.Second, func() bool { return len(fs.Attempts()) >= 3 }) {
		t.Fatalf("only %d attempts within 30 s while the network fails", len(fs.Attempts()))
	}
	fs.SetMode(faultnet.ModeOK)
	alice.wait("receipt for a1", func(st any) bool { m, ok := st.(xmpp.Chat); return ok && receiptFor(m) == "a1" })
	recovered := faultSentResult("xmpp→fault, down then back", fs.Sent(), 1, func(int) string { return "recovers" })
	recovered.log(t, "legacy network down")
	gaps := faultIntervals(fs.Attempts())
	t.Logf("attempts while failing: %d, intervals %v", len(fs.Attempts()), gaps)

	// 2. Down for longer than the TTL (requests hang until the adapter's
	// 2 s timeout): retried with backoff, then a stanza error with the
	// original id.
	fs.SetMode(faultnet.ModeHang)
	before := len(fs.Attempts())
	start := time.Now()
	faultSend(alice, "b1", peer, "never")
	time.Sleep(12 * time.Second) // alice.wait gives up after 20 s; the TTL is 20 s
	e := alice.wait("error for b1", func(st any) bool {
		m, ok := st.(xmpp.Chat)
		return ok && m.ID == "b1" && m.Type == "error"
	}).(xmpp.Chat)
	took := time.Since(start)
	attempts := fs.Attempts()[before:]
	t.Logf("error after %v and %d attempts (intervals %v): type=%s condition=%s text=%q",
		took.Round(time.Second), len(attempts), faultIntervals(attempts), faultErrorType(e), errorCondition(e), faultErrorText(e))
	if took < 15*time.Second {
		t.Errorf("error after %v, before the 20 s TTL", took)
	}
	if len(attempts) < 3 {
		t.Errorf("%d attempts before giving up, want retries", len(attempts))
	}
	if gs := faultIntervals(attempts); len(gs) >= 2 && gs[len(gs)-1] <= gs[0] {
		t.Errorf("retry intervals %v do not grow (backoff)", gs)
	}
	if bare(e.Remote) != peer || errorCondition(e) == "" {
		t.Errorf("error = from %s condition %q, want from %s with a condition", e.Remote, errorCondition(e), peer)
	}
	for _, m := range fs.Sent() {
		if m.Text == "never" {
			t.Errorf("the expired message reached the network and the sender got an error too")
		}
	}
	// Received here is "the sender learnt the outcome" (the error).
	faultResult{Stream: "xmpp→fault, down past the TTL (error to sender)", Sent: 1, Received: 1}.log(t, "legacy network down")
	fs.SetMode(faultnet.ModeOK)
}

// faultIntervals returns the gaps between successive times, rounded.
func faultIntervals(ts []time.Time) []time.Duration {
	var out []time.Duration
	for i := 1; i < len(ts); i++ {
		out = append(out, ts[i].Sub(ts[i-1]).Round(100*time.Millisecond))
	}
	return out
}
