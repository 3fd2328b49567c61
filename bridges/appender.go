package bridges

import "sync"

// appender group-commits requests for the whole bridge: callers add a
// request and return (or wait for it on their own); one goroutine, started
// by the first add after a quiet spell, takes every request pending and
// commits them as one round (one store.Apply: one bolt transaction, one
// Redis MULTI), then the next round with whatever arrived meanwhile, until
// none is left. Rounds run one at a time and in arrival order, so per user
// the store order is the order of add calls, and an fsync is shared by
// every request that arrived while the previous one ran.
//
// Three run per bridge: the outbox's (messages from XMPP users, outbox.go),
// the inbox's (events from legacy sessions, emit.go) and the outbox acks
// (messages sent, outbox.go).
type appender[T any] struct {
	mu      sync.Mutex
	pending []T
	running bool
}

// maxRound bounds the requests of one round.
const maxRound = 256

// add queues r and starts the round goroutine if none runs. stamp, when
// not nil, runs under the appender's lock, so whatever it numbers follows
// the queue order. round is called with at most maxRound requests.
func (a *appender[T]) add(b *Bridge, r T, stamp func(), round func([]T)) {
	a.mu.Lock()
	if stamp != nil {
		stamp()
	}
	a.pending = append(a.pending, r)
	if a.running {
		a.mu.Unlock()
		return
	}
	a.running = true
	a.mu.Unlock()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			a.mu.Lock()
			n := min(len(a.pending), maxRound)
			if n == 0 {
				a.running = false
				a.pending = nil
				a.mu.Unlock()
				return
			}
			batch := a.pending[:n:n]
			a.pending = a.pending[n:]
			a.mu.Unlock()
			round(batch)
		}
	}()
}
