package bridges

// Message extensions both ways (protocol.md §10): chat states (XEP-0085),
// displayed markers (XEP-0333), corrections (XEP-0308), retractions
// (XEP-0424), reactions (XEP-0444), replies (XEP-0461 with the XEP-0428
// fallback). Every translation is gated by the network's Caps and by the
// session implementing the optional interface, before any adapter call.
//
// XMPP → legacy:
//   - chat states and displayed markers are ephemeral: they go to a
//     per-user best-effort worker (latest state per chat wins), never to the
//     durable outbox, and never block the shard;
//   - corrections, retractions and reactions are queued in the durable
//     outbox like messages, behind the message they refer to; the stanza id
//     they name is mapped to the legacy id only when they are delivered;
//   - without the capability: a correction is sent as a new message
//     "Correction: …"; a retraction is refused with feature-not-implemented;
//     a reaction is sent as a text message "Reacted 👍" (a reply to the
//     message when the network has replies), an empty reaction set (removal)
//     is dropped;
//   - a reply's XEP-0428 fallback quote is stripped only when the network
//     has native replies and the replied-to message is known; otherwise the
//     quote stays in the text.
//
// legacy → XMPP: see renderInbound (inbox.go) and the helpers below.

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"mellium.im/xmpp/jid"

	"github.com/jabbergate/jabbergate/bridges/jidmap"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
)

// Namespaces of the message extensions.
const (
	nsCorrect   = "urn:xmpp:message-correct:0"
	nsRetract   = "urn:xmpp:message-retract:1"
	nsRetract0  = "urn:xmpp:message-retract:0"
	nsFasten    = "urn:xmpp:fasten:0"
	nsReactions = "urn:xmpp:reactions:0"
	nsMarkers   = "urn:xmpp:chat-markers:0"
	nsReply     = "urn:xmpp:reply:0"
	nsFallback  = "urn:xmpp:fallback:0"
	nsHints     = "urn:xmpp:hints"
)

// Outbox entry kinds besides messages ("").
const (
	outEdit    = "edit"
	outRetract = "retract"
	outReact   = "react"
)

// More id maps (see inbox.go and msgrecord.go for the others).
const (
	mapQuote = "quote" // legacy id → a one-line excerpt of a corrected message, for reply fallbacks
	// Written before message records (msgrecord.go), still read.
	mapStanzaIn  = "in-s2l" // stanza id of a message delivered to the user → its legacy id
	mapOriginOut = "l2o"    // legacy id of a message the user sent → its origin-id
)

const (
	correctionPrefix = "Correction: "
	reactionPrefix   = "Reacted "
	retractFallback  = "/me retracted a message (your client does not support that)"
	ephemeralTimeout = 10 * time.Second
	quoteLen         = 80
)

// retractTarget returns the id a retraction names: XEP-0424 v1
// <retract id/>, or the older :0 form inside <apply-to id/>.
func retractTarget(st *stanza.Element) string {
	if r := st.Child(nsRetract, "retract"); r != nil {
		return r.Attr("id")
	}
	if a := st.Child(nsFasten, "apply-to"); a != nil && a.Child(nsRetract0, "retract") != nil {
		return a.Attr("id")
	}
	return ""
}

// chatStateOf returns the XEP-0085 state a message carries, or "".
func chatStateOf(st *stanza.Element) string {
	for _, c := range st.Children() {
		if c.Space == nsChatStates {
			switch c.Local {
			case "active", "composing", "paused", "inactive", "gone":
				return c.Local
			}
		}
	}
	return ""
}

// reactionSet returns the distinct, non-empty reactions of a <reactions/>.
func reactionSet(r *stanza.Element) []string {
	out := []string{}
	for _, c := range r.Children() {
		if c.Local != "reaction" {
			continue
		}
		e := strings.TrimSpace(c.Text())
		if e != "" && !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out
}

// checkReactions enforces the network's XEP-0444 restrictions.
func (b *Bridge) checkReactions(emojis []string) *stanza.Error {
	if max := b.info.MaxReactions; max > 0 && len(emojis) > max {
		return &stanza.Error{Condition: stanza.NotAcceptable, Type: stanza.ErrModify,
			Text: fmt.Sprintf("%s accepts at most %d reaction(s) per message; you sent %d", b.info.DisplayName, max, len(emojis))}
	}
	if allowed := b.info.AllowedReactions; len(allowed) > 0 {
		for _, e := range emojis {
			if !slices.Contains(allowed, e) {
				return &stanza.Error{Condition: stanza.NotAcceptable, Type: stanza.ErrModify,
					Text: fmt.Sprintf("%s does not accept the reaction %s; allowed: %s", b.info.DisplayName, e, strings.Join(allowed, " "))}
			}
		}
	}
	return nil
}

// stripReplyFallback removes the XEP-0428 ranges marked as the fallback of
// a reply from text. Offsets count Unicode code points; invalid ranges are
// ignored.
func stripReplyFallback(st *stanza.Element, text string) string {
	r := []rune(text)
	drop := make([]bool, len(r))
	hit := false
	for _, fb := range st.Children() {
		if fb.Local != "fallback" || fb.Space != nsFallback || fb.Attr("for") != nsReply {
			continue
		}
		for _, bd := range fb.Children() {
			if bd.Local != "body" {
				continue
			}
			s, err1 := strconv.Atoi(bd.Attr("start"))
			e, err2 := strconv.Atoi(bd.Attr("end"))
			if err1 != nil || err2 != nil || s < 0 || e < s || s > len(r) {
				continue
			}
			e = min(e, len(r))
			for i := s; i < e; i++ {
				drop[i] = true
				hit = true
			}
		}
	}
	if !hit {
		return text
	}
	var sb strings.Builder
	for i, c := range r {
		if !drop[i] {
			sb.WriteRune(c)
		}
	}
	return sb.String()
}

// prepareOut fills in what an outbox entry carries beyond a plain message,
// checking the capabilities. It returns an error for the sender, or sets
// e.Kind to "skip" when there is nothing to queue.
func (b *Bridge) prepareOut(st *stanza.Element, e *outboxEntry, body *stanza.Element, retractID string, reactions *stanza.Element) *stanza.Error {
	caps := b.info.Caps
	switch {
	case retractID != "":
		if !caps.Retractions {
			return &stanza.Error{Condition: stanza.FeatureNotImplemented, Type: stanza.ErrCancel,
				Text: b.info.DisplayName + " cannot delete sent messages: the message was not retracted there"}
		}
		e.Kind, e.Target = outRetract, retractID
		return nil
	case reactions != nil:
		target := reactions.Attr("id")
		if target == "" {
			return &stanza.Error{Condition: stanza.BadRequest, Type: stanza.ErrModify, Text: "reactions must name the message they react to (id)"}
		}
		emojis := reactionSet(reactions)
		if caps.Reactions {
			if se := b.checkReactions(emojis); se != nil {
				return se
			}
			e.Kind, e.Target, e.Emojis = outReact, target, emojis
			return nil
		}
		if len(emojis) == 0 {
			e.Kind = "skip" // removing reactions a text fallback cannot take back
			return nil
		}
		// Text fallback: the reactions as a message, a reply to the
		// message when the network has replies.
		e.Text = reactionPrefix + strings.Join(emojis, " ")
		e.Quoted = e.Text
		e.Target = target
		return nil
	}
	text := body.Text()
	stripped := text
	replyTo := ""
	if r := st.Child(nsReply, "reply"); r != nil && r.Attr("id") != "" && caps.Replies {
		replyTo = r.Attr("id")
		stripped = stripReplyFallback(st, text)
	}
	if rep := st.Child(nsCorrect, "replace"); rep != nil && rep.Attr("id") != "" {
		if caps.Edits {
			e.Kind, e.Target, e.Text = outEdit, rep.Attr("id"), stripped
			return nil
		}
		text = correctionPrefix + text
		stripped = correctionPrefix + stripped
		e.Corrects = rep.Attr("id")
	}
	e.Text = text
	if replyTo != "" {
		e.Target, e.Text, e.Quoted = replyTo, stripped, text
	}
	return nil
}

// resolveTarget maps a stanza id the user named to a legacy id: one of the
// user's own messages, or with inbound also a message delivered to her,
// in the conversation with chat. It returns "" when the id is unknown or
// belongs to another conversation: XEP-0308, XEP-0424, XEP-0444 and
// XEP-0461 refer to a message of the same conversation, and an adapter
// whose ids are unique per chat only would otherwise change a message of
// another chat. (Records written before the chat was kept match any chat.)
func (b *Bridge) resolveTarget(ctx context.Context, u *user, target string, chat legacy.ChatID, inbound bool) (legacy.MessageID, error) {
	own, found, err := b.ownMessage(ctx, u, target)
	if err != nil || found {
		if own.chat != "" && own.chat != string(chat) {
			return "", err
		}
		return own.id, err
	}
	if !inbound {
		return "", nil
	}
	r, _, err := b.recvRecordOf(ctx, u, target)
	if r.Chat != "" && r.Chat != string(chat) {
		return "", err
	}
	return legacy.MessageID(r.LegacyID), err
}

// ownRecord is what the gateway keeps of a message the user sent, by the
// stanza id (or origin-id) she sent it with.
type ownRecord struct {
	chat string // "" in records written before the chat was kept (s2l)
	id   legacy.MessageID
}

// ownMessage looks up the user's message sent with stanza id sid: in the
// s2lc map, else in the older s2l one.
func (b *Bridge) ownMessage(ctx context.Context, u *user, sid string) (ownRecord, bool, error) {
	v, found, err := b.getMap(ctx, u, mapStanzaChat, sid)
	if err != nil {
		return ownRecord{}, false, err
	}
	if found {
		f, ok := unpackFields(v, 2)
		if !ok {
			b.log.Warn("unreadable message record; ignored", "user", u.owner, "ns", mapStanzaChat)
			return ownRecord{}, false, nil
		}
		return ownRecord{chat: f[0], id: legacy.MessageID(f[1])}, true, nil
	}
	id, found, err := b.getMap(ctx, u, mapStanzaOut, sid)
	return ownRecord{id: legacy.MessageID(id)}, found, err
}

func unknownTarget(what string) *stanza.Error {
	return &stanza.Error{Condition: stanza.ItemNotFound, Type: stanza.ErrCancel,
		Text: "the " + what + " refers to a message the gateway does not know (too old, or not sent through this gateway); nothing was changed"}
}

func notImplemented(b *Bridge, what string) *stanza.Error {
	return &stanza.Error{Condition: stanza.FeatureNotImplemented, Type: stanza.ErrCancel,
		Text: b.info.DisplayName + " does not support " + what}
}

// sendOut makes the adapter call an outbox entry stands for; atts are the
// files of a message entry, already fetched. A *stanza.Error result is a
// refusal by the gateway itself (unknown id, missing capability); other
// errors come from the adapter or the store.
func (b *Bridge) sendOut(ctx context.Context, u *user, sess legacy.Session, e *outboxEntry, atts ...legacy.Attachment) (legacy.MessageID, error) {
	chat := legacy.ChatID(e.Chat)
	switch e.Kind {
	case "":
		m := &legacy.Message{Chat: chat, Text: e.Text, Subject: e.Subject, Thread: e.Thread, Key: e.Key, Attachments: atts}
		if e.Target != "" {
			id, err := b.resolveTarget(ctx, u, e.Target, chat, true)
			if err != nil {
				return "", err
			}
			if id != "" && b.info.Caps.Replies {
				m.ReplyTo = id
			} else if e.Quoted != "" {
				m.Text = e.Quoted // keep the quote: it is all the context there is
			}
		}
		if e.Corrects != "" {
			id, err := b.resolveTarget(ctx, u, e.Corrects, chat, false)
			if err != nil {
				return "", err
			}
			m.Corrects = id
		}
		return sess.Send(ctx, m)
	case outEdit:
		ed, ok := sess.(legacy.Editor)
		if !ok || !b.info.Caps.Edits {
			return "", notImplemented(b, "corrections")
		}
		id, err := b.resolveTarget(ctx, u, e.Target, chat, false)
		if err != nil {
			return "", err
		}
		if id == "" {
			return "", unknownTarget("correction")
		}
		return id, ed.Edit(ctx, chat, id, e.Text)
	case outRetract:
		rt, ok := sess.(legacy.Retracter)
		if !ok || !b.info.Caps.Retractions {
			return "", notImplemented(b, "retractions")
		}
		id, err := b.resolveTarget(ctx, u, e.Target, chat, false)
		if err != nil {
			return "", err
		}
		if id == "" {
			return "", unknownTarget("retraction")
		}
		return "", rt.Retract(ctx, chat, id)
	case outReact:
		re, ok := sess.(legacy.Reactor)
		if !ok || !b.info.Caps.Reactions {
			return "", notImplemented(b, "reactions")
		}
		id, err := b.resolveTarget(ctx, u, e.Target, chat, true)
		if err != nil {
			return "", err
		}
		if id == "" {
			return "", unknownTarget("reaction")
		}
		return "", re.React(ctx, chat, id, e.Emojis)
	case "skip":
		return "", nil
	}
	return "", &stanza.Error{Condition: stanza.InternalServerError, Type: stanza.ErrCancel, Text: "unknown outbox entry kind " + e.Kind}
}

// excerpt is the first line of text, at most quoteLen code points.
func excerpt(text string) string {
	text = strings.TrimSpace(text)
	if i := strings.IndexByte(text, '\n'); i >= 0 {
		text = strings.TrimSpace(text[:i]) + " …"
	}
	if utf8.RuneCountInString(text) > quoteLen {
		text = string([]rune(text)[:quoteLen]) + "…"
	}
	return text
}

// ownRef returns the stanza id the user's client knows one of her own
// messages by (origin-id first, as XEP-0444/0461 use it), or "".
func (b *Bridge) ownRef(ctx context.Context, u *user, id string) (string, error) {
	r, _, err := b.sentRecordOf(ctx, u, id)
	if r.OriginID != "" {
		return r.OriginID, err
	}
	return r.StanzaID, err
}

// msgRef returns the stanza id the user knows a legacy message by and the
// JID of its author: her own message, or else one delivered to her (ids are
// deterministic).
func (b *Bridge) msgRef(ctx context.Context, u *user, id, contact string) (ref, author string, err error) {
	ref, err = b.ownRef(ctx, u, id)
	if err != nil || ref != "" {
		return ref, u.jid, err
	}
	return jidmap.StanzaID(b.domain, u.owner, legacy.MessageID(id)), contact, nil
}

// addReply turns m, a message with body text, into an XEP-0461 reply to
// the legacy message replyTo, with a quoted XEP-0428 fallback when the
// gateway remembers the replied-to text.
func (b *Bridge) addReply(ctx context.Context, u *user, m *stanza.Element, replyTo, contact, text string) (string, error) {
	ref, author, err := b.msgRef(ctx, u, replyTo, contact)
	if err != nil {
		return text, err
	}
	m.Add(stanza.New(nsReply, "reply", "to", author, "id", ref))
	q, err := b.quoteOf(ctx, u, replyTo)
	if err != nil || q == "" {
		return text, nil
	}
	quote := "> " + q + "\n"
	m.Add(stanza.New(nsFallback, "fallback", "for", nsReply).Add(
		stanza.New(nsFallback, "body", "start", "0", "end", strconv.Itoa(utf8.RuneCountInString(quote)))))
	return quote + text, nil
}

// seqOf distinguishes successive edits of the same message for their
// deterministic stanza ids: a replay of one edit has the same sequence.
func seqOf(t time.Time, parts ...string) string {
	h := fnv.New64a()
	if !t.IsZero() {
		fmt.Fprint(h, t.UnixNano())
	}
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return strconv.FormatUint(h.Sum64(), 36)
}

// ephemeral is a user's best-effort worker state for chat states and
// displayed markers: the latest request per chat, sent by one goroutine.
type ephemeral struct {
	mu       sync.Mutex
	running  bool
	typing   map[legacy.ChatID]bool   // pending typing state
	sent     map[legacy.ChatID]bool   // last typing state sent
	read     map[legacy.ChatID]string // pending displayed marker (stanza id)
	lastRead map[legacy.ChatID]legacy.MessageID
}

// ephemeralIn hands a message's chat state and displayed marker to the
// user's ephemeral worker, when the network declares them.
func (b *Bridge) ephemeralIn(ctx context.Context, st *stanza.Element, from, to jid.JID) {
	state := ""
	if b.info.Caps.ChatStates {
		state = chatStateOf(st)
	}
	marker := ""
	if b.info.Caps.Markers {
		if d := st.Child(nsMarkers, "displayed"); d != nil {
			marker = d.Attr("id")
		}
	}
	if state == "" && marker == "" {
		return
	}
	u := b.getUser(from.Bare().String())
	if u == nil {
		return
	}
	if state != "" {
		u.noChatStates.Store(false) // the client takes chat states
	}
	chat := b.chatFor(ctx, u, to.Localpart())
	w := u.ephemeral
	w.mu.Lock()
	defer w.mu.Unlock()
	if state != "" {
		w.typing[chat] = state == "composing"
	}
	if marker != "" {
		w.read[chat] = marker
	}
	if !w.running {
		w.running = true
		b.wg.Add(1) // called from a shard worker, itself counted
		go b.runEphemeral(ctx, u, w)
	}
}

func (b *Bridge) runEphemeral(ctx context.Context, u *user, w *ephemeral) {
	defer b.wg.Done()
	for ctx.Err() == nil {
		w.mu.Lock()
		var (
			chat          legacy.ChatID
			typing, isTyp bool
			marker        string
			found         bool
		)
		for c, t := range w.typing {
			delete(w.typing, c)
			if w.sent[c] == t {
				continue // never the same state twice; "not typing" is the start state
			}
			w.sent[c] = t
			chat, typing, isTyp, found = c, t, true, true
			break
		}
		if !found {
			for c, m := range w.read {
				delete(w.read, c)
				chat, marker, found = c, m, true
				break
			}
		}
		if !found {
			w.running = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()

		u.mu.Lock()
		sess := u.sess
		u.mu.Unlock()
		if sess == nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, ephemeralTimeout)
		if isTyp {
			if cs, ok := sess.(legacy.ChatStater); ok {
				if err := cs.SetTyping(cctx, chat, typing); err != nil {
					b.log.Debug("chat state not sent", "user", u.owner, "err", err)
					w.mu.Lock()
					delete(w.sent, chat)
					w.mu.Unlock()
				}
			}
		} else if mk, ok := sess.(legacy.Marker); ok {
			id, err := b.resolveTarget(cctx, u, marker, chat, true)
			w.mu.Lock()
			fresh := id != "" && w.lastRead[chat] != id
			if fresh {
				w.lastRead[chat] = id
			}
			w.mu.Unlock()
			if err == nil && fresh { // unknown ids are ignored (XEP-0333)
				if err := mk.MarkRead(cctx, chat, id); err != nil {
					b.log.Debug("displayed marker not sent", "user", u.owner, "err", err)
				}
			}
		}
		cancel()
	}
}

// reactionRestrictions returns the XEP-0444 restrictions form
// (urn:xmpp:reactions:0:restrictions) for a contact's disco#info, built from
// Info.MaxReactions and Info.AllowedReactions, or nil when the network has
// no restrictions. For the owner of disco on contacts (disco.go).
func (b *Bridge) reactionRestrictions() *stanza.Element {
	if !b.info.Caps.Reactions || (b.info.MaxReactions <= 0 && len(b.info.AllowedReactions) == 0) {
		return nil
	}
	x := stanza.New(nsData, "x", "type", "result")
	x.Add(stanza.New(nsData, "field", "var", "FORM_TYPE", "type", "hidden").Add(stanza.New(nsData, "value").AddText(nsReactions + ":restrictions")))
	if b.info.MaxReactions > 0 {
		x.Add(stanza.New(nsData, "field", "var", "max_reactions_per_user").Add(stanza.New(nsData, "value").AddText(strconv.Itoa(b.info.MaxReactions))))
	}
	if len(b.info.AllowedReactions) > 0 {
		f := stanza.New(nsData, "field", "var", "allowlist")
		for _, e := range b.info.AllowedReactions {
			f.Add(stanza.New(nsData, "value").AddText(e))
		}
		x.Add(f)
	}
	return x
}
