package telegram

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jabbergate/jabbergate/legacy"
)

// client is a small Bot API client: one POST per method, JSON parameters,
// a context on every call and errors that never contain the token.
type client struct {
	base   string // api_url without a trailing slash
	token  string
	hc     *http.Client
	counts *counters // the network's (counters.go); nil in some tests
}

// apiError is an {"ok":false} reply of the Bot API.
type apiError struct {
	Method      string
	Code        int
	Description string
	RetryAfter  int
	MigrateTo   int64
}

func (e *apiError) Error() string {
	return fmt.Sprintf("telegram: %s: %d %s", e.Method, e.Code, e.Description)
}

// errConflict is a 409 from getUpdates: another poller or a webhook owns
// the token.
var errConflict = errors.New("telegram: conflict")

type apiResponse struct {
	OK          bool            `json:"ok"`
	Result      json.RawMessage `json:"result"`
	ErrorCode   int             `json:"error_code"`
	Description string          `json:"description"`
	Parameters  *struct {
		RetryAfter      int   `json:"retry_after"`
		MigrateToChatID int64 `json:"migrate_to_chat_id"`
	} `json:"parameters"`
}

// scrub removes the token from s, so errors from net/http (whose *url.Error
// text holds the whole URL) can be logged.
func (c *client) scrub(s string) string {
	if c.token == "" {
		return s
	}
	return strings.ReplaceAll(s, c.token, "<token>")
}

// call invokes method with params encoded as JSON and decodes the result
// into out (if not nil). Every error wraps a legacy sentinel (see
// classify) and is free of the token.
func (c *client) call(ctx context.Context, method string, params any, out any) error {
	var body io.Reader
	if params != nil {
		b, err := json.Marshal(params)
		if err != nil {
			return fmt.Errorf("telegram: %s: %v: %w", method, err, legacy.ErrRejected)
		}
		body = bytes.NewReader(b)
	}
	return c.do(ctx, method, "application/json", body, out)
}

// upload invokes method with a multipart body: the fields and one file.
func (c *client) upload(ctx context.Context, method string, fields map[string]string, fileField, fileName, fileType string, data []byte, out any) error {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for k, v := range fields {
		if err := w.WriteField(k, v); err != nil {
			return err
		}
	}
	if fileName == "" {
		fileName = "file"
	}
	h := make(map[string][]string)
	h["Content-Disposition"] = []string{fmt.Sprintf(`form-data; name=%q; filename=%q`, fileField, fileName)}
	if fileType == "" {
		fileType = "application/octet-stream"
	}
	h["Content-Type"] = []string{fileType}
	part, err := w.CreatePart(h)
	if err != nil {
		return err
	}
	if _, err := part.Write(data); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.do(ctx, method, w.FormDataContentType(), &buf, out)
}

func (c *client) do(ctx context.Context, method, ctype string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/bot"+c.token+"/"+method, body)
	if err != nil {
		return fmt.Errorf("telegram: %s: %s: %w", method, c.scrub(err.Error()), legacy.ErrUnavailable)
	}
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("telegram: %s: %w: %w", method, ctx.Err(), legacy.ErrUnavailable)
		}
		return fmt.Errorf("telegram: %s: %s: %w", method, c.scrub(err.Error()), legacy.ErrUnavailable)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 500 {
		// A server error whatever its body: the Bot API's JSON or a
		// proxy's HTML page (502, 503, 504).
		c.counts.add(eventServerError)
	}
	ok2xx := resp.StatusCode >= 200 && resp.StatusCode < 300
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return c.unreadable(method, resp.StatusCode, "reading the reply: "+c.scrub(err.Error()), ok2xx)
	}
	var r apiResponse
	if err := json.Unmarshal(raw, &r); err != nil || (!r.OK && r.ErrorCode == 0 && ok2xx) {
		// Not the Bot API's JSON, or a 2xx that is neither a result nor
		// an error. A 2xx web page is no answer of the Bot API (which
		// always answers JSON) but of something in between, a captive
		// portal or a proxy's error page: the call did not reach
		// Telegram, and is not taken as carried out.
		accepted := ok2xx && !isWebPage(resp.Header.Get("Content-Type"), raw)
		return c.unreadable(method, resp.StatusCode, "malformed reply", accepted)
	}
	if !r.OK {
		e := &apiError{Method: method, Code: r.ErrorCode, Description: c.scrub(r.Description)}
		if e.Code == 0 {
			e.Code = resp.StatusCode
		}
		if r.Parameters != nil {
			e.RetryAfter = r.Parameters.RetryAfter
			e.MigrateTo = r.Parameters.MigrateToChatID
		}
		if resp.StatusCode < 500 { // else counted above
			c.counts.apiError(e.Code)
		}
		return classify(e)
	}
	if out != nil {
		if err := json.Unmarshal(r.Result, out); err != nil {
			return c.unreadable(method, resp.StatusCode, "malformed result", true)
		}
	}
	return nil
}

// isWebPage reports whether a reply is an HTML page (by its type, or its
// first bytes when the type says nothing).
func isWebPage(ctype string, body []byte) bool {
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(ctype)), "text/html") {
		return true
	}
	b := bytes.ToLower(bytes.TrimSpace(body[:min(len(body), 512)]))
	return bytes.HasPrefix(b, []byte("<!doctype html")) || bytes.HasPrefix(b, []byte("<html"))
}

// replyError is a reply of the Bot API that could not be read: its body
// (cut short, not the Bot API's JSON) or its result. It is transient
// (ErrUnavailable), but when accepted, Telegram carried the call out: a
// message it sent is sent (see sentID), and calling again would send it
// twice.
type replyError struct {
	method   string
	status   int    // the HTTP status
	what     string // "malformed reply", "malformed result", "reading the reply: …"
	accepted bool   // the status was 2xx, or the reply said "ok":true
}

func (e *replyError) Error() string {
	return fmt.Sprintf("telegram: %s: %s (HTTP %d): %v", e.method, e.what, e.status, legacy.ErrUnavailable)
}

// Unwrap returns legacy.ErrUnavailable.
func (e *replyError) Unwrap() error { return legacy.ErrUnavailable }

// unreadable counts and returns a replyError. A 5xx is counted as
// server_error (do), not as reply_malformed.
func (c *client) unreadable(method string, status int, what string, accepted bool) error {
	if status < 500 {
		c.counts.add(eventReplyMalformed)
	}
	// The ReasonError carries the HTTP status into the delay notice.
	return &legacy.ReasonError{
		Reason: fmt.Sprintf("HTTP %d, a reply that is not the Bot API's", status),
		Err:    &replyError{method: method, status: status, what: what, accepted: accepted},
	}
}

// acceptedUnread reports whether err is the unreadable reply to a call
// Telegram carried out (replyError.accepted).
func acceptedUnread(err error) bool {
	var re *replyError
	return errors.As(err, &re) && re.accepted
}

// Texts shown to the XMPP user for the two 403s and a rejected token at
// registration.
const (
	textBlocked    = "the Telegram user blocked your bot; they must unblock it before you can write to them"
	textBadToken   = "Telegram does not accept this bot token: copy it again from @BotFather (/mybots, your bot, API Token; /revoke gives a new one) and register again"
	textNotStarted = "this Telegram user has not started a conversation with your bot yet: ask them to open your bot in Telegram and press Start (or send it any message)"
)

// classify wraps an API error in the legacy sentinel it maps to
// (research notes §2.4, "Failure mapping").
func classify(e *apiError) error {
	d := strings.ToLower(e.Description)
	code := strconv.Itoa(e.Code)
	switch {
	case e.Code == 429:
		ra := time.Duration(e.RetryAfter) * time.Second
		if ra <= 0 {
			ra = time.Second
		}
		// The CodeError carries Telegram's words into the delay notice.
		return fmt.Errorf("telegram: %s: %w: %w", e.Method, &legacy.CodeError{Code: code, Text: e.Description, Err: legacy.ErrRateLimited}, &legacy.RateLimitError{RetryAfter: ra})
	case e.Code == 401:
		return &legacy.CodeError{Code: code, Text: "Telegram rejected the bot token (" + e.Description + "); get a valid token from @BotFather and register again", Err: legacy.ErrUnauthorized}
	case e.Code == 409:
		return fmt.Errorf("%w: %w", e, errConflict)
	case e.Code == 403 && strings.Contains(d, "blocked"):
		return &legacy.CodeError{Code: code, Text: textBlocked + " (" + e.Description + ")", Err: legacy.ErrForbidden}
	case e.Code == 403 && strings.Contains(d, "initiate"):
		return &legacy.CodeError{Code: code, Text: textNotStarted + " (" + e.Description + ")", Err: legacy.ErrForbidden}
	case e.Code == 403:
		return &legacy.CodeError{Code: code, Text: e.Description, Err: legacy.ErrForbidden}
	case e.MigrateTo != 0:
		return &legacy.CodeError{Code: code, Text: fmt.Sprintf("this group became a supergroup: write to %d instead (%s)", e.MigrateTo, e.Description), Err: legacy.ErrNotFound}
	case e.Code == 400 && (strings.Contains(d, "not found") || strings.Contains(d, "user not found")):
		return &legacy.CodeError{Code: code, Text: e.Description, Err: legacy.ErrNotFound}
	case e.Code == 400 && (strings.Contains(d, "not enough rights") || strings.Contains(d, "have no rights")):
		return &legacy.CodeError{Code: code, Text: "the group does not let your bot do this (" + e.Description + ")", Err: legacy.ErrForbidden}
	case e.Code == 400 && strings.Contains(d, "chat was deactivated"):
		return &legacy.CodeError{Code: code, Text: "this group no longer exists (" + e.Description + ")", Err: legacy.ErrNotFound}
	case e.Code == 400 && strings.Contains(d, "message can't be deleted"):
		return &legacy.CodeError{Code: code, Text: "Telegram lets a bot delete its messages only in their first 48 hours, and others' only as a group admin (" + e.Description + ")", Err: legacy.ErrRejected}
	case e.Code == 400 && strings.Contains(d, "too long"):
		return &legacy.CodeError{Code: code, Text: e.Description, Err: legacy.ErrTooLarge}
	case e.Code == 413 || strings.Contains(d, "too big"):
		return &legacy.CodeError{Code: code, Text: e.Description, Err: legacy.ErrTooLarge}
	case e.Code == 404 && strings.Contains(d, "method"):
		return &legacy.CodeError{Code: code, Text: "this Bot API server does not know the method " + e.Method + " (" + e.Description + ")", Err: legacy.ErrUnsupported}
	case e.Code == 404:
		// The Bot API answers 404 to a path whose token is malformed.
		return &legacy.CodeError{Code: code, Text: "Telegram does not know this bot token (" + e.Description + ")", Err: legacy.ErrUnauthorized}
	case e.Code >= 400 && e.Code < 500:
		return &legacy.CodeError{Code: code, Text: e.Description, Err: legacy.ErrRejected}
	default:
		// A 5xx (or an unknown code): transient, and the delay notice
		// names Telegram's answer, as it does for the SMS providers.
		return fmt.Errorf("telegram: %s: %w", e.Method, &legacy.CodeError{Code: code, Text: e.Description, Err: legacy.ErrUnavailable})
	}
}

// Bot API types: only the fields the adapter uses. Unknown fields are
// ignored, so newer servers are fine.

// User is a Telegram user or bot.
type User struct {
	ID        int64  `json:"id"`
	IsBot     bool   `json:"is_bot"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name,omitempty"`
	Username  string `json:"username,omitempty"`
}

// Name is the display name: first and last name, else @username.
func (u *User) Name() string {
	if u == nil {
		return ""
	}
	n := strings.TrimSpace(u.FirstName + " " + u.LastName)
	if n == "" && u.Username != "" {
		n = "@" + u.Username
	}
	return n
}

// Chat is a private chat, a group, a supergroup or a channel.
type Chat struct {
	ID        int64  `json:"id"`
	Type      string `json:"type"`
	Title     string `json:"title,omitempty"`
	Username  string `json:"username,omitempty"`
	FirstName string `json:"first_name,omitempty"`
	LastName  string `json:"last_name,omitempty"`
}

func (c Chat) private() bool { return c.Type == "private" }

func (c Chat) name() string {
	if c.Title != "" {
		return c.Title
	}
	u := User{FirstName: c.FirstName, LastName: c.LastName, Username: c.Username}
	return u.Name()
}

// Entity is a MessageEntity; Offset and Length are UTF-16 code units.
type Entity struct {
	Type   string `json:"type"`
	Offset int    `json:"offset"`
	Length int    `json:"length"`
	URL    string `json:"url,omitempty"`
}

// File fields shared by the media types.
type File struct {
	FileID       string `json:"file_id"`
	FileUniqueID string `json:"file_unique_id"`
	FileSize     int64  `json:"file_size,omitempty"`
	FilePath     string `json:"file_path,omitempty"`
	FileName     string `json:"file_name,omitempty"`
	MimeType     string `json:"mime_type,omitempty"`
	Emoji        string `json:"emoji,omitempty"`
}

// Location is a point on the map.
type Location struct {
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
}

// SharedContact is a contact card sent in a message.
type SharedContact struct {
	PhoneNumber string `json:"phone_number"`
	FirstName   string `json:"first_name"`
	LastName    string `json:"last_name,omitempty"`
}

// Message is a Telegram message.
type Message struct {
	MessageID         int64          `json:"message_id"`
	From              *User          `json:"from,omitempty"`
	Chat              Chat           `json:"chat"`
	Date              int64          `json:"date"`
	EditDate          int64          `json:"edit_date,omitempty"`
	Text              string         `json:"text,omitempty"`
	Entities          []Entity       `json:"entities,omitempty"`
	Caption           string         `json:"caption,omitempty"`
	CaptionEntities   []Entity       `json:"caption_entities,omitempty"`
	ReplyToMessage    *Message       `json:"reply_to_message,omitempty"`
	Photo             []File         `json:"photo,omitempty"`
	Document          *File          `json:"document,omitempty"`
	Voice             *File          `json:"voice,omitempty"`
	Audio             *File          `json:"audio,omitempty"`
	Video             *File          `json:"video,omitempty"`
	VideoNote         *File          `json:"video_note,omitempty"`
	Animation         *File          `json:"animation,omitempty"`
	Sticker           *File          `json:"sticker,omitempty"`
	Location          *Location      `json:"location,omitempty"`
	Contact           *SharedContact `json:"contact,omitempty"`
	Venue             *Venue         `json:"venue,omitempty"`
	Poll              *Poll          `json:"poll,omitempty"`
	Dice              *Dice          `json:"dice,omitempty"`
	MigrateToChatID   int64          `json:"migrate_to_chat_id,omitempty"`
	MigrateFromChatID int64          `json:"migrate_from_chat_id,omitempty"`
	NewChatTitle      string         `json:"new_chat_title,omitempty"`

	// Content the gateway cannot show but must not pass over in silence:
	// present (non-null) when the message carries it.
	Story     json.RawMessage `json:"story,omitempty"`
	PaidMedia json.RawMessage `json:"paid_media,omitempty"`
	Game      *titled         `json:"game,omitempty"`
	Invoice   *titled         `json:"invoice,omitempty"`
	Giveaway  json.RawMessage `json:"giveaway,omitempty"`
	Checklist *titled         `json:"checklist,omitempty"`

	// Forwards: forward_origin since Bot API 7.0, the older fields before.
	ForwardOrigin     *MessageOrigin `json:"forward_origin,omitempty"`
	ForwardFrom       *User          `json:"forward_from,omitempty"`
	ForwardFromChat   *Chat          `json:"forward_from_chat,omitempty"`
	ForwardSenderName string         `json:"forward_sender_name,omitempty"`
}

// Venue is a place shared in a chat.
type Venue struct {
	Location Location `json:"location"`
	Title    string   `json:"title"`
	Address  string   `json:"address"`
}

// Poll is a poll (only its question and options are shown).
type Poll struct {
	Question string `json:"question"`
	Options  []struct {
		Text string `json:"text"`
	} `json:"options"`
}

// Dice is an animated emoji with a random value.
type Dice struct {
	Emoji string `json:"emoji"`
	Value int    `json:"value"`
}

// titled is the title of a game, invoice or checklist.
type titled struct {
	Title string `json:"title"`
}

// MessageOrigin is where a forwarded message came from.
type MessageOrigin struct {
	Type           string `json:"type"` // user, hidden_user, chat, channel
	SenderUser     *User  `json:"sender_user,omitempty"`
	SenderUserName string `json:"sender_user_name,omitempty"`
	SenderChat     *Chat  `json:"sender_chat,omitempty"`
	Chat           *Chat  `json:"chat,omitempty"`
}

// forwardedFrom names the original author of a forwarded message ("" if
// it is not a forward).
func (m *Message) forwardedFrom() string {
	if o := m.ForwardOrigin; o != nil {
		switch {
		case o.SenderUser != nil:
			return o.SenderUser.Name()
		case o.SenderUserName != "":
			return o.SenderUserName
		case o.SenderChat != nil:
			return o.SenderChat.name()
		case o.Chat != nil:
			return o.Chat.name()
		}
		return "someone"
	}
	switch {
	case m.ForwardFrom != nil:
		return m.ForwardFrom.Name()
	case m.ForwardFromChat != nil:
		return m.ForwardFromChat.name()
	}
	return m.ForwardSenderName
}

// ChatMember is the status of a user in a chat.
type ChatMember struct {
	Status string `json:"status"`
	User   User   `json:"user"`
}

// ChatMemberUpdated reports a change of a member's status (my_chat_member:
// the bot's own).
type ChatMemberUpdated struct {
	Chat          Chat       `json:"chat"`
	From          User       `json:"from"`
	Date          int64      `json:"date"`
	OldChatMember ChatMember `json:"old_chat_member"`
	NewChatMember ChatMember `json:"new_chat_member"`
}

// Update is one incoming update.
type Update struct {
	UpdateID          int64              `json:"update_id"`
	Message           *Message           `json:"message,omitempty"`
	EditedMessage     *Message           `json:"edited_message,omitempty"`
	ChannelPost       *Message           `json:"channel_post,omitempty"`
	EditedChannelPost *Message           `json:"edited_channel_post,omitempty"`
	MyChatMember      *ChatMemberUpdated `json:"my_chat_member,omitempty"`
	// Reactions (reactions.go).
	MessageReaction      *MessageReactionUpdated      `json:"message_reaction,omitempty"`
	MessageReactionCount *MessageReactionCountUpdated `json:"message_reaction_count,omitempty"`

	// unreadable is why an update of getUpdates' result could not be
	// decoded (a field of an unexpected type); only its id is known.
	unreadable error
}

// allowedUpdates is what we ask Telegram for.
// Telegram sends message_reaction and message_reaction_count only when
// they are named here.
var allowedUpdates = []string{"message", "edited_message", "channel_post", "edited_channel_post", "my_chat_member",
	"message_reaction", "message_reaction_count"}

func (c *client) getMe(ctx context.Context) (*User, error) {
	var u User
	if err := c.call(ctx, "getMe", nil, &u); err != nil {
		return nil, err
	}
	if u.ID == 0 {
		return nil, fmt.Errorf("telegram: getMe: no bot id in the reply: %w", legacy.ErrUnavailable)
	}
	return &u, nil
}

func (c *client) getUpdates(ctx context.Context, offset int64, timeout time.Duration) ([]Update, error) {
	params := map[string]any{
		"offset":          offset,
		"limit":           100,
		"timeout":         int(timeout / time.Second),
		"allowed_updates": allowedUpdates,
	}
	ctx, cancel := context.WithTimeout(ctx, timeout+15*time.Second)
	defer cancel()
	// One by one: an update of a shape this code cannot read must not
	// hold up the others in the batch (nor every batch after it).
	var raws []json.RawMessage
	if err := c.call(ctx, "getUpdates", params, &raws); err != nil {
		return nil, err
	}
	ups := make([]Update, len(raws))
	for i, raw := range raws {
		if err := json.Unmarshal(raw, &ups[i]); err != nil {
			var id struct {
				UpdateID int64 `json:"update_id"`
			}
			if json.Unmarshal(raw, &id) != nil {
				return nil, c.unreadable("getUpdates", http.StatusOK, "an update without a readable update_id", false)
			}
			c.counts.add(eventReplyMalformed)
			ups[i] = Update{UpdateID: id.UpdateID, unreadable: err}
		}
	}
	return ups, nil
}

// getFile returns the file's path on the file server.
func (c *client) getFile(ctx context.Context, fileID string) (*File, error) {
	var f File
	if err := c.call(ctx, "getFile", map[string]any{"file_id": fileID}, &f); err != nil {
		return nil, err
	}
	return &f, nil
}

// download fetches a file from <api_url>/file/bot<token>/<path>, up to max
// bytes.
func (c *client) download(ctx context.Context, path string, max int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/file/bot"+c.token+"/"+path, nil)
	if err != nil {
		return nil, fmt.Errorf("telegram: download: %s: %w", c.scrub(err.Error()), legacy.ErrUnavailable)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("telegram: download: %s: %w", c.scrub(err.Error()), legacy.ErrUnavailable)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("telegram: download: HTTP %d: %w", resp.StatusCode, legacy.ErrUnavailable)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("telegram: download: %s: %w", c.scrub(err.Error()), legacy.ErrUnavailable)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("telegram: download: larger than %d bytes: %w", max, legacy.ErrTooLarge)
	}
	return data, nil
}
