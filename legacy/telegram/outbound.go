package telegram

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/jabbergate/jabbergate/legacy"
)

// limiters are the token buckets of the Bots FAQ: ~30 messages/s per bot,
// ~1/s per private chat (bursts of 3), 20/min per group (bursts of 5).
type limiters struct {
	bot *rate.Limiter

	mu    sync.Mutex
	chats map[int64]*rate.Limiter
}

func newLimiters() *limiters {
	return &limiters{bot: rate.NewLimiter(30, 30), chats: map[int64]*rate.Limiter{}}
}

func (l *limiters) chat(id int64) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.chats[id]
	if lim == nil {
		if id > 0 {
			lim = rate.NewLimiter(rate.Every(time.Second), 3)
		} else {
			lim = rate.NewLimiter(rate.Every(3*time.Second), 5)
		}
		l.chats[id] = lim
	}
	return lim
}

// wait takes a token from the bot bucket and, for messages, the chat's.
// If ctx would end first, it returns a RateLimitError.
func (l *limiters) wait(ctx context.Context, chat int64, message bool) error {
	lims := []*rate.Limiter{l.bot}
	if message {
		lims = append(lims, l.chat(chat))
	}
	for _, lim := range lims {
		if err := lim.Wait(ctx); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("telegram: %w: %w", ctx.Err(), legacy.ErrUnavailable)
			}
			return &legacy.RateLimitError{RetryAfter: time.Second}
		}
	}
	return nil
}

func parseChat(c legacy.ChatID) (int64, error) {
	id, err := strconv.ParseInt(string(c), 10, 64)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("telegram: %q is not a Telegram chat id: %w", c, legacy.ErrInvalidAddress)
	}
	return id, nil
}

// callTimeout bounds every outgoing call that has no deadline of its own.
const callTimeout = 30 * time.Second

func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// Send implements legacy.Session. Attachments go out first with
// sendPhoto/sendDocument, the text as the caption of the first when it
// fits; text longer than 4096 UTF-16 units goes out in several messages.
// The id returned names every Telegram message sent (ids.go), so that
// Retract and Edit reach all of them; it is empty when Telegram took a
// part but its reply did not say the part's message_id (sentID): the
// message is sent, but its corrections, retractions and reactions cannot
// reach it. Safe for concurrent use.
func (s *session) Send(ctx context.Context, m *legacy.Message) (legacy.MessageID, error) {
	chat, err := parseChat(m.Chat)
	if err != nil {
		return "", err
	}
	var reply map[string]any
	if m.ReplyTo != "" {
		// A reply to a message of another chat, or one seen through
		// another bot (ids.go), goes out without the reference.
		if r, err := parseMessageID(m.ReplyTo); err == nil && r.chat == chat && (r.bot == 0 || r.bot == s.botID) {
			reply = map[string]any{"message_id": r.msg, "allow_sending_without_reply": true}
		}
	}
	// The parts, in order: each file, then the text's chunks. Only the
	// first carries the reply reference.
	type step struct {
		file bool
		send func(ctx context.Context, reply map[string]any) (int64, error)
	}
	var steps []step
	text := m.Text
	for i, a := range m.Attachments {
		caption := ""
		if i == 0 && utf16Len(text) <= maxCaption {
			caption, text = text, ""
		}
		steps = append(steps, step{file: true, send: func(ctx context.Context, reply map[string]any) (int64, error) {
			return s.sendFile(ctx, chat, a, caption, reply)
		}})
	}
	if text != "" || len(steps) == 0 {
		for _, c := range chunk(text, maxText) {
			steps = append(steps, step{send: func(ctx context.Context, reply map[string]any) (int64, error) {
				return s.sendText(ctx, chat, c, reply)
			}})
		}
	}
	var parts []part
	for i, st := range steps {
		var id int64
		var err error
		if len(parts) == 0 {
			// Nothing went out yet: a failure is the core's to retry.
			id, err = st.send(ctx, reply)
		} else {
			id, err = s.retryPart(ctx, func(ctx context.Context) (int64, error) { return st.send(ctx, nil) })
		}
		if err != nil {
			if len(parts) == 0 {
				return "", err
			}
			s.log.Warn("telegram: a split message was sent only in part", "sent", len(parts), "parts", len(steps), "err", err)
			return "", partialError(i, len(steps), err)
		}
		reply = nil
		parts = append(parts, part{id: id, file: st.file})
	}
	for _, p := range parts {
		if p.id == 0 {
			// Sent, but not every part is known: an id naming only
			// some would make a retraction leave the others and a
			// correction put text in the wrong parts.
			return "", nil
		}
	}
	id := partsID(s.botID, chat, parts)
	s.rememberParts(chat, parts, id)
	return id, nil
}

// Split messages and failures (Send). The first part of a message is
// sent once: when it fails nothing went out, and the error goes to the
// core, which retries transient ones (the whole message, later) and
// reports permanent ones. Once a part went out, the core must not retry
// the message — it would send that part again — and the rest must not be
// dropped either. So each later part is retried within Send: on a 429
// after its retry_after (the same RateLimitError the core would honour),
// on a 5xx, another unreadable reply (not a 2xx: that part went out,
// sentID) or a timeout after a growing backoff, up to restAttempts tries
// and only while Send's context leaves time for the wait. When a later
// part still fails, or fails for good, Send returns a permanent error
// (partialError): a legacy.ReasonError, which the core shows the user,
// naming the parts that did not go out, wrapping the part's own
// permanent error, or legacy.ErrPartlySent for a transient one that
// outlasted the retries (not ErrTooLarge: the size is not what failed,
// and the user should not shorten the message). The parts that went out
// stay; the user resends the rest. A crash between two parts still makes
// the core send the whole message again (the progress of a Send is not
// stored), and a part whose call timed out after Telegram took it is sent
// twice.

// restAttempts bounds the tries of each part after the first.
const restAttempts = 5

// retryPart sends a part after the first (see above).
func (s *session) retryPart(ctx context.Context, send func(context.Context) (int64, error)) (int64, error) {
	backoff := s.net.minBackoff
	for attempt := 1; ; attempt++ {
		id, err := send(ctx)
		if err == nil || legacy.IsPermanent(err) || ctx.Err() != nil || attempt == restAttempts {
			return id, err
		}
		wait := backoff
		var rl *legacy.RateLimitError
		if errors.As(err, &rl) {
			wait = rl.RetryAfter
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return 0, err
		}
		s.log.Info("telegram: retrying a part of a split message", "attempt", attempt, "retry_in", wait, "err", err)
		if !sleep(ctx, wait) {
			return 0, err
		}
		backoff = min(2*backoff, s.net.maxBackoff)
	}
}

// partialError is Send's error when part failed (0-based) of the total
// parts of a message, after the ones before it went out.
func partialError(failed, total int, err error) error {
	rest := fmt.Sprintf("part %d", failed+1)
	if failed+1 < total {
		rest = fmt.Sprintf("parts %d to %d", failed+1, total)
	}
	why := "Telegram could not be reached"
	var ce *legacy.CodeError
	hasText := errors.As(err, &ce) && ce.Text != ""
	switch {
	case errors.Is(err, legacy.ErrRateLimited):
		why = "Telegram kept asking to slow down"
	case hasText && legacy.IsPermanent(err):
		why = "Telegram answered: " + ce.Text
	}
	if hasText && !legacy.IsPermanent(err) {
		why += ": " + ce.Code + " " + ce.Text
	}
	arrived := "the first"
	if failed > 1 {
		arrived = fmt.Sprintf("the first %d", failed)
	}
	reason := fmt.Sprintf("it went to Telegram as %d messages and only %s arrived; %s did not (%s): send the rest again", total, arrived, rest, why)
	if legacy.IsPermanent(err) {
		return &legacy.ReasonError{Err: err, Reason: reason}
	}
	return &legacy.ReasonError{Err: legacy.ErrPartlySent, Reason: reason}
}

// sendText sends one message of text (at most maxText).
func (s *session) sendText(ctx context.Context, chat int64, text string, reply map[string]any) (int64, error) {
	if err := s.lim.wait(ctx, chat, true); err != nil {
		return 0, err
	}
	params := map[string]any{"chat_id": chat, "text": text}
	if reply != nil {
		params["reply_parameters"] = reply
	}
	var sent Message
	// Bounded even under a longer deadline of the caller, so that a hung
	// call leaves time to retry a later part (retryPart).
	cctx, cancel := context.WithTimeout(ctx, s.net.sendTimeout)
	defer cancel()
	err := s.c.call(cctx, "sendMessage", params, &sent)
	return s.sentID("sendMessage", sent.MessageID, err)
}

// sentID is the outcome of a call of a sending method that returned the
// message msg and err. A reply Telegram gave after carrying the call out
// (HTTP 2xx, or "ok":true) that could not be read, or that has no
// message_id, means the message went out, as the SMS adapter takes a
// provider's 2xx: it is taken as sent, with id 0 (unknown), and never
// sent again, which would deliver it twice. Logged and counted
// (reply_malformed): the gateway cannot map later corrections,
// retractions or reactions to that message.
func (s *session) sentID(method string, msg int64, err error) (int64, error) {
	switch {
	case err == nil && msg > 0:
		return msg, nil
	case err == nil:
		s.c.counts.add(eventReplyMalformed)
		err = fmt.Errorf("telegram: %s: no message_id in the result", method)
	case !acceptedUnread(err):
		return 0, err
	}
	s.log.Warn("telegram: Telegram accepted a message but its reply could not be read; taken as sent, not sent again, but its corrections, retractions and reactions cannot reach it",
		"method", method, "err", err)
	return 0, nil
}

// sendFile sends one attachment: images as photos (Telegram recompresses
// them; up to 10 MB), everything else as a document (50 MB). A file whose
// URL Telegram can fetch (byURL) is sent by that URL; when Telegram
// refuses it (400), or otherwise, the bytes are uploaded.
func (s *session) sendFile(ctx context.Context, chat int64, a legacy.Attachment, caption string, reply map[string]any) (int64, error) {
	if len(a.Data) > maxUpload {
		return 0, fmt.Errorf("telegram: file of %d bytes, bots may send up to 50 MB: %w", len(a.Data), legacy.ErrTooLarge)
	}
	method, field := "sendDocument", "document"
	if strings.HasPrefix(a.Type, "image/") && a.Type != "image/gif" && a.Type != "image/svg+xml" && len(a.Data) <= 10<<20 {
		method, field = "sendPhoto", "photo"
	}
	fields := map[string]string{"chat_id": strconv.FormatInt(chat, 10)}
	if caption != "" {
		fields["caption"] = caption
	}
	if reply != nil {
		fields["reply_parameters"] = fmt.Sprintf(`{"message_id":%d,"allow_sending_without_reply":true}`, reply["message_id"])
	}
	if byURL(a, method) {
		id, err := s.sendFileURL(ctx, chat, method, field, strings.TrimSpace(a.URL), caption, reply)
		var ce *legacy.CodeError
		if err == nil || !errors.As(err, &ce) || ce.Code != "400" || !errors.Is(err, legacy.ErrRejected) {
			return id, err
		}
		// Telegram could not fetch the URL (unreachable, a private
		// address, a type it does not take by URL): upload the bytes.
		s.log.Info("telegram: Telegram did not fetch the file's URL, uploading the file", "err", err)
	}
	if err := s.lim.wait(ctx, chat, true); err != nil {
		return 0, err
	}
	var sent Message
	cctx, cancel := withTimeout(ctx, 5*time.Minute)
	defer cancel()
	err := s.c.upload(cctx, method, fields, field, a.Name, a.Type, a.Data, &sent)
	if method == "sendPhoto" && photoRefused(err) {
		// Telegram takes no photo over a 20:1 side ratio (a long
		// screenshot, a panorama) nor one it cannot decode; a document
		// it takes as it is.
		s.log.Info("telegram: Telegram refused the image as a photo, sending it as a document", "err", err)
		method, field, sent = "sendDocument", "document", Message{}
		err = s.c.upload(cctx, method, fields, field, a.Name, a.Type, a.Data, &sent)
	}
	return s.sentID(method, sent.MessageID, err)
}

// photoRefused reports whether err is Telegram refusing an uploaded image
// as a photo (PHOTO_INVALID_DIMENSIONS, IMAGE_PROCESS_FAILED, …), which
// it would take as a document.
func photoRefused(err error) bool {
	var ce *legacy.CodeError
	return errors.As(err, &ce) && ce.Code == "400" && (strings.Contains(ce.Text, "PHOTO_") || strings.Contains(ce.Text, "IMAGE_PROCESS_FAILED"))
}

// Limits of files Telegram fetches itself ("Sending files": by URL, 5 MB
// for photos, 20 MB for other content; sendDocument by URL only works for
// GIF, PDF and ZIP files). Decimal megabytes, to stay on the safe side.
const (
	maxURLPhoto    = 5_000_000
	maxURLDocument = 20_000_000
)

// byURL reports whether a is sent by its URL (legacy.Attachment.URL, the
// user's HTTP upload), which Telegram then fetches, rather than by
// uploading its bytes: only when the URL is an absolute http(s) one and
// the file is within what Telegram fetches by URL for method.
func byURL(a legacy.Attachment, method string) bool {
	raw := strings.TrimSpace(a.URL)
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || strings.ContainsAny(raw, " \t\r\n") {
		return false
	}
	if method == "sendPhoto" {
		return len(a.Data) <= maxURLPhoto
	}
	switch a.Type {
	case "image/gif", "application/pdf", "application/zip":
		return len(a.Data) <= maxURLDocument
	}
	return false
}

// sendFileURL sends a file by its URL: a JSON call whose file field is
// the URL.
func (s *session) sendFileURL(ctx context.Context, chat int64, method, field, fileURL, caption string, reply map[string]any) (int64, error) {
	params := map[string]any{"chat_id": chat, field: fileURL}
	if caption != "" {
		params["caption"] = caption
	}
	if reply != nil {
		params["reply_parameters"] = reply
	}
	if err := s.lim.wait(ctx, chat, true); err != nil {
		return 0, err
	}
	var sent Message
	cctx, cancel := withTimeout(ctx, 2*time.Minute)
	defer cancel()
	err := s.c.call(cctx, method, params, &sent)
	return s.sentID(method, sent.MessageID, err)
}

// Corrections (Edit). Telegram edits a message in place, but cannot
// change how many messages a text was sent as. So a correction is applied
// part by part: the new text is split as Send splits it and each chunk
// replaces the text of one of the message's text parts, in order; text
// parts left over are deleted. A correction that needs more parts than
// the message has (still) is refused with a ReasonError (ErrTooLarge)
// saying so, rather than cut: the user can send it as a new message. The
// parts are edited from the last one needed to the first, so a refusal
// because a part is gone (deleted by an earlier, shorter correction)
// happens before anything changed; edits that change nothing ("message is
// not modified") and deletions of parts already gone count as done, so
// the core may retry a correction that failed half-way. A message whose
// text went as a file's caption is corrected with editMessageCaption
// (1024 characters at most, likewise refused beyond).

// editNotModified reports whether err is Telegram's answer to an edit
// that changes nothing.
func editNotModified(err error) bool {
	var ce *legacy.CodeError
	return errors.As(err, &ce) && strings.Contains(ce.Text, "message is not modified")
}

// Edit implements legacy.Editor with editMessageText, or
// editMessageCaption for a file (see above).
func (s *session) Edit(ctx context.Context, chat legacy.ChatID, id legacy.MessageID, text string) error {
	c, r, err := s.ref(chat, id)
	if err != nil {
		return err
	}
	if len(r.parts) == 1 {
		if n := utf16Len(text); n > maxText {
			return tooLongEdit(n, maxText, 1)
		}
		err := s.editText(ctx, c, r.msg, text)
		var ce *legacy.CodeError
		if errors.As(err, &ce) && strings.Contains(ce.Text, "no text in the message") {
			// A photo or a document: its text is the caption.
			return s.editCaption(ctx, c, r.msg, text)
		}
		return err
	}
	var texts []int64
	for _, p := range r.parts {
		if !p.file {
			texts = append(texts, p.id)
		}
	}
	if len(texts) == 0 {
		return s.editCaption(ctx, c, r.msg, text) // files only: the text is the first one's caption
	}
	chunks := chunk(text, maxText)
	if len(chunks) > len(texts) {
		return tooLongEdit(utf16Len(text), maxText, len(texts))
	}
	for i := len(chunks) - 1; i >= 0; i-- {
		err := s.editText(ctx, c, texts[i], chunks[i])
		if err != nil && i > 0 && i == len(chunks)-1 && errors.Is(err, legacy.ErrNotFound) {
			// Deleted by an earlier, shorter correction.
			return tooLongEdit(utf16Len(text), maxText, i)
		}
		if err != nil {
			return err
		}
	}
	for _, p := range texts[len(chunks):] {
		if err := s.delete(ctx, c, p); err != nil && !errors.Is(err, legacy.ErrNotFound) {
			return err
		}
	}
	return nil
}

// tooLongEdit refuses a correction of n UTF-16 units that would need more
// than have parts of at most max.
func tooLongEdit(n, max, have int) error {
	msgs := "one Telegram message"
	if have > 1 {
		msgs = fmt.Sprintf("%d Telegram messages", have)
	}
	return &legacy.ReasonError{Err: legacy.ErrTooLarge, Reason: fmt.Sprintf(
		"the corrected text (%d characters) does not fit in the %s of at most %d characters the message was sent as; send it as a new message", n, msgs, max)}
}

// editText sets the text of one message; a text that is already the
// message's is no error.
func (s *session) editText(ctx context.Context, chat, msg int64, text string) error {
	if err := s.lim.wait(ctx, chat, false); err != nil {
		return err
	}
	cctx, cancel := withTimeout(ctx, callTimeout)
	defer cancel()
	err := s.c.call(cctx, "editMessageText", map[string]any{"chat_id": chat, "message_id": msg, "text": text}, nil)
	if editNotModified(err) {
		return nil
	}
	return err
}

// editCaption sets the caption of a file message. A text that is nothing
// but one http(s) URL is not a caption: it is the file's own link, which
// XMPP clients send as the body of a file message (with the same URL in
// jabber:x:oob) and again in its corrections, and which the core passes
// on as the correction's text. Send never makes such a body a caption
// (the core strips it), so a correction must not either: the caption is
// emptied instead. (A correction cannot replace the file; and the
// adapter, given only the text, cannot tell the file's URL from another
// one, so any bare link counts — a caption that is only a link is the
// price.)
func (s *session) editCaption(ctx context.Context, chat, msg int64, text string) error {
	if bareURL(text) {
		text = ""
	}
	if n := utf16Len(text); n > maxCaption {
		return &legacy.ReasonError{Err: legacy.ErrTooLarge, Reason: fmt.Sprintf(
			"the corrected caption (%d characters) is longer than the %d characters Telegram allows for a file's caption", n, maxCaption)}
	}
	if err := s.lim.wait(ctx, chat, false); err != nil {
		return err
	}
	cctx, cancel := withTimeout(ctx, callTimeout)
	defer cancel()
	err := s.c.call(cctx, "editMessageCaption", map[string]any{"chat_id": chat, "message_id": msg, "caption": text}, nil)
	if editNotModified(err) {
		return nil
	}
	return err
}

// bareURL reports whether text is only one absolute http(s) URL.
func bareURL(text string) bool {
	t := strings.TrimSpace(text)
	if t == "" || strings.ContainsAny(t, " \t\r\n") {
		return false
	}
	u, err := url.Parse(t)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// delete deletes one message.
func (s *session) delete(ctx context.Context, chat, msg int64) error {
	if err := s.lim.wait(ctx, chat, false); err != nil {
		return err
	}
	cctx, cancel := withTimeout(ctx, callTimeout)
	defer cancel()
	return s.c.call(cctx, "deleteMessage", map[string]any{"chat_id": chat, "message_id": msg}, nil)
}

// Retract implements legacy.Retracter with deleteMessage, for every part
// of a message Send split. Telegram refuses messages older than 48 hours.
// Parts already gone are skipped (a retry after a failure half-way); a
// message none of whose parts exist is ErrNotFound.
func (s *session) Retract(ctx context.Context, chat legacy.ChatID, id legacy.MessageID) error {
	c, r, err := s.ref(chat, id)
	if err != nil {
		return err
	}
	var notFound error
	gone := 0
	for _, p := range r.parts {
		err := s.delete(ctx, c, p.id)
		switch {
		case errors.Is(err, legacy.ErrNotFound):
			notFound = err
			gone++
		case err != nil:
			return err
		}
	}
	if gone == len(r.parts) {
		return notFound
	}
	return nil
}

// React implements legacy.Reactor with setMessageReaction: the full set
// (bots may set one reaction; an empty set removes it), on the first part
// of a message Send split.
func (s *session) React(ctx context.Context, chat legacy.ChatID, id legacy.MessageID, emojis []string) error {
	c, r, err := s.ref(chat, id)
	if err != nil {
		return err
	}
	mid := r.msg
	reaction := []map[string]string{}
	for _, e := range emojis {
		// Telegram's list spells emojis without the emoji variation
		// selector that XMPP clients often add ("❤️" → "❤").
		reaction = append(reaction, map[string]string{"type": "emoji", "emoji": strings.ReplaceAll(e, "\uFE0F", "")})
	}
	if err := s.lim.wait(ctx, c, false); err != nil {
		return err
	}
	cctx, cancel := withTimeout(ctx, callTimeout)
	defer cancel()
	return s.c.call(cctx, "setMessageReaction", map[string]any{"chat_id": c, "message_id": mid, "reaction": reaction}, nil)
}

// typingEvery is how often a typing action is sent at most per chat:
// Telegram shows it for 5 seconds.
const typingEvery = 4 * time.Second

// SetTyping implements legacy.ChatStater with sendChatAction "typing".
// Telegram has no "stopped typing": false is a no-op.
func (s *session) SetTyping(ctx context.Context, chat legacy.ChatID, typing bool) error {
	c, err := parseChat(chat)
	if err != nil {
		return err
	}
	if !typing {
		s.typingMu.Lock()
		delete(s.typing, c)
		s.typingMu.Unlock()
		return nil
	}
	now := s.now()
	s.typingMu.Lock()
	if s.typing == nil {
		s.typing = map[int64]time.Time{}
	}
	if last, ok := s.typing[c]; ok && now.Sub(last) < typingEvery {
		s.typingMu.Unlock()
		return nil
	}
	s.typing[c] = now
	s.typingMu.Unlock()
	if err := s.lim.wait(ctx, c, false); err != nil {
		return err
	}
	cctx, cancel := withTimeout(ctx, callTimeout)
	defer cancel()
	return s.c.call(cctx, "sendChatAction", map[string]any{"chat_id": c, "action": "typing"}, nil)
}
