package sms

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jabbergate/jabbergate/legacy"
)

// Delivery reports racing the send they report on.
//
// A provider may report on a message before it answered the request that
// sent it: Twilio can POST a status callback for a new SID before its 201
// reaches us, Kannel a DLR before sendsms answered. The core only learns
// the message's id when Send returns, so a report emitted then would
// match no message of the user (the core shows it under an id of its
// own), and the receipt the core sends when Send succeeds would then mark
// a failed message delivered.
//
// So every route call of Send is a flight, and a report for an id the
// session does not know yet is held while a send it may belong to is in
// flight (the same callback token on Twilio, else a send to the same
// number), for at most holdMax. When the send returns the report's id (or
// carries its token) it claims the report: a final failure is then
// returned by Send itself, as a permanent error (the message was sent and
// billed: it must not be sent again), so the core fails the user's
// message instead of acknowledging it; a "delivered" report goes on as
// usual once Send returned.
//
// SMPP receipts are not held: they are read on the bind's one reading
// goroutine, which must stay free to read the submit_sm_resp they would
// wait for. A receipt for an unknown id while a submit to its number is
// in flight is answered with a temporary error instead (ESME_RX_T_APPN),
// and the SMSC delivers it again later (smppReceipt).

// holdMax bounds how long a report waits for the send it may belong to
// (Twilio gives up on a webhook after 15 s); a variable for tests.
var holdMax = 10 * time.Second

// recentIDs is how many ids of sent (and of failed) messages a session
// remembers.
const recentIDs = 4096

// flight is one route call of Send, from the call until it returned.
type flight struct {
	to    string        // destination, E.164
	token string        // carried by Twilio status callbacks (the m parameter)
	done  chan struct{} // closed when the route returned
}

// early is a delivery report held for a send in flight.
type early struct {
	id      legacy.MessageID
	token   string
	failure error // nil: delivered
	claimed chan struct{}
	left    bool // hold gave up waiting; the flight's end claims and removes it
}

// recent is a map of at most recentIDs keys, the oldest forgotten first.
type recent[K comparable, V any] struct {
	m     map[K]V
	order []K
}

func (r *recent[K, V]) put(k K, v V) {
	if r.m == nil {
		r.m = map[K]V{}
	}
	if _, ok := r.m[k]; !ok {
		if len(r.order) >= recentIDs {
			delete(r.m, r.order[0])
			r.order = r.order[1:]
		}
		r.order = append(r.order, k)
	}
	r.m[k] = v
}

func (r *recent[K, V]) get(k K) (V, bool) {
	v, ok := r.m[k]
	return v, ok
}

func (r *recent[K, V]) remove(k K) { delete(r.m, k) }

// idSet is a bounded set of message ids, the oldest forgotten first.
type idSet struct {
	recent[legacy.MessageID, struct{}]
}

func (s *idSet) add(id legacy.MessageID) {
	if id != "" {
		s.put(id, struct{}{})
	}
}

func (s *idSet) has(id legacy.MessageID) bool {
	_, ok := s.get(id)
	return ok
}

// newToken returns a flight's callback token.
func newToken() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

type flightKey struct{}

// withFlight passes f to the route (twilioRoute puts its token in the
// status callback URL).
func withFlight(ctx context.Context, f *flight) context.Context {
	return context.WithValue(ctx, flightKey{}, f)
}

func flightOf(ctx context.Context) *flight {
	f, _ := ctx.Value(flightKey{}).(*flight)
	return f
}

// startFlight records a route call sending to to.
func (s *session) startFlight(to string) *flight {
	f := &flight{to: to, token: newToken(), done: make(chan struct{})}
	s.mu.Lock()
	if s.flights == nil {
		s.flights = map[*flight]bool{}
	}
	s.flights[f] = true
	s.mu.Unlock()
	return f
}

// endFlight records the end of f, which sent message id ("" when the
// route failed), and returns the final failure reported for it while it
// was in flight (nil if none).
func (s *session) endFlight(f *flight, id legacy.MessageID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.flights, f)
	close(f.done)
	if id == "" {
		// The route failed: reports left for this flight (hold) go with it.
		s.early = slices.DeleteFunc(s.early, func(e *early) bool { return e.left && e.token == f.token })
		return nil
	}
	s.sentIDs.add(id)
	var failure error
	kept := s.early[:0]
	for _, e := range s.early {
		if e.id != id && e.token != f.token {
			kept = append(kept, e)
			continue
		}
		select {
		case <-e.claimed:
		default:
			close(e.claimed)
			if e.failure != nil && failure == nil {
				failure = e.failure
			}
		}
		if !e.left {
			kept = append(kept, e) // its hold removes it
		}
	}
	s.early = kept
	if failure != nil {
		s.failedIDs.add(id)
	}
	return failure
}

// known reports whether Send returned id in this session.
func (s *session) known(id legacy.MessageID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sentIDs.has(id)
}

// hold waits, for a delivery report on id (to: the recipient, E.164;
// token: the callback's token, "" if none; failure: nil for delivered),
// while a send it may belong to is in flight, at most holdMax. It returns
// true when that send claimed the report: a failure is then Send's to
// return, and the caller must not emit it.
func (s *session) hold(ctx context.Context, id legacy.MessageID, to, token string, failure error) bool {
	e := &early{id: id, token: token, failure: failure, claimed: make(chan struct{})}
	s.mu.Lock()
	if s.sentIDs.has(id) || len(s.matching(to, token)) == 0 {
		s.mu.Unlock()
		return false
	}
	s.early = append(s.early, e)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if !e.left {
			for i, x := range s.early {
				if x == e {
					s.early = append(s.early[:i], s.early[i+1:]...)
					break
				}
			}
		}
		s.mu.Unlock()
	}()
	timer := time.NewTimer(holdMax)
	defer timer.Stop()
	for {
		s.mu.Lock()
		fs := s.matching(to, token)
		s.mu.Unlock()
		if len(fs) == 0 {
			break
		}
		select {
		case <-e.claimed:
			return true
		case <-fs[0].done:
		case <-timer.C:
			if token != "" {
				// Its own send (the callback carries that send's token)
				// is still waiting for the provider's answer: the report
				// is left for it, to claim when it returns, however late
				// (Send has its own deadline). The webhook is answered.
				s.mu.Lock()
				done := claimed(e)
				if !done {
					e.left = true
				}
				s.mu.Unlock()
				return true
			}
			s.log.Warn("sms: a delivery report waited for its send in vain", "id", id)
			return claimed(e)
		case <-ctx.Done():
			return claimed(e)
		}
	}
	return claimed(e)
}

func claimed(e *early) bool {
	select {
	case <-e.claimed:
		return true
	default:
		return false
	}
}

// inFlightTo reports whether a send to the number to (as a provider
// writes it) is in flight.
func (s *session) inFlightTo(to string) bool {
	chat := s.chatOf(to)
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.matching(chat, "")) > 0
}

// matching returns the flights a report with token (else to the number
// to) may belong to. Call with s.mu held.
func (s *session) matching(to, token string) []*flight {
	var fs []*flight
	for f := range s.flights {
		if (token != "" && f.token == token) || (token == "" && f.to == to) {
			fs = append(fs, f)
		}
	}
	return fs
}

// markFailed records that a final failure of id was reported; it returns
// false when one already was (the report is not shown twice).
func (s *session) markFailed(id legacy.MessageID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failedIDs.has(id) {
		return false
	}
	s.failedIDs.add(id)
	return true
}

// hasFailed reports whether a final failure of id was reported.
func (s *session) hasFailed(id legacy.MessageID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failedIDs.has(id)
}

// failedAtOnce is what Send returns for a message the provider accepted
// and reported failed before it answered: permanent, so neither the core
// nor the next route sends it again (it was sent, and billed). A failure
// the provider calls temporary (an unreachable handset) keeps its code and
// text but is a rejection: sending again is the user's choice.
func failedAtOnce(err error) error {
	if legacy.IsPermanent(err) {
		return fmt.Errorf("sms: the message was sent but not delivered: %w", err)
	}
	var ce *legacy.CodeError
	if errors.As(err, &ce) {
		return fmt.Errorf("sms: the message was sent but not delivered: %w",
			&legacy.CodeError{Code: ce.Code, Text: ce.Text, Err: legacy.ErrRejected})
	}
	return fmt.Errorf("sms: the message was sent but not delivered (%v): %w", err, legacy.ErrRejected)
}
