package metrics

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/echo"
)

// countingNet is echo plus legacy.EventCounter.
type countingNet struct {
	legacy.Network
	malformed atomic.Uint64
}

func (n *countingNet) EventCounts() map[string]uint64 {
	return map[string]uint64{"deliver_sm_malformed": n.malformed.Load(), "reply_not_json": 0}
}

func TestLegacyEventsExportedPerBridge(t *testing.T) {
	m := New("test")
	e, _ := echo.New(nil)
	n := &countingNet{Network: e}
	m.Bridge("sms.example.org").WatchNetwork("sms", n)
	m.Bridge("echo.example.org").WatchNetwork("echo", e) // no counters: nothing exported
	n.malformed.Add(3)
	want := `
# HELP jabbergate_legacy_events_total Events counted by a legacy network adapter that never become a stanza (e.g. an SMPP deliver_sm refused for a broken UDH, a provider reply that was not valid JSON, a 429 from the legacy API).
# TYPE jabbergate_legacy_events_total counter
jabbergate_legacy_events_total{bridge="sms.example.org",event="deliver_sm_malformed",network="sms"} 3
jabbergate_legacy_events_total{bridge="sms.example.org",event="reply_not_json",network="sms"} 0
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), "jabbergate_legacy_events_total"); err != nil {
		t.Fatal(err)
	}
	// A bridge removed by a reload takes its series with it.
	m.RemoveBridge("sms.example.org")
	if c, err := testutil.GatherAndCount(m.Registry, "jabbergate_legacy_events_total"); err != nil || c != 0 {
		t.Fatalf("after RemoveBridge: %d series, %v", c, err)
	}
}
