// Package telegramtest is a fake Telegram Bot API server
// (https://core.telegram.org/bots/api) for tests, running on 127.0.0.1.
//
// It serves /bot<token>/<method> and /file/bot<token>/<path> with the
// documented request and reply shapes ({"ok":true,"result":…} and
// {"ok":false,"error_code":…,"description":…,"parameters":{…}}) for getMe,
// getUpdates (long polling with the real offset semantics: an update is
// confirmed, and dropped, once getUpdates is called with an offset above
// its update_id; a newer poll terminates an older one with 409; 409 while
// a webhook is set), sendMessage, editMessageText, editMessageCaption, deleteMessage,
// sendChatAction, setMessageReaction, setWebhook, deleteWebhook, getFile,
// getUserProfilePhotos, getCustomEmojiStickers, sendPhoto and sendDocument
// (multipart, or a file by http(s) URL which the fake fetches within the
// Bot API's limits for URLs: 5 MB photos, 20 MB others, documents only
// GIF, PDF and ZIP); an unknown
// method gets 404 "Not Found: method not found". Faults are injectable per method
// (Inject: any status and description, 429 with retry_after, slow answers,
// malformed bodies) and per chat (SetChatError: 403 blocked, 400 chat not
// found, …). A wrong token gets 401 "Unauthorized". New serves the bot
// Token (BotID); NewBot another bot, for tests with two bots (its id is the
// number before the token's colon, as with Telegram).
//
// allowed_updates behaves as documented: the list given to getUpdates or
// setWebhook stays in force until changed; an empty list, or none ever
// given, means every update type except chat_member, message_reaction and
// message_reaction_count; and the setting decides which updates are
// created, so AddUpdate drops (and reports with 0) an update of a type the
// bot did not ask for — a reaction added before the bot's first
// getUpdates naming message_reaction is never seen, as with Telegram.
// Reaction helpers build the Bot API 7.0 shapes: MessageReaction
// (message_reaction with old_reaction/new_reaction arrays of Emoji,
// CustomEmoji or Paid reaction types) and ReactionCount
// (message_reaction_count).
package telegramtest

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"
)

// Token is the fake bot's token; BotID its id.
const (
	Token       = "123456789:AAHfake-token_for_tests_0123456789xyz"
	BotID int64 = 123456789
)

// Fault is a scripted failure of one call.
type Fault struct {
	Status      int           // HTTP status and error_code (0 with Delay alone: answer normally after Delay)
	Description string        // the error description
	RetryAfter  int           // parameters.retry_after (429)
	MigrateTo   int64         // parameters.migrate_to_chat_id
	Delay       time.Duration // wait before answering (or until the client gives up)
	Body        string        // raw body instead of the JSON error (malformed replies)
	// Accepted carries the call out as usual (a message is sent) and then
	// answers Status and Body instead of its result: a reply cut short or
	// garbled after Telegram acted.
	Accepted bool
}

// Call is one request the server received.
type Call struct {
	Method   string
	Params   map[string]any // JSON values, or strings for form fields
	FileName string         // multipart uploads
	File     []byte
}

// Sent is a message the bot sent, as the server keeps it.
type Sent struct {
	Chat      int64
	MessageID int64
	Text      string // text or caption
	ReplyTo   int64
	File      []byte
	Method    string
	URL       string // the URL the file was fetched from, when sent by URL
}

type update struct {
	id   int64
	body map[string]any
}

// Server is the fake Bot API. Its methods are safe for concurrent use.
type Server struct {
	// URL is the api_url to configure (http://127.0.0.1:port).
	URL string
	srv *httptest.Server

	token string // the bot's token
	botID int64  // the bot's id: the token's number

	mu         sync.Mutex
	changed    chan struct{}
	updates    []update
	nextUpdate int64
	pollGen    int
	webhookURL string
	secret     string
	msgs       map[int64]map[int64]*Sent
	nextMsg    map[int64]int64
	calls      []Call
	faults     map[string][]Fault
	chatErrs   map[int64]Fault
	files      map[string]file
	photos     map[int64]string  // user id → file id of the profile photo
	allowed    map[string]bool   // allowed_updates in force; nil: the default
	custom     map[string]string // custom emoji id → its emoji
}

// optInUpdates are the update types Telegram sends only when
// allowed_updates names them.
var optInUpdates = map[string]bool{"chat_member": true, "message_reaction": true, "message_reaction_count": true}

type file struct {
	path string
	data []byte
	size int64
}

// New starts a fake server on 127.0.0.1 for the bot Token, closed when
// the test ends.
func New(t testing.TB) *Server { return NewBot(t, Token) }

// NewBot starts a fake server for the bot whose token is token
// ("<bot id>:<secret>"), closed when the test ends.
func NewBot(t testing.TB, token string) *Server {
	id, err := strconv.ParseInt(strings.SplitN(token, ":", 2)[0], 10, 64)
	if err != nil || id <= 0 {
		t.Fatalf("telegramtest: %q does not start with a bot id", token)
	}
	s := &Server{
		token:      token,
		botID:      id,
		changed:    make(chan struct{}),
		nextUpdate: 1000,
		msgs:       map[int64]map[int64]*Sent{},
		nextMsg:    map[int64]int64{},
		faults:     map[string][]Fault{},
		chatErrs:   map[int64]Fault{},
		files:      map[string]file{},
		photos:     map[int64]string{},
		custom:     map[string]string{},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("telegramtest: listen: %v", err)
	}
	s.srv = &httptest.Server{Listener: l, Config: &http.Server{Handler: s}}
	s.srv.Start()
	s.URL = s.srv.URL
	t.Cleanup(func() {
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
	return s
}

func (s *Server) broadcast() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// AddUpdate queues an update (the body without update_id, e.g.
// {"message": {...}}) and returns its update_id, or 0 when the bot's
// allowed_updates exclude its type (Telegram then never creates it).
func (s *Server) AddUpdate(body map[string]any) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for kind := range body {
		if !s.allowedLocked(kind) {
			return 0
		}
	}
	s.nextUpdate++
	id := s.nextUpdate
	b := map[string]any{"update_id": id}
	for k, v := range body {
		b[k] = v
	}
	s.updates = append(s.updates, update{id: id, body: b})
	s.broadcast()
	return id
}

// RestartUpdateIDs makes the next update's id next, as Telegram does
// after a week without updates (the next id is random, possibly below
// what the bot confirmed) or as another Bot API server would.
func (s *Server) RestartUpdateIDs(next int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextUpdate = next - 1
}

// allowedLocked reports whether updates of kind are created.
func (s *Server) allowedLocked(kind string) bool {
	if s.allowed == nil {
		return !optInUpdates[kind]
	}
	return s.allowed[kind]
}

// setAllowed applies an allowed_updates parameter (a JSON array, or a
// JSON string holding one in form-encoded calls); absent: unchanged.
func (s *Server) setAllowed(v any) {
	if str, ok := v.(string); ok {
		var l []any
		if json.Unmarshal([]byte(str), &l) != nil {
			return
		}
		v = l
	}
	l, ok := v.([]any)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(l) == 0 {
		s.allowed = nil
		return
	}
	s.allowed = map[string]bool{}
	for _, k := range l {
		if k, ok := k.(string); ok {
			s.allowed[k] = true
		}
	}
}

// AllowedUpdates returns the update types the bot asked for last (nil:
// never asked, or the default).
func (s *Server) AllowedUpdates() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.allowed {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// AddCustomEmoji registers a custom emoji sticker for
// getCustomEmojiStickers: id stands for emoji.
func (s *Server) AddCustomEmoji(id, emoji string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.custom[id] = emoji
}

// Pending returns the ids of the updates not yet confirmed.
func (s *Server) Pending() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []int64
	for _, u := range s.updates {
		ids = append(ids, u.id)
	}
	return ids
}

// Inject makes the next call of method fail with f (faults queue up: one
// per call).
func (s *Server) Inject(method string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[method] = append(s.faults[method], f)
}

// SetChatError makes every send to chat fail with f, e.g.
// Fault{Status: 403, Description: "Forbidden: bot was blocked by the user"}.
func (s *Server) SetChatError(chat int64, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chatErrs[chat] = f
}

// AddFile makes a file downloadable through getFile.
func (s *Server) AddFile(fileID, path string, data []byte, size int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if size == 0 {
		size = int64(len(data))
	}
	s.files[fileID] = file{path: path, data: data, size: size}
}

// SetProfilePhoto gives user a profile photo (served by getFile under
// the file id "avatar-<user>").
func (s *Server) SetProfilePhoto(user int64, data []byte) {
	id := "avatar-" + strconv.FormatInt(user, 10)
	s.AddFile(id, "profile_photos/"+id+".jpg", data, 0)
	s.mu.Lock()
	s.photos[user] = id
	s.mu.Unlock()
}

// Calls returns the calls of method (all calls if method is "").
func (s *Server) Calls(method string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if method == "" || c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// Messages returns the messages the bot sent to chat that still exist,
// in order.
func (s *Server) Messages(chat int64) []Sent {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Sent
	for _, m := range s.msgs[chat] {
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].MessageID < out[j].MessageID })
	return out
}

// Webhook returns the webhook URL and secret token set, if any.
func (s *Server) Webhook() (url, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.webhookURL, s.secret
}

// Helpers that build update bodies.

// PrivateText is a text message from a user in their private chat with the
// bot (the chat id is the user id).
func PrivateText(user int64, firstName string, msgID int64, text string) map[string]any {
	return map[string]any{"message": PrivateMessage(user, firstName, msgID, map[string]any{"text": text})}
}

// PrivateMessage is a message in a private chat with extra fields (text,
// photo, reply_to_message, …).
func PrivateMessage(user int64, firstName string, msgID int64, fields map[string]any) map[string]any {
	m := map[string]any{
		"message_id": msgID,
		"from":       map[string]any{"id": user, "is_bot": false, "first_name": firstName},
		"chat":       map[string]any{"id": user, "type": "private", "first_name": firstName},
		"date":       1700000000,
	}
	for k, v := range fields {
		m[k] = v
	}
	return m
}

// GroupText is a text message in a group.
func GroupText(chat int64, title string, user int64, firstName string, msgID int64, text string) map[string]any {
	return map[string]any{"message": map[string]any{
		"message_id": msgID,
		"from":       map[string]any{"id": user, "is_bot": false, "first_name": firstName},
		"chat":       map[string]any{"id": chat, "type": "supergroup", "title": title},
		"date":       1700000000,
		"text":       text,
	}}
}

// Emoji is a ReactionTypeEmoji.
func Emoji(e string) map[string]any { return map[string]any{"type": "emoji", "emoji": e} }

// CustomEmoji is a ReactionTypeCustomEmoji.
func CustomEmoji(id string) map[string]any {
	return map[string]any{"type": "custom_emoji", "custom_emoji_id": id}
}

// Paid is a ReactionTypePaid (a Telegram Stars reaction).
func Paid() map[string]any { return map[string]any{"type": "paid"} }

// MessageReaction is a message_reaction update: user (0: an anonymous
// actor, actorChat) changed their reactions to message msgID of chat from
// before to after. A chat id equal to user is their private chat with the bot;
// a negative one a supergroup titled title.
func MessageReaction(chat int64, title string, user int64, firstName string, actorChat int64, msgID int64, before, after []map[string]any) map[string]any {
	r := map[string]any{
		"chat":         chatObject(chat, title, firstName),
		"message_id":   msgID,
		"date":         time.Now().Unix(),
		"old_reaction": reactionList(before),
		"new_reaction": reactionList(after),
	}
	if user != 0 {
		r["user"] = map[string]any{"id": user, "is_bot": false, "first_name": firstName}
	} else if actorChat != 0 {
		r["actor_chat"] = map[string]any{"id": actorChat, "type": "channel", "title": title}
	}
	return map[string]any{"message_reaction": r}
}

// ReactionCount is a message_reaction_count update: the anonymous
// reactions to message msgID of a group or channel, as (reaction type,
// total_count) pairs.
func ReactionCount(chat int64, title string, msgID int64, counts ...any) map[string]any {
	rs := []any{}
	for i := 0; i+1 < len(counts); i += 2 {
		rs = append(rs, map[string]any{"type": counts[i], "total_count": counts[i+1]})
	}
	return map[string]any{"message_reaction_count": map[string]any{
		"chat":       chatObject(chat, title, ""),
		"message_id": msgID,
		"date":       time.Now().Unix(),
		"reactions":  rs,
	}}
}

func chatObject(chat int64, title, firstName string) map[string]any {
	if chat > 0 {
		return map[string]any{"id": chat, "type": "private", "first_name": firstName}
	}
	return map[string]any{"id": chat, "type": "supergroup", "title": title}
}

func reactionList(l []map[string]any) []any {
	out := []any{}
	for _, r := range l {
		out = append(out, r)
	}
	return out
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if rest, ok := strings.CutPrefix(path, "/file/bot"); ok {
		s.serveFile(w, rest)
		return
	}
	rest, ok := strings.CutPrefix(path, "/bot")
	token, method, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 {
		writeErr(w, Fault{Status: 404, Description: "Not Found"})
		return
	}
	if token != s.token {
		writeErr(w, Fault{Status: 401, Description: "Unauthorized"})
		return
	}
	call, err := parseCall(r, method)
	if err != nil {
		writeErr(w, Fault{Status: 400, Description: "Bad Request: " + err.Error()})
		return
	}
	s.mu.Lock()
	s.calls = append(s.calls, call)
	var fault *Fault
	if q := s.faults[method]; len(q) > 0 {
		fault = &q[0]
		s.faults[method] = q[1:]
	}
	s.mu.Unlock()
	if fault != nil {
		if fault.Delay > 0 {
			select {
			case <-time.After(fault.Delay):
			case <-r.Context().Done():
				return
			}
		}
		if fault.Accepted {
			s.dispatch(httptest.NewRecorder(), r, call)
			writeErr(w, *fault)
			return
		}
		if fault.Status != 0 || fault.Body != "" {
			writeErr(w, *fault)
			return
		}
	}
	s.dispatch(w, r, call)
}

func parseCall(r *http.Request, method string) (Call, error) {
	c := Call{Method: method, Params: map[string]any{}}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		d := json.NewDecoder(r.Body)
		d.UseNumber()
		if err := d.Decode(&c.Params); err != nil && err != io.EOF {
			return c, fmt.Errorf("can't parse JSON: %v", err)
		}
	case "multipart/form-data":
		if err := r.ParseMultipartForm(64 << 20); err != nil {
			return c, err
		}
		for k, v := range r.MultipartForm.Value {
			c.Params[k] = v[0]
		}
		for _, fhs := range r.MultipartForm.File {
			f, err := fhs[0].Open()
			if err != nil {
				return c, err
			}
			c.File, _ = io.ReadAll(f)
			f.Close()
			c.FileName = fhs[0].Filename
		}
	default:
		if err := r.ParseForm(); err != nil {
			return c, err
		}
		for k, v := range r.Form {
			c.Params[k] = v[0]
		}
	}
	return c, nil
}

func num(v any) (int64, bool) {
	switch x := v.(type) {
	case json.Number:
		n, err := x.Int64()
		return n, err == nil
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		return n, err == nil
	case float64:
		return int64(x), true
	}
	return 0, false
}

func str(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeOK(w http.ResponseWriter, result any) {
	writeJSON(w, 200, map[string]any{"ok": true, "result": result})
}

func writeErr(w http.ResponseWriter, f Fault) {
	status := f.Status
	if status == 0 {
		status = 500
	}
	if f.Body != "" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, f.Body)
		return
	}
	body := map[string]any{"ok": false, "error_code": status, "description": f.Description}
	params := map[string]any{}
	if f.RetryAfter > 0 {
		params["retry_after"] = f.RetryAfter
	}
	if f.MigrateTo != 0 {
		params["migrate_to_chat_id"] = f.MigrateTo
	}
	if len(params) > 0 {
		body["parameters"] = params
	}
	writeJSON(w, status, body)
}

func utf16Len(s string) int { return len(utf16.Encode([]rune(s))) }

func (s *Server) message(m *Sent) map[string]any {
	chatType := "private"
	if m.Chat < 0 {
		chatType = "supergroup"
	}
	out := map[string]any{
		"message_id": m.MessageID,
		"from":       map[string]any{"id": s.botID, "is_bot": true, "first_name": "Test Bot", "username": "test_bot"},
		"chat":       map[string]any{"id": m.Chat, "type": chatType},
		"date":       time.Now().Unix(),
	}
	if m.File != nil {
		out["caption"] = m.Text
	} else {
		out["text"] = m.Text
	}
	if m.ReplyTo != 0 {
		out["reply_to_message"] = map[string]any{"message_id": m.ReplyTo, "chat": out["chat"], "date": 0}
	}
	return out
}

// chatCheck returns the scripted error of a chat.
func (s *Server) chatCheck(params map[string]any) (int64, *Fault) {
	chat, ok := num(params["chat_id"])
	if !ok {
		return 0, &Fault{Status: 400, Description: "Bad Request: chat_id is empty"}
	}
	s.mu.Lock()
	f, bad := s.chatErrs[chat]
	s.mu.Unlock()
	if bad {
		return chat, &f
	}
	return chat, nil
}

func replyTo(p map[string]any) int64 {
	if id, ok := num(p["reply_to_message_id"]); ok {
		return id
	}
	rp := p["reply_parameters"]
	if s, ok := rp.(string); ok {
		var m map[string]any
		d := json.NewDecoder(strings.NewReader(s))
		d.UseNumber()
		if d.Decode(&m) == nil {
			rp = m
		}
	}
	if m, ok := rp.(map[string]any); ok {
		id, _ := num(m["message_id"])
		return id
	}
	return 0
}

// fetchURL gets a file given by URL to sendPhoto or sendDocument as the
// Bot API does ("Sending files"): an http(s) URL only (anything else would
// be a file_id, which this fake does not keep: "wrong file identifier");
// at most 5 MB for photos and 20 MB for other content; sendDocument only
// takes GIF, PDF and ZIP files by URL. A URL that cannot be fetched is
// "failed to get HTTP URL content".
func fetchURL(ref, method string) ([]byte, *Fault) {
	u, err := url.Parse(ref)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &Fault{Status: 400, Description: "Bad Request: wrong file identifier/HTTP URL specified"}
	}
	failed := &Fault{Status: 400, Description: "Bad Request: failed to get HTTP URL content"}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(ref)
	if err != nil {
		return nil, failed
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, failed
	}
	limit := int64(20_000_000)
	if method == "sendPhoto" {
		limit = 5_000_000
	} else {
		switch ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); ct {
		case "image/gif", "application/pdf", "application/zip":
		default:
			return nil, &Fault{Status: 400, Description: "Bad Request: wrong type of the web page content"}
		}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil || int64(len(data)) > limit {
		return nil, failed
	}
	return data, nil
}

func (s *Server) store(chat int64, text string, reply int64, data []byte, method string) *Sent {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextMsg[chat]++
	m := &Sent{Chat: chat, MessageID: s.nextMsg[chat], Text: text, ReplyTo: reply, File: data, Method: method}
	if s.msgs[chat] == nil {
		s.msgs[chat] = map[int64]*Sent{}
	}
	s.msgs[chat][m.MessageID] = m
	return m
}

func (s *Server) dispatch(w http.ResponseWriter, r *http.Request, c Call) {
	p := c.Params
	switch c.Method {
	case "getMe":
		writeOK(w, map[string]any{"id": s.botID, "is_bot": true, "first_name": "Test Bot", "username": "test_bot", "can_join_groups": true})
	case "getUpdates":
		s.setAllowed(p["allowed_updates"])
		s.getUpdates(w, r, p)
	case "getCustomEmojiStickers":
		ids, _ := p["custom_emoji_ids"].([]any)
		if str, ok := p["custom_emoji_ids"].(string); ok {
			json.Unmarshal([]byte(str), &ids)
		}
		if len(ids) == 0 {
			writeErr(w, Fault{Status: 400, Description: "Bad Request: custom_emoji_ids is empty"})
			return
		}
		out := []any{}
		s.mu.Lock()
		for _, id := range ids {
			id := fmt.Sprint(id)
			if e, ok := s.custom[id]; ok {
				out = append(out, map[string]any{"file_id": "ce-" + id, "file_unique_id": "uce-" + id, "type": "custom_emoji",
					"width": 100, "height": 100, "is_animated": false, "is_video": false, "emoji": e, "custom_emoji_id": id})
			}
		}
		s.mu.Unlock()
		writeOK(w, out)
	case "sendMessage":
		chat, f := s.chatCheck(p)
		if f != nil {
			writeErr(w, *f)
			return
		}
		text := str(p["text"])
		switch n := utf16Len(text); {
		case strings.TrimSpace(text) == "":
			writeErr(w, Fault{Status: 400, Description: "Bad Request: message text is empty"})
			return
		case n > 4096:
			writeErr(w, Fault{Status: 400, Description: "Bad Request: message is too long"})
			return
		}
		writeOK(w, s.message(s.store(chat, text, replyTo(p), nil, c.Method)))
	case "sendPhoto", "sendDocument":
		chat, f := s.chatCheck(p)
		if f != nil {
			writeErr(w, *f)
			return
		}
		field := strings.ToLower(strings.TrimPrefix(c.Method, "send"))
		if ref := str(p[field]); c.File == nil && ref != "" {
			// A file by URL: fetched here as Telegram does.
			data, f := fetchURL(ref, c.Method)
			if f != nil {
				writeErr(w, *f)
				return
			}
			m := s.store(chat, str(p["caption"]), replyTo(p), data, c.Method)
			s.mu.Lock()
			m.URL = ref
			s.mu.Unlock()
			writeOK(w, s.message(m))
			return
		}
		if c.File == nil {
			writeErr(w, Fault{Status: 400, Description: "Bad Request: there is no " + field + " in the request"})
			return
		}
		if len(c.File) > 50<<20 {
			writeErr(w, Fault{Status: 413, Description: "Request Entity Too Large"})
			return
		}
		writeOK(w, s.message(s.store(chat, str(p["caption"]), replyTo(p), c.File, c.Method)))
	case "editMessageText", "editMessageCaption":
		chat, _ := num(p["chat_id"])
		id, _ := num(p["message_id"])
		text := str(p["text"])
		if c.Method == "editMessageCaption" {
			text = str(p["caption"])
		}
		s.mu.Lock()
		m := s.msgs[chat][id]
		var fault *Fault
		switch {
		case m == nil:
			fault = &Fault{Status: 400, Description: "Bad Request: message to edit not found"}
		case c.Method == "editMessageText" && m.File != nil:
			fault = &Fault{Status: 400, Description: "Bad Request: there is no text in the message to edit"}
		case c.Method == "editMessageCaption" && m.File == nil:
			fault = &Fault{Status: 400, Description: "Bad Request: there is no caption in the message to edit"}
		case m.Text == text:
			fault = &Fault{Status: 400, Description: "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message"}
		default:
			m.Text = text
		}
		var out map[string]any
		if fault == nil {
			cp := *m
			s.mu.Unlock()
			out = s.message(&cp)
		} else {
			s.mu.Unlock()
			writeErr(w, *fault)
			return
		}
		writeOK(w, out)
	case "deleteMessage":
		chat, _ := num(p["chat_id"])
		id, _ := num(p["message_id"])
		s.mu.Lock()
		m := s.msgs[chat][id]
		if m != nil {
			delete(s.msgs[chat], id)
		}
		s.mu.Unlock()
		if m == nil {
			writeErr(w, Fault{Status: 400, Description: "Bad Request: message to delete not found"})
			return
		}
		writeOK(w, true)
	case "sendChatAction":
		if _, f := s.chatCheck(p); f != nil {
			writeErr(w, *f)
			return
		}
		if str(p["action"]) == "" {
			writeErr(w, Fault{Status: 400, Description: "Bad Request: action is empty"})
			return
		}
		writeOK(w, true)
	case "setMessageReaction":
		if _, f := s.chatCheck(p); f != nil {
			writeErr(w, *f)
			return
		}
		if rs, ok := p["reaction"].([]any); ok && len(rs) > 1 {
			writeErr(w, Fault{Status: 400, Description: "Bad Request: REACTIONS_TOO_MANY"})
			return
		}
		writeOK(w, true)
	case "setWebhook":
		u := str(p["url"])
		secret := str(p["secret_token"])
		if u == "" {
			writeErr(w, Fault{Status: 400, Description: "Bad Request: bad webhook: URL is empty"})
			return
		}
		for _, r := range secret {
			if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') || len(secret) > 256 {
				writeErr(w, Fault{Status: 400, Description: "Bad Request: secret token contains unallowed characters"})
				return
			}
		}
		s.setAllowed(p["allowed_updates"])
		s.mu.Lock()
		s.webhookURL, s.secret = u, secret
		s.broadcast()
		s.mu.Unlock()
		writeOK(w, true)
	case "deleteWebhook":
		s.mu.Lock()
		s.webhookURL, s.secret = "", ""
		s.mu.Unlock()
		writeOK(w, true)
	case "getUserProfilePhotos":
		user, _ := num(p["user_id"])
		s.mu.Lock()
		id, ok := s.photos[user]
		s.mu.Unlock()
		if !ok {
			writeOK(w, map[string]any{"total_count": 0, "photos": []any{}})
			return
		}
		sizes := []any{}
		for _, px := range []int{160, 320, 640} {
			fid := id
			if px != 160 {
				fid = id + "-" + strconv.Itoa(px)
			}
			sizes = append(sizes, map[string]any{"file_id": fid, "file_unique_id": "u" + fid, "width": px, "height": px})
		}
		writeOK(w, map[string]any{"total_count": 1, "photos": []any{sizes}})
	case "getFile":
		s.mu.Lock()
		f, ok := s.files[str(p["file_id"])]
		s.mu.Unlock()
		switch {
		case !ok:
			writeErr(w, Fault{Status: 400, Description: "Bad Request: invalid file_id"})
		case f.size > 20<<20:
			writeErr(w, Fault{Status: 400, Description: "Bad Request: file is too big"})
		default:
			writeOK(w, map[string]any{"file_id": str(p["file_id"]), "file_unique_id": "u" + str(p["file_id"]), "file_size": f.size, "file_path": f.path})
		}
	default:
		writeErr(w, Fault{Status: 404, Description: "Not Found: method not found"})
	}
}

func (s *Server) serveFile(w http.ResponseWriter, rest string) {
	token, path, ok := strings.Cut(rest, "/")
	if !ok || token != s.token {
		http.Error(w, `{"ok":false,"error_code":401,"description":"Unauthorized"}`, http.StatusUnauthorized)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.files {
		if f.path == path {
			w.Write(f.data)
			return
		}
	}
	http.Error(w, `{"ok":false,"error_code":404,"description":"Not Found"}`, http.StatusNotFound)
}

func (s *Server) getUpdates(w http.ResponseWriter, r *http.Request, p map[string]any) {
	offset, _ := num(p["offset"])
	timeout, _ := num(p["timeout"])
	limit, ok := num(p["limit"])
	if !ok || limit <= 0 || limit > 100 {
		limit = 100
	}
	deadline := time.NewTimer(time.Duration(timeout) * time.Second)
	defer deadline.Stop()

	s.mu.Lock()
	if s.webhookURL != "" {
		s.mu.Unlock()
		writeErr(w, Fault{Status: 409, Description: "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"})
		return
	}
	// Confirm: updates below a positive offset are forgotten; a negative
	// offset keeps only the last -offset updates.
	switch {
	case offset > s.nextUpdate+1:
		// An offset from the future (the update ids started over below
		// it): the Bot API server answers from the head of its queue
		// (telegram-bot-api's TQueue: "Specified from_id is in the
		// future"), confirming nothing.
	case offset > 0:
		kept := s.updates[:0]
		for _, u := range s.updates {
			if u.id >= offset {
				kept = append(kept, u)
			}
		}
		s.updates = kept
	case offset < 0:
		if n := int(-offset); n < len(s.updates) {
			s.updates = append([]update(nil), s.updates[len(s.updates)-n:]...)
		}
	}
	s.pollGen++
	gen := s.pollGen
	s.broadcast() // terminates an older poll
	for {
		if gen != s.pollGen {
			s.mu.Unlock()
			writeErr(w, Fault{Status: 409, Description: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"})
			return
		}
		if s.webhookURL != "" {
			s.mu.Unlock()
			writeErr(w, Fault{Status: 409, Description: "Conflict: terminated by setWebhook request"})
			return
		}
		var out []map[string]any
		for _, u := range s.updates {
			if len(out) < int(limit) {
				out = append(out, u.body)
			}
		}
		if len(out) > 0 {
			s.mu.Unlock()
			writeOK(w, out)
			return
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			writeOK(w, []any{})
			return
		case <-r.Context().Done():
			return
		}
		s.mu.Lock()
	}
}
