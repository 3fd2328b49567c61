package bridges

import (
	"testing"
	"time"
)

func TestRateLimiterBucket(t *testing.T) {
	l := newRateLimiter(2, 3)
	t0 := time.Unix(1000, 0)
	for i := range 3 {
		if !l.allow("a", t0) {
			t.Fatalf("burst token %d refused", i)
		}
	}
	if l.allow("a", t0) {
		t.Fatal("fourth stanza at once allowed with burst 3")
	}
	if !l.allow("b", t0) {
		t.Fatal("another sender limited")
	}
	if l.allow("a", t0.Add(400*time.Millisecond)) {
		t.Fatal("token before 1/rate elapsed")
	}
	if !l.allow("a", t0.Add(500*time.Millisecond)) {
		t.Fatal("no token after 1/rate")
	}
	// Idle buckets are forgotten at the next sweep.
	if l.allow("c", t0.Add(2*time.Minute)); l.size() != 1 {
		t.Errorf("buckets after sweep = %d, want 1", l.size())
	}
	// Defaults and disabling.
	d := newRateLimiter(0, 0)
	if d.rate != DefaultRateLimit || d.burst != DefaultRateBurst {
		t.Errorf("defaults = %v/%v", d.rate, d.burst)
	}
	off := newRateLimiter(-1, 0)
	for range 1000 {
		if !off.allow("a", t0) {
			t.Fatal("disabled limiter refused")
		}
	}
}
