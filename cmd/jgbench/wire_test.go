package main

import "testing"

func TestBody(t *testing.T) {
	el := []byte(`<message type='chat' id="m1" from='u0@load.localhost/r'><body>jgb-42</body></message>`)
	if got := body(el); got != "jgb-42" {
		t.Errorf("body = %q", got)
	}
}

func TestLoadResultPercentiles(t *testing.T) {
	var r loadResult
	for i := 1; i <= 1000; i++ {
		r.Lat = append(r.Lat, 1000*1000*1) // 1 ms each
	}
	if r.pct(0.5) != 1000 || r.pct(0.999) != 1000 {
		t.Fatalf("pct = %v %v", r.pct(0.5), r.pct(0.999))
	}
}
