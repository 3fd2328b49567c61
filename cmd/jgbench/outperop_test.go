package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
)

// TestStanzasOutPerOp reads the gateway's out-going stanza counters from
// a /metrics page and turns two readings into per-op figures.
func TestStanzasOutPerOp(t *testing.T) {
	count := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		count++
		fmt.Fprintf(w, `# HELP jabbergate_stanzas_total Stanzas read from (in) or written to (out) the component link, by kind.
# TYPE jabbergate_stanzas_total counter
jabbergate_stanzas_total{bridge="echo.localhost",direction="in",kind="message"} %d
jabbergate_stanzas_total{bridge="echo.localhost",direction="out",kind="iq"} %d
jabbergate_stanzas_total{bridge="echo.localhost",direction="out",kind="message"} %d
jabbergate_stanzas_total_other{bridge="echo.localhost",direction="out",kind="iq"} 99
`, 1000*count, 10*count, 100*count)
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	var p int
	fmt.Sscan(port, &p)
	before := stanzasOut(p)
	if want := map[string]float64{"iq": 10, "message": 100}; !reflect.DeepEqual(before, want) {
		t.Fatalf("stanzasOut = %v, want %v", before, want)
	}
	after := stanzasOut(p)
	if got, want := perOp(before, after, 50), map[string]float64{"iq": 0.2, "message": 2}; !reflect.DeepEqual(got, want) {
		t.Fatalf("perOp = %v, want %v", got, want)
	}
	if got := perOp(before, nil, 50); got != nil {
		t.Fatalf("perOp without a second reading = %v, want nil", got)
	}
	srv.Close()
	if got := stanzasOut(p); got != nil {
		t.Fatalf("stanzasOut of a closed port = %v, want nil", got)
	}
}
