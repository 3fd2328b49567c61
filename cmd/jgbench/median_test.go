package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	var in strings.Builder
	for i, ops := range []float64{100, 300, 200, 500, 400} {
		lim, _ := json.Marshal(result{Server: "ejabberd", Component: "limit", Kind: "ping", OpsPerS: 1000, Run: i})
		gw, _ := json.Marshal(result{Server: "ejabberd", Component: "gateway", Kind: "ping", OpsPerS: ops, P99us: ops * 10, RatioToLimit: ops / 1000, Run: i})
		in.WriteString(string(lim) + "\n" + string(gw) + "\n")
	}
	var out, errOut bytes.Buffer
	if code := runMedian(strings.NewReader(in.String()), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one line for the limit and one for the gateway, got:\n%s", out.String())
	}
	var gw median
	if err := json.Unmarshal([]byte(lines[1]), &gw); err != nil {
		t.Fatal(err)
	}
	if gw.Component != "gateway" || gw.Runs != 5 || gw.OpsPerS != 300 || gw.P99us != 3000 || gw.Ratio != 0.3 || gw.RatioMin != 0.1 || gw.RatioMax != 0.5 {
		t.Errorf("gateway median = %+v", gw)
	}
	if code := runMedian(strings.NewReader("jgbench: ejabberd up\n"), &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "line 1") {
		t.Errorf("a non-result line: exit %d, %q", code, errOut.String())
	}
	if got := medianOf([]result{{OpsPerS: 1}, {OpsPerS: 4}}, func(r result) float64 { return r.OpsPerS }); got != 2.5 {
		t.Errorf("median of an even count = %v, want 2.5", got)
	}
}
