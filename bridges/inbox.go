package bridges

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jabbergate/jabbergate/bridges/jidmap"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/component"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
)

// Mapping namespaces in the store.
const (
	mapStanzaChat = "s2lc" // the user's stanza id → her chat and the legacy id (packFields)
	mapStanzaOut  = "s2l"  // the same without the chat, written before s2lc; still read
	// Written before message records (msgrecord.go), still read.
	mapDelivered = "delivered" // stanza id of an inbound message → "1" once the barrier confirmed it
	mapLegacyOut = "l2s"       // legacy id of a message the user sent → the user's stanza id
)

const (
	deliveredTTL = 7 * 24 * time.Hour
	idMapTTL     = 30 * 24 * time.Hour
	inboxBatch   = 64
	// defaultInboxLimit is Options.InboxLimit when not set.
	defaultInboxLimit = 10000
)

// inboxEntry is an inbound event as stored in the inbox.
type inboxEntry struct {
	Kind       string `json:"k"` // "msg", "edit", "receipt", "retract", "react", "displayed"
	ID         string `json:"id"`
	Chat       string `json:"c"`
	Sender     string `json:"s,omitempty"`
	SenderName string `json:"sn,omitempty"`
	Carbon     bool   `json:"cb,omitempty"` // sent by the user from the legacy app
	// A late delivery failure ("undelivered"), mapped when stored.
	Cond    string    `json:"cond,omitempty"`
	ErrType string    `json:"et,omitempty"`
	Code    string    `json:"code,omitempty"`
	Text    string    `json:"t,omitempty"`
	Subject string    `json:"sub,omitempty"`
	Thread  string    `json:"th,omitempty"`
	ReplyTo string    `json:"re,omitempty"`
	Time    time.Time `json:"ts"`
	Emojis  []string  `json:"e,omitempty"` // "react": the full set
	Seq     string    `json:"q,omitempty"` // tells successive edits/reactions of one message apart
	Files   []inFile  `json:"f,omitempty"` // "msg": stored attachments (attachments.go)
}

// sink is the legacy.Sink of one user's session.
type sink struct {
	b *Bridge
	u *user
}

var _ legacy.Sink = (*sink)(nil)

// Emit stores message-like events in the inbox and returns once they are
// durable; ephemeral events (typing, presence, status) are applied at once.
func (s *sink) Emit(ctx context.Context, ev legacy.Event) error {
	r, err := s.take(ctx, ev)
	if err != nil || r == nil {
		return err
	}
	return s.b.emitWait(ctx, r)
}

// EmitAsync implements legacy.AsyncSink: as Emit, but a message-like
// event is committed by the inbox appender in the background (emit.go).
func (s *sink) EmitAsync(ctx context.Context, ev legacy.Event) error {
	r, err := s.take(ctx, ev)
	if err != nil || r == nil {
		return err
	}
	s.b.emitAsync(r)
	return nil
}

// take checks ev and turns a message-like event into an inbox append
// request; ephemeral events (typing, presence, status) and state are
// applied at once (nil request).
func (s *sink) take(ctx context.Context, ev legacy.Event) (*emitReq, error) {
	b, u := s.b, s.u
	if !b.mayAct(u) { // the account lease moved: the new owner takes it (cluster.go)
		return nil, errNotOwner
	}
	if err := b.inboxRoom(u, ev); err != nil {
		return nil, err
	}
	var e *inboxEntry
	switch ev := ev.(type) {
	case legacy.Incoming:
		if ev.ID == "" || ev.Chat == "" {
			return nil, fmt.Errorf("bridges: incoming message without id or chat: %w", legacy.ErrRejected)
		}
		e = &inboxEntry{Kind: "msg", ID: string(ev.ID), Chat: string(ev.Chat), Sender: string(ev.Sender),
			SenderName: ev.SenderName, Carbon: ev.Carbon, Text: ev.Text, Subject: ev.Subject, Thread: ev.Thread,
			ReplyTo: string(ev.ReplyTo), Time: ev.Time}
		if err := b.storeAttachments(ctx, u, e, ev.Attachments); err != nil {
			return nil, err
		}
	case legacy.Edited:
		if !b.info.Caps.Edits {
			return nil, b.undeclared(u, "Edits", ev)
		}
		e = &inboxEntry{Kind: "edit", ID: string(ev.ID), Chat: string(ev.Chat), Text: ev.Text, Time: ev.Time, Seq: seqOf(ev.Time, ev.Text)}
	case legacy.Undelivered:
		se := stanzaError(ev.Err)
		e = &inboxEntry{Kind: "undelivered", ID: string(ev.ID), Chat: string(ev.Chat),
			Text: se.Text, Cond: string(se.Condition), ErrType: se.Type}
		if se.App != nil {
			e.Code = se.App.Attr("code")
		}
	case legacy.Receipt:
		if !b.info.Caps.Receipts {
			return nil, b.undeclared(u, "Receipts", ev)
		}
		e = &inboxEntry{Kind: "receipt", ID: string(ev.ID), Chat: string(ev.Chat)}
	case legacy.Retracted:
		if !b.info.Caps.Retractions {
			return nil, b.undeclared(u, "Retractions", ev)
		}
		e = &inboxEntry{Kind: "retract", ID: string(ev.ID), Chat: string(ev.Chat)}
	case legacy.Reacted:
		if !b.info.Caps.Reactions {
			return nil, b.undeclared(u, "Reactions", ev)
		}
		emojis := append([]string{}, ev.Emojis...)
		e = &inboxEntry{Kind: "react", ID: string(ev.ID), Chat: string(ev.Chat), Sender: string(ev.Sender), Emojis: emojis,
			Seq: seqOf(time.Now(), emojis...)}
	case legacy.Displayed:
		if !b.info.Caps.Markers {
			return nil, b.undeclared(u, "Markers", ev)
		}
		e = &inboxEntry{Kind: "displayed", ID: string(ev.ID), Chat: string(ev.Chat)}
	case legacy.Typing:
		if !b.info.Caps.ChatStates {
			return nil, b.undeclared(u, "ChatStates", ev)
		}
		b.sendTyping(ctx, u, ev)
		return nil, nil
	case legacy.Presence:
		u.mu.Lock()
		u.presence[ev.Chat] = ev
		u.mu.Unlock()
		// Only to a user subscribed to the contact (a group, a contact
		// still asking, is no presence she asked for); the others get it
		// when they subscribe (presence.go).
		if lp, err := jidmap.Localpart(ev.Chat, b.domain); err == nil {
			if c, err := b.st.GetContact(ctx, b.domain, u.jid, lp); err == nil {
				b.keepUnavailability(ctx, u, c, ev)
				if hasFrom(c.Subscription) {
					b.sendContactPresence(ctx, u, ev.Chat, c)
				}
			}
		}
		return nil, nil
	case legacy.StatusEvent:
		b.setStatus(ctx, u, ev.Status, ev.Text)
		return nil, nil
	case legacy.SaveState:
		return nil, b.saveState(ctx, u, ev.State)
	case legacy.Contact:
		return nil, b.saveContact(ctx, u, ev)
	default:
		b.log.Warn("legacy event kind not supported yet; ignored", "user", u.owner, "kind", fmt.Sprintf("%T", ev))
		return nil, nil
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	payload, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	return &emitReq{u: u, e: e, sid: inboundSID(b.domain, u.owner, e), payload: payload}, nil
}

// keepUnavailability records in the contact whether the network now says
// it is unavailable (and why), so that the contact is not shown online
// after a restart; written only when that changes.
func (b *Bridge) keepUnavailability(ctx context.Context, u *user, c *store.Contact, ev legacy.Presence) {
	status := ""
	if !ev.Available {
		status = ev.Status
	}
	if c.Unavailable == !ev.Available && c.UnavailableStatus == status {
		return
	}
	c.Unavailable, c.UnavailableStatus = !ev.Available, status
	if err := b.st.PutContact(ctx, b.domain, u.jid, c); err != nil {
		b.log.Warn("store contact presence", "user", u.owner, "err", err)
	}
}

// inboxRoom refuses a stored (message-like) event with a retryable error
// while the user's undelivered inbox is at the bridge's limit, so the
// adapter keeps it on the legacy side (an unacknowledged update, a
// deliver_sm answered with a temporary error, a mail left unimported) and
// memory and disk stay bounded while XMPP is not taking messages.
// Ephemeral events and state pass: they are not queued.
func (b *Bridge) inboxRoom(u *user, ev legacy.Event) error {
	if b.inboxLimit <= 0 {
		return nil
	}
	switch ev.(type) {
	case legacy.Typing, legacy.Presence, legacy.StatusEvent, legacy.SaveState, legacy.Contact:
		return nil
	}
	n := u.inBacklog.Load()
	if n < b.inboxLimit {
		if u.inFull.Swap(false) {
			b.log.Info("inbox below its limit again; accepting legacy events", "user", u.owner, "waiting", n)
		}
		return nil
	}
	if !u.inFull.Swap(true) {
		b.log.Warn("inbox full: legacy events refused until XMPP takes the waiting ones", "user", u.owner, "waiting", n, "limit", b.inboxLimit)
	}
	return fmt.Errorf("bridges: %d events already wait for delivery to the user: %w", n, legacy.ErrUnavailable)
}

// seenInPrefix prefixes the seen marks (store.MarkSeen) of inbound stanza
// ids set by Emit.
const seenInPrefix = "in:"

// inboundSID is the deterministic stanza id of an inbox entry.
func inboundSID(domain, owner string, e *inboxEntry) string {
	if e.Kind == "msg" {
		return jidmap.StanzaID(domain, owner, legacy.MessageID(e.ID))
	}
	return jidmap.StanzaID(domain, owner, legacy.MessageID(e.Kind+":"+e.ID+":"+e.Seq))
}

// inboxMemMax bounds the in-memory tail of one user's inbox; beyond it
// the drainer goes back to reading the store (nothing is lost: every
// entry is in the store first).
const inboxMemMax = 1024

// inboxMem is the in-memory tail of one user's inbox (memtail.go): every
// entry Emit appends is also handed over here, decoded. A wake on
// u.kickIn (start, link up, anything that is not a local Emit) always
// reads the store again, as does any failure of the drainer.
type inboxMem struct {
	async asyncEmits // EmitAsync's events not yet settled (emit.go)

	memTail[memIn]

	// Drainer goroutine only.
	maps     store.Batch         // writes of the batch being rendered (renderInbound)
	batch    bool                // renderInbound adds its mappings to maps
	recorded map[string]struct{} // stanza ids with a recv record in maps
}

// memIn is one inbox entry handed over in memory.
type memIn struct {
	id    string // store entry id
	e     *inboxEntry
	sid   string
	fresh bool // first emission of sid ever (the seen mark was new): never delivered before
}

// push hands e to a warm tail and reports whether it did.
func (m *inboxMem) push(e memIn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pushLocked(e, inboxMemMax)
}

// next returns the next batch to deliver: from memory when warm, else
// from the store (which makes the tail warm once it returns the whole
// queue).
func (b *Bridge) nextInbox(ctx context.Context, u *user, q store.Queue) ([]memIn, error) {
	m := &u.inq
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.warm {
		return m.takeLocked(inboxBatch), nil
	}
	// Read under mu: an Emit that committed before this read is in it,
	// one that commits after pushes to the warm tail (a commit in
	// between may be in both: lastCold drops the second copy).
	entries, err := b.st.Read(ctx, q, "", inboxBatch)
	if err != nil {
		return nil, err
	}
	out := make([]memIn, len(entries))
	for i, ent := range entries {
		out[i] = memIn{id: ent.ID}
		var e inboxEntry
		if err := json.Unmarshal(ent.Payload, &e); err != nil {
			b.log.Error("corrupt inbox entry dropped", "user", u.owner, "entry", ent.ID, "err", err)
			continue
		}
		out[i].e, out[i].sid = &e, inboundSID(b.domain, u.owner, &e)
	}
	// The backlog inboxRoom checks: exact when the read returned the
	// whole queue; only a longer queue costs a count from the store.
	if len(entries) < inboxBatch {
		m.warmLocked(entryIDs(entries))
		u.inBacklog.Store(int64(len(entries)))
	} else if n, err := b.st.Len(ctx, q); err == nil {
		u.inBacklog.Store(int64(n))
	}
	return out, nil
}

func (b *Bridge) saveState(ctx context.Context, u *user, state []byte) error {
	u.mu.Lock()
	a := *u.acct
	a.State = append([]byte(nil), state...)
	u.mu.Unlock()
	if err := b.st.PutAccount(ctx, &a); err != nil {
		return err
	}
	u.mu.Lock()
	u.acct = &a
	u.mu.Unlock()
	return nil
}

func (b *Bridge) saveContact(ctx context.Context, u *user, ev legacy.Contact) error {
	lp, err := jidmap.Localpart(ev.Chat, b.domain)
	if err != nil {
		b.log.Warn("legacy contact makes no valid JID; ignored", "user", u.owner, logErr(err))
		return nil
	}
	b.rosterContact(u, lp, ev)
	defer b.contactAvatar(ctx, u, lp, ev) // avatar.go, once the contact is stored
	if ev.Removed {
		return b.st.DeleteContact(ctx, b.domain, u.jid, lp)
	}
	c, err := b.st.GetContact(ctx, b.domain, u.jid, lp)
	if errors.Is(err, store.ErrNotFound) {
		c = &store.Contact{Localpart: lp, LegacyID: string(ev.Chat)}
	} else if err != nil {
		return err
	}
	c.Name, c.Group = ev.Name, ev.Group
	return b.st.PutContact(ctx, b.domain, u.jid, c)
}

// drainInbox delivers the user's inbox to XMPP: write a batch, wait for the
// barrier, then mark and remove it. Runs until ctx ends.
func (b *Bridge) drainInbox(ctx context.Context, u *user, empty bool) {
	q := store.Queue{Bridge: b.domain, JID: u.jid, Kind: store.Inbox}
	ready := u.inq.start(empty)
	defer u.inq.cool() // a restarted drainer starts from the store
	for {
		select {
		case <-ctx.Done():
			return
		case <-u.kickIn:
			u.inq.cool() // not (only) a local Emit: read the store
		case <-ready:
		}
		for ctx.Err() == nil {
			n, err := b.drainBatch(ctx, u, q)
			if err != nil {
				u.inq.cool() // what was not acknowledged is read again from the store
				if ctx.Err() != nil {
					return
				}
				b.log.Warn("inbox delivery interrupted; will retry", "user", u.owner, "err", err)
				sleep(ctx, jitter(time.Second))
				continue
			}
			if n == 0 {
				break
			}
		}
	}
}

// drainBatch delivers one batch and returns how many entries it removed.
// The recv records written while rendering (msgrecord.go; they are the
// delivery marks), the marks of entries that are not messages and the ack
// of the whole batch are one commit (store.Apply), after the barrier.
func (b *Bridge) drainBatch(ctx context.Context, u *user, q store.Queue) (int, error) {
	entries, err := b.nextInbox(ctx, u, q)
	if err != nil || len(entries) == 0 {
		return 0, err
	}
	conn, err := b.link.WaitUp(ctx)
	if err != nil {
		return 0, err
	}
	var written []string // stanza ids written in this batch
	var seen map[string]bool
	if len(entries) > 1 {
		seen = make(map[string]bool, len(entries))
	}
	ids := make([]string, 0, len(entries))
	bt := &u.inq.maps
	bt.Reset()
	u.inq.batch = true
	clear(u.inq.recorded)
	defer func() {
		u.inq.batch = false
		b.unstageMaps(bt) // an error return: nothing committed
	}()
	for _, ent := range entries {
		ids = append(ids, ent.id)
		e, sid := ent.e, ent.sid
		if e == nil {
			continue // corrupt, logged when read
		}
		if seen[sid] {
			continue
		}
		if seen != nil {
			seen[sid] = true
		}
		if !ent.fresh { // read from the store, or replayed by the adapter
			if _, delivered, err := b.recvRecordOf(ctx, u, sid); err != nil {
				return 0, err
			} else if delivered {
				continue // delivered before a crash or replayed by the adapter
			}
		}
		sts, err := b.renderEntry(ctx, u, e, sid)
		if err != nil {
			b.log.Warn("inbound event cannot be rendered; dropped", "user", u.owner, "kind", e.Kind, "err", err)
			continue
		}
		if len(sts) == 0 {
			continue
		}
		for _, st := range sts {
			err := conn.Send(ctx, st)
			if errors.Is(err, component.ErrStanzaTooLarge) { // not cut to fit (fit.go): sent again, it would be refused again
				b.log.Error("inbound stanza too large for the link; a notice is delivered instead", "user", u.owner, "kind", e.Kind, "err", err)
				err = conn.Send(ctx, tooLargeNotice(st))
			}
			if err != nil {
				return 0, err
			}
		}
		written = append(written, sid)
	}
	if len(written) > 0 {
		if err := b.barrier(ctx, conn); err != nil { // conn.Barrier, retried in a cluster (cluster.go)
			return 0, err
		}
	}
	for _, sid := range written {
		if _, ok := u.inq.recorded[sid]; !ok { // a message's record marks it already
			bt.PutMapping(b.domain, u.jid, mapRecv, sid, recvRecord{}.pack(), deliveredTTL)
		}
	}
	bt.Ack(q, ids...)
	_, err = store.Apply(ctx, b.st, bt)
	b.unstageMaps(bt)
	if err != nil {
		return 0, err
	}
	bt.Reset()
	for range written {
		b.obs.Delivered("in", true)
	}
	b.countQueued(u, 0, -len(ids))
	if u.inBacklog.Add(-int64(len(ids))) < 0 {
		u.inBacklog.Store(0) // entries emitted before the drainer counted them
	}
	return len(ids), nil
}

// putMapIn writes an id map of an inbound message: into the drainer's
// batch (committed with the ack, after the barrier) while it renders,
// directly otherwise.
func (b *Bridge) putMapIn(ctx context.Context, u *user, ns, key, value string) error {
	if u.inq.batch {
		b.stageMap(&u.inq.maps, u, ns, key, value)
		if ns == mapRecv {
			if u.inq.recorded == nil {
				u.inq.recorded = make(map[string]struct{}, inboxBatch)
			}
			u.inq.recorded[key] = struct{}{}
		}
		return nil
	}
	return b.st.PutMapping(ctx, b.domain, u.jid, ns, key, value, idMapTTL)
}

// renderInbound turns an inbox entry into the stanza for the user. It
// returns nil when there is nothing to send.
func (b *Bridge) renderInbound(ctx context.Context, u *user, e *inboxEntry, sid string) (*stanza.Element, error) {
	from, err := b.contactJID(legacy.ChatID(e.Chat))
	if err != nil {
		return nil, err
	}
	switch e.Kind {
	case "msg":
		if e.Carbon {
			return b.renderCarbon(u, e, sid, from), nil
		}
		m := stanza.New(stanza.NSComponent, "message", "type", "chat", "id", sid, "from", from, "to", u.jid)
		m.Grow(5) // body, chat state, marker request, origin-id, delay: one allocation
		text := e.Text
		if e.SenderName != "" {
			text = e.SenderName + ": " + text
		}
		text = fitText(text, b.textBudget()) // fit.go
		if e.Subject != "" {
			m.TextChild(stanza.NSComponent, "subject", fitText(e.Subject, subjectBudget))
		}
		var ext []*stanza.Element
		if e.ReplyTo != "" && b.info.Caps.Replies {
			r := stanza.New(stanza.NSComponent, "x")
			if text, err = b.addReply(ctx, u, r, e.ReplyTo, from, text); err != nil {
				return nil, err
			}
			ext = r.Children()
		}
		m.TextChild(stanza.NSComponent, "body", text)
		if e.Thread != "" {
			m.TextChild(stanza.NSComponent, "thread", e.Thread)
		}
		m.Add(ext...)
		if b.info.Caps.ChatStates && !u.noChatStates.Load() {
			m.Add(stanza.New(nsChatStates, "active"))
		}
		if b.info.Caps.Markers {
			m.Add(stanza.New(nsMarkers, "markable"))
		}
		m.Add(stanza.New(nsSID, "origin-id", "id", sid))
		u.mu.Lock()
		delete(u.typingSent, legacy.ChatID(e.Chat)) // a message ends typing
		u.mu.Unlock()
		if !e.Time.IsZero() && time.Since(e.Time) > 10*time.Second {
			m.Add(stanza.New(nsDelay, "delay", "stamp", e.Time.UTC().Format(time.RFC3339), "from", b.domain))
		}
		// Ids the user may refer to later (markers, reactions, replies),
		// and the delivery mark (msgrecord.go).
		r := recvRecord{LegacyID: e.ID, Chat: e.Chat}
		if b.info.Caps.Replies {
			r.Excerpt = excerpt(e.Text)
		}
		if err := b.putMapIn(ctx, u, mapRecv, sid, r.pack()); err != nil {
			return nil, err
		}
		return m, nil
	case "edit":
		// Always the first id: inbound ids are deterministic.
		orig := jidmap.StanzaID(b.domain, u.owner, legacy.MessageID(e.ID))
		m := stanza.New(stanza.NSComponent, "message", "type", "chat", "id", sid, "from", from, "to", u.jid)
		m.TextChild(stanza.NSComponent, "body", fitText(e.Text, b.textBudget()))
		m.Add(stanza.New(nsCorrect, "replace", "id", orig))
		if b.info.Caps.Replies {
			_ = b.putMapIn(ctx, u, mapQuote, e.ID, excerpt(e.Text))
		}
		return m, nil
	case "retract":
		orig := jidmap.StanzaID(b.domain, u.owner, legacy.MessageID(e.ID))
		m := stanza.New(stanza.NSComponent, "message", "type", "chat", "id", sid, "from", from, "to", u.jid)
		m.Add(stanza.New(nsRetract, "retract", "id", orig))
		m.Add(stanza.New(nsFallback, "fallback", "for", nsRetract))
		m.TextChild(stanza.NSComponent, "body", retractFallback)
		m.Add(stanza.New(nsHints, "store"))
		return m, nil
	case "react":
		ref, _, err := b.msgRef(ctx, u, e.ID, from)
		if err != nil {
			return nil, err
		}
		m := stanza.New(stanza.NSComponent, "message", "type", "chat", "id", sid, "from", from, "to", u.jid)
		r := stanza.New(nsReactions, "reactions", "id", ref)
		for _, em := range e.Emojis {
			r.TextChild(nsReactions, "reaction", em)
		}
		m.Add(r, stanza.New(nsHints, "store"))
		return m, nil
	case "displayed":
		ref, err := b.sentStanzaID(ctx, u, e.ID)
		if err != nil || ref == "" {
			return nil, err // "": a marker for a message we no longer know
		}
		m := stanza.New(stanza.NSComponent, "message", "type", "chat", "id", sid, "from", from, "to", u.jid)
		m.Add(stanza.New(nsMarkers, "displayed", "id", ref))
		return m, nil
	case "receipt":
		orig, err := b.sentStanzaID(ctx, u, e.ID)
		if err != nil || orig == "" {
			return nil, err // "": a receipt for a message we no longer know
		}
		// type chat: carbon-copied to the user's other clients.
		m := stanza.New(stanza.NSComponent, "message", "type", "chat", "id", sid, "from", from, "to", u.jid)
		m.Add(stanza.New(nsReceipts, "received", "id", orig))
		return m, nil
	}
	return nil, fmt.Errorf("unknown inbox entry kind %q", e.Kind)
}

// sendTyping forwards a chat-state change, best effort. A standalone
// state carries nothing but the state (XEP-0085 §5.5).
func (b *Bridge) sendTyping(ctx context.Context, u *user, ev legacy.Typing) {
	if u.noChatStates.Load() {
		return // the user's client does not take them (XEP-0085 §5.1)
	}
	from, err := b.contactJID(ev.Chat)
	if err != nil {
		return
	}
	// The same standalone state is never sent twice in a row, and "not
	// typing" is where every conversation starts (XEP-0085).
	u.mu.Lock()
	prev := u.typingSent[ev.Chat]
	u.typingSent[ev.Chat] = ev.Typing
	u.mu.Unlock()
	if prev == ev.Typing {
		return
	}
	state := "paused"
	if ev.Typing {
		state = "composing"
	}
	m := stanza.New(stanza.NSComponent, "message", "type", "chat", "id", "cs-"+newKey(), "from", from, "to", u.jid)
	m.Add(stanza.New(nsChatStates, state))
	b.reply(ctx, m)
}

// undeclared drops an event of a feature the network does not declare in
// its Caps: the core only translates what is declared.
func (b *Bridge) undeclared(u *user, capability string, ev legacy.Event) error {
	b.log.Warn("legacy event of an undeclared capability dropped", "user", u.owner, "cap", capability, "kind", fmt.Sprintf("%T", ev))
	return nil
}

// renderCarbon renders a message the user sent from the legacy network's
// own app. With the XEP-0356 message permission it becomes a message from
// the user to the contact, routed by the server so that carbons and the
// archive show it as sent. Without it, the user still gets it, from the
// contact, marked as their own words, so nothing is lost.
func (b *Bridge) renderCarbon(u *user, e *inboxEntry, sid, contact string) *stanza.Element {
	text := fitText(e.Text, b.textBudget()) // one of the two forms below is sent
	m := stanza.New(stanza.NSComponent, "message", "type", "chat", "id", sid, "from", u.jid, "to", contact)
	m.TextChild(stanza.NSComponent, "body", text)
	m.Add(stanza.New(nsSID, "origin-id", "id", sid))
	if pm := b.privilegedMessage(m); pm != nil {
		return pm
	}
	f := stanza.New(stanza.NSComponent, "message", "type", "chat", "id", sid, "from", contact, "to", u.jid)
	f.TextChild(stanza.NSComponent, "body", "You wrote from "+b.info.DisplayName+": "+text)
	f.Add(stanza.New(nsSID, "origin-id", "id", sid))
	if !e.Time.IsZero() && time.Since(e.Time) > 10*time.Second {
		f.Add(stanza.New(nsDelay, "delay", "stamp", e.Time.UTC().Format(time.RFC3339), "from", b.domain))
	}
	return f
}
