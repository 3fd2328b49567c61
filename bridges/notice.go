package bridges

// Notices: chat messages from a contact that tell the user in words what
// became of a message of theirs, where a stanza error alone would not
// reach them.
//
// A message error reaches only an available resource: a server discards an
// error addressed to a bare JID, or to a resource that has gone offline
// (RFC 6121 §8.5.2.1.1, §8.5.3.2.1). That is fine for a failure known at
// once (the sending resource is still there, and its client marks the
// message failed), not for one known minutes or hours later: a delivery
// report from the legacy network (legacy.Undelivered), or the end of the
// outbox's retries. Those are also told with a notice to the bare JID,
// which the server stores offline and copies to every resource like any
// chat message. A message held by transient failures for longer than
// Options.DelayNotice gets one notice too, saying why and until when the
// gateway keeps trying: a user's messages to one contact are sent in
// order, so later ones to that contact wait behind it (outpark.go). A
// failure is late when the message is older than that too.

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
)

// notice is a chat message with text from the contact from to the user's
// bare JID.
func notice(id, from, to, text string) *stanza.Element {
	m := stanza.New(stanza.NSComponent, "message", "type", "chat", "id", id, "from", from, "to", to)
	return m.TextChild(stanza.NSComponent, "body", text)
}

// failureText words a failure for a notice: what was not delivered (its
// first line, when known) and why.
func failureText(quote string, se *stanza.Error) string {
	text := "⚠ Not delivered"
	if quote != "" {
		text += ": “" + quote + "”"
	}
	if se != nil && se.Text != "" {
		text += " — " + se.Text
	}
	return text
}

// delayText words a delay for a notice: what waits, why and until when
// the gateway keeps trying.
func delayText(quote string, err error, until time.Time) string {
	return notSentYet(quote, err) + ". The gateway keeps trying until " + until.UTC().Format("2006-01-02 15:04 MST") +
		"; your later messages to this contact follow it."
}

// rateDelayText is the notice of a message the network asked to hold
// until next: the whole session waits (a rate limit is the account's).
func rateDelayText(quote string, err error, next time.Time, network string) string {
	return notSentYet(quote, err) + ". The gateway sends it at " + next.UTC().Format("15:04:05 MST") +
		"; until then none of your messages to " + network + " go out."
}

// notSentYet is the start of a delay notice: the message and why it waits.
func notSentYet(quote string, err error) string {
	text := "⌛ Not sent yet"
	if quote != "" {
		text += ": “" + quote + "”"
	}
	return text + " — " + transientReason(err)
}

// transientReason words an error the outbox retries.
func transientReason(err error) string {
	reason := "the legacy network cannot be reached"
	if errors.Is(err, legacy.ErrRateLimited) {
		reason = "the legacy network asked us to slow down"
	}
	var ce *legacy.CodeError
	var re *legacy.ReasonError
	switch {
	case errors.As(err, &re) && re.Reason != "":
		reason += " (" + re.Reason + ")"
	case errors.As(err, &ce) && ce.Text != "":
		reason += " (" + ce.Code + " " + ce.Text + ")"
	}
	return reason
}

// onlineResources returns the user's resources known to be available,
// sorted.
func (u *user) onlineResources() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]string, 0, len(u.online))
	for full := range u.online {
		out = append(out, full)
	}
	slices.Sort(out)
	return out
}

// renderUndelivered renders a late failure reported by the legacy network
// (legacy.Undelivered, mapped when stored): a message error with the
// original id to each available resource, so clients mark that message
// failed, and a notice to the bare JID.
func (b *Bridge) renderUndelivered(ctx context.Context, u *user, e *inboxEntry, sid string) ([]*stanza.Element, error) {
	from, err := b.contactJID(legacy.ChatID(e.Chat))
	if err != nil {
		return nil, err
	}
	r, _, err := b.sentRecordOf(ctx, u, e.ID)
	if err != nil {
		return nil, err
	}
	orig := r.StanzaID
	if orig == "" {
		orig = sid // unknown message: still tell the user, under our own id
	}
	se := &stanza.Error{Condition: stanza.Condition(e.Cond), Type: e.ErrType, Text: e.Text}
	if e.Code != "" {
		se.App = stanza.New(nsJabbergate, "legacy-error", "code", e.Code)
	}
	if r.OriginID != "" {
		// A resend of it gets the failure again, not a receipt
		// (answerResend).
		b.recordFailure(ctx, u.jid, r.OriginID, se)
	}
	var out []*stanza.Element
	for _, full := range u.onlineResources() {
		m := stanza.New(stanza.NSComponent, "message", "type", "error", "id", orig, "from", from, "to", full)
		out = append(out, m.Add(se.Element()))
	}
	return append(out, notice(sid, from, u.jid, failureText(r.Excerpt, se))), nil
}

// quoteOf returns what a notice quotes of an outbox entry: the first line
// of a message or correction, nothing for a retraction or reaction.
func quoteOf(e *outboxEntry) string {
	if e.Kind == "" || e.Kind == outEdit {
		return excerpt(e.Text)
	}
	return ""
}

// mapFailed holds, by origin-id, the failure of a user's message that
// failed (at once or reported later), so that a client's resend of it gets
// that failure again rather than a receipt or nothing (answerResend). It
// lives as long as the resend detection (mapOutSeen's 24 h).
const mapFailed = "fail"

// recordFailure remembers se as the failure of the user's message with
// origin-id oid. Best effort: without it a resend gets no answer.
func (b *Bridge) recordFailure(ctx context.Context, userJID, oid string, se *stanza.Error) {
	code := ""
	if se.App != nil {
		code = se.App.Attr("code")
	}
	v := packFields(string(se.Condition), se.Type, code, se.Text)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := b.st.PutMapping(ctx, b.domain, userJID, mapFailed, oid, v, 24*time.Hour); err != nil {
		b.log.Warn("cannot record a message's failure; a resend of it will get no answer", "err", err)
	}
}

// recordedFailure returns the failure recorded for origin-id oid, nil if
// none.
func (b *Bridge) recordedFailure(ctx context.Context, u *user, oid string) *stanza.Error {
	v, found, err := b.getMap(ctx, u, mapFailed, oid)
	if err != nil || !found {
		return nil
	}
	f, ok := unpackFields(v, 4)
	if !ok {
		return nil
	}
	se := &stanza.Error{Condition: stanza.Condition(f[0]), Type: f[1], Text: f[3]}
	if f[2] != "" {
		se.App = stanza.New(nsJabbergate, "legacy-error", "code", f[2])
	}
	return se
}
