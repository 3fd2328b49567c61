package telegram

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jabbergate/jabbergate/legacy"
)

// session is one bot's connection.
type session struct {
	net  *Network
	c    *client
	sink legacy.Sink
	log  *slog.Logger
	lim  *limiters

	botID int64 // the bot's id, from its token (Open); part of every message id (ids.go)

	// procMu serialises update processing (poll loop and webhook
	// requests), so events of one chat keep their order.
	procMu sync.Mutex
	offset int64            // next update_id to fetch; only advanced once durable
	seen   map[int64]string // chats announced with a Contact event, by name
	// parts maps (chat, message_id) of the parts of split messages this
	// session sent to the message's id; partsOrder is their order, for
	// forgetting the oldest (ids.go).
	partsMu    sync.Mutex
	parts      map[[2]int64]legacy.MessageID
	partsOrder []legacy.MessageID

	// customEmoji maps custom emoji ids to their emoji (reactions.go).
	customEmoji map[string]string
	// fileFailing holds when each file that keeps failing with transient
	// errors first failed (fetch).
	fileFailing map[string]time.Time

	typingMu sync.Mutex
	typing   map[int64]time.Time // last typing action per chat
	now      func() time.Time    // the clock of the typing throttle
}

// Run implements legacy.Session: getMe, then the poll loop (or, in webhook
// mode, setWebhook and wait) until ctx ends.
func (s *session) Run(ctx context.Context) error {
	me, err := s.c.getMe(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if me.ID != s.botID {
		// Telegram's tokens start with the bot's id, which Open took for
		// the message ids; getMe has never been seen to disagree.
		s.log.Warn("telegram: getMe names another bot id than the token", "token_bot", s.botID, "getme_bot", me.ID)
	}
	s.log = s.log.With("bot", "@"+me.Username)
	if s.net.webhookURL != "" {
		return s.runWebhook(ctx)
	}
	// getUpdates fails with 409 while a webhook is set.
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = s.c.call(cctx, "deleteWebhook", map[string]any{"drop_pending_updates": false}, nil)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	return s.poll(ctx)
}

func (s *session) status(ctx context.Context, st legacy.Status, text string) {
	if err := s.sink.Emit(ctx, legacy.StatusEvent{Status: st, Text: text}); err != nil && ctx.Err() == nil {
		s.log.Warn("telegram: status not delivered", "err", err)
	}
}

// sleep waits d or until ctx ends; it reports whether ctx is still alive.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (s *session) poll(ctx context.Context) error {
	s.status(ctx, legacy.StatusConnected, "")
	backoff := s.net.minBackoff
	grow := func() {
		backoff *= 2
		if backoff > s.net.maxBackoff {
			backoff = s.net.maxBackoff
		}
	}
	conflict := false
	for ctx.Err() == nil {
		s.procMu.Lock()
		offset := s.offset
		s.procMu.Unlock()
		ups, err := s.c.getUpdates(ctx, offset, s.net.pollTimeout)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var rl *legacy.RateLimitError
			switch {
			case errors.Is(err, legacy.ErrUnauthorized):
				return err
			case errors.Is(err, errConflict):
				s.log.Error("telegram: getUpdates conflict (409): another program is polling this bot token, or a webhook is set; backing off", "err", err, "retry_in", backoff)
				if !conflict {
					conflict = true
					s.status(ctx, legacy.StatusDisconnected, "another program is receiving this bot's updates (Telegram answered 409 Conflict); stop it, or use a separate bot for the gateway")
				}
				if !sleep(ctx, backoff) {
					return nil
				}
				grow()
			case errors.As(err, &rl):
				s.log.Warn("telegram: getUpdates rate limited", "retry_after", rl.RetryAfter)
				if !sleep(ctx, rl.RetryAfter) {
					return nil
				}
			default:
				s.log.Warn("telegram: getUpdates failed", "err", err, "retry_in", backoff)
				if !sleep(ctx, backoff) {
					return nil
				}
				grow()
			}
			continue
		}
		if conflict {
			conflict = false
			s.status(ctx, legacy.StatusConnected, "")
		}
		if err := s.process(ctx, ups, true); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Warn("telegram: updates not taken by the gateway; they stay with Telegram", "err", err, "retry_in", backoff)
			if !sleep(ctx, backoff) {
				return nil
			}
			grow()
			continue
		}
		s.procMu.Lock()
		stuck := len(ups) > 0 && s.offset == offset
		s.procMu.Unlock()
		if stuck {
			// Updates came but the offset did not move (a server that
			// answers below the offset with nothing new): not at once.
			s.log.Warn("telegram: getUpdates answered without progress", "offset", offset, "retry_in", backoff)
			if !sleep(ctx, backoff) {
				return nil
			}
			grow()
			continue
		}
		backoff = s.net.minBackoff
	}
	return nil
}

// process emits the events of ups in order. With commit, it then persists
// the offset past the last update whose events were all emitted (a
// SaveState event) and only then advances the offset that the next
// getUpdates sends, which confirms the updates to Telegram.
func (s *session) process(ctx context.Context, ups []Update, commit bool) error {
	s.procMu.Lock()
	defer s.procMu.Unlock()
	next := s.offset
	restarted := false
	if commit && len(ups) > 0 && ups[0].UpdateID < s.offset {
		// getUpdates never answers with an update below the offset it was
		// asked for: the ids started over (after a week without updates
		// the next id is random; another Bot API server, api_url changed,
		// has a sequence of its own). The offset follows them; an update
		// handled before comes again under the same message ids, which
		// the gateway drops.
		s.log.Warn("telegram: update ids started over below the saved offset; following them", "offset", s.offset, "first", ups[0].UpdateID)
		restarted, next = true, 0
	}
	var perr error
	for _, u := range ups {
		if err := s.handle(ctx, u); err != nil {
			perr = err
			break
		}
		if u.UpdateID+1 > next {
			next = u.UpdateID + 1
		}
	}
	if commit && (next > s.offset || restarted && next > 0) {
		b, _ := json.Marshal(state{Offset: next})
		if err := s.sink.Emit(ctx, legacy.SaveState{State: b}); err != nil {
			return errors.Join(perr, fmt.Errorf("telegram: saving the update offset: %w", err))
		}
		s.offset = next
	}
	return perr
}

// handle translates one update and emits its events. An update whose
// translation failed for a reason that may pass (a file Telegram could not
// hand over just now) emits nothing and returns the error: it stays with
// Telegram and comes again.
func (s *session) handle(ctx context.Context, u Update) error {
	evs, err := s.translate(ctx, u)
	if err != nil {
		return err
	}
	for _, ev := range evs {
		if err := s.sink.Emit(ctx, ev); err != nil {
			return err
		}
		if c, ok := ev.(legacy.Contact); ok {
			id, _ := strconv.ParseInt(string(c.Chat), 10, 64)
			s.seen[id] = c.Name
		}
	}
	return nil
}

func chatID(id int64) legacy.ChatID { return legacy.ChatID(strconv.FormatInt(id, 10)) }

// translate turns an update into events. Unknown update kinds give none
// (and are confirmed). An error (only from fetching a file, see fetch)
// means the update must not be confirmed yet.
func (s *session) translate(ctx context.Context, u Update) ([]legacy.Event, error) {
	if u.unreadable != nil {
		// It can never be read: held, it would stop every update after
		// it. Skipped, loudly.
		s.log.Error("telegram: an update of a shape this gateway cannot read was skipped", "update_id", u.UpdateID, "err", u.unreadable)
		return nil, nil
	}
	switch {
	case u.Message != nil:
		return s.incoming(ctx, u.Message)
	case u.ChannelPost != nil:
		return s.incoming(ctx, u.ChannelPost)
	case u.EditedMessage != nil:
		return s.edited(u.EditedMessage), nil
	case u.EditedChannelPost != nil:
		return s.edited(u.EditedChannelPost), nil
	case u.MyChatMember != nil:
		return s.member(ctx, u.MyChatMember), nil
	case u.MessageReaction != nil:
		return s.reacted(ctx, u.MessageReaction), nil
	case u.MessageReactionCount != nil:
		return s.reactionCount(ctx, u.MessageReactionCount), nil
	}
	return nil, nil
}

// contact returns a Contact event for m's chat if it was not announced
// in this session under the same name.
func (s *session) contact(c Chat) []legacy.Event {
	name := c.name()
	if old, ok := s.seen[c.ID]; ok && old == name {
		return nil
	}
	return []legacy.Event{legacy.Contact{Chat: chatID(c.ID), Name: name, Group: !c.private()}}
}

func msgTime(unix int64) time.Time {
	if unix == 0 {
		return time.Time{}
	}
	return time.Unix(unix, 0).UTC()
}

func (s *session) incoming(ctx context.Context, m *Message) ([]legacy.Event, error) {
	if m.MigrateToChatID != 0 {
		// The supergroup it became is a contact from now on.
		next := Chat{ID: m.MigrateToChatID, Type: "supergroup", Title: m.Chat.Title}
		return append(s.contact(next), legacy.Incoming{
			ID: s.messageID(m.Chat.ID, m.MessageID), Chat: chatID(m.Chat.ID), Time: msgTime(m.Date),
			Text: fmt.Sprintf("[this group became a supergroup; it continues as the contact %d]", m.MigrateToChatID),
		}), nil
	}
	if m.NewChatTitle != "" || m.MigrateFromChatID != 0 {
		return s.contact(m.Chat), nil // a new name, or the supergroup's first message
	}
	text, atts, err := s.body(ctx, m)
	if err != nil {
		return nil, err
	}
	if text == "" && len(atts) == 0 {
		return nil, nil // service messages (joins, pins, …)
	}
	if from := m.forwardedFrom(); from != "" {
		text = strings.TrimSuffix("Forwarded from "+from+":\n"+text, "\n")
	}
	evs := s.withAvatar(ctx, s.contact(m.Chat))
	in := legacy.Incoming{
		ID:          s.messageID(m.Chat.ID, m.MessageID),
		Chat:        chatID(m.Chat.ID),
		Text:        text,
		Time:        msgTime(m.Date),
		Attachments: atts,
	}
	if !m.Chat.private() && m.From != nil {
		in.Sender = legacy.UserID(strconv.FormatInt(m.From.ID, 10))
		in.SenderName = m.From.Name()
	} else if !m.Chat.private() {
		in.SenderName = m.Chat.name()
	}
	if m.ReplyToMessage != nil {
		in.ReplyTo = s.partOf(m.Chat.ID, m.ReplyToMessage.MessageID)
	}
	return append(evs, in), nil
}

func (s *session) edited(m *Message) []legacy.Event {
	text := renderEntities(m.Text, m.Entities)
	if text == "" {
		text = renderEntities(m.Caption, m.CaptionEntities)
	}
	if text == "" {
		return nil
	}
	t := msgTime(m.EditDate)
	if t.IsZero() {
		t = msgTime(m.Date)
	}
	return []legacy.Event{legacy.Edited{ID: s.messageID(m.Chat.ID, m.MessageID), Chat: chatID(m.Chat.ID), Text: text, Time: t}}
}

// member handles my_chat_member: the bot's own status in a chat.
func (s *session) member(ctx context.Context, u *ChatMemberUpdated) []legacy.Event {
	chat := chatID(u.Chat.ID)
	switch st := u.NewChatMember.Status; {
	case u.Chat.private() && st == "kicked":
		return []legacy.Event{legacy.Presence{Chat: chat, Available: false, Status: "blocked your bot"}}
	case u.Chat.private() && st == "member":
		return append(s.withAvatar(ctx, s.contact(u.Chat)), legacy.Presence{Chat: chat, Available: true})
	case st == "left" || st == "kicked":
		return []legacy.Event{legacy.Presence{Chat: chat, Available: false, Status: "your bot is no longer in this group"}}
	case st == "member" || st == "administrator" || st == "creator":
		return append(s.contact(u.Chat), legacy.Presence{Chat: chat, Available: true})
	}
	return nil
}

// body is the text and files of a message. An error is a file that could
// not be fetched for a reason that may pass (see fetch).
func (s *session) body(ctx context.Context, m *Message) (string, []legacy.Attachment, error) {
	text := renderEntities(m.Text, m.Entities)
	if m.Caption != "" {
		text = renderEntities(m.Caption, m.CaptionEntities)
	}
	var f *File
	kind := ""
	switch {
	case len(m.Photo) > 0:
		f, kind = &m.Photo[len(m.Photo)-1], "photo" // the largest size comes last
		if f.MimeType == "" {
			f.MimeType = "image/jpeg"
		}
	case m.Document != nil:
		f, kind = m.Document, "document"
	case m.Voice != nil:
		f, kind = m.Voice, "voice message"
	case m.Audio != nil:
		f, kind = m.Audio, "audio"
	case m.Video != nil:
		f, kind = m.Video, "video"
	case m.VideoNote != nil:
		f, kind = m.VideoNote, "video message"
	case m.Animation != nil:
		f, kind = m.Animation, "animation"
	case m.Sticker != nil:
		e := m.Sticker.Emoji
		if e == "" {
			e = "[sticker]"
		}
		return e, nil, nil
	case m.Location != nil && m.Venue == nil: // a venue has a location too
		return geoURI(*m.Location), nil, nil
	case m.Contact != nil:
		n := strings.TrimSpace(m.Contact.FirstName + " " + m.Contact.LastName)
		return strings.TrimSpace("Contact: " + n + " " + m.Contact.PhoneNumber), nil, nil
	case m.Venue != nil:
		place := strings.Trim(m.Venue.Title+", "+m.Venue.Address, ", ")
		return place + "\n" + geoURI(m.Venue.Location), nil, nil
	case m.Poll != nil:
		var b strings.Builder
		b.WriteString("Poll: " + m.Poll.Question)
		for _, o := range m.Poll.Options {
			b.WriteString("\n– " + o.Text)
		}
		b.WriteString("\n[vote in Telegram]")
		return b.String(), nil, nil
	case m.Dice != nil:
		return fmt.Sprintf("%s rolled %d", m.Dice.Emoji, m.Dice.Value), nil, nil
	}
	if text == "" {
		// Content with no text form here: said, so that nothing
		// arrives in silence.
		switch {
		case m.Story != nil:
			return "[a story: open Telegram to see it]", nil, nil
		case m.PaidMedia != nil:
			return "[paid media: open Telegram to see it]", nil, nil
		case m.Game != nil:
			return "[the game " + m.Game.Title + ": open Telegram to play]", nil, nil
		case m.Invoice != nil:
			return "[an invoice, " + m.Invoice.Title + ": open Telegram to see it]", nil, nil
		case m.Giveaway != nil:
			return "[a giveaway: open Telegram to see it]", nil, nil
		case m.Checklist != nil:
			return "[the checklist " + m.Checklist.Title + ": open Telegram to see it]", nil, nil
		}
	}
	if f == nil {
		return text, nil, nil
	}
	att, note, err := s.fetch(ctx, f, kind)
	if err != nil {
		return "", nil, err
	}
	if note != "" {
		if text != "" {
			text += "\n"
		}
		return text + note, nil, nil
	}
	return text, []legacy.Attachment{att}, nil
}

// geoURI is a location as an RFC 5870 geo URI, which XMPP clients link.
func geoURI(l Location) string {
	return "geo:" + strconv.FormatFloat(l.Latitude, 'f', -1, 64) + "," + strconv.FormatFloat(l.Longitude, 'f', -1, 64)
}

// Retries of a file Telegram does not hand over (getFile or the download
// fails with a 429, a 5xx, a malformed reply or a timeout): fileAttempts
// tries within one processing of the update, waiting the 429's
// retry_after (when not over fileMaxWait) or a growing backoff in
// between. When they all fail, the update is not confirmed: the error
// goes up, the poll loop backs off and fetches the update again (a
// webhook answers 503 and Telegram retries), so a passing failure never
// loses the file. Only once a file has kept failing for
// Network.fileGiveUp is its message delivered with a note instead, so
// that one file cannot hold up the bot's updates for ever. Permanent
// failures (over the 20 MB getFile limit, a file id Telegram refuses with
// 400) give the note at once.
const (
	fileAttempts = 3
	fileMaxWait  = 10 * time.Second
)

// fileLabel names a file in a note: "photo", "document report.pdf".
func fileLabel(kind, name string) string {
	if name = strings.TrimSpace(name); name != "" {
		return kind + " " + name
	}
	return kind
}

// fetch downloads a file within the Bot API's getFile limit. When it
// cannot for good, it returns a note for the user instead; when it cannot
// for now, an error (see fileAttempts).
func (s *session) fetch(ctx context.Context, f *File, kind string) (legacy.Attachment, string, error) {
	label := fileLabel(kind, f.FileName)
	tooBig := fmt.Sprintf("[%s not fetched: the Telegram Bot API only lets bots download files up to 20 MB]", label)
	if f.FileSize > maxDownload {
		// Decimal megabytes, as the Bot API states its limit ("20 MB",
		// which it counts as 20 MiB: whatever is over it shows as 21.0 MB
		// or more).
		return legacy.Attachment{}, fmt.Sprintf("[%s of %.1f MB not fetched: the Telegram Bot API only lets bots download files up to 20 MB]", label, float64(f.FileSize)/1e6), nil
	}
	key := f.FileUniqueID
	if key == "" {
		key = f.FileID
	}
	backoff := s.net.minBackoff
	for attempt := 1; ; attempt++ {
		att, err := s.fetchOnce(ctx, f)
		if err == nil {
			delete(s.fileFailing, key)
			return att, "", nil
		}
		s.log.Warn("telegram: file not fetched", "kind", kind, "attempt", attempt, "err", err)
		if errors.Is(err, legacy.ErrTooLarge) || strings.Contains(err.Error(), "too big") {
			delete(s.fileFailing, key)
			return legacy.Attachment{}, tooBig, nil
		}
		if legacy.IsPermanent(err) {
			delete(s.fileFailing, key)
			return legacy.Attachment{}, fmt.Sprintf("[%s could not be fetched from Telegram]", label), nil
		}
		if ctx.Err() != nil {
			return legacy.Attachment{}, "", err
		}
		wait := backoff
		var rl *legacy.RateLimitError
		if errors.As(err, &rl) {
			wait = rl.RetryAfter
		}
		if attempt < fileAttempts && wait <= fileMaxWait {
			if !sleep(ctx, wait) {
				return legacy.Attachment{}, "", err
			}
			backoff *= 2
			continue
		}
		// Transient, and the retries are spent: keep the update with
		// Telegram unless this file has been failing for too long.
		now := time.Now()
		first, ok := s.fileFailing[key]
		if !ok {
			if s.fileFailing == nil || len(s.fileFailing) > 1000 {
				s.fileFailing = map[string]time.Time{}
			}
			s.fileFailing[key] = now
			first = now
		}
		if now.Sub(first) < s.net.fileGiveUp {
			return legacy.Attachment{}, "", fmt.Errorf("telegram: %s not fetched yet, the update stays with Telegram: %w", kind, err)
		}
		delete(s.fileFailing, key)
		return legacy.Attachment{}, fmt.Sprintf("[%s could not be fetched from Telegram: it kept failing for %s]", label, s.net.fileGiveUp.Round(time.Second)), nil
	}
}

// fetchOnce is one getFile and download of f.
func (s *session) fetchOnce(ctx context.Context, f *File) (legacy.Attachment, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	info, err := s.c.getFile(ctx, f.FileID)
	if err == nil && info.FilePath == "" {
		err = fmt.Errorf("telegram: getFile gave no file_path: %w", legacy.ErrUnavailable)
	}
	if err != nil {
		return legacy.Attachment{}, err
	}
	data, err := s.c.download(ctx, info.FilePath, maxDownload)
	if err != nil {
		return legacy.Attachment{}, err
	}
	name := f.FileName
	if name == "" {
		name = info.FilePath[strings.LastIndexByte(info.FilePath, '/')+1:]
	}
	return legacy.Attachment{Name: name, Type: f.MimeType, Data: data}, nil
}

// runWebhook registers the webhook and serves until ctx ends; updates
// arrive through Network.Webhook.
func (s *session) runWebhook(ctx context.Context) error {
	hook := s.net.webhookURL + "/" + strconv.FormatInt(s.botID, 10)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := s.c.call(cctx, "setWebhook", map[string]any{
		"url":             hook,
		"secret_token":    s.net.webhookSecretFor(s.botID),
		"allowed_updates": allowedUpdates,
		"max_connections": 1, // updates in order
	}, nil)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	s.net.mu.Lock()
	s.net.hooks[s.botID] = s
	s.net.mu.Unlock()
	defer func() {
		s.net.mu.Lock()
		if s.net.hooks[s.botID] == s {
			delete(s.net.hooks, s.botID)
		}
		s.net.mu.Unlock()
	}()
	s.status(ctx, legacy.StatusConnected, "")
	<-ctx.Done()
	return nil
}

// serveWebhook handles POST /<bot id>: 401 without the right secret
// header, 200 once the update's events are durable, 503 otherwise (Telegram
// retries).
func (n *Network) serveWebhook(w http.ResponseWriter, r *http.Request) {
	if n.webhookURL == "" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	id, err := strconv.ParseInt(strings.Trim(r.URL.Path, "/"), 10, 64)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	want := n.webhookSecretFor(id)
	got := r.Header.Get("X-Telegram-Bot-Api-Secret-Token")
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		http.Error(w, "bad secret token", http.StatusUnauthorized)
		return
	}
	n.mu.Lock()
	s := n.hooks[id]
	n.mu.Unlock()
	if s == nil {
		http.Error(w, "bot session not running", http.StatusServiceUnavailable)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "reading the update", http.StatusBadRequest)
		return
	}
	var u Update
	if err := json.Unmarshal(body, &u); err != nil {
		http.Error(w, "malformed update", http.StatusBadRequest)
		return
	}
	if err := s.process(r.Context(), []Update{u}, false); err != nil {
		s.log.Warn("telegram: webhook update not taken; Telegram will retry", "update", u.UpdateID, "err", err)
		http.Error(w, "not stored, retry later", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// maxAvatar is the largest picture put in a Contact event (the contract
// asks for at most 128 KiB).
const maxAvatar = 128 << 10

// withAvatar adds the profile photo of a private chat's user to a Contact
// event: the smallest size of the newest photo (Telegram gives 160, 320
// and 640 pixel squares). A user with no visible photo gets NoAvatar; a
// failure leaves the stored picture as it is.
func (s *session) withAvatar(ctx context.Context, evs []legacy.Event) []legacy.Event {
	for i, ev := range evs {
		c, ok := ev.(legacy.Contact)
		if !ok || c.Group {
			continue
		}
		user, err := strconv.ParseInt(string(c.Chat), 10, 64)
		if err != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		var photos struct {
			TotalCount int      `json:"total_count"`
			Photos     [][]File `json:"photos"`
		}
		err = s.c.call(cctx, "getUserProfilePhotos", map[string]any{"user_id": user, "limit": 1}, &photos)
		if err == nil && (photos.TotalCount == 0 || len(photos.Photos) == 0 || len(photos.Photos[0]) == 0) {
			c.NoAvatar = true
		} else if err == nil {
			var info *File
			info, err = s.c.getFile(cctx, photos.Photos[0][0].FileID)
			if err == nil {
				c.Avatar, err = s.c.download(cctx, info.FilePath, maxAvatar)
				c.AvatarType = "image/jpeg"
			}
		}
		cancel()
		if err != nil {
			s.log.Debug("telegram: no profile photo", "err", err)
			c.Avatar, c.AvatarType = nil, ""
		}
		evs[i] = c
	}
	return evs
}
