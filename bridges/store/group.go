package store

import (
	"sync"
	"sync/atomic"
	"time"
)

// Group queues write requests for shared commits (group commit), for the
// Batcher implementations: the bolt store shares bbolt transactions (and
// their fsyncs) with it, the Redis store MULTI/EXEC round trips.
//
// The first caller to find no commit running becomes the committer
// (Join returns lead) and runs commit rounds (Lead) until its own request
// is done; callers arriving meanwhile queue up, and each round takes up to
// max of the queued requests. A lone caller is committed at once (no
// timer); under load a round carries everything that arrived during the
// previous one. When the committer's own request is done it hands what is
// left to a goroutine, so it does not wait for later callers.
//
// The round function commits a batch of requests and tells each of them
// its result (through whatever the request carries, such as a channel);
// Lead learns that its caller's request is done from done.
type Group[R any] struct {
	mu      sync.Mutex
	pending []R
	running bool // a committer is active

	lazyArmed atomic.Bool // Submit: a timer will commit deferred requests nobody took along
}

// Submit queues r and returns its result, read from done: when no commit
// is running the caller becomes the committer and runs rounds (Lead)
// until its own request is done. A deferred request never starts a round:
// it rides along with the next one another caller starts, or, when none
// is running, with the one a timer starts after delay (store.Deferrable).
func (g *Group[R]) Submit(r R, done <-chan error, deferred bool, delay time.Duration, max int, round func([]R)) error {
	lead, running := g.Join(r, !deferred)
	switch {
	case lead:
		return g.Lead(done, max, round)
	case !running && g.lazyArmed.CompareAndSwap(false, true):
		time.AfterFunc(delay, func() {
			g.lazyArmed.Store(false)
			if g.Claim() {
				g.Rest(max, round)
			}
		})
	}
	return <-done
}

// Join queues r. With claim set and no commit running, the caller becomes
// the committer: Join returns lead, and the caller must call Lead. Else
// running tells whether a committer will take r along; when neither, the
// caller must see to it that Claim and Rest run later (a deferred
// request).
func (g *Group[R]) Join(r R, claim bool) (lead, running bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pending = append(g.pending, r)
	if g.running {
		return false, true
	}
	if claim {
		g.running = true
		return true, true
	}
	return false, false
}

// Claim makes the caller the committer if none is running and requests
// are queued; it then must call Rest.
func (g *Group[R]) Claim() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.running || len(g.pending) == 0 {
		return false
	}
	g.running = true
	return true
}

// Lead runs rounds of at most max requests until done yields the
// caller's result, then hands the rest to a goroutine (Rest) and returns
// that result.
func (g *Group[R]) Lead(done <-chan error, max int, round func([]R)) error {
	for {
		g.round(max, round)
		select {
		case err := <-done:
			g.mu.Lock()
			if len(g.pending) == 0 {
				g.running = false
				g.mu.Unlock()
			} else {
				g.mu.Unlock()
				go g.Rest(max, round)
			}
			return err
		default:
		}
	}
}

// Rest runs rounds until nothing is queued, then stops being the
// committer.
func (g *Group[R]) Rest(max int, round func([]R)) {
	for {
		g.mu.Lock()
		if len(g.pending) == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		g.round(max, round)
	}
}

// round takes up to max queued requests and commits them.
func (g *Group[R]) round(max int, round func([]R)) {
	g.mu.Lock()
	n := min(len(g.pending), max)
	batch := g.pending[:n:n]
	g.pending = g.pending[n:]
	if len(g.pending) == 0 {
		g.pending = nil
	}
	g.mu.Unlock()
	if len(batch) > 0 {
		round(batch)
	}
}
