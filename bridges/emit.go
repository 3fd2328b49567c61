package bridges

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
)

// emitReq is one inbox append waiting for the inbox appender: an event a
// legacy session emitted (sink.Emit or sink.EmitAsync, inbox.go).
type emitReq struct {
	u       *user
	e       *inboxEntry
	sid     string
	payload []byte
	seq     uint64     // EmitAsync: its number in u.inq.async; 0 for Emit
	done    chan error // Emit: the outcome (buffered)
}

// asyncEmits numbers the events EmitAsync took for one user and tells the
// outbox worker when they are durable: the outbox entry whose Send took
// them is acknowledged only after that (ackOut), so an echo answered from
// within Send is never lost by a crash between the outbox ack and its own
// commit.
type asyncEmits struct {
	mu      sync.Mutex
	taken   uint64        // EmitAsync events taken; they are numbered 1..taken
	settled uint64        // every event up to this number is settled (rounds run in order)
	failed  uint64        // number of the last event that could not be stored
	changed chan struct{} // closed when settled advances; made by wait
}

// last returns the number of the last event taken.
func (a *asyncEmits) last() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.taken
}

// wait blocks until every event up to seq is settled and reports whether
// all those after after were stored.
func (a *asyncEmits) wait(after, seq uint64) bool {
	for {
		a.mu.Lock()
		if a.settled >= seq {
			ok := a.failed <= after || a.failed > seq
			a.mu.Unlock()
			return ok
		}
		if a.changed == nil {
			a.changed = make(chan struct{})
		}
		ch := a.changed
		a.mu.Unlock()
		<-ch
	}
}

func (a *asyncEmits) settle(seq uint64, stored bool) {
	a.mu.Lock()
	a.settled = seq
	if !stored {
		a.failed = seq
	}
	if a.changed != nil {
		close(a.changed)
		a.changed = nil
	}
	a.mu.Unlock()
}

// emitWait commits r through the inbox appender and waits for it (Emit).
// If ctx ends first the event may still be stored; the adapter emits it
// again and the replay is recognised by its seen mark.
func (b *Bridge) emitWait(ctx context.Context, r *emitReq) error {
	r.done = make(chan error, 1)
	b.inApp.add(b, r, nil, b.emitRound)
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// emitAsync hands r to the inbox appender without waiting (EmitAsync).
func (b *Bridge) emitAsync(r *emitReq) {
	a := &r.u.inq.async
	b.inApp.add(b, r, func() {
		a.mu.Lock()
		a.taken++
		r.seq = a.taken
		a.mu.Unlock()
	}, b.emitRound)
}

// emitRound commits one round of inbox appends (appender.go): for each
// event its entry and a seen mark of its stanza id, which tells the
// drainer whether this is the first emission ever (no delivered check
// needed) or a replay. Then each entry is handed to its user's drainer in
// memory, in store order, and its sender is told.
func (b *Bridge) emitRound(round []*emitReq) {
	var bt store.Batch
	for _, r := range round {
		bt.MarkSeen(b.domain, r.u.jid, seenInPrefix+r.sid, deliveredTTL)
		bt.Append(store.Queue{Bridge: b.domain, JID: r.u.jid, Kind: store.Inbox}, r.payload)
	}
	// Taken events are committed even when the bridge is stopping.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := store.Apply(ctx, b.st, &bt)
	if err != nil {
		err = fmt.Errorf("bridges: store inbound event: %w", err)
		b.log.Warn("cannot store inbound events; their sessions keep them", "events", len(round), "err", err)
	}
	for i, r := range round {
		if err == nil {
			b.countQueued(r.u, 0, 1)
			r.u.inBacklog.Add(1)
			if !r.u.inq.push(memIn{id: res.IDs[2*i+1][0], e: r.e, sid: r.sid, fresh: res.Seen[2*i]}) {
				kick(r.u.kickIn) // the drainer reads the store
			}
		}
		if r.seq > 0 {
			r.u.inq.async.settle(r.seq, err == nil)
		}
		if r.done != nil {
			r.done <- err
		}
		if err == nil && (i == 0 || round[i-1].u != r.u) {
			if s := b.successor(r.u); s != nil {
				kick(s.kickIn) // its drainer may have read the store before this commit
			}
		}
	}
}
