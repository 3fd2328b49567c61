package main

import (
	"context"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// gcHeapFloor is the heap size below which the garbage collector does not
// start a cycle (tuneGC).
const gcHeapFloor = 32 << 20

// tuneGC keeps the collector's heap target at gcHeapFloor or more. A
// gateway's live heap is small (tens of MiB) while every message allocates
// (decoding, JSON of the queue entries, and bbolt copying the pages each
// commit touches), so with Go's default (GOGC=100: collect when the heap
// has doubled) it collected dozens of times a second and spent about a
// third of its CPU on collecting and returning memory to the OS
// (docs/performance.md: 354 → 239 µs of CPU per echoed message with
// GOGC=400). The floor is not higher because fresh heap costs too (it is
// faulted in and cleared): 64 MiB made a ping dearer than Go's default,
// 32 MiB kept most of the gain for messages. Above the floor the default
// applies: a large deployment's heap still grows to twice its live size at
// most.
//
// It reads the live heap every second and sets the GC percentage so that
// the next target is max(floor, 2 × live), capped at half of a GOMEMLIMIT
// when one is set. Setting GOGC in the environment turns it off: the
// operator's choice stands.
func tuneGC(ctx context.Context, log *slog.Logger) {
	if os.Getenv("GOGC") != "" {
		log.Debug("GOGC set: garbage collector left as configured")
		return
	}
	floor := uint64(gcHeapFloor)
	if limit := debug.SetMemoryLimit(-1); limit > 0 && limit < math.MaxInt64 {
		floor = min(floor, uint64(limit)/2)
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	set := 100
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			if p := gcPercentFor(sample[0].Value.Uint64(), floor); p != set {
				debug.SetGCPercent(p)
				set = p
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// gcPercentFor returns the GOGC value that puts the heap target at
// max(floor, 2 × live), rounded down to a multiple of 50 so that small
// changes of the live heap do not reset it every second.
func gcPercentFor(live, floor uint64) int {
	const step = 50
	if live == 0 {
		live = 1 << 20 // before the first cycle
	}
	if live*2 >= floor {
		return 100
	}
	p := int(100 * (floor - live) / live)
	return max(100, p/step*step)
}
