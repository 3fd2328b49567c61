package bridges

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/jabbergate/jabbergate/bridges/jidmap"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
)

// outboxEntry is a message from the XMPP user waiting to be sent.
type outboxEntry struct {
	Key      string    `json:"key"` // idempotency key, random, fixed at enqueue
	From     string    `json:"from"`
	ID       string    `json:"id"`
	OriginID string    `json:"oid,omitempty"`
	To       string    `json:"to"` // contact JID as the user wrote it
	Chat     string    `json:"chat"`
	Text     string    `json:"text"`
	Subject  string    `json:"sub,omitempty"`
	Thread   string    `json:"th,omitempty"`
	Receipt  bool      `json:"rcpt,omitempty"`
	Time     time.Time `json:"ts"`

	// Kind is "" for a message, else outEdit, outRetract or outReact.
	Kind string `json:"kind,omitempty"`
	// Target is the stanza id (id or origin-id) of the message an edit,
	// retraction, reaction or reply refers to; it is mapped to the legacy
	// id when the entry is delivered, so it may name a message queued
	// just before.
	Target string `json:"tgt,omitempty"`
	// Emojis is the full reaction set of a reaction.
	Emojis []string `json:"emo,omitempty"`
	// Quoted is the body with its reply fallback kept, sent instead of
	// Text when the replied-to message is unknown.
	Quoted string `json:"quo,omitempty"`
	// File is the http(s) URL of an attachment to fetch and send
	// (attachments.go); Text is then its caption.
	File string `json:"file,omitempty"`
}

const mapOutSeen = "out-origin" // origin-id of an enqueued message → "1", to drop client resends

// handleMessage handles a message stanza from a user.
//
// Ephemeral extensions (chat states, displayed markers) are handed to the
// user's best-effort worker and never queued; corrections, retractions and
// reactions are queued in the durable outbox behind the messages they refer
// to; a body without any of those is an ordinary message (possibly a reply).
func (b *Bridge) handleMessage(ctx context.Context, st *stanza.Element, from, to jid.JID) {
	switch st.Type() {
	case "error":
		b.log.Info("error message from the XMPP side", "to", to.Localpart() != "", "error", stanza.ParseError(st))
		return
	case "groupchat":
		b.reply(ctx, stanza.ErrorReply(st, stanza.NewError(stanza.ServiceUnavailable, "this gateway has no group chats yet")))
		return
	case "headline":
		return
	}
	if to.Localpart() == "" {
		b.handleGatewayChat(ctx, st, from)
		return
	}
	body := st.Child("", "body")
	if isEncrypted(st) && body != nil {
		b.reply(ctx, stanza.ErrorReply(st, &stanza.Error{Condition: stanza.NotAcceptable, Type: stanza.ErrModify,
			Text: "end-to-end encrypted messages cannot be bridged: the legacy network needs the plain text. Turn encryption off for this contact."}))
		return
	}
	b.ephemeralIn(ctx, st, from, to) // chat states and markers, best effort
	retractID := retractTarget(st)
	reactions := st.Child(nsReactions, "reactions")
	fileURL := oobURL(st)
	body = bodyOrURL(body, fileURL)
	if body == nil && retractID == "" && reactions == nil {
		return // chat states, receipts, markers only: nothing to queue
	}
	u := b.getUser(from.Bare().String())
	if u == nil {
		b.reply(ctx, stanza.ErrorReply(st, stanza.NewError(stanza.RegistrationRequired,
			"register with "+b.domain+" first (service discovery, or send \"help\" to "+b.domain+")")))
		return
	}
	chat, err := b.validChat(ctx, u, to.Localpart())
	if err != nil {
		b.reply(ctx, stanza.ErrorReply(st, &stanza.Error{Condition: stanza.JIDMalformed, Type: stanza.ErrModify,
			Text: to.Localpart() + " is not a valid " + b.info.DisplayName + " address: " + err.Error()}))
		return
	}
	originID := ""
	if o := st.Child(nsSID, "origin-id"); o != nil {
		originID = o.Attr("id")
	}
	if originID != "" {
		if _, err := b.st.GetMapping(ctx, b.domain, u.jid, mapOutSeen, originID); err == nil {
			return // a client resend of a message already queued
		}
	}
	e := outboxEntry{
		Key:      newKey(),
		From:     from.String(),
		ID:       st.ID(),
		OriginID: originID,
		To:       to.Bare().String(),
		Chat:     string(chat),
		Subject:  st.ChildText("", "subject"),
		Thread:   st.ChildText("", "thread"),
		Receipt:  st.Child(nsReceipts, "request") != nil && st.ID() != "",
		Time:     time.Now().UTC(),
	}
	if se := b.prepareOut(st, &e, body, retractID, reactions); se != nil {
		b.reply(ctx, stanza.ErrorReply(st, se))
		return
	}
	if e.Kind == "skip" {
		return
	}
	b.prepareFile(&e, fileURL)
	if max := b.info.MaxTextLength; max > 0 && len(e.Text) > max {
		b.reply(ctx, stanza.ErrorReply(st, &stanza.Error{Condition: stanza.NotAcceptable, Type: stanza.ErrModify,
			Text: fmt.Sprintf("message of %d bytes is longer than the %d bytes %s accepts", len(e.Text), max, b.info.DisplayName)}))
		return
	}
	payload, _ := json.Marshal(e)
	q := store.Queue{Bridge: b.domain, JID: u.jid, Kind: store.Outbox}
	if _, err := b.st.Append(ctx, q, payload); err != nil {
		b.log.Error("cannot queue outgoing message", "user", u.owner, "err", err)
		b.reply(ctx, stanza.ErrorReply(st, &stanza.Error{Condition: stanza.ResourceConstraint, Type: stanza.ErrWait,
			Text: "the gateway cannot store your message right now; it was not sent, try again shortly"}))
		return
	}
	if originID != "" {
		_ = b.st.PutMapping(ctx, b.domain, u.jid, mapOutSeen, originID, "1", 24*time.Hour)
	}
	b.obs.QueueDepth(store.Outbox, 1)
	kick(u.kickOut)
}

// chatFor returns the legacy chat a contact localpart names: the stored
// contact's id when known (never re-derived), else the unescaped localpart.
func (b *Bridge) chatFor(ctx context.Context, u *user, localpart string) legacy.ChatID {
	if c, err := b.st.GetContact(ctx, b.domain, u.jid, localpart); err == nil && c.LegacyID != "" {
		return legacy.ChatID(c.LegacyID)
	}
	return jidmap.ChatFromLocalpart(localpart)
}

// validChat returns the chat of a contact localpart, checking addresses
// the store does not know yet with the network's Resolver (which must be
// cheap for input already in canonical form), so an invalid address is
// refused before it is queued.
func (b *Bridge) validChat(ctx context.Context, u *user, localpart string) (legacy.ChatID, error) {
	if c, err := b.st.GetContact(ctx, b.domain, u.jid, localpart); err == nil && c.LegacyID != "" {
		return legacy.ChatID(c.LegacyID), nil
	}
	chat := jidmap.ChatFromLocalpart(localpart)
	if b.resolve == nil {
		return chat, nil
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resolved, err := b.resolve.Resolve(rctx, string(chat))
	if errors.Is(err, legacy.ErrInvalidAddress) {
		return "", err
	}
	if err != nil || resolved == "" {
		return chat, nil // not our call to refuse: the adapter will say at send time
	}
	return resolved, nil
}

func isEncrypted(st *stanza.Element) bool {
	for _, c := range st.Children() {
		switch {
		case c.Local == "encrypted" && (c.Space == nsOMEMO || c.Space == nsOMEMO2):
			return true
		case c.Local == "openpgp" && c.Space == nsOpenPGP:
			return true
		case c.Local == "x" && c.Space == nsPGPLegacy:
			return true
		}
	}
	return false
}

func newKey() string {
	var k [16]byte
	_, _ = rand.Read(k[:])
	return hex.EncodeToString(k[:])
}

// runOutbox sends the user's queued messages in order until ctx ends.
func (b *Bridge) runOutbox(ctx context.Context, u *user) {
	q := store.Queue{Bridge: b.domain, JID: u.jid, Kind: store.Outbox}
	for {
		select {
		case <-ctx.Done():
			return
		case <-u.kickOut:
		}
		for ctx.Err() == nil {
			entries, err := b.st.Read(ctx, q, "", 16)
			if err != nil {
				b.log.Warn("read outbox", "user", u.owner, "err", err)
				sleep(ctx, jitter(time.Second))
				continue
			}
			if len(entries) == 0 {
				break
			}
			for _, ent := range entries {
				var e outboxEntry
				if err := json.Unmarshal(ent.Payload, &e); err != nil {
					b.log.Error("corrupt outbox entry dropped", "user", u.owner, "entry", ent.ID, "err", err)
				} else if !b.deliverOut(ctx, u, &e) {
					return // ctx ended; the entry stays queued
				}
				for ctx.Err() == nil {
					if err := b.st.Ack(ctx, q, ent.ID); err == nil {
						break
					} else {
						b.log.Warn("ack outbox entry", "user", u.owner, "err", err)
						sleep(ctx, jitter(time.Second))
					}
				}
				b.obs.QueueDepth(store.Outbox, -1)
			}
		}
	}
}

// deliverOut sends one message, retrying transient failures until the TTL.
// It returns false only when ctx ended before the outcome was settled.
func (b *Bridge) deliverOut(ctx context.Context, u *user, e *outboxEntry) bool {
	delay := b.opts.RetryMin
	var lastErr error
	var file *legacy.Attachment // a fetched attachment, kept across retries
	for {
		if ctx.Err() != nil {
			return false
		}
		if time.Since(e.Time) > b.ttl {
			err := lastErr
			if err == nil {
				err = legacy.ErrUnavailable
			}
			b.log.Warn("outgoing message expired", "user", u.owner, "age", time.Since(e.Time).Round(time.Second), "err", err)
			b.failOut(ctx, e, stanzaError(err))
			return true
		}
		u.mu.Lock()
		sess, status := u.sess, u.status
		u.mu.Unlock()
		if sess == nil || status == legacy.StatusUnauthorized {
			b.failOut(ctx, e, stanzaError(legacy.ErrUnauthorized))
			return true
		}
		sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		id, err := b.sendEntry(sctx, u, sess, e, &file)
		cancel()
		if err == nil {
			b.sentOut(ctx, u, e, id)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		var se *stanza.Error
		if errors.As(err, &se) {
			b.log.Info("outgoing message refused by the gateway", "user", u.owner, "kind", e.Kind, "err", se.Text)
			b.failOut(ctx, e, se)
			return true
		}
		if legacy.IsPermanent(err) {
			b.log.Info("outgoing message refused by the legacy network", "user", u.owner, "err", err)
			b.failOut(ctx, e, stanzaError(err))
			return true
		}
		lastErr = err
		wait := jitter(delay)
		var rl *legacy.RateLimitError
		if errors.As(err, &rl) && rl.RetryAfter > 0 {
			wait = rl.RetryAfter
		}
		b.log.Warn("sending failed; will retry", "user", u.owner, "err", err, "in", wait)
		if !sleep(ctx, wait) {
			return false
		}
		delay = min(delay*2, b.opts.RetryMax)
	}
}

func (b *Bridge) sentOut(ctx context.Context, u *user, e *outboxEntry, id legacy.MessageID) {
	b.obs.Delivered("out", true)
	b.mapSent(ctx, u, e, id)
	if e.Receipt && b.info.Caps.Receipts && (e.Kind == "" || e.Kind == outEdit) {
		m := stanza.New(stanza.NSComponent, "message", "id", "rcpt-"+e.Key, "from", e.To, "to", e.From)
		m.Add(stanza.New(nsReceipts, "received", "id", e.ID))
		b.reply(ctx, m)
	}
}

// failOut tells the sender their message could not be delivered: a message
// error with the original id, from the contact.
func (b *Bridge) failOut(ctx context.Context, e *outboxEntry, se *stanza.Error) {
	b.obs.Delivered("out", false)
	m := stanza.New(stanza.NSComponent, "message", "type", "error", "id", e.ID, "from", e.To, "to", e.From)
	if e.Text != "" {
		m.TextChild(stanza.NSComponent, "body", e.Text)
	}
	m.Add(se.Element())
	// The sender must learn of the failure: wait for the link if it is down.
	for ctx.Err() == nil {
		conn, err := b.link.WaitUp(ctx)
		if err != nil {
			return
		}
		if err := conn.Send(ctx, m); err == nil {
			return
		}
	}
}
