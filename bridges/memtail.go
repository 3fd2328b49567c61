package bridges

import (
	"sync"

	"github.com/jabbergate/jabbergate/bridges/store"
)

// tailEntry is an entry of a memTail: it knows its store entry id.
type tailEntry interface{ entryID() string }

func (e memIn) entryID() string  { return e.id }
func (e memOut) entryID() string { return e.id }

// memTail is the in-memory tail of one user's durable queue (the inbox's
// and the outbox's), so that once warm the worker reads nothing from the
// store: after a read of the store returned the whole queue (a "cold"
// read, which makes the tail warm), every entry appended is also handed
// over here, in store order, and signalled on ready. Anything else —
// start, a failure, an overflow past the caller's maximum — makes it cold
// again, and the next batch is read from the store, which holds every
// entry until it is acknowledged.
type memTail[T tailEntry] struct {
	mu       sync.Mutex
	started  bool            // a worker has called start
	warm     bool            // pending holds every entry appended since the last cold read
	pending  []T             // guarded by mu
	lastCold map[string]bool // ids the cold read that made the tail warm returned
	ready    chan struct{}   // signalled by pushLocked; made by start
}

// pushLocked hands e to a warm tail and reports whether it did; past max
// pending entries the tail goes cold instead. m.mu is held.
func (m *memTail[T]) pushLocked(e T, max int) bool {
	if !m.warm {
		return false
	}
	if len(m.pending) >= max {
		m.warm, m.pending = false, nil
		return false
	}
	m.pending = append(m.pending, e)
	kick(m.ready)
	return true
}

// start returns the tail's ready channel at a worker's start and makes
// the tail cold — or, for a queue known to be empty (empty: Bridge.run's
// snapshot of the store, taken before anything could be appended; while
// the tail is not warm every append kicks the worker, which then reads the
// store), warm, so an idle user's worker never reads the store.
func (m *memTail[T]) start(empty bool) <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.started, m.warm, m.pending, m.lastCold = true, empty, nil, nil
	if m.ready == nil {
		m.ready = make(chan struct{}, 1)
	}
	return m.ready
}

// wakeWarm wakes the worker of a warm tail and reports whether that was
// all it needed: the tail was warm, or no worker has started yet (its
// start reads the store or knows the queue empty, and an append before
// it kicks it). Otherwise the caller wakes the worker to read the store.
func (m *memTail[T]) wakeWarm() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.warm {
		kick(m.ready)
	}
	return m.warm || !m.started
}

// cool drops the in-memory tail: the next batch is read from the store.
func (m *memTail[T]) cool() {
	m.mu.Lock()
	m.warm, m.pending, m.lastCold = false, nil, nil
	m.mu.Unlock()
}

// takeLocked pops up to limit pending entries of a warm tail, skipping
// those the cold read that made it warm also returned; it never returns
// empty while entries are pending. m.mu is held.
func (m *memTail[T]) takeLocked(limit int) []T {
	n := 0
	out := make([]T, 0, min(len(m.pending), limit))
	for _, e := range m.pending {
		if len(out) == cap(out) {
			break
		}
		n++
		if !m.lastCold[e.entryID()] {
			out = append(out, e)
		}
	}
	clear(m.pending[:n]) // let the popped entries be collected
	m.pending = m.pending[n:]
	if len(m.pending) == 0 {
		m.pending = nil
	}
	return out
}

// warmLocked makes the tail warm after a cold read that returned the
// whole queue (ids: what it returned; an append committed between that
// read and the push may be in both, and lastCold drops the second copy).
// m.mu is held.
func (m *memTail[T]) warmLocked(ids []string) {
	m.warm, m.pending, m.lastCold = true, nil, nil
	if len(ids) > 0 {
		m.lastCold = make(map[string]bool, len(ids))
		for _, id := range ids {
			m.lastCold[id] = true
		}
	}
}

// entryIDs returns the ids of entries, in order.
func entryIDs(entries []store.Entry) []string {
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.ID
	}
	return ids
}
