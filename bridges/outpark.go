package bridges

// Parking: a message that fails for a while does not hold up the user's
// messages to other chats.
//
// The outbox is one queue per user, sent in order. When a message fails
// with a transient error of its own (a mail server greylisting one
// recipient, a 5xx for one chat), the worker parks it with the time of
// its next try and goes on with the queue; every later message to the
// same chat is parked behind it, so each chat's messages still go out in
// the order they were written. Parked chats are tried again when their
// time comes, head first; once the head is sent (or has failed for good),
// the chat's next messages follow at once. A rate limit is the session's,
// not the chat's: deliverOut waits for it in place.
//
// Parked entries stay in the store until settled, like any entry not yet
// sent; store reads skip them (outboxMem.parked) as they skip entries
// whose ack is in flight. At most maxParked are parked: past that the
// worker takes no new entries until parked ones settle, as before parking
// existed. A worker that stops forgets its parked entries; the next one
// finds them in the store.

import (
	"context"
	"slices"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
)

// maxParked bounds the parked entries of one worker.
const maxParked = 256

// parkedEntry is a parked outbox entry and its retry state (nil: not tried
// yet, parked behind its chat's head).
type parkedEntry struct {
	ent memOut
	try *outTry
}

// parkedChat is one chat's parked entries, in queue order.
type parkedChat struct {
	at   time.Time // when the head is tried again
	ents []parkedEntry
}

// outPark is one outbox worker's parked chats; worker goroutine only
// (the ids it registers in outboxMem.parked are read under its lock).
type outPark struct {
	chats map[string]*parkedChat
	n     int // entries parked
}

// parked reports whether chat has parked entries.
func (p *outPark) parked(chat string) bool {
	return p.n > 0 && p.chats[chat] != nil
}

// add parks pe behind chat's parked entries; at is the head's next try
// for a chat parked by this call.
func (p *outPark) add(m *outboxMem, chat string, pe parkedEntry, at time.Time) {
	if p.chats == nil {
		p.chats = map[string]*parkedChat{}
	}
	pc := p.chats[chat]
	if pc == nil {
		pc = &parkedChat{at: at}
		p.chats[chat] = pc
	}
	pc.ents = append(pc.ents, pe)
	p.n++
	m.mu.Lock()
	if m.parked == nil {
		m.parked = map[string]bool{}
	}
	m.parked[pe.ent.id] = true
	m.mu.Unlock()
}

// pop removes chat's head, which is settled (its ack is in flight, so
// store reads keep skipping it).
func (p *outPark) pop(m *outboxMem, chat string) {
	pc := p.chats[chat]
	id := pc.ents[0].ent.id
	pc.ents[0] = parkedEntry{}
	pc.ents = pc.ents[1:]
	p.n--
	if len(pc.ents) == 0 {
		delete(p.chats, chat)
	}
	m.mu.Lock()
	delete(m.parked, id)
	m.mu.Unlock()
}

// clear forgets every parked entry (the worker stops).
func (p *outPark) clear(m *outboxMem) {
	p.chats, p.n = nil, 0
	m.mu.Lock()
	m.parked = nil
	m.mu.Unlock()
}

// next returns the earliest time a parked head is due.
func (p *outPark) next() (time.Time, bool) {
	var at time.Time
	for _, pc := range p.chats {
		if at.IsZero() || pc.at.Before(at) {
			at = pc.at
		}
	}
	return at, !at.IsZero()
}

// due returns the chats whose head is due at now, earliest first.
func (p *outPark) due(now time.Time) []string {
	var chats []string
	for chat, pc := range p.chats {
		if !pc.at.After(now) {
			chats = append(chats, chat)
		}
	}
	slices.SortFunc(chats, func(a, b string) int { return p.chats[a].at.Compare(p.chats[b].at) })
	return chats
}

// oldest returns the enqueue time of the oldest parked entry, zero if none.
func (p *outPark) oldest() time.Time {
	var t time.Time
	for _, pc := range p.chats {
		if e := pc.ents[0].ent.e; e != nil && (t.IsZero() || e.Time.Before(t)) {
			t = e.Time
		}
	}
	return t
}

// reportOldest sets the outbox age metric to the oldest of the parked
// entries and enqueued (the entry being sent; zero: none).
func (b *Bridge) reportOldest(u *user, p *outPark, enqueued time.Time) {
	if o := p.oldest(); !o.IsZero() && (enqueued.IsZero() || o.Before(enqueued)) {
		enqueued = o
	}
	b.outboxOldest(u, enqueued)
}

// retryParked tries the heads of the parked chats that are due, and each
// chat's following entries while they are sent. It returns false when
// the worker must stop.
func (b *Bridge) retryParked(ctx context.Context, u *user, q store.Queue, p *outPark, bound *sendBound) bool {
	if p.n == 0 {
		return true
	}
	for _, chat := range p.due(time.Now()) {
		pc := p.chats[chat]
		for pc != nil && len(pc.ents) > 0 {
			head := &pc.ents[0]
			if head.try == nil {
				head.try = &outTry{}
			}
			b.reportOldest(u, p, time.Time{})
			oc, at := b.sendOne(ctx, u, q, head.ent, bound, head.try)
			switch oc {
			case outStopped:
				return false
			case outRetry:
				pc.at = at
			case outSettled:
				p.pop(&u.outq, chat)
				continue
			}
			break
		}
	}
	return true
}
