package metrics

import (
	"strings"
	"testing"

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
	n, err := testutil.GatherAndCount(m.Registry, "jabbergate_link_stream_errors_total")
	if err != nil || n != 2 {
		t.Errorf("series = %d, %v", n, err)
	}
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(""), "jabbergate_nonexistent"); err != nil {
		t.Error(err)
	}
}
