package sms

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/sms/smpp"
)

// smppRoute is the operator's SMPP bind, shared by every session. The bind
// is up while at least one session runs (acquire/release from Run), so the
// Network itself does no I/O outside Session.Run.
type smppRoute struct {
	net *Network
	c   *smpp.Client

	mu     sync.Mutex
	users  int
	cancel context.CancelFunc
	done   chan struct{}
	moSeq  atomic.Uint64

	// partsMu guards partOf: the SMSC ids of the parts before the last of
	// recent multi-part messages, mapped to the last part's id (which
	// names the message).
	partsMu sync.Mutex
	partOf  recent[string, string]
}

// recordParts remembers which message the parts before the last belong to.
func (r *smppRoute) recordParts(ids []string) {
	last := ids[len(ids)-1]
	r.partsMu.Lock()
	defer r.partsMu.Unlock()
	for _, id := range ids[:len(ids)-1] {
		if id != "" && id != last {
			r.partOf.put(id, last)
		}
	}
}

// messageOf returns the SMSC id naming the message a part's id belongs to,
// and whether id is a part before the last of one.
func (r *smppRoute) messageOf(id string) (string, bool) {
	r.partsMu.Lock()
	defer r.partsMu.Unlock()
	if m, ok := r.partOf.get(id); ok {
		return m, true
	}
	return id, false
}

func (r *smppRoute) name() string { return "smpp" }

// send splits text with our own splitter (Split) and submits every part.
// The message id is the SMSC's id of the last part, so the receipt of the
// last part becomes the XEP-0184 receipt; a final failure of any part is
// the message's (recordParts; in memory: after a restart, a failure of an
// earlier part of a message sent before it is reported on its own).
func (r *smppRoute) send(ctx context.Context, from, to, text string, seg Segments, key string) (legacy.MessageID, error) {
	ids, err := r.c.Submit(ctx, from, to, Split(text), seg.Encoding == UCS2)
	if err != nil {
		if len(ids) > 0 {
			r.net.log.Warn("SMPP message partly submitted; a retry resends every part", "parts_sent", len(ids))
		}
		return "", err
	}
	last := ids[len(ids)-1]
	if last == "" {
		// ESME_ROK: the SMSC took every part, but named no id. Sent, not
		// resent; receipts (which carry the SMSC's id) cannot be matched,
		// and "smpp-" alone would match every receipt without an id.
		r.net.counts.replyMalformed.Add(1)
		id := noSID("smpp-noid-", from, key)
		r.net.log.Warn("the SMSC accepted the message without a message_id; taken as sent, its delivery receipts cannot be matched", "id", id)
		return id, nil
	}
	if len(ids) > 1 {
		r.recordParts(ids)
	}
	return legacy.MessageID("smpp-" + last), nil
}

// acquire starts the bind with the first user.
func (r *smppRoute) acquire() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.users++
	if r.users > 1 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		for backoff := time.Second; ; backoff = min(2*backoff, time.Minute) {
			err := r.c.Run(ctx)
			if ctx.Err() != nil {
				return
			}
			r.net.log.Warn("SMPP bind failed, retrying", "err", err, "in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
		}
	}(r.done)
}

// release stops the bind with the last user and waits for it to end,
// holding the lock so that a new first user cannot start a second bind
// meanwhile.
func (r *smppRoute) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.users--
	if r.users > 0 {
		return
	}
	r.cancel()
	<-r.done
}

// smppDeliver handles an MO deliver_sm: it returns nil (ESME_ROK) once the
// owner's session took it, an error (ESME_RX_T_APPN, the SMSC retries)
// otherwise. deliver_sm carries no message id, so each one gets a new id:
// a deliver_sm redelivered after an error was not stored, and one
// redelivered after a lost deliver_sm_resp may show twice.
func (n *Network) smppDeliver(mo smpp.MO) error {
	s := n.lookup(mo.To)
	if s == nil {
		return fmt.Errorf("sms: no running session for %s", mo.To)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id := fmt.Sprintf("smpp-mo-%d-%d", time.Now().UnixNano(), n.smpp.moSeq.Add(1))
	if mo.Total > 1 {
		return s.receivePart(ctx, mo, n.smpp)
	}
	return s.receive(ctx, id, mo.From, mo.Text, n.smpp)
}

// smppReceipt turns a DELIVRD receipt into a legacy.Receipt and the final
// failures (UNDELIV, EXPIRED, DELETED, UNKNOWN, REJECTD) into
// legacy.Undelivered; other states are not final and are ignored.
func (n *Network) smppReceipt(r smpp.Receipt) error {
	var cause error
	switch r.State {
	case "DELIVRD":
	case "REJECTD":
		cause = legacy.ErrRejected
	case "UNDELIV", "EXPIRED", "DELETED", "UNKNOWN":
		cause = legacy.ErrUnavailable
	default: // ENROUTE, ACCEPTD, …: not final
		return nil
	}
	s := n.lookup(r.To)
	if s == nil {
		return errors.New("sms: no running session for the receipt's number")
	}
	msg, earlierPart := n.smpp.messageOf(r.ID)
	if earlierPart && cause == nil {
		return nil // the message is delivered when its last part is
	}
	id := legacy.MessageID("smpp-" + msg)
	if !s.known(id) && s.inFlightTo(r.From) {
		// The receipt overtook the submit_sm_resp of a send to this
		// number: reported now, it would match no message (flight.go).
		// Waiting here would hold the bind's reading goroutine, which
		// must read that very answer; a temporary error makes the SMSC
		// deliver the receipt again later, when the id is known.
		return errors.New("sms: receipt for a message whose submit_sm_resp has not arrived yet")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if cause != nil {
		text := "the SMS centre reports the message " + r.State
		if earlierPart {
			text = "the SMS centre reports a part of the message " + r.State
		}
		cause = &legacy.CodeError{Code: r.State, Text: text, Err: cause}
	}
	return s.finalReport(ctx, id, r.From, cause) // a part's failure is the message's, once
}
