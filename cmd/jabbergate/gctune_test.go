package main

import "testing"

func TestGCPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, floor uint64
		want        int
	}{
		{10 * mib, 64 * mib, 500},  // target 10 × 6 = 60 MiB, just under the floor
		{16 * mib, 64 * mib, 300},  // 16 × 4 = 64 MiB
		{32 * mib, 64 * mib, 100},  // twice live reaches the floor: the default
		{500 * mib, 64 * mib, 100}, // large heaps keep the default
		{0, 64 * mib, 6300},        // before the first cycle: 1 MiB assumed
		{20 * mib, 20 * mib, 100},  // floor capped below the live heap (GOMEMLIMIT)
	} {
		if got := gcPercentFor(c.live, c.floor); got != c.want {
			t.Errorf("gcPercentFor(%d MiB, %d MiB) = %d, want %d", c.live/mib, c.floor/mib, got, c.want)
		}
		// The target it sets never exceeds the floor (nor goes under 2 × live).
		if got := gcPercentFor(c.live, c.floor); c.live > 0 && got > 100 {
			if target := c.live * uint64(100+got) / 100; target > c.floor {
				t.Errorf("gcPercentFor(%d MiB, %d MiB) = %d: target %d MiB above the floor", c.live/mib, c.floor/mib, got, target/mib)
			}
		}
	}
}
