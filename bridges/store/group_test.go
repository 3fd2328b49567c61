package store

import (
	"sync"
	"testing"
	"time"
)

type groupReq struct {
	id   int
	done chan error
}

// TestGroupCommitsEveryRequestOnce: concurrent callers are each committed
// exactly once, in rounds of at most max, rounds never overlap, and
// requests queued while a round runs share the next one.
func TestGroupCommitsEveryRequestOnce(t *testing.T) {
	var g Group[*groupReq]
	const callers, max = 200, 16
	var mu sync.Mutex
	committed := map[int]int{}
	rounds, inRound, overlap := 0, 0, false
	round := func(batch []*groupReq) {
		mu.Lock()
		inRound++
		overlap = overlap || inRound > 1
		rounds++
		if len(batch) > max {
			t.Errorf("round of %d requests, max %d", len(batch), max)
		}
		mu.Unlock()
		time.Sleep(200 * time.Microsecond) // a commit takes time: others queue up
		mu.Lock()
		for _, r := range batch {
			committed[r.id]++
		}
		inRound--
		mu.Unlock()
		for _, r := range batch {
			r.done <- nil
		}
	}
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &groupReq{id: i, done: make(chan error, 1)}
			if lead, _ := g.Join(r, true); lead {
				if err := g.Lead(r.done, max, round); err != nil {
					t.Error(err)
				}
				return
			}
			<-r.done
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for i := range callers {
		if committed[i] != 1 {
			t.Errorf("request %d committed %d times", i, committed[i])
		}
	}
	if overlap {
		t.Error("two rounds ran at once")
	}
	if rounds >= callers {
		t.Errorf("%d rounds for %d concurrent requests: none shared", rounds, callers)
	}
	t.Logf("%d requests in %d rounds", callers, rounds)
}

// TestGroupDeferred: a request joined without claiming, with no commit
// running, waits until someone claims; a claim with nothing queued fails.
func TestGroupDeferred(t *testing.T) {
	var g Group[*groupReq]
	r := &groupReq{done: make(chan error, 1)}
	if lead, running := g.Join(r, false); lead || running {
		t.Fatalf("deferred join: lead %v, running %v", lead, running)
	}
	select {
	case <-r.done:
		t.Fatal("deferred request committed without a committer")
	case <-time.After(10 * time.Millisecond):
	}
	if !g.Claim() {
		t.Fatal("claim with a queued request failed")
	}
	var got []*groupReq
	g.Rest(8, func(b []*groupReq) {
		got = append(got, b...)
		for _, r := range b {
			r.done <- nil
		}
	})
	if len(got) != 1 || got[0] != r {
		t.Fatalf("rest committed %v", got)
	}
	if g.Claim() {
		t.Error("claim with nothing queued succeeded")
	}
}
