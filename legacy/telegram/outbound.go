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

// Send implements legacy.Session. Text longer than 4096 UTF-16 units goes
// out in several messages; the id of the first is returned. Attachments
// go out first with sendPhoto/sendDocument, the text as the caption of
// the first when it fits. Safe for concurrent use.
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
	text := m.Text
	var first legacy.MessageID
	for i, a := range m.Attachments {
		caption := ""
		if i == 0 && utf16Len(text) <= maxCaption {
			caption, text = text, ""
		}
		id, err := s.sendFile(ctx, chat, a, caption, reply)
		if err != nil {
			return "", err
		}
		if first == "" {
			first = id
		}
		reply = nil
	}
	if text == "" && first != "" {
		return first, nil
	}
	for _, part := range chunk(text, maxText) {
		if err := s.lim.wait(ctx, chat, true); err != nil {
			return "", err
		}
		params := map[string]any{"chat_id": chat, "text": part}
		if reply != nil {
			params["reply_parameters"] = reply
			reply = nil
		}
		var sent Message
		cctx, cancel := withTimeout(ctx, callTimeout)
		err := s.c.call(cctx, "sendMessage", params, &sent)
		cancel()
		if err != nil {
			if first != "" {
				// Earlier parts went out; retrying would repeat them.
				s.log.Warn("telegram: a long message was sent only in part", "err", err)
				return first, nil
			}
			return "", err
		}
		if first == "" {
			first = s.messageID(chat, sent.MessageID)
		}
	}
	return first, nil
}

// sendFile sends one attachment: images as photos (Telegram recompresses
// them; up to 10 MB), everything else as a document (50 MB). A file whose
// URL Telegram can fetch (byURL) is sent by that URL; when Telegram
// refuses it (400), or otherwise, the bytes are uploaded.
func (s *session) sendFile(ctx context.Context, chat int64, a legacy.Attachment, caption string, reply map[string]any) (legacy.MessageID, error) {
	if len(a.Data) > maxUpload {
		return "", fmt.Errorf("telegram: file of %d bytes, bots may send up to 50 MB: %w", len(a.Data), legacy.ErrTooLarge)
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
		return "", err
	}
	var sent Message
	cctx, cancel := withTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := s.c.upload(cctx, method, fields, field, a.Name, a.Type, a.Data, &sent); err != nil {
		return "", err
	}
	return s.messageID(chat, sent.MessageID), nil
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
func (s *session) sendFileURL(ctx context.Context, chat int64, method, field, fileURL, caption string, reply map[string]any) (legacy.MessageID, error) {
	params := map[string]any{"chat_id": chat, field: fileURL}
	if caption != "" {
		params["caption"] = caption
	}
	if reply != nil {
		params["reply_parameters"] = reply
	}
	if err := s.lim.wait(ctx, chat, true); err != nil {
		return "", err
	}
	var sent Message
	cctx, cancel := withTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := s.c.call(cctx, method, params, &sent); err != nil {
		return "", err
	}
	return s.messageID(chat, sent.MessageID), nil
}

// target is the chat and message_id of the message id of chat that a
// call acts on (session.ref).
func (s *session) target(chat legacy.ChatID, id legacy.MessageID) (int64, int64, error) {
	c, r, err := s.ref(chat, id)
	return c, r.msg, err
}

// Edit implements legacy.Editor with editMessageText, or
// editMessageCaption for a file (a text longer than the limit is cut).
func (s *session) Edit(ctx context.Context, chat legacy.ChatID, id legacy.MessageID, text string) error {
	c, mid, err := s.target(chat, id)
	if err != nil {
		return err
	}
	if err := s.lim.wait(ctx, c, false); err != nil {
		return err
	}
	cctx, cancel := withTimeout(ctx, callTimeout)
	defer cancel()
	err = s.c.call(cctx, "editMessageText", map[string]any{"chat_id": c, "message_id": mid, "text": chunk(text, maxText)[0]}, nil)
	var ce *legacy.CodeError
	if errors.As(err, &ce) && strings.Contains(ce.Text, "no text in the message") {
		// A photo or a document: its text is the caption.
		err = s.c.call(cctx, "editMessageCaption", map[string]any{"chat_id": c, "message_id": mid, "caption": chunk(text, maxCaption)[0]}, nil)
	}
	if errors.As(err, &ce) && strings.Contains(ce.Text, "message is not modified") {
		return nil
	}
	return err
}

// Retract implements legacy.Retracter with deleteMessage. Telegram refuses
// messages older than 48 hours.
func (s *session) Retract(ctx context.Context, chat legacy.ChatID, id legacy.MessageID) error {
	c, mid, err := s.target(chat, id)
	if err != nil {
		return err
	}
	if err := s.lim.wait(ctx, c, false); err != nil {
		return err
	}
	cctx, cancel := withTimeout(ctx, callTimeout)
	defer cancel()
	return s.c.call(cctx, "deleteMessage", map[string]any{"chat_id": c, "message_id": mid}, nil)
}

// React implements legacy.Reactor with setMessageReaction: the full set
// (bots may set one reaction; an empty set removes it).
func (s *session) React(ctx context.Context, chat legacy.ChatID, id legacy.MessageID, emojis []string) error {
	c, mid, err := s.target(chat, id)
	if err != nil {
		return err
	}
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
