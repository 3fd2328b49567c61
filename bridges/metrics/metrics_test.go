package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/component"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestStreamErrorLabelsAreBounded(t *testing.T) {
	m := New("test")
	b := m.Bridge("gw.example.org")
	b.StreamError("not-authorized")
	b.StreamError("<script>made-up-by-a-server</script>")
	if v := testutil.ToFloat64(m.streamErrors.WithLabelValues("gw.example.org", "not-authorized")); v != 1 {
		t.Errorf("not-authorized = %v", v)
	}
	if v := testutil.ToFloat64(m.streamErrors.WithLabelValues("gw.example.org", "other")); v != 1 {
		t.Errorf("other = %v", v)
	}
	// The RFC 6120 conditions and "other", no series for what a server
	// made up.
	n, err := testutil.GatherAndCount(m.Registry, "jabbergate_link_stream_errors_total")
	if err != nil || n != len(streamConditions)+1 {
		t.Errorf("series = %d, %v", n, err)
	}
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(""), "jabbergate_nonexistent"); err != nil {
		t.Error(err)
	}
}

func TestOutboxOldestAge(t *testing.T) {
	m := New("test")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	m.now = func() time.Time { return now }
	a, b := m.Bridge("a.example.org"), m.Bridge("b.example.org")
	age := func(bridge string) float64 {
		t.Helper()
		mfs, err := m.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "jabbergate_outbox_oldest_age_seconds" {
				continue
			}
			for _, mt := range mf.GetMetric() {
				if mt.GetLabel()[0].GetValue() == bridge {
					return mt.GetGauge().GetValue()
				}
			}
		}
		t.Fatalf("no jabbergate_outbox_oldest_age_seconds for %s", bridge)
		return 0
	}
	if v := age("a.example.org"); v != 0 {
		t.Errorf("empty outboxes: age %v", v)
	}
	a.OutboxOldest("u1", now.Add(-90*time.Second))
	a.OutboxOldest("u2", now.Add(-30*time.Second))
	b.OutboxOldest("u1", now.Add(-5*time.Second))
	if v := age("a.example.org"); v != 90 {
		t.Errorf("a: age %v, want 90 (the oldest of two users)", v)
	}
	if v := age("b.example.org"); v != 5 {
		t.Errorf("b: age %v, want 5 (bridges are separate)", v)
	}
	a.OutboxOldest("u1", time.Time{})
	if v := age("a.example.org"); v != 30 {
		t.Errorf("a after u1 drained: age %v, want 30", v)
	}
	// The user key never reaches the output.
	var out strings.Builder
	mfs, _ := m.Registry.Gather()
	for _, mf := range mfs {
		out.WriteString(mf.String())
	}
	if strings.Contains(out.String(), "u2") {
		t.Error("a user key is exported")
	}
	m.RemoveBridge("a.example.org")
	if n, _ := testutil.GatherAndCount(m.Registry, "jabbergate_outbox_oldest_age_seconds"); n != 1 {
		t.Errorf("series after RemoveBridge: %d, want 1", n)
	}
}

func TestSessionFailuresAndRemoveBridge(t *testing.T) {
	m := New("test")
	b := m.Bridge("gw.example.org")
	b.InitNetwork("telegram")
	b.SessionFailed("telegram", "unauthorized")
	b.SessionFailed("telegram", "token 12345:secret was rejected") // not a reason: bounded
	if v := testutil.ToFloat64(m.sessionFails.WithLabelValues("gw.example.org", "telegram", "unauthorized")); v != 1 {
		t.Errorf("unauthorized = %v", v)
	}
	if v := testutil.ToFloat64(m.sessionFails.WithLabelValues("gw.example.org", "telegram", "error")); v != 1 {
		t.Errorf("error = %v", v)
	}
	if n, _ := testutil.GatherAndCount(m.Registry, "jabbergate_legacy_session_failures_total"); n != len(SessionFailureReasons) {
		t.Errorf("series = %d, want one per reason (%d)", n, len(SessionFailureReasons))
	}
	// The error counters the alerts and dashboard rate() exist at zero
	// before their first event, so that event is seen.
	m.Store(nil)
	for _, c := range []struct {
		name string
		want int
	}{{"jabbergate_link_stream_errors_total", len(streamConditions) + 1}, {"jabbergate_store_errors_total", len(storeOperations)}} {
		if n, _ := testutil.GatherAndCount(m.Registry, c.name); n != c.want {
			t.Errorf("%s: %d series before any error, want %d", c.name, n, c.want)
		}
	}
	b.LinkUp(true)
	m.RemoveBridge("gw.example.org")
	for _, name := range []string{"jabbergate_legacy_session_failures_total", "jabbergate_link_up", "jabbergate_queue_depth", "jabbergate_link_stream_errors_total"} {
		if n, _ := testutil.GatherAndCount(m.Registry, name); n != 0 {
			t.Errorf("%s: %d series after RemoveBridge", name, n)
		}
	}
	m.Bridge("gw.example.org")
	if v := testutil.ToFloat64(m.linkUp.WithLabelValues("gw.example.org")); v != 0 {
		t.Errorf("link_up after re-adding = %v", v)
	}
}

// The per-stanza series are looked up once per bridge; they must count
// exactly what WithLabelValues would, and a bridge re-added after
// RemoveBridge must count into live series.
func TestPerStanzaSeries(t *testing.T) {
	m := New("test")
	const gw = "gw.example.org"
	for range 2 {
		b := m.Bridge(gw)
		b.Stanza(component.In, "message")
		b.Stanza(component.In, "message")
		b.Stanza(component.Out, "iq")
		b.Stanza(component.Out, "made-up") // not pre-made: still counted
		b.Delivered("in", true)
		b.Delivered("out", false)
		b.QueueDepth(store.Inbox, 3)
		b.QueueDepth(store.Outbox, -1)
		for _, c := range []struct {
			name string
			got  float64
			want float64
		}{
			{"message in", testutil.ToFloat64(m.stanzas.WithLabelValues(gw, "message", "in")), 2},
			{"iq out", testutil.ToFloat64(m.stanzas.WithLabelValues(gw, "iq", "out")), 1},
			{"presence in", testutil.ToFloat64(m.stanzas.WithLabelValues(gw, "presence", "in")), 0},
			{"made-up out", testutil.ToFloat64(m.stanzas.WithLabelValues(gw, "made-up", "out")), 1},
			{"delivered in ok", testutil.ToFloat64(m.delivered.WithLabelValues(gw, "in", "ok")), 1},
			{"delivered out failed", testutil.ToFloat64(m.delivered.WithLabelValues(gw, "out", "failed")), 1},
			{"delivered in failed", testutil.ToFloat64(m.delivered.WithLabelValues(gw, "in", "failed")), 0},
			{"inbox depth", testutil.ToFloat64(m.queueDepth.WithLabelValues(gw, queueName(store.Inbox))), 3},
			{"outbox depth", testutil.ToFloat64(m.queueDepth.WithLabelValues(gw, queueName(store.Outbox))), -1},
		} {
			if c.got != c.want {
				t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
			}
		}
		m.RemoveBridge(gw)
	}
}
