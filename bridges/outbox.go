package bridges

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	// Corrects is the stanza id of the message a correction sent as a
	// new message (the network cannot edit) corrects; mapped to the
	// legacy id when the entry is delivered (legacy.Message.Corrects).
	Corrects string `json:"cor,omitempty"`
}

const mapOutSeen = "out-origin" // origin-id of an enqueued message → "1", to drop client resends

// resendKey is the seen mark of e, a message with an origin-id: what a
// client's resend has in common with the first sending. The origin-id
// alone would take a different message that reuses one (a client that
// does not follow XEP-0359) for a resend, drop it and answer it with the
// first one's receipt; the chat and a digest of what is sent are part of
// the key, so only the same message to the same contact is a resend.
func resendKey(e *outboxEntry) string {
	var buf []byte
	for _, f := range [...]string{e.Chat, e.Kind, e.Target, e.Text, e.Quoted, e.File, e.Subject, strings.Join(e.Emojis, "\x00")} {
		buf = append(append(buf, f...), 0)
	}
	h := fnv.New64a()
	h.Write(buf)
	return mapOutSeen + ":" + strconv.FormatUint(h.Sum64(), 36) + ":" + e.OriginID
}

// handleMessage handles a message stanza from a user.
//
// Ephemeral extensions (chat states, displayed markers) are handed to the
// user's best-effort worker and never queued; corrections, retractions and
// reactions are queued in the durable outbox behind the messages they refer
// to; a body without any of those is an ordinary message (possibly a reply).
func (b *Bridge) handleMessage(ctx context.Context, st *stanza.Element, pf, pt *parsedJID) {
	from, to := pf.j, pt.j
	switch st.Type() {
	case "error":
		b.log.Info("error message from the XMPP side", "user", jidmap.OwnerKey(b.domain, pf.bare), "to", to.Localpart() != "", "error", stanza.ParseError(st))
		return
	case "groupchat":
		b.reply(ctx, stanza.ErrorReply(st, stanza.NewError(stanza.ServiceUnavailable, "this gateway has no group chats yet")))
		return
	case "headline":
		// Notifications, not conversation: nothing a contact can be
		// sent, and RFC 6121 §5.2.2 allows no error reply.
		if st.Child(stanza.NSComponent, "body") != nil {
			b.log.Info("headline message to the gateway not bridged", "user", jidmap.OwnerKey(b.domain, pf.bare), "id", st.ID())
		}
		return
	}
	if to.Localpart() == "" {
		b.handleGatewayChat(ctx, st, from)
		return
	}
	body := defaultBody(st)
	// An encrypted message with a body (its fallback text), or an
	// OpenPGP one, which always carries the message; bodiless OMEMO
	// stanzas are key transport, nothing the user wrote.
	if isEncrypted(st) && (body != nil || st.Child(nsOpenPGP, "openpgp") != nil) {
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
		if what := contentWithoutBody(st); what != "" {
			b.reply(ctx, stanza.ErrorReply(st, &stanza.Error{Condition: stanza.NotAcceptable, Type: stanza.ErrModify,
				Text: "this message has " + what + " but no plain-text body, and only the body is sent to " + b.info.DisplayName}))
		}
		return // chat states, receipts, markers only: nothing to queue
	}
	u := b.getUser(pf.bare)
	if u == nil && b.cl != nil {
		// Registered through another instance a moment ago, whose
		// notification has not arrived: the store knows.
		b.cl.reload(ctx, pf.bare)
		u = b.getUser(pf.bare)
	}
	if u == nil {
		b.reply(ctx, stanza.ErrorReply(st, stanza.NewError(stanza.RegistrationRequired,
			"register with "+b.domain+" first (service discovery, or send \"help\" to "+b.domain+")")))
		return
	}
	if body != nil && b.info.Caps.ChatStates && chatStateOf(st) == "" {
		// Content without a chat state: the client does not take them,
		// so none is sent until it sends one (XEP-0085 §5.1, rule 3).
		u.noChatStates.Store(true)
	}
	chat, err := b.validChat(ctx, u, to.Localpart())
	if err != nil {
		b.reply(ctx, stanza.ErrorReply(st, b.contactAddressError(to.Localpart(), err)))
		return
	}
	originID := ""
	if o := st.Child(nsSID, "origin-id"); o != nil {
		originID = o.Attr("id")
	}
	e := outboxEntry{
		Key:      newKey(),
		From:     pf.full,
		ID:       st.ID(),
		OriginID: originID,
		To:       pt.bare,
		Chat:     string(chat),
		Subject:  contentChild(st, "subject").Text(),
		Thread:   contentChild(st, "thread").Text(),
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
	if (e.Kind == "" || e.Kind == outEdit) && e.File == "" && strings.TrimSpace(e.Text) == "" {
		// An empty <body/>: legacy networks refuse empty messages or, as
		// SMS, would send one; say so rather than pass it on.
		text := "an empty message cannot be sent"
		if e.Kind == outEdit {
			text = "a correction cannot empty a message; retract it instead"
		}
		b.reply(ctx, stanza.ErrorReply(st, &stanza.Error{Condition: stanza.NotAcceptable, Type: stanza.ErrModify, Text: text}))
		return
	}
	if max := b.info.MaxTextLength; max > 0 && len(e.Text) > max {
		b.reply(ctx, stanza.ErrorReply(st, &stanza.Error{Condition: stanza.NotAcceptable, Type: stanza.ErrModify,
			Text: fmt.Sprintf("message of %d bytes is longer than the %d bytes %s accepts", len(e.Text), max, b.info.DisplayName)}))
		return
	}
	b.appendOut(ctx, &appendReq{u: u, e: &e, st: st})
}

// appendReq is one message waiting for the outbox appender.
type appendReq struct {
	u  *user
	e  *outboxEntry
	st *stanza.Element // the user's stanza, for an error reply
}

// appendOut hands a message to the bridge's outbox appender (appender.go)
// and returns at once: the shard that handled it does not wait for the
// commit (an fsync on bolt), so the next stanza is handled meanwhile and
// every message that arrived during a commit goes into the next one. Per
// user the order is kept: a user's messages come from one shard, in order.
// Once committed it is handed to the user's outbox worker; if the store
// fails the sender gets a resource-constraint error (type wait) with the
// message's id.
func (b *Bridge) appendOut(ctx context.Context, r *appendReq) {
	b.outApp.add(b, r, nil, func(round []*appendReq) { b.appendRound(ctx, round) })
}

// appendRound commits one round of appends and hands each message to its
// user's worker. A message with an origin-id is appended only if its
// resend mark is new, in the same operation (store.Batch.AppendOnce): a
// client's resend of a handled message is never queued, so no crash can
// leave it in the outbox to be sent a second time. The users' outbox
// locks are held across the commit, so a worker's store read and the
// in-memory tail see the round's entries together.
func (b *Bridge) appendRound(ctx context.Context, round []*appendReq) {
	var bt store.Batch
	var users []*user
	for _, r := range round {
		if !slices.Contains(users, r.u) {
			users = append(users, r.u)
		}
		payload, _ := json.Marshal(r.e)
		q := store.Queue{Bridge: b.domain, JID: r.u.jid, Kind: store.Outbox}
		if r.e.OriginID != "" {
			bt.AppendOnce(q, resendKey(r.e), 24*time.Hour, payload)
		} else {
			bt.Append(q, payload)
		}
	}
	slices.SortFunc(users, func(x, y *user) int { return strings.Compare(x.jid, y.jid) }) // lock order
	for _, u := range users {
		u.outq.mu.Lock()
	}
	// Accepted messages are committed even when the bridge is stopping.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	res, err := store.Apply(cctx, b.st, &bt)
	var resent []*appendReq
	var wake []*user
	for i, r := range round {
		if err != nil {
			continue
		}
		if len(res.IDs[i]) == 0 { // AppendOnce of a key already seen
			resent = append(resent, r)
			continue
		}
		id := res.IDs[i][0]
		if b.mayAct(r.u) { // in a cluster, counted by the instance that runs the user
			b.countQueued(r.u, 1, 1)
		}
		if !r.u.outq.pushLocked(memOut{id: id, e: r.e}, outboxMemMax) {
			kick(r.u.kickOut) // the worker reads the store
		}
		if !slices.Contains(wake, r.u) {
			wake = append(wake, r.u)
		}
	}
	for _, u := range users {
		u.outq.mu.Unlock()
	}
	if err != nil {
		b.log.Error("cannot queue outgoing messages", "messages", len(round), "err", err)
		for _, r := range round {
			b.reply(ctx, stanza.ErrorReply(r.st, &stanza.Error{Condition: stanza.ResourceConstraint, Type: stanza.ErrWait,
				Text: "the gateway cannot store your message right now; it was not sent, try again shortly"}))
		}
		return
	}
	for _, u := range wake {
		if s := b.successor(u); s != nil {
			kick(s.kickOut) // its worker may have read the store before this commit
		}
		b.wakeOwner(ctx, u) // another instance may run this user (cluster.go)
	}
	for _, r := range resent {
		b.answerResend(ctx, r)
	}
}

// answerResend answers a client's resend of a message the gateway already
// handled (the same origin-id; clients resend when the answer was lost):
// the failure again if it failed (at once or reported later), else the
// receipt again if it was sent and the client asks for receipts. Dropped
// without an answer, the client would wait forever. A resend of a message
// still queued needs nothing: the first one's answer carries the same id.
func (b *Bridge) answerResend(ctx context.Context, r *appendReq) {
	e := r.e
	// The first sending may still be queued: the client is waiting for
	// it. Its worker (or, in a cluster, the instance that runs the user)
	// looks at the outbox again, in case the wake-up it had was lost.
	kick(r.u.kickOut)
	b.wakeOwner(ctx, r.u)
	if e.Kind != "" {
		return
	}
	if se := b.recordedFailure(ctx, r.u, e.OriginID); se != nil {
		m := stanza.New(stanza.NSComponent, "message", "type", "error", "id", e.ID, "from", e.To, "to", e.From)
		b.replySure(ctx, m.Add(se.Element()))
		return
	}
	if !e.Receipt || !b.info.Caps.Receipts {
		return
	}
	if _, sent, err := b.ownMessage(ctx, r.u, e.OriginID); err != nil || !sent {
		return
	}
	b.replySure(ctx, receiptFor(e))
}

// receiptFor is the XEP-0184 receipt of the user's message e.
func receiptFor(e *outboxEntry) *stanza.Element {
	m := stanza.New(stanza.NSComponent, "message", "type", "chat", "id", "rcpt-"+e.Key, "from", e.To, "to", e.From)
	return m.Add(stanza.New(nsReceipts, "received", "id", e.ID))
}

// replySure sends st now if the link is up, else once it is (until ctx
// ends), without holding the caller: for what the user must get even
// when it is produced before the link is up (a receipt of a message
// queued across a restart, sent as the gateway starts).
func (b *Bridge) replySure(ctx context.Context, st *stanza.Element) {
	if b.link.Up() {
		if conn, err := b.link.WaitUp(ctx); err == nil && conn.Send(ctx, st) == nil {
			return
		}
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.sendSure(ctx, st)
	}()
}

// maxAcking bounds the acks of one user's outbox in flight: past it the
// worker waits for its ack.
const maxAcking = 64

// ackReq is one sent outbox entry whose ack waits for the bridge's ack
// appender.
type ackReq struct {
	u       *user
	id      string
	bt      store.Batch // the entry's id maps (sentOut) and its ack
	answers answerSpan
	done    chan struct{} // closed once settled, when the worker waits (not nil)
}

// ackOut hands bt (the sent entry's id maps and its ack) to the bridge's
// ack appender (appender.go) without making the worker wait for the
// fsync: the next entry is sent meanwhile, and the acks of every user that
// arrive during a commit go into one store.Apply, which on bolt and pebble
// also rides along with the next commit another caller starts
// (store.Deferrable).
// Until it is committed, the entry is skipped by store reads of the outbox
// (acking) and its maps are answered from memory (staged). A failing
// commit is retried for a minute; one that never succeeds leaves the entry
// queued, to be sent again later (at least once, as after a crash between
// send and ack).
//
// answers are the events the session took with EmitAsync while sending
// the entry: the ack waits until they are stored; if one was not, the
// entry is not acknowledged and the outbox is read again from the store
// after a pause, so the message is sent again (its answer with it).
func (b *Bridge) ackOut(u *user, id string, bt store.Batch, answers answerSpan) {
	m := &u.outq
	m.mu.Lock()
	if m.acking == nil {
		m.acking = map[string]bool{}
	}
	m.acking[id] = true
	wait := len(m.acking) > maxAcking
	m.mu.Unlock()
	m.acks.Add(1)
	r := &ackReq{u: u, id: id, bt: bt, answers: answers}
	if wait {
		r.done = make(chan struct{})
	}
	b.ackApp.add(b, r, nil, b.ackRound)
	if wait {
		<-r.done
	}
}

// ackRound commits one round of outbox acks (ackOut).
func (b *Bridge) ackRound(round []*ackReq) {
	var bt store.Batch
	ok := round[:0:0]
	for _, r := range round {
		if r.answers.upTo > r.answers.after && !r.u.inq.async.wait(r.answers.after, r.answers.upTo) {
			b.log.Warn("the answer to a sent message could not be stored; the message will be sent again", "user", r.u.owner)
			b.unstageMaps(&r.bt)
			b.settleAck(r, false)
			u := r.u
			time.AfterFunc(jitter(time.Second), func() { kick(u.kickOut) }) // the worker reads the store again
			continue
		}
		bt.Ops = append(bt.Ops, r.bt.Ops...)
		ok = append(ok, r)
	}
	if len(ok) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(ackRetryNanos.Load()))
	defer cancel()
	acked := false
	for {
		// Deferred: on bolt and pebble it joins the next commit (the next echo's,
		// a drainer's) rather than costing its own.
		_, err := store.Apply(store.Deferrable(ctx), b.st, &bt)
		if err == nil {
			acked = true
			break
		}
		if ctx.Err() != nil {
			b.log.Warn("outbox entries sent but not acknowledged; they will be sent again", "entries", len(ok), "err", err)
			break
		}
		b.log.Warn("ack outbox entries", "entries", len(ok), "err", err)
		sleep(ctx, jitter(min(time.Second, time.Duration(ackRetryNanos.Load())/4)))
	}
	b.unstageMaps(&bt)
	var again []*user
	for _, r := range ok {
		b.settleAck(r, acked)
		if !acked && !slices.Contains(again, r.u) {
			again = append(again, r.u)
		}
	}
	// Still queued: the workers read their outbox from the store again
	// (a warm tail would never see these entries again).
	for _, u := range again {
		time.AfterFunc(jitter(time.Second), func() { kick(u.kickOut) })
	}
}

// ackRetryNanos is how long ackRound retries a failing commit before it
// gives the entries back to their worker, to be sent again.
var ackRetryNanos atomic.Int64

func init() { ackRetryNanos.Store(int64(time.Minute)) }

// settleAck ends an ackReq: the entry is no longer skipped by store reads.
func (b *Bridge) settleAck(r *ackReq, acked bool) {
	m := &r.u.outq
	m.mu.Lock()
	delete(m.acking, r.id)
	if len(m.acking) == 0 {
		m.acking = nil
	}
	m.mu.Unlock()
	if acked {
		b.countQueued(r.u, 1, -1)
	}
	if r.done != nil {
		close(r.done)
	}
	m.acks.Done()
}

// answerSpan numbers the EmitAsync events (asyncEmits, emit.go) taken
// while one outbox entry was sent: those after after, up to upTo.
type answerSpan struct{ after, upTo uint64 }

// outboxMemMax bounds the in-memory tail of one user's outbox.
const outboxMemMax = 256

// outboxMem is the in-memory tail of one user's outbox, as inboxMem is
// for the inbox: once a store read returned the whole queue, entries
// enqueued here are handed to the worker in memory, decoded, and the
// worker reads nothing from the store. A wake on u.kickOut (start, an
// entry queued by another instance, ...) always reads the store again,
// as does an overflow.
type outboxMem struct {
	memTail[memOut]
	acking map[string]bool // entries sent whose ack is being committed (ackOut)
	parked map[string]bool // entries waiting for a retry (outpark.go)

	maps store.Batch    // worker goroutine only: id maps of the entry being settled (sentOut)
	acks sync.WaitGroup // ackOut requests not settled
}

type memOut struct {
	id string
	e  *outboxEntry // nil: corrupt entry, to acknowledge
}

// nextOutbox returns the next entries to send: from memory when warm,
// else read from the store (up to 16), which makes the tail warm once it
// returns the whole queue.
func (b *Bridge) nextOutbox(ctx context.Context, u *user, q store.Queue) ([]memOut, error) {
	const batch = 16
	m := &u.outq
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.warm {
		return m.takeLocked(batch), nil
	}
	limit := batch + len(m.acking) + len(m.parked) // acking and parked entries are read and skipped
	entries, err := b.st.Read(ctx, q, "", limit)
	if err != nil {
		return nil, err
	}
	out := make([]memOut, 0, len(entries))
	for _, ent := range entries {
		if m.acking[ent.ID] || m.parked[ent.ID] {
			continue // sent, its ack being committed; or waiting for a retry
		}
		out = append(out, memOut{id: ent.ID})
		i := len(out) - 1
		var e outboxEntry
		if err := json.Unmarshal(ent.Payload, &e); err != nil {
			b.log.Error("corrupt outbox entry dropped", "user", u.owner, "entry", ent.ID, "err", err)
			continue
		}
		out[i].e = &e
	}
	if len(entries) < limit {
		m.warmLocked(entryIDs(entries))
	}
	return out, nil
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
// refused before it is queued. u may be nil (no registration: no stored
// contacts).
func (b *Bridge) validChat(ctx context.Context, u *user, localpart string) (legacy.ChatID, error) {
	if u != nil { // a registered user: her stored contacts first
		if c, err := b.st.GetContact(ctx, b.domain, u.jid, localpart); err == nil && c.LegacyID != "" {
			return legacy.ChatID(c.LegacyID), nil
		}
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
	// The contact answers from the JID of its canonical address: one the
	// user wrote differently (a leading space, another spelling of a
	// number) would answer in another conversation. Say which to use.
	if j, err := b.contactJID(resolved); err == nil && !strings.EqualFold(strings.TrimSuffix(j, "@"+b.domain), localpart) {
		return "", &otherSpellingError{canonical: j}
	}
	return resolved, nil
}

// otherSpellingError refuses a contact address the network spells
// differently: its answers would come from another JID.
type otherSpellingError struct{ canonical string }

func (e *otherSpellingError) Error() string {
	return "this contact's address on this gateway is " + e.canonical + "; write to that address (it is the one its answers come from)"
}

// contactAddressError is the stanza error for a contact address validChat
// refused.
func (b *Bridge) contactAddressError(localpart string, err error) *stanza.Error {
	text := localpart + " is " + b.addressError(err) // commands.go
	if other := (*otherSpellingError)(nil); errors.As(err, &other) {
		text = other.Error()
	}
	return &stanza.Error{Condition: stanza.JIDMalformed, Type: stanza.ErrModify, Text: text}
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

// runOutbox sends the user's queued messages until ctx ends: in order,
// except that a message failing for a while is parked with the later ones
// to its chat while the messages to other chats go on (outpark.go).
func (b *Bridge) runOutbox(ctx context.Context, u *user, empty bool) {
	q := store.Queue{Bridge: b.domain, JID: u.jid, Kind: store.Outbox}
	defer b.outboxOldest(u, time.Time{}) // outbox age metric: no longer worked on
	ready := u.outq.start(empty)
	defer u.outq.cool() // a restarted worker starts from the store
	defer u.outq.acks.Wait()
	var bound sendBound
	defer bound.release()
	var park outPark // messages waiting for a retry, by chat (outpark.go)
	defer park.clear(&u.outq)
	var retry *time.Timer // made when first needed: most workers never park
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		var retryDue <-chan time.Time
		if at, ok := park.next(); ok {
			if retry == nil {
				retry = time.NewTimer(time.Until(at))
			} else {
				retry.Reset(time.Until(at))
			}
			retryDue = retry.C
		}
		select {
		case <-ctx.Done():
			return
		case <-u.kickOut:
			u.outq.cool() // not (only) a local enqueue: read the store
		case <-ready:
		case <-retryDue:
		}
		if retry != nil {
			retry.Stop()
		}
		for ctx.Err() == nil {
			if !b.retryParked(ctx, u, q, &park, &bound) {
				return
			}
			if park.n >= maxParked {
				break // no new entries until parked ones settle
			}
			entries, err := b.nextOutbox(ctx, u, q)
			if err != nil {
				b.log.Warn("read outbox", "user", u.owner, "err", err)
				sleep(ctx, jitter(time.Second))
				continue
			}
			if len(entries) == 0 {
				b.reportOldest(u, &park, time.Time{}) // outbox age metric: the parked ones, if any
				break
			}
			for _, ent := range entries {
				if ent.e != nil && park.parked(ent.e.Chat) {
					park.add(&u.outq, ent.e.Chat, parkedEntry{ent: ent}, time.Time{}) // behind its chat's head
					continue
				}
				var t outTry
				if ent.e != nil {
					b.reportOldest(u, &park, ent.e.Time)
				}
				switch oc, at := b.sendOne(ctx, u, q, ent, &bound, &t); oc {
				case outStopped:
					return // ctx ended (or the lease is lost); the entry stays queued
				case outRetry:
					parked := t // on the heap only when parked
					park.add(&u.outq, ent.e.Chat, parkedEntry{ent: ent, try: &parked}, at)
				}
			}
		}
	}
}

// sendOne settles one outbox entry (deliverOut) and, once settled, hands
// its ack to ackOut. A corrupt entry (nil e) is acknowledged at once.
func (b *Bridge) sendOne(ctx context.Context, u *user, q store.Queue, ent memOut, bound *sendBound, t *outTry) (outOutcome, time.Time) {
	bt := &u.outq.maps
	bt.Reset()
	// Events the session took with EmitAsync while sending (echo's
	// answer) must be durable before the ack.
	answers := answerSpan{after: u.inq.async.last()}
	if ent.e != nil { // nil: corrupt, logged when read
		if oc, at := b.deliverOut(ctx, u, ent.e, bound, t); oc != outSettled {
			b.unstageMaps(bt)
			return oc, at
		}
	}
	answers.upTo = u.inq.async.last()
	// The id maps of the sent message (sentOut) and the ack: one commit,
	// which the next entry does not wait for.
	bt.Ack(q, ent.id)
	b.ackOut(u, ent.id, *bt, answers)
	// Now ackOut's. Room for a message's writes: two id maps, its sent
	// record and the ack (mapSentOps), in one allocation.
	u.outq.maps = store.Batch{Ops: make([]store.Op, 0, 4)}
	return outSettled, time.Time{}
}

// The time one Send may take: at least sendTimeoutMin, at most
// sendTimeout (sendBound).
const (
	sendTimeout    = 2 * time.Minute
	sendTimeoutMin = sendTimeout - 10*time.Second
)

// sendBound is an outbox worker's deadline for its Sends. One context
// serves many sends: a new one is made only when the current one has less
// than sendTimeoutMin left (or has ended), so each Send gets between
// sendTimeoutMin and sendTimeout, and a message costs no allocations for
// its deadline (a context with a timer is four). Worker goroutine only;
// every call passes the same parent.
type sendBound struct {
	ctx      context.Context
	cancel   context.CancelFunc
	deadline time.Time
}

// context returns the context for the next Send.
func (s *sendBound) context(parent context.Context) context.Context {
	if s.ctx == nil || s.ctx.Err() != nil || time.Until(s.deadline) < sendTimeoutMin {
		s.release()
		s.deadline = time.Now().Add(sendTimeout)
		s.ctx, s.cancel = context.WithDeadline(parent, s.deadline)
	}
	return s.ctx
}

// release cancels the current context.
func (s *sendBound) release() {
	if s.cancel != nil {
		s.cancel()
		s.ctx, s.cancel = nil, nil
	}
}

// outTry is the retry state of one outbox entry across its attempts.
type outTry struct {
	delay     time.Duration      // the next backoff delay
	lastErr   error              // the last transient failure
	file      *legacy.Attachment // a fetched attachment, kept across retries
	delayTold bool               // the sender was told the message waits (notice.go)
}

// Outcomes of deliverOut.
type outOutcome int

const (
	outSettled outOutcome = iota // sent, or failed for good and the sender told
	outRetry                     // failed for a while: try again at the time returned
	outStopped                   // ctx ended or the lease is lost: the entry stays queued
)

// deliverOut tries to settle one message. A transient failure of this
// message returns outRetry and when to try again, so that the worker sends
// the user's messages to other chats meanwhile (outpark.go); a rate limit
// holds the whole session, so it is waited for here and the message tried
// again. The TTL ends the retries with an error to the sender.
func (b *Bridge) deliverOut(ctx context.Context, u *user, e *outboxEntry, bound *sendBound, t *outTry) (outOutcome, time.Time) {
	if t.delay == 0 {
		t.delay = b.opts.RetryMin
	}
	for {
		if ctx.Err() != nil || !b.mayAct(u) { // the account lease is still ours (cluster.go)
			return outStopped, time.Time{}
		}
		if time.Since(e.Time) > b.ttl {
			err := t.lastErr
			if err == nil {
				err = legacy.ErrUnavailable
			}
			b.log.Warn("outgoing message expired", "user", u.owner, "age", time.Since(e.Time).Round(time.Second), logErr(err))
			b.failOut(ctx, e, outError(e, err))
			return outSettled, time.Time{}
		}
		u.mu.Lock()
		sess, status := u.sess, u.status
		u.mu.Unlock()
		if sess == nil || status == legacy.StatusUnauthorized {
			b.failOut(ctx, e, stanzaError(legacy.ErrUnauthorized))
			return outSettled, time.Time{}
		}
		id, err := b.sendEntry(bound.context(ctx), u, sess, e, &t.file)
		if err == nil {
			b.sentOut(ctx, u, e, id)
			return outSettled, time.Time{}
		}
		if ctx.Err() != nil {
			return outStopped, time.Time{}
		}
		var se *stanza.Error
		if errors.As(err, &se) {
			b.log.Info("outgoing message refused by the gateway", "user", u.owner, "kind", e.Kind, "err", se.Text)
			b.failOut(ctx, e, se)
			return outSettled, time.Time{}
		}
		if legacy.IsPermanent(err) {
			b.log.Info("outgoing message refused by the legacy network", "user", u.owner, logErr(err))
			b.failOut(ctx, e, outError(e, err))
			if errors.Is(err, legacy.ErrUnauthorized) {
				// The credentials of sending were refused (an SMTP
				// password changed while IMAP still works): told once,
				// and the messages behind fail at once instead of each
				// trying them again, which may lock the account.
				b.log.Warn("legacy credentials rejected when sending; messages fail until the user registers again", "user", u.owner, logErr(err))
				b.setStatus(ctx, u, legacy.StatusUnauthorized, unauthorizedText(err))
			}
			return outSettled, time.Time{}
		}
		t.lastErr = err
		wait := jitter(t.delay)
		var rl *legacy.RateLimitError
		limited := errors.As(err, &rl)
		if limited && rl.RetryAfter > 0 {
			wait = rl.RetryAfter
		}
		// Never wait past the TTL: the sender hears of the expiry when it
		// happens, not one backoff delay later.
		if left := b.ttl - time.Since(e.Time); wait > left {
			wait = max(left, 0) + time.Millisecond
		}
		// Nor past DelayNotice untold: the next attempt comes when the
		// message has waited that long, so that, failing again, its
		// sender hears of it then, not a backoff delay later or never
		// (a network's own wait is told at once, below).
		if since := time.Since(e.Time); !t.delayTold && !limited && since < b.opts.DelayNotice && since+wait > b.opts.DelayNotice {
			wait = b.opts.DelayNotice - since + time.Millisecond
		}
		b.log.Warn("sending failed; will retry", "user", u.owner, logErr(err), "in", wait)
		switch {
		case t.delayTold:
		case limited && time.Since(e.Time)+wait >= b.opts.DelayNotice:
			// The network's wait alone passes DelayNotice (a Telegram
			// flood wait): told now, not after it, when it is sent.
			t.delayTold = true
			if b.firstDelayNotice(ctx, u, e) {
				b.sendSure(ctx, notice("delay-"+e.Key, e.To, bareOf(e.From), rateDelayText(quoteOf(e), err, time.Now().Add(wait), b.info.DisplayName)))
			}
		case time.Since(e.Time) >= b.opts.DelayNotice:
			t.delayTold = true
			if b.firstDelayNotice(ctx, u, e) {
				b.sendSure(ctx, notice("delay-"+e.Key, e.To, bareOf(e.From), delayText(quoteOf(e), err, e.Time.Add(b.ttl))))
			}
		}
		t.delay = min(t.delay*2, b.opts.RetryMax)
		if !limited {
			return outRetry, time.Now().Add(wait)
		}
		if !sleep(ctx, wait) {
			return outStopped, time.Time{}
		}
	}
}

// mapDelayTold marks the outbox entries whose delay notice was sent.
const mapDelayTold = "delay-told"

// firstDelayNotice reports whether e's delay notice is to be sent: not if
// an earlier run of the gateway sent it (the user is told once, across
// restarts). A store that cannot say is taken as "not sent": a second
// notice rather than none.
func (b *Bridge) firstDelayNotice(ctx context.Context, u *user, e *outboxEntry) bool {
	isNew, err := b.st.MarkSeen(ctx, b.domain, u.jid, mapDelayTold+":"+e.Key, b.ttl+time.Hour)
	return isNew || err != nil
}

func (b *Bridge) sentOut(ctx context.Context, u *user, e *outboxEntry, id legacy.MessageID) {
	b.obs.Delivered("out", true)
	b.mapSentOps(&u.outq.maps, u, e, id) // committed with the ack (runOutbox)
	if e.Receipt && b.info.Caps.Receipts && (e.Kind == "" || e.Kind == outEdit) {
		// type chat: servers copy typed receipts to the user's other
		// clients (carbons), which then show the message delivered too.
		// Sure: a message queued across a restart is sent as the gateway
		// starts, maybe before the link is up.
		b.replySure(ctx, receiptFor(e))
	}
}

// failOut tells the sender their message could not be delivered: a message
// error with the original id, from the contact.
func (b *Bridge) failOut(ctx context.Context, e *outboxEntry, se *stanza.Error) {
	b.obs.Delivered("out", false)
	if e.OriginID != "" && (e.Kind == "" || e.Kind == outEdit) {
		b.recordFailure(ctx, bareOf(e.From), e.OriginID, se) // a resend gets it again (answerResend)
	}
	m := stanza.New(stanza.NSComponent, "message", "type", "error", "id", e.ID, "from", e.To, "to", e.From)
	if e.Text != "" {
		m.TextChild(stanza.NSComponent, "body", e.Text)
	}
	m.Add(se.Element())
	sts := []*stanza.Element{m}
	if time.Since(e.Time) >= b.opts.DelayNotice { // the sending resource may be gone (notice.go)
		sts = append(sts, notice("fail-"+e.Key, e.To, bareOf(e.From), failureText(quoteOf(e), se)))
	}
	b.sendSure(ctx, sts...)
}

// sendSure sends sts, waiting for the link while it is down, until ctx
// ends: for what the sender must learn.
func (b *Bridge) sendSure(ctx context.Context, sts ...*stanza.Element) {
	for len(sts) > 0 && ctx.Err() == nil {
		conn, err := b.link.WaitUp(ctx)
		if err != nil {
			return
		}
		if err := conn.Send(ctx, sts[0]); err == nil {
			sts = sts[1:]
		}
	}
}

// mapSentOps adds the id maps of a delivered outbox entry to bt, so that
// runOutbox commits them with the entry's ack.
func (b *Bridge) mapSentOps(bt *store.Batch, u *user, e *outboxEntry, id legacy.MessageID) {
	if id == "" || (e.Kind != "" && e.Kind != outEdit) {
		return
	}
	put := func(kind, k, v string) {
		if k != "" && v != "" {
			b.stageMap(bt, u, kind, k, v)
		}
	}
	// A correction's own id maps to the corrected message too, for
	// clients that point a second correction at the first one.
	target := packFields(e.Chat, string(id))
	put(mapStanzaChat, e.ID, target)
	if e.OriginID != e.ID {
		put(mapStanzaChat, e.OriginID, target)
	}
	// The excerpt serves reply fallbacks and the notice of a late failure
	// (notice.go), which every network can report.
	quote := excerpt(e.Text)
	if e.Kind == "" {
		put(mapSent, string(id), sentRecord{StanzaID: e.ID, OriginID: e.OriginID, Excerpt: quote}.pack())
	} else if b.info.Caps.Replies {
		put(mapQuote, string(id), quote) // a correction: the ids stay, the text changed
	}
}

// defaultBody is the message's body in its default language (RFC 6121
// §5.2.3: bodies differ by xml:lang; the one without it, or with the
// stanza's own, is the default), else the first; nil without a body.
// contentWithoutBody names what a message without a body carries that
// its sender meant to be read — a subject, XHTML-IM text, a body in
// another namespace — or returns "" for one without any (chat states,
// receipts, markers), which is not answered.
func contentWithoutBody(st *stanza.Element) string {
	switch {
	case contentChild(st, "subject") != nil:
		return "a subject"
	case st.Child(nsXHTMLIM, "html") != nil:
		return "XHTML-IM formatted text"
	case st.Child("", "body") != nil:
		return "a <body/> in another namespace"
	}
	return ""
}

// contentNS reports whether space qualifies a message's own content
// (body, subject, thread): the stanza's namespace, or a content
// namespace a server may have declared on the child itself.
func contentNS(st *stanza.Element, space string) bool {
	switch space {
	case st.Space, stanza.NSComponent, "jabber:client", "jabber:server":
		return true
	}
	return false
}

// contentChild returns the first child local of st in a content
// namespace, or nil.
func contentChild(st *stanza.Element, local string) *stanza.Element {
	for _, n := range st.Nodes {
		if c := n.El; c != nil && c.Local == local && contentNS(st, c.Space) {
			return c
		}
	}
	return nil
}

func defaultBody(st *stanza.Element) *stanza.Element {
	var first *stanza.Element
	lang := st.Lang()
	for _, n := range st.Nodes {
		c := n.El
		if c == nil || c.Local != "body" || !contentNS(st, c.Space) {
			continue // a <body/> in another namespace is an extension, not the text (RFC 6121 §5.2.3)
		}
		if l := c.Lang(); l == "" || strings.EqualFold(l, lang) { // language tags ignore case (RFC 5646 §2.1.1)
			return c
		}
		if first == nil {
			first = c
		}
	}
	return first
}
