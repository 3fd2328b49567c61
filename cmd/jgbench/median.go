package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
)

// median is one summary line of `jgbench median`: the medians over the
// runs of one (server, store, component, kind, via), with the range of the
// ratio.
type median struct {
	Server      string  `json:"server"`
	Store       string  `json:"store,omitempty"`
	Component   string  `json:"component"`
	Kind        string  `json:"kind"`
	Via         string  `json:"via,omitempty"`
	Runs        int     `json:"runs"`
	OpsPerS     float64 `json:"ops_per_s"`
	P99us       float64 `json:"p99_us"`
	CompCPUusOp float64 `json:"component_cpu_us_per_op"`
	ReadsOp     float64 `json:"component_reads_per_op"`
	WritesOp    float64 `json:"component_writes_per_op"`
	ServerCPUs  float64 `json:"server_cpu_s"`
	HostIdlePct float64 `json:"host_idle_pct"`
	Ratio       float64 `json:"ratio_to_limit,omitempty"`
	RatioMin    float64 `json:"ratio_min,omitempty"`
	RatioMax    float64 `json:"ratio_max,omitempty"`
	SameReply   float64 `json:"ratio_to_same_reply,omitempty"`
}

// runMedian is `jgbench median`: it reads jgbench's JSON lines on in and
// writes one line per (server, store, component, kind, via) with the medians of
// its runs, in the order they first appear. Lines that are not results
// are an error.
func runMedian(in io.Reader, out, stderr io.Writer) int {
	type key struct{ server, store, comp, kind, via string }
	var order []key
	groups := map[key][]result{}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var r result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.Component == "" {
			fmt.Fprintf(stderr, "jgbench median: line %d is not a jgbench result: %.80s\n", n, sc.Text())
			return 2
		}
		k := key{r.Server, r.Store, r.Component, r.Kind, r.Via}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(stderr, "jgbench median: %v\n", err)
		return 1
	}
	enc := json.NewEncoder(out)
	for _, k := range order {
		rs := groups[k]
		m := median{Server: k.server, Store: k.store, Component: k.comp, Kind: k.kind, Via: k.via, Runs: len(rs),
			OpsPerS:     medianOf(rs, func(r result) float64 { return r.OpsPerS }),
			P99us:       medianOf(rs, func(r result) float64 { return r.P99us }),
			CompCPUusOp: medianOf(rs, func(r result) float64 { return r.CompCPUusOp }),
			ReadsOp:     medianOf(rs, func(r result) float64 { return r.CompReadsOp }),
			WritesOp:    medianOf(rs, func(r result) float64 { return r.CompWritesOp }),
			ServerCPUs:  medianOf(rs, func(r result) float64 { return r.ServerCPUs }),
			HostIdlePct: medianOf(rs, func(r result) float64 { return r.HostIdlePct }),
			Ratio:       medianOf(rs, func(r result) float64 { return r.RatioToLimit }),
			SameReply:   medianOf(rs, func(r result) float64 { return r.RatioToSameReply }),
		}
		if m.Ratio > 0 {
			m.RatioMin = slices.MinFunc(rs, func(a, b result) int { return cmpFloat(a.RatioToLimit, b.RatioToLimit) }).RatioToLimit
			m.RatioMax = slices.MaxFunc(rs, func(a, b result) int { return cmpFloat(a.RatioToLimit, b.RatioToLimit) }).RatioToLimit
		}
		if err := enc.Encode(m); err != nil {
			return 1
		}
	}
	return 0
}

// medianOf returns the median of f over rs (the mean of the middle two
// for an even count).
func medianOf(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	n := len(v)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return v[n/2]
	}
	return round((v[n/2-1]+v[n/2])/2, 3)
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
