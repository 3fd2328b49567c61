package telegram

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/legacytest"
	"github.com/jabbergate/jabbergate/legacy/telegram/telegramtest"
)

const waitFor = 10 * time.Second

func newNetwork(t *testing.T, srv *telegramtest.Server, extra map[string]string) *Network {
	t.Helper()
	opts := map[string]string{"api_url": srv.URL, "poll_timeout": "1s"}
	for k, v := range extra {
		opts[k] = v
	}
	n, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	n.minBackoff, n.maxBackoff = 5*time.Millisecond, 50*time.Millisecond
	return n
}

func fields() map[string]string { return map[string]string{"token": telegramtest.Token} }

func open(t *testing.T, n *Network, sink legacy.Sink, st []byte) *session {
	t.Helper()
	s, err := n.Open(context.Background(), legacy.Account{ID: "123456789", Owner: "o", Fields: fields(), State: st}, sink)
	if err != nil {
		t.Fatal(err)
	}
	return s.(*session)
}

// start runs s until the returned stop is called (or the test ends); stop
// checks that Run returned nil in time.
func start(t *testing.T, s *session) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v, want nil after cancel", err)
				}
			case <-time.After(waitFor):
				t.Errorf("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitIncoming(t *testing.T, rec *legacytest.Recorder, id legacy.MessageID) legacy.Incoming {
	t.Helper()
	ev := rec.Wait(waitFor, func(ev legacy.Event) bool {
		in, ok := ev.(legacy.Incoming)
		return ok && in.ID == id
	})
	if ev == nil {
		t.Fatalf("no Incoming %s; got %#v", id, rec.Events())
	}
	return ev.(legacy.Incoming)
}

// eventually polls cond every few milliseconds, for at most waitFor.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(waitFor); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func noToken(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), telegramtest.Token) {
		t.Errorf("error leaks the bot token: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), strings.SplitN(telegramtest.Token, ":", 2)[1]) {
		t.Errorf("error leaks the secret part of the bot token: %v", err)
	}
}

func TestConformance(t *testing.T) {
	srv := telegramtest.New(t)
	n := newNetwork(t, srv, nil)
	legacytest.Run(t, legacytest.Suite{
		Network: n,
		Fields:  fields(),
		Chat:    "42",
		CheckSent: func(t *testing.T, rec *legacytest.Recorder, text string) {
			msgs := srv.Messages(42)
			if len(msgs) == 0 || msgs[len(msgs)-1].Text != text {
				t.Errorf("the fake Bot API did not get %q: %+v", text, msgs)
			}
		},
	})
}

func TestOptions(t *testing.T) {
	for _, bad := range []map[string]string{
		{"api_url": "ftp://x"},
		{"poll_timeout": "forever"},
		{"poll_timeout": "500ms"},
		{"webhook_url": "https://gw.example.org/webhooks/tg"}, // no secret
		{"nonsense": "1"},
	} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%v) = nil error", bad)
		}
	}
	if _, err := New(nil); err != nil {
		t.Errorf("New(nil) = %v", err)
	}
	// An empty webhook_url means long polling, as documented (a config
	// template's `webhook_url: ""`), with or without a secret.
	for _, opts := range []map[string]string{
		{"webhook_url": ""},
		{"webhook_url": "  "},
		{"webhook_url": "", "webhook_secret": "0123456789abcdef"},
	} {
		n, err := New(opts)
		if err != nil {
			t.Errorf("New(%q) = %v, want long polling", opts, err)
		} else if n.webhookURL != "" {
			t.Errorf("New(%q): webhook URL %q, want none (long polling)", opts, n.webhookURL)
		}
	}
}

// TestNewReportsEveryOption: New reports every bad option at once, each a
// *legacy.OptionError, in the order of their names, then the webhook_url
// without a webhook_secret; the same on every call (options is a map: its
// order must not leak into the error).
func TestNewReportsEveryOption(t *testing.T) {
	opts := map[string]string{"webhook_url": "ftp://gw.example.org", "poll_timeout": "forever", "nonsense": "1",
		"api_url": "ftp://x", "webhook_secret": "short"}
	want := []legacy.OptionError{
		{Option: "api_url", Problem: `api_url "ftp://x" is not an http(s) URL`},
		{Option: "nonsense", Problem: "unknown option (known: api_url, poll_timeout, webhook_url, webhook_secret)"},
		{Option: "poll_timeout", Problem: `poll_timeout "forever" is not a duration between 1s and 10m`},
		{Option: "webhook_url", Problem: `webhook_url "ftp://gw.example.org" is not an http(s) URL`},
		{Option: "webhook_secret", Problem: "webhook_secret must be at least 16 characters (it has 5)"},
	}
	// Without a secret at all, webhook_url is where it is missing.
	if _, err := New(map[string]string{"webhook_url": "https://gw.example.org"}); len(legacy.OptionErrors(err)) != 1 ||
		*legacy.OptionErrors(err)[0] != (legacy.OptionError{Option: "webhook_url", Problem: "webhook_url needs a webhook_secret of at least 16 characters"}) {
		t.Errorf("webhook_url without a secret: %v", err)
	}
	legacytest.CheckOptionErrors(t, want, func() error {
		if n, err := New(opts); n == nil {
			return err
		}
		return nil
	})
}

func TestRegister(t *testing.T) {
	srv := telegramtest.New(t)
	n := newNetwork(t, srv, nil)
	ctx := context.Background()

	id, err := n.Register(ctx, fields())
	if err != nil || id != "123456789" {
		t.Fatalf("Register = %q, %v; want the bot id", id, err)
	}

	_, err = n.Register(ctx, map[string]string{"token": "123456789:AAHwrong-token_for_tests_0123456789xyz"})
	if !errors.Is(err, legacy.ErrUnauthorized) {
		t.Errorf("wrong token: %v, want ErrUnauthorized", err)
	}
	// The core shows a ReasonError's reason to the user: the text
	// pointing at @BotFather must be one.
	var re *legacy.ReasonError
	if !errors.As(err, &re) || re.Err != legacy.ErrUnauthorized || !strings.Contains(re.Reason, "@BotFather") {
		t.Errorf("wrong token: %#v, want a ReasonError{ErrUnauthorized} telling the user to ask @BotFather", err)
	}
	noToken(t, err)
	if re != nil {
		noToken(t, errors.New(re.Reason))
	}

	for _, bad := range []string{"", "not a token", "12345"} {
		if _, err := n.Register(ctx, map[string]string{"token": bad}); !errors.Is(err, legacy.ErrInvalidField) {
			t.Errorf("token %q: %v, want ErrInvalidField", bad, err)
		}
	}

	srv.Inject("getMe", telegramtest.Fault{Status: 502, Description: "Bad Gateway"})
	_, err = n.Register(ctx, fields())
	if !errors.Is(err, legacy.ErrUnavailable) {
		t.Errorf("5xx: %v, want ErrUnavailable", err)
	}
	srv.Inject("getMe", telegramtest.Fault{Status: 200, Body: "<html>oops"})
	_, err = n.Register(ctx, fields())
	if !errors.Is(err, legacy.ErrUnavailable) {
		t.Errorf("malformed reply: %v, want ErrUnavailable", err)
	}
	srv.Inject("getMe", telegramtest.Fault{Status: 429, Description: "Too Many Requests: retry after 1", RetryAfter: 1})
	_, err = n.Register(ctx, fields())
	var rl *legacy.RateLimitError
	if !errors.As(err, &rl) || rl.RetryAfter != time.Second || legacy.IsPermanent(err) {
		t.Errorf("429: %v, want a RateLimitError of 1s", err)
	}
	// What never became a stanza is counted (legacy.EventCounter).
	want := map[string]uint64{"server_error": 1, "reply_malformed": 1, "rate_limited": 1, "conflict": 0}
	if got := n.EventCounts(); !maps.Equal(got, want) {
		t.Errorf("EventCounts = %v, want %v", got, want)
	}
}

// TestTokenNotInNetworkErrors: net/http's *url.Error carries the request
// URL, which holds the token.
func TestTokenNotInNetworkErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	n, err := New(map[string]string{"api_url": "http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	_, err = n.Register(context.Background(), fields())
	if !errors.Is(err, legacy.ErrUnavailable) {
		t.Fatalf("Register against a closed port = %v, want ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "<token>") {
		t.Errorf("expected the URL with a scrubbed token in %q", err)
	}
	noToken(t, err)

	// Send and the poll loop go through the same client.
	s := open(t, n, &legacytest.Recorder{}, nil)
	_, err = s.Send(context.Background(), &legacy.Message{Chat: "42", Text: "hi"})
	if !errors.Is(err, legacy.ErrUnavailable) || legacy.IsPermanent(err) {
		t.Errorf("Send = %v, want a transient ErrUnavailable", err)
	}
	noToken(t, err)
}

func TestInbound(t *testing.T) {
	srv := telegramtest.New(t)
	n := newNetwork(t, srv, nil)
	rec := &legacytest.Recorder{}
	s := open(t, n, rec, nil)

	srv.AddUpdate(telegramtest.PrivateText(42, "Alice", 7, "hello ✓"))
	srv.AddUpdate(map[string]any{"message": telegramtest.PrivateMessage(42, "Alice", 8, map[string]any{
		"text":             "see docs",
		"entities":         []any{map[string]any{"type": "text_link", "offset": 4, "length": 4, "url": "https://x.org"}},
		"reply_to_message": map[string]any{"message_id": 7, "chat": map[string]any{"id": 42, "type": "private"}, "date": 1},
	})})
	srv.AddUpdate(map[string]any{"edited_message": telegramtest.PrivateMessage(42, "Alice", 7, map[string]any{"text": "hello ✓✓", "edit_date": 1700000100})})
	srv.AddUpdate(telegramtest.GroupText(-1001, "Friends", 43, "Bob", 3, "hi all"))
	srv.AddUpdate(map[string]any{"message": telegramtest.PrivateMessage(42, "Alice", 9, map[string]any{"sticker": map[string]any{"file_id": "s", "file_unique_id": "s", "emoji": "😀"}})})
	srv.AddUpdate(map[string]any{"message": telegramtest.PrivateMessage(42, "Alice", 10, map[string]any{"location": map[string]any{"latitude": 48.8584, "longitude": 2.2945}})})
	srv.AddUpdate(map[string]any{"message": telegramtest.PrivateMessage(42, "Alice", 11, map[string]any{
		"text": "news", "forward_origin": map[string]any{"type": "channel", "date": 1, "chat": map[string]any{"id": -100500, "type": "channel", "title": "Daily"}},
	})})
	srv.AddUpdate(map[string]any{"message": telegramtest.PrivateMessage(42, "Alice", 12, map[string]any{
		"text": "old style", "forward_sender_name": "Hidden Person",
	})})
	srv.AddUpdate(map[string]any{"my_chat_member": map[string]any{
		"chat": map[string]any{"id": 44, "type": "private", "first_name": "Carol"},
		"from": map[string]any{"id": 44, "first_name": "Carol"}, "date": 1,
		"old_chat_member": map[string]any{"status": "member", "user": map[string]any{"id": telegramtest.BotID}},
		"new_chat_member": map[string]any{"status": "kicked", "user": map[string]any{"id": telegramtest.BotID}},
	}})
	srv.AddUpdate(map[string]any{"my_chat_member": map[string]any{
		"chat": map[string]any{"id": 45, "type": "private", "first_name": "Dave"},
		"from": map[string]any{"id": 45, "first_name": "Dave"}, "date": 1,
		"old_chat_member": map[string]any{"status": "kicked", "user": map[string]any{"id": telegramtest.BotID}},
		"new_chat_member": map[string]any{"status": "member", "user": map[string]any{"id": telegramtest.BotID}},
	}})
	start(t, s)

	in := waitIncoming(t, rec, "123456789:42:7")
	if in.Chat != "42" || in.Text != "hello ✓" || in.Sender != "" || in.Time.IsZero() {
		t.Errorf("private message: %+v", in)
	}
	in = waitIncoming(t, rec, "123456789:42:8")
	if in.Text != "see docs (https://x.org)" || in.ReplyTo != "123456789:42:7" {
		t.Errorf("reply with a link: %+v", in)
	}
	in = waitIncoming(t, rec, "123456789:-1001:3")
	if in.Chat != "-1001" || in.Sender != "43" || in.SenderName != "Bob" || in.Text != "hi all" {
		t.Errorf("group message: %+v", in)
	}
	if in := waitIncoming(t, rec, "123456789:42:9"); in.Text != "😀" {
		t.Errorf("sticker: %q", in.Text)
	}
	if in := waitIncoming(t, rec, "123456789:42:10"); in.Text != "geo:48.8584,2.2945" {
		t.Errorf("location: %q", in.Text)
	}
	if in := waitIncoming(t, rec, "123456789:42:11"); in.Text != "Forwarded from Daily:\nnews" {
		t.Errorf("forward: %q", in.Text)
	}
	if in := waitIncoming(t, rec, "123456789:42:12"); in.Text != "Forwarded from Hidden Person:\nold style" {
		t.Errorf("forward (before Bot API 7): %q", in.Text)
	}
	ev := rec.Wait(waitFor, func(ev legacy.Event) bool { p, ok := ev.(legacy.Presence); return ok && p.Chat == "44" })
	if p, _ := ev.(legacy.Presence); ev == nil || p.Available {
		t.Errorf("blocked: %#v, want an unavailable Presence", ev)
	}
	ev = rec.Wait(waitFor, func(ev legacy.Event) bool { p, ok := ev.(legacy.Presence); return ok && p.Chat == "45" })
	if p, _ := ev.(legacy.Presence); ev == nil || !p.Available {
		t.Errorf("unblocked: %#v, want an available Presence", ev)
	}
	eventually(t, "the offset to be saved and confirmed", func() bool { return len(srv.Pending()) == 0 })

	// Event order and the Contact/Edited/SaveState events.
	var contacts []legacy.Contact
	var edited []legacy.Edited
	var saved []byte
	firstContact, firstIncoming := -1, -1
	for i, ev := range rec.Events() {
		switch ev := ev.(type) {
		case legacy.Contact:
			contacts = append(contacts, ev)
			if ev.Chat == "42" && firstContact < 0 {
				firstContact = i
			}
		case legacy.Incoming:
			if ev.Chat == "42" && firstIncoming < 0 {
				firstIncoming = i
			}
		case legacy.Edited:
			edited = append(edited, ev)
		case legacy.SaveState:
			saved = ev.State
		}
	}
	if firstContact < 0 || firstContact > firstIncoming {
		t.Errorf("the Contact of a chat must come before its first message")
	}
	want := map[legacy.ChatID]legacy.Contact{"42": {Chat: "42", Name: "Alice"}, "-1001": {Chat: "-1001", Name: "Friends", Group: true}, "45": {Chat: "45", Name: "Dave"}}
	if len(contacts) != 3 {
		t.Errorf("contacts = %+v, want one per chat", contacts)
	}
	for _, c := range contacts {
		if w := want[c.Chat]; c.Name != w.Name || c.Group != w.Group {
			t.Errorf("contact %+v, want %+v", c, w)
		}
	}
	for _, c := range contacts {
		if c.Chat == "42" && (!c.NoAvatar || c.Avatar != nil) {
			t.Errorf("a user without a profile photo: %+v, want NoAvatar", c)
		}
	}
	if len(edited) != 1 || edited[0].ID != "123456789:42:7" || edited[0].Text != "hello ✓✓" || edited[0].Time.Unix() != 1700000100 {
		t.Errorf("edits = %+v", edited)
	}
	var st state
	if err := json.Unmarshal(saved, &st); err != nil || st.Offset == 0 {
		t.Errorf("saved state %q: %v", saved, err)
	}
}

// crashSink records events; it can refuse SaveState (a crash between Emit
// and the offset commit), calling crash when it does.
type crashSink struct {
	legacytest.Recorder
	mu        sync.Mutex
	failSave  bool
	failOnce  legacy.MessageID // refuse this Incoming once
	crash     func()
	lastState []byte
}

func (c *crashSink) Emit(ctx context.Context, ev legacy.Event) error {
	c.mu.Lock()
	switch ev := ev.(type) {
	case legacy.SaveState:
		if c.failSave {
			crash := c.crash
			c.mu.Unlock()
			if crash != nil {
				crash()
			}
			return errors.New("crash before the offset commit")
		}
		c.lastState = ev.State
	case legacy.Incoming:
		if ev.ID == c.failOnce {
			c.failOnce = ""
			c.mu.Unlock()
			return errors.New("store unavailable")
		}
	}
	c.mu.Unlock()
	return c.Recorder.Emit(ctx, ev)
}

func incomingIDs(evs []legacy.Event) map[legacy.MessageID]int {
	ids := map[legacy.MessageID]int{}
	for _, ev := range evs {
		if in, ok := ev.(legacy.Incoming); ok {
			ids[in.ID]++
		}
	}
	return ids
}

// TestCrashBetweenEmitAndCommit stops the session after the events were
// emitted but before the offset was saved; the restarted session gets the
// same updates again with the same ids (which the core deduplicates), and
// nothing is lost. Updates whose offset was saved are not emitted again.
func TestCrashBetweenEmitAndCommit(t *testing.T) {
	srv := telegramtest.New(t)
	n := newNetwork(t, srv, nil)
	for i := int64(1); i <= 3; i++ {
		srv.AddUpdate(telegramtest.PrivateText(42, "Alice", i, "m"))
	}

	// Run 1 crashes at the commit.
	sink1 := &crashSink{failSave: true}
	s1 := open(t, n, sink1, nil)
	ctx, cancel := context.WithCancel(context.Background())
	sink1.crash = cancel
	done := make(chan error, 1)
	go func() { done <- s1.Run(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Run did not stop at the crash")
	}
	if got := incomingIDs(sink1.Events()); len(got) != 3 {
		t.Fatalf("run 1 emitted %v, want the 3 messages", got)
	}
	if len(srv.Pending()) != 3 {
		t.Fatalf("updates confirmed to Telegram without a saved offset: pending %v", srv.Pending())
	}

	// Run 2 restarts from the last saved state (none): the same 3 again,
	// same ids.
	sink2 := &crashSink{}
	stop := start(t, open(t, n, sink2, nil))
	for i := 1; i <= 3; i++ {
		waitIncoming(t, &sink2.Recorder, legacy.MessageID("123456789:42:"+string(rune('0'+i))))
	}
	eventually(t, "the offset commit", func() bool { return len(srv.Pending()) == 0 })
	stop()
	if got := incomingIDs(sink2.Events()); len(got) != 3 || got["123456789:42:1"] != 1 || got["123456789:42:2"] != 1 || got["123456789:42:3"] != 1 {
		t.Errorf("run 2 emitted %v, want each message once", got)
	}

	// Run 3 starts from run 2's saved state: only what is new.
	sink2.mu.Lock()
	saved := sink2.lastState
	sink2.mu.Unlock()
	srv.AddUpdate(telegramtest.PrivateText(42, "Alice", 4, "new"))
	sink3 := &crashSink{}
	start(t, open(t, n, sink3, saved))
	waitIncoming(t, &sink3.Recorder, "123456789:42:4")
	if got := incomingIDs(sink3.Events()); len(got) != 1 {
		t.Errorf("run 3 emitted %v, want only the new message", got)
	}
}

// TestEmitFailureKeepsUpdates: when Emit refuses an update mid-batch, the
// updates before it are committed, it and the ones after stay with
// Telegram and come again.
func TestEmitFailureKeepsUpdates(t *testing.T) {
	srv := telegramtest.New(t)
	n := newNetwork(t, srv, nil)
	for i := int64(1); i <= 3; i++ {
		srv.AddUpdate(telegramtest.PrivateText(42, "Alice", i, "m"))
	}
	sink := &crashSink{failOnce: "123456789:42:2"}
	start(t, open(t, n, sink, nil))
	waitIncoming(t, &sink.Recorder, "123456789:42:3")
	eventually(t, "the offset commit", func() bool { return len(srv.Pending()) == 0 })
	if got := incomingIDs(sink.Events()); len(got) != 3 || got["123456789:42:1"] != 1 || got["123456789:42:2"] != 1 || got["123456789:42:3"] != 1 {
		t.Errorf("emitted %v, want each message exactly once", got)
	}
}

// TestInboundWithoutTextForm: a poll, a die, a venue and content the
// gateway cannot show (a story, paid media) arrive as text that says what
// they are, never as nothing.
func TestInboundWithoutTextForm(t *testing.T) {
	srv := telegramtest.New(t)
	n := newNetwork(t, srv, nil)
	msgs := []struct {
		fields map[string]any
		want   string
	}{
		{map[string]any{"poll": map[string]any{"question": "Lunch?", "options": []any{map[string]any{"text": "Yes"}, map[string]any{"text": "No"}}}},
			"Poll: Lunch?\n– Yes\n– No\n[vote in Telegram]"},
		{map[string]any{"dice": map[string]any{"emoji": "🎲", "value": 4}}, "🎲 rolled 4"},
		{map[string]any{"location": map[string]any{"latitude": 52.5, "longitude": 13.4},
			"venue": map[string]any{"location": map[string]any{"latitude": 52.5, "longitude": 13.4}, "title": "Café", "address": "Main St 1"}},
			"Café, Main St 1\ngeo:52.5,13.4"},
		{map[string]any{"story": map[string]any{"chat": map[string]any{"id": 7, "type": "private"}, "id": 3}}, "[a story: open Telegram to see it]"},
		{map[string]any{"paid_media": map[string]any{"star_count": 5, "paid_media": []any{}}}, "[paid media: open Telegram to see it]"},
	}
	for i, m := range msgs {
		srv.AddUpdate(map[string]any{"message": telegramtest.PrivateMessage(42, "Alice", int64(i+1), m.fields)})
	}
	rec := &legacytest.Recorder{}
	start(t, open(t, n, rec, nil))
	for i, m := range msgs {
		if in := waitIncoming(t, rec, legacy.MessageID(fmt.Sprintf("123456789:42:%d", i+1))); in.Text != m.want {
			t.Errorf("message %d: %q, want %q", i+1, in.Text, m.want)
		}
	}
}

// TestUnreadableUpdateSkipped: an update with a field of an unexpected
// type is skipped with an error in the log; the updates beside it and
// after it arrive.
func TestUnreadableUpdateSkipped(t *testing.T) {
	srv := telegramtest.New(t)
	n := newNetwork(t, srv, nil)
	srv.AddUpdate(telegramtest.PrivateText(42, "Alice", 1, "before"))
	srv.AddUpdate(map[string]any{"message": telegramtest.PrivateMessage(42, "Alice", 2, map[string]any{
		"contact": map[string]any{"phone_number": 15551234567, "first_name": "Bob"}, // a number, not the documented string
	})})
	srv.AddUpdate(telegramtest.PrivateText(42, "Alice", 3, "after"))
	rec := &legacytest.Recorder{}
	start(t, open(t, n, rec, nil))
	waitIncoming(t, rec, "123456789:42:1")
	waitIncoming(t, rec, "123456789:42:3")
	eventually(t, "the offset commit", func() bool { return len(srv.Pending()) == 0 })
	if got := n.EventCounts()["reply_malformed"]; got != 1 {
		t.Errorf("reply_malformed = %d, want 1", got)
	}
}

// TestGroupRenamedAndMigrated: a group's new title renames its contact at
// once, and the supergroup a group became is a contact from the notice on.
func TestGroupRenamedAndMigrated(t *testing.T) {
	srv := telegramtest.New(t)
	n := newNetwork(t, srv, nil)
	group := func(chat int64, typ, title string, id int64, fields map[string]any) map[string]any {
		m := map[string]any{"message_id": id, "date": 1700000000,
			"from": map[string]any{"id": 42, "is_bot": false, "first_name": "Alice"},
			"chat": map[string]any{"id": chat, "type": typ, "title": title}}
		for k, v := range fields {
			m[k] = v
		}
		return map[string]any{"message": m}
	}
	srv.AddUpdate(telegramtest.GroupText(-100, "Friends", 42, "Alice", 1, "hi"))
	srv.AddUpdate(group(-100, "supergroup", "Old friends", 2, map[string]any{"new_chat_title": "Old friends"}))
	srv.AddUpdate(group(-7, "group", "Club", 3, map[string]any{"migrate_to_chat_id": -1007}))
	srv.AddUpdate(group(-1007, "supergroup", "Club", 1, map[string]any{"migrate_from_chat_id": -7}))
	rec := &legacytest.Recorder{}
	start(t, open(t, n, rec, nil))
	eventually(t, "all updates", func() bool { return len(srv.Pending()) == 0 })
	names := map[legacy.ChatID]string{}
	for _, ev := range rec.Events() {
		if c, ok := ev.(legacy.Contact); ok {
			names[c.Chat] = c.Name
		}
	}
	if names["-100"] != "Old friends" || names["-1007"] != "Club" {
		t.Errorf("contacts %v, want -100 renamed and -1007 introduced", names)
	}
}

// TestUpdateIDsStartOver: after a week without updates Telegram picks the
// next update_id at random, possibly below the saved offset (and another
// Bot API server has its own sequence); its updates are taken, the offset
// follows them, and getUpdates is not sent in a tight loop meanwhile.
func TestUpdateIDsStartOver(t *testing.T) {
	srv := telegramtest.New(t)
	n := newNetwork(t, srv, nil)
	srv.RestartUpdateIDs(5000)
	srv.AddUpdate(telegramtest.PrivateText(42, "Alice", 1, "after a quiet week"))
	sink := &crashSink{}
	start(t, open(t, n, sink, []byte(`{"offset":900001}`)))
	waitIncoming(t, &sink.Recorder, "123456789:42:1")
	eventually(t, "the offset commit", func() bool { return len(srv.Pending()) == 0 })
	sink.mu.Lock()
	saved := string(sink.lastState)
	sink.mu.Unlock()
	if saved != `{"offset":5001}` {
		t.Errorf("saved state %s, want the offset past the new ids", saved)
	}
	srv.AddUpdate(telegramtest.PrivateText(42, "Alice", 2, "and the next"))
	waitIncoming(t, &sink.Recorder, "123456789:42:2")
	if got := incomingIDs(sink.Events()); len(got) != 2 {
		t.Errorf("emitted %v, want both messages once", got)
	}
	if n := len(srv.Calls("getUpdates")); n > 20 {
		t.Errorf("%d getUpdates calls: the loop spins", n)
	}
}

func TestConflictBacksOff(t *testing.T) {
	srv := telegramtest.New(t)
	n := newNetwork(t, srv, nil)
	for range 3 {
		srv.Inject("getUpdates", telegramtest.Fault{Status: 409, Description: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"})
	}
	rec := &legacytest.Recorder{}
	start(t, open(t, n, rec, nil))
	ev := rec.Wait(waitFor, func(ev legacy.Event) bool {
		st, ok := ev.(legacy.StatusEvent)
		return ok && st.Status == legacy.StatusDisconnected
	})
	if ev == nil || !strings.Contains(ev.(legacy.StatusEvent).Text, "409") {
		t.Fatalf("no status explaining the conflict: %#v", rec.Events())
	}
	srv.AddUpdate(telegramtest.PrivateText(42, "Alice", 1, "after the conflict"))
	waitIncoming(t, rec, "123456789:42:1")
	// Backoff doubles from 5ms: three conflicts cannot have taken more
	// than a handful of polls (no spinning).
	if n := len(srv.Calls("getUpdates")); n > 20 {
		t.Errorf("%d getUpdates calls: the loop spins on 409", n)
	}
}

func TestPollRecoversFromFaults(t *testing.T) {
	srv := telegramtest.New(t)
	n := newNetwork(t, srv, nil)
	srv.Inject("getUpdates", telegramtest.Fault{Status: 502, Description: "Bad Gateway"})
	srv.Inject("getUpdates", telegramtest.Fault{Status: 200, Body: `{"ok":tru`})
	srv.Inject("getUpdates", telegramtest.Fault{Status: 429, Description: "Too Many Requests: retry after 0", RetryAfter: 0})
	rec := &legacytest.Recorder{}
	start(t, open(t, n, rec, nil))
	srv.AddUpdate(telegramtest.PrivateText(42, "Alice", 1, "hi"))
	waitIncoming(t, rec, "123456789:42:1")
}

func TestRunUnauthorized(t *testing.T) {
	srv := telegramtest.New(t)
	n := newNetwork(t, srv, nil)
	s, _ := n.Open(context.Background(), legacy.Account{ID: "1", Fields: map[string]string{"token": "1:revoked_token_revoked_token_x"}}, &legacytest.Recorder{})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	err := s.Run(ctx)
	if !errors.Is(err, legacy.ErrUnauthorized) {
		t.Errorf("Run with a revoked token = %v, want ErrUnauthorized", err)
	}
	noToken(t, err)
}

func TestWebhook(t *testing.T) {
	srv := telegramtest.New(t)
	n := newNetwork(t, srv, map[string]string{
		"webhook_url":    "https://gw.example.org/webhooks/telegram.example.org/",
		"webhook_secret": "0123456789abcdef0123",
	})
	hook := httptest.NewServer(n.Webhook())
	t.Cleanup(hook.Close)

	sink := &crashSink{}
	start(t, open(t, n, sink, nil))
	var url, secret string
	eventually(t, "setWebhook", func() bool { url, secret = srv.Webhook(); return url != "" })
	if url != "https://gw.example.org/webhooks/telegram.example.org/123456789" || secret == "" {
		t.Fatalf("setWebhook(%q, %q)", url, secret)
	}
	eventually(t, "the session to serve", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.hooks[telegramtest.BotID] != nil
	})

	post := func(secret, body string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, hook.URL+"/123456789", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if secret != "" {
			req.Header.Set("X-Telegram-Bot-Api-Secret-Token", secret)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	update := func(id, msg int64) string {
		b, _ := json.Marshal(map[string]any{"update_id": id, "message": telegramtest.PrivateText(42, "Alice", msg, "via webhook")["message"]})
		return string(b)
	}
	if code := post("", update(1, 1)); code != http.StatusUnauthorized {
		t.Errorf("no secret header: %d, want 401", code)
	}
	if code := post("wrong", update(1, 1)); code != http.StatusUnauthorized {
		t.Errorf("wrong secret: %d, want 401", code)
	}
	if len(sink.Events()) > 1 { // the status event only
		t.Errorf("events from unauthenticated requests: %#v", sink.Events())
	}
	if code := post(secret, update(1, 1)); code != http.StatusOK {
		t.Errorf("good request: %d, want 200", code)
	}
	waitIncoming(t, &sink.Recorder, "123456789:42:1")

	sink.mu.Lock()
	sink.failOnce = "123456789:42:2"
	sink.mu.Unlock()
	if code := post(secret, update(2, 2)); code < 500 {
		t.Errorf("Emit failed but the webhook answered %d, want 5xx so Telegram retries", code)
	}
	if code := post(secret, update(2, 2)); code != http.StatusOK {
		t.Errorf("retry: %d, want 200", code)
	}
	waitIncoming(t, &sink.Recorder, "123456789:42:2")
	if code := post(secret, "{malformed"); code != http.StatusBadRequest {
		t.Errorf("malformed: %d, want 400", code)
	}
}

func TestSendErrors(t *testing.T) {
	srv := telegramtest.New(t)
	n := newNetwork(t, srv, nil)
	s := open(t, n, &legacytest.Recorder{}, nil)
	ctx := context.Background()

	srv.SetChatError(1, telegramtest.Fault{Status: 403, Description: "Forbidden: bot was blocked by the user"})
	srv.SetChatError(2, telegramtest.Fault{Status: 403, Description: "Forbidden: bot can't initiate conversation with a user"})
	srv.SetChatError(3, telegramtest.Fault{Status: 400, Description: "Bad Request: chat not found"})
	srv.SetChatError(4, telegramtest.Fault{Status: 400, Description: "Bad Request: group chat was upgraded to a supergroup chat", MigrateTo: -1009})

	for _, tc := range []struct {
		chat      legacy.ChatID
		want      error
		code      string
		textHas   string
		reasonHas string
		injected  *telegramtest.Fault
	}{
		{chat: "1", want: legacy.ErrForbidden, code: "403", textHas: "blocked"},
		{chat: "2", want: legacy.ErrForbidden, code: "403", textHas: "press Start"},
		{chat: "3", want: legacy.ErrNotFound, code: "400", textHas: "chat not found"},
		{chat: "4", want: legacy.ErrNotFound, code: "400", textHas: "-1009"},
		{chat: "5", want: legacy.ErrUnauthorized, code: "401", injected: &telegramtest.Fault{Status: 401, Description: "Unauthorized"}},
		// Transient, and naming Telegram's answer for the delay notice.
		{chat: "5", want: legacy.ErrUnavailable, code: "500", textHas: "Internal Server Error", injected: &telegramtest.Fault{Status: 500, Description: "Internal Server Error"}},
		{chat: "5", want: legacy.ErrUnavailable, reasonHas: "HTTP 502", injected: &telegramtest.Fault{Status: 502, Body: "<html>Bad Gateway</html>"}},
		{chat: "5", want: legacy.ErrRejected, code: "400", injected: &telegramtest.Fault{Status: 400, Description: "Bad Request: can't parse entities"}},
		{chat: "5", want: legacy.ErrForbidden, code: "400", textHas: "does not let your bot", injected: &telegramtest.Fault{Status: 400, Description: "Bad Request: not enough rights to send text messages to the chat"}},
		{chat: "5", want: legacy.ErrNotFound, code: "400", textHas: "no longer exists", injected: &telegramtest.Fault{Status: 400, Description: "Bad Request: group chat was deactivated"}},
		{chat: "x", want: legacy.ErrInvalidAddress},
	} {
		if tc.injected != nil {
			srv.Inject("sendMessage", *tc.injected)
		}
		_, err := s.Send(ctx, &legacy.Message{Chat: tc.chat, Text: "hi"})
		if !errors.Is(err, tc.want) {
			t.Errorf("chat %s %+v: %v, want %v", tc.chat, tc.injected, err, tc.want)
			continue
		}
		noToken(t, err)
		var ce *legacy.CodeError
		if tc.code != "" && (!errors.As(err, &ce) || ce.Code != tc.code || !strings.Contains(ce.Text, tc.textHas)) {
			t.Errorf("chat %s: %#v, want a CodeError %s with %q", tc.chat, err, tc.code, tc.textHas)
		}
		var re *legacy.ReasonError
		if tc.reasonHas != "" && (!errors.As(err, &re) || !strings.Contains(re.Reason, tc.reasonHas)) {
			t.Errorf("chat %s: %#v, want a ReasonError with %q", tc.chat, err, tc.reasonHas)
		}
		if errors.Is(tc.want, legacy.ErrUnavailable) && legacy.IsPermanent(err) {
			t.Errorf("chat %s: %v must be transient", tc.chat, err)
		}
	}

	srv.Inject("sendMessage", telegramtest.Fault{Status: 429, Description: "Too Many Requests: retry after 7", RetryAfter: 7})
	_, err := s.Send(ctx, &legacy.Message{Chat: "6", Text: "hi"})
	var rl *legacy.RateLimitError
	if !errors.As(err, &rl) || rl.RetryAfter != 7*time.Second || !errors.Is(err, legacy.ErrRateLimited) {
		t.Errorf("429: %v, want a RateLimitError of 7s", err)
	}
	if ce := (*legacy.CodeError)(nil); !errors.As(err, &ce) || ce.Code != "429" || !strings.Contains(ce.Text, "retry after 7") {
		t.Errorf("429: %#v, want a CodeError naming Telegram's answer", err)
	}

	// A slow answer: the caller's deadline ends the call.
	srv.Inject("sendMessage", telegramtest.Fault{Delay: time.Hour})
	sctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = s.Send(sctx, &legacy.Message{Chat: "7", Text: "hi"})
	if !errors.Is(err, legacy.ErrUnavailable) {
		t.Errorf("slow answer: %v, want ErrUnavailable", err)
	}
	noToken(t, err)
}

func TestSendLongAndReply(t *testing.T) {
	srv := telegramtest.New(t)
	n := newNetwork(t, srv, nil)
	s := open(t, n, &legacytest.Recorder{}, nil)
	ctx := context.Background()

	text := strings.Repeat("é日😀 ", 1500) // 7500 UTF-16 units
	// ReplyTo is an id of the old form, without the bot: this bot.
	id, err := s.Send(ctx, &legacy.Message{Chat: "42", Text: text, ReplyTo: "42:3"})
	if err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages(42)
	if len(msgs) != 2 || id != "123456789:42:1,2" {
		t.Fatalf("sent %d messages, id %q; want 2 and an id naming both", len(msgs), id)
	}
	if msgs[0].Text+msgs[1].Text != text {
		t.Errorf("the parts do not add up to the text")
	}
	if msgs[0].ReplyTo != 3 || msgs[1].ReplyTo != 0 {
		t.Errorf("reply_parameters: %d, %d; want the first part to reply to 3", msgs[0].ReplyTo, msgs[1].ReplyTo)
	}
}

func TestEditRetractReactTyping(t *testing.T) {
	srv := telegramtest.New(t)
	n := newNetwork(t, srv, nil)
	s := open(t, n, &legacytest.Recorder{}, nil)
	ctx := context.Background()

	id, err := s.Send(ctx, &legacy.Message{Chat: "42", Text: "helo"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Edit(ctx, "42", id, "hello"); err != nil {
		t.Fatalf("Edit: %v", err)
	}
	if m := srv.Messages(42); m[0].Text != "hello" {
		t.Errorf("after the edit: %q", m[0].Text)
	}
	if err := s.Edit(ctx, "42", id, "hello"); err != nil {
		t.Errorf("an edit to the same text is not an error: %v", err)
	}
	if err := s.Edit(ctx, "42", "123456789:42:99", "x"); !errors.Is(err, legacy.ErrNotFound) {
		t.Errorf("Edit of an unknown message: %v, want ErrNotFound", err)
	}
	if err := s.Edit(ctx, "43", id, "x"); !errors.Is(err, legacy.ErrNotFound) {
		t.Errorf("Edit of a message of another chat: %v, want ErrNotFound", err)
	}

	if err := s.React(ctx, "42", "123456789:42:5", []string{"❤️"}); err != nil {
		t.Fatalf("React: %v", err)
	}
	calls := srv.Calls("setMessageReaction")
	if len(calls) != 1 {
		t.Fatalf("setMessageReaction calls: %+v", calls)
	}
	b, _ := json.Marshal(calls[0].Params["reaction"])
	if string(b) != `[{"emoji":"❤","type":"emoji"}]` {
		t.Errorf("reaction = %s", b)
	}
	if err := s.React(ctx, "42", "123456789:42:5", nil); err != nil {
		t.Errorf("removing reactions: %v", err)
	}
	if b, _ := json.Marshal(srv.Calls("setMessageReaction")[1].Params["reaction"]); string(b) != `[]` {
		t.Errorf("removing reactions sent %s, want []", b)
	}

	clock := time.Unix(1700000000, 0)
	s.now = func() time.Time { return clock }
	if err := s.SetTyping(ctx, "42", true); err != nil {
		t.Fatalf("SetTyping: %v", err)
	}
	clock = clock.Add(typingEvery - time.Second)
	if err := s.SetTyping(ctx, "42", true); err != nil { // throttled: Telegram still shows the first
		t.Fatalf("SetTyping: %v", err)
	}
	if c := srv.Calls("sendChatAction"); len(c) != 1 || c[0].Params["action"] != "typing" || c[0].Params["chat_id"] != json.Number("42") {
		t.Errorf("sendChatAction calls: %+v", c)
	}
	clock = clock.Add(time.Second)
	if err := s.SetTyping(ctx, "42", true); err != nil { // refreshed
		t.Fatalf("SetTyping: %v", err)
	}
	if err := s.SetTyping(ctx, "42", false); err != nil {
		t.Fatalf("SetTyping(false): %v", err)
	}
	if err := s.SetTyping(ctx, "42", true); err != nil { // typing again after a pause
		t.Fatalf("SetTyping: %v", err)
	}
	if c := srv.Calls("sendChatAction"); len(c) != 3 {
		t.Errorf("%d sendChatAction calls, want 3", len(c))
	}

	if err := s.Retract(ctx, "42", id); err != nil {
		t.Fatalf("Retract: %v", err)
	}
	if m := srv.Messages(42); len(m) != 0 {
		t.Errorf("after the retraction: %+v", m)
	}
	if err := s.Retract(ctx, "42", id); !errors.Is(err, legacy.ErrNotFound) {
		t.Errorf("second Retract: %v, want ErrNotFound", err)
	}
}

func TestFiles(t *testing.T) {
	srv := telegramtest.New(t)
	n := newNetwork(t, srv, nil)
	rec := &legacytest.Recorder{}
	s := open(t, n, rec, nil)

	jpeg := []byte("\xff\xd8\xff\xe0fake jpeg")
	srv.AddFile("big-photo", "photos/file_1.jpg", jpeg, 0)
	srv.AddUpdate(map[string]any{"message": telegramtest.PrivateMessage(42, "Alice", 1, map[string]any{
		"caption": "look",
		"photo": []any{
			map[string]any{"file_id": "small", "file_unique_id": "s", "width": 90, "height": 90},
			map[string]any{"file_id": "big-photo", "file_unique_id": "b", "width": 800, "height": 800, "file_size": len(jpeg)},
		},
	})})
	srv.AddUpdate(map[string]any{"message": telegramtest.PrivateMessage(42, "Alice", 2, map[string]any{
		"document": map[string]any{"file_id": "huge", "file_unique_id": "h", "file_name": "movie.mkv", "file_size": 25_000_000},
	})})
	srv.AddFile("doc", "documents/file_2.pdf", []byte("%PDF-1.4"), 0)
	srv.AddUpdate(map[string]any{"message": telegramtest.PrivateMessage(42, "Alice", 3, map[string]any{
		"document": map[string]any{"file_id": "doc", "file_unique_id": "d", "file_name": "report.pdf", "mime_type": "application/pdf", "file_size": 8},
	})})
	start(t, s)

	in := waitIncoming(t, rec, "123456789:42:1")
	if in.Text != "look" || len(in.Attachments) != 1 || string(in.Attachments[0].Data) != string(jpeg) || in.Attachments[0].Type != "image/jpeg" {
		t.Errorf("photo: %+v", in)
	}
	in = waitIncoming(t, rec, "123456789:42:2")
	// 25,000,000 bytes are 25.0 MB, in the Bot API's decimal units (not 23.8).
	if len(in.Attachments) != 0 || !strings.Contains(in.Text, "document movie.mkv of 25.0 MB not fetched") ||
		!strings.Contains(in.Text, "up to 20 MB") {
		t.Errorf("a file over 20 MB must become a note: %+v", in)
	}
	in = waitIncoming(t, rec, "123456789:42:3")
	if len(in.Attachments) != 1 || in.Attachments[0].Name != "report.pdf" || in.Attachments[0].Type != "application/pdf" {
		t.Errorf("document: %+v", in)
	}

	id, err := s.Send(context.Background(), &legacy.Message{Chat: "42", Text: "my cat", Attachments: []legacy.Attachment{
		{Name: "cat.jpg", Type: "image/jpeg", Data: jpeg},
		{Name: "notes.txt", Type: "text/plain", Data: []byte("notes")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages(42)
	if id != "123456789:42:1f,2f" || len(msgs) != 2 || msgs[0].Method != "sendPhoto" || msgs[0].Text != "my cat" || string(msgs[0].File) != string(jpeg) ||
		msgs[1].Method != "sendDocument" || string(msgs[1].File) != "notes" {
		t.Errorf("sent %q: %+v", id, msgs)
	}
	if err := s.Edit(context.Background(), "42", id, "my cat, asleep"); err != nil {
		t.Errorf("editing a photo's caption: %v", err)
	} else if m := srv.Messages(42); m[0].Text != "my cat, asleep" {
		t.Errorf("caption after the edit: %q", m[0].Text)
	}
	if c := srv.Calls("sendDocument"); len(c) != 1 || c[0].FileName != "notes.txt" {
		t.Errorf("sendDocument: %+v", c)
	}
	_, err = s.Send(context.Background(), &legacy.Message{Chat: "42", Attachments: []legacy.Attachment{{Name: "big", Data: make([]byte, maxUpload+1)}}})
	if !errors.Is(err, legacy.ErrTooLarge) {
		t.Errorf("a file over 50 MB: %v, want ErrTooLarge", err)
	}
	// An image Telegram refuses as a photo (a long screenshot) goes as a
	// document.
	srv.Inject("sendPhoto", telegramtest.Fault{Status: 400, Description: "Bad Request: PHOTO_INVALID_DIMENSIONS"})
	if _, err := s.Send(context.Background(), &legacy.Message{Chat: "42", Attachments: []legacy.Attachment{{Name: "long.png", Type: "image/png", Data: jpeg}}}); err != nil {
		t.Errorf("an image refused as a photo: %v, want it sent as a document", err)
	}
	if c := srv.Calls("sendDocument"); len(c) != 2 || c[1].FileName != "long.png" {
		t.Errorf("sendDocument after the photo was refused: %+v", c)
	}
}

// TestFilesByURL: a file with the URL the core fetched it from (the
// user's HTTP upload) goes to Telegram as that URL when Telegram fetches
// such files (photos up to 5 MB, GIF/PDF/ZIP documents up to 20 MB);
// otherwise, and when Telegram cannot fetch the URL, the bytes are
// uploaded as before.
func TestFilesByURL(t *testing.T) {
	srv := telegramtest.New(t)
	n := newNetwork(t, srv, nil)
	s := open(t, n, &legacytest.Recorder{}, nil)
	ctx := context.Background()

	jpeg := []byte("\xff\xd8\xff\xe0fake jpeg by URL")
	pdf := []byte("%PDF-1.4 by URL")
	var mu sync.Mutex
	fetched := map[string]int{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fetched[r.URL.Path]++
		mu.Unlock()
		switch r.URL.Path {
		case "/share/1/cat.jpg":
			w.Header().Set("Content-Type", "image/jpeg")
			w.Write(jpeg)
		case "/share/2/report.pdf":
			w.Header().Set("Content-Type", "application/pdf")
			w.Write(pdf)
		case "/share/3/notes.txt":
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte("notes"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer up.Close()
	count := func(path string) int {
		mu.Lock()
		defer mu.Unlock()
		return fetched[path]
	}

	// A photo and a PDF with their URLs: sent by URL, Telegram fetches them.
	id, err := s.Send(ctx, &legacy.Message{Chat: "42", Text: "my cat", Attachments: []legacy.Attachment{
		{Name: "cat.jpg", Type: "image/jpeg", Data: jpeg, URL: up.URL + "/share/1/cat.jpg"},
		{Name: "report.pdf", Type: "application/pdf", Data: pdf, URL: up.URL + "/share/2/report.pdf"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages(42)
	if id != "123456789:42:1f,2f" || len(msgs) != 2 || msgs[0].Method != "sendPhoto" || msgs[0].URL != up.URL+"/share/1/cat.jpg" ||
		string(msgs[0].File) != string(jpeg) || msgs[0].Text != "my cat" ||
		msgs[1].Method != "sendDocument" || msgs[1].URL != up.URL+"/share/2/report.pdf" || string(msgs[1].File) != string(pdf) {
		t.Fatalf("sent %q: %+v", id, msgs)
	}
	if c := srv.Calls("sendPhoto"); len(c) != 1 || c[0].File != nil || c[0].Params["photo"] != up.URL+"/share/1/cat.jpg" {
		t.Errorf("sendPhoto calls: %+v", c)
	}
	if count("/share/1/cat.jpg") != 1 || count("/share/2/report.pdf") != 1 {
		t.Errorf("fetches: %v", fetched)
	}

	// A text document (Telegram takes only GIF, PDF and ZIP by URL) and a
	// photo over 5 MB: uploaded, their URLs never given to Telegram.
	bigPhoto := append([]byte("\xff\xd8\xff\xe0"), make([]byte, 6_000_000)...)
	if _, err := s.Send(ctx, &legacy.Message{Chat: "42", Attachments: []legacy.Attachment{
		{Name: "notes.txt", Type: "text/plain", Data: []byte("notes"), URL: up.URL + "/share/3/notes.txt"},
		{Name: "big.jpg", Type: "image/jpeg", Data: bigPhoto, URL: up.URL + "/share/4/big.jpg"},
	}}); err != nil {
		t.Fatal(err)
	}
	msgs = srv.Messages(42)
	if len(msgs) != 4 || msgs[2].URL != "" || string(msgs[2].File) != "notes" || msgs[3].URL != "" || len(msgs[3].File) != len(bigPhoto) {
		t.Errorf("uploads: %d messages", len(msgs))
	}
	if count("/share/3/notes.txt") != 0 || count("/share/4/big.jpg") != 0 {
		t.Errorf("URLs fetched although the files were uploaded: %v", fetched)
	}

	// A URL Telegram cannot fetch (the upload is gone): Telegram answers
	// 400, the bytes are uploaded instead.
	if _, err := s.Send(ctx, &legacy.Message{Chat: "42", Text: "gone", Attachments: []legacy.Attachment{
		{Name: "dog.jpg", Type: "image/jpeg", Data: jpeg, URL: up.URL + "/share/5/dog.jpg"},
	}}); err != nil {
		t.Fatal(err)
	}
	msgs = srv.Messages(42)
	if len(msgs) != 5 || msgs[4].URL != "" || string(msgs[4].File) != string(jpeg) || msgs[4].Text != "gone" {
		t.Errorf("fallback: %+v", msgs[len(msgs)-1])
	}
	if c := srv.Calls("sendPhoto"); len(c) != 4 || c[2].Params["photo"] != up.URL+"/share/5/dog.jpg" || c[3].FileName != "dog.jpg" {
		t.Errorf("sendPhoto calls: %d", len(c))
	}
}

func TestResolve(t *testing.T) {
	n, _ := New(nil)
	for in, want := range map[string]legacy.ChatID{"42": "42", " -1001234 ": "-1001234"} {
		if got, err := n.Resolve(context.Background(), in); err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "@alice", "0", "abc"} {
		if _, err := n.Resolve(context.Background(), in); !errors.Is(err, legacy.ErrInvalidAddress) {
			t.Errorf("Resolve(%q) = %v, want ErrInvalidAddress", in, err)
		}
	}
}

func TestAvatar(t *testing.T) {
	srv := telegramtest.New(t)
	n := newNetwork(t, srv, nil)
	rec := &legacytest.Recorder{}
	pic := []byte("\xff\xd8\xff\xe0avatar")
	srv.SetProfilePhoto(42, pic)
	srv.AddUpdate(telegramtest.PrivateText(42, "Alice", 1, "hi"))
	srv.AddUpdate(telegramtest.PrivateText(42, "Alice", 2, "again"))
	start(t, open(t, n, rec, nil))
	waitIncoming(t, rec, "123456789:42:2")
	var contacts []legacy.Contact
	for _, ev := range rec.Events() {
		if c, ok := ev.(legacy.Contact); ok {
			contacts = append(contacts, c)
		}
	}
	if len(contacts) != 1 || string(contacts[0].Avatar) != string(pic) || contacts[0].AvatarType != "image/jpeg" || contacts[0].Name != "Alice" {
		t.Errorf("contacts = %+v, want one with the profile photo", contacts)
	}
	if c := srv.Calls("getUserProfilePhotos"); len(c) != 1 {
		t.Errorf("getUserProfilePhotos called %d times, want once per chat", len(c))
	}
}

func TestLimiters(t *testing.T) {
	l := newLimiters()
	if p := l.chat(42); p.Limit() != 1 || p.Burst() != 3 {
		t.Errorf("private chat bucket: %v/s burst %d, want 1/s burst 3", p.Limit(), p.Burst())
	}
	if g := l.chat(-1001); float64(g.Limit())*60 != 20 || g.Burst() != 5 {
		t.Errorf("group bucket: %v/s burst %d, want 20/min burst 5", g.Limit(), g.Burst())
	}
	if l.bot.Limit() != 30 {
		t.Errorf("bot bucket: %v/s, want 30/s", l.bot.Limit())
	}
	if l.chat(42) != l.chat(42) {
		t.Errorf("one bucket per chat")
	}

	// The burst passes at once; the next message would wait about a second,
	// longer than the caller's deadline allows: a RateLimitError at once.
	ctx := context.Background()
	for i := range 3 {
		if err := l.wait(ctx, 7, true); err != nil {
			t.Fatalf("message %d of the burst: %v", i, err)
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	var rl *legacy.RateLimitError
	if err := l.wait(dctx, 7, true); !errors.As(err, &rl) {
		t.Errorf("over the chat's rate: %v, want a RateLimitError", err)
	}
	// Other chats and non-message calls are not held back by chat 7.
	if err := l.wait(dctx, 8, true); err != nil {
		t.Errorf("another chat: %v", err)
	}
	if err := l.wait(dctx, 7, false); err != nil {
		t.Errorf("a non-message call: %v", err)
	}
}

// TestFakeBotAPI checks the fake's getUpdates semantics the adapter relies
// on: an offset confirms (drops) the updates below it, a second poller
// terminates the first with 409, and a webhook blocks polling.
func TestFakeBotAPI(t *testing.T) {
	srv := telegramtest.New(t)
	n := newNetwork(t, srv, nil)
	c := n.client(telegramtest.Token)
	ctx := context.Background()
	a := srv.AddUpdate(telegramtest.PrivateText(1, "A", 1, "a"))
	b := srv.AddUpdate(telegramtest.PrivateText(1, "A", 2, "b"))

	ups, err := c.getUpdates(ctx, 0, 0)
	if err != nil || len(ups) != 2 || ups[0].UpdateID != a || ups[0].Message.Text != "a" {
		t.Fatalf("getUpdates = %+v, %v", ups, err)
	}
	if ups, err = c.getUpdates(ctx, 0, 0); len(ups) != 2 {
		t.Errorf("without a higher offset nothing is confirmed: %+v, %v", ups, err)
	}
	if ups, err = c.getUpdates(ctx, b, 0); len(ups) != 1 || ups[0].UpdateID != b {
		t.Errorf("offset %d: %+v, %v", b, ups, err)
	}
	if ups, err = c.getUpdates(ctx, a, 0); len(ups) != 1 {
		t.Errorf("a confirmed update never comes back: %+v, %v", ups, err)
	}

	// Two pollers: the first long poll is terminated with 409.
	if _, err := c.getUpdates(ctx, b+1, 0); err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() {
		_, err := c.getUpdates(ctx, b+1, 30*time.Second)
		first <- err
	}()
	eventually(t, "the first poll to arrive", func() bool { return len(srv.Calls("getUpdates")) == 6 })
	second := make(chan error, 1)
	go func() {
		_, err := c.getUpdates(ctx, b+1, 30*time.Second)
		second <- err
	}()
	select {
	case err := <-first:
		if !errors.Is(err, errConflict) {
			t.Errorf("the older poll: %v, want a 409 conflict", err)
		}
	case <-time.After(waitFor):
		t.Fatal("the older poll was not terminated")
	}
	srv.AddUpdate(telegramtest.PrivateText(1, "A", 3, "c"))
	if err := <-second; err != nil {
		t.Errorf("the newer poll: %v", err)
	}

	if err := c.call(ctx, "setWebhook", map[string]any{"url": "https://x.example/hook"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.getUpdates(ctx, 0, 0); !errors.Is(err, errConflict) {
		t.Errorf("getUpdates with a webhook set: %v, want a 409 conflict", err)
	}
}

// TestIncomingFileTransientErrors: a file Telegram does not hand over
// just now (429 with retry_after, 5xx) is retried; when the retries of one
// round are spent the update is not confirmed and comes again, so the
// file is never replaced by a note for a passing failure. A permanent
// failure gives the note at once, worded without a gap for a photo that
// has no file name.
func TestIncomingFileTransientErrors(t *testing.T) {
	srv := telegramtest.New(t)
	n := newNetwork(t, srv, nil)
	rec := &legacytest.Recorder{}
	s := open(t, n, rec, nil)
	jpeg := []byte("\xff\xd8\xff\xe0fake jpeg")
	photo := func(id string) map[string]any {
		return map[string]any{"photo": []any{map[string]any{"file_id": id, "file_unique_id": "u" + id, "width": 800, "height": 800, "file_size": len(jpeg)}}}
	}
	srv.AddFile("p1", "photos/file_1.jpg", jpeg, 0)
	srv.AddFile("p2", "photos/file_2.jpg", jpeg, 0)

	// 1: one 429 with retry_after: retried within the round.
	srv.Inject("getFile", telegramtest.Fault{Status: 429, Description: "Too Many Requests: retry after 1", RetryAfter: 1})
	srv.AddUpdate(map[string]any{"message": telegramtest.PrivateMessage(42, "Alice", 1, photo("p1"))})
	start(t, s)
	in := waitIncoming(t, rec, "123456789:42:1")
	if len(in.Attachments) != 1 || string(in.Attachments[0].Data) != string(jpeg) || in.Text != "" {
		t.Errorf("photo after a 429: %+v, want the file", in)
	}

	// 2: 5xx on every try of a round: the update stays with Telegram and
	// the next round gets the file.
	for range fileAttempts {
		srv.Inject("getFile", telegramtest.Fault{Status: 502, Description: "Bad Gateway"})
	}
	srv.AddUpdate(map[string]any{"message": telegramtest.PrivateMessage(42, "Alice", 2, photo("p2"))})
	in = waitIncoming(t, rec, "123456789:42:2")
	if len(in.Attachments) != 1 || in.Text != "" {
		t.Errorf("photo after a round of 5xx: %+v, want the file", in)
	}
	if got := incomingIDs(rec.Events()); got["123456789:42:2"] != 1 {
		t.Errorf("emitted %v, want the photo once", got)
	}
	if c := srv.Calls("getFile"); len(c) != 2+fileAttempts+1 {
		t.Errorf("%d getFile calls, want %d", len(c), 2+fileAttempts+1)
	}

	// 3: permanent (a file id Telegram refuses): the note at once.
	srv.AddUpdate(map[string]any{"message": telegramtest.PrivateMessage(42, "Alice", 3, photo("gone"))})
	in = waitIncoming(t, rec, "123456789:42:3")
	if in.Text != "[photo could not be fetched from Telegram]" || len(in.Attachments) != 0 {
		t.Errorf("a file Telegram refuses: %q, want the note", in.Text)
	}
	eventually(t, "the offset commit", func() bool { return len(srv.Pending()) == 0 })
}

// TestIncomingFileGivesUp: a file that keeps failing with transient errors
// holds its update only for Network.fileGiveUp; then the message comes
// with a note.
func TestIncomingFileGivesUp(t *testing.T) {
	srv := telegramtest.New(t)
	n := newNetwork(t, srv, nil)
	n.fileGiveUp = 30 * time.Millisecond
	rec := &legacytest.Recorder{}
	for range 200 {
		srv.Inject("getFile", telegramtest.Fault{Status: 500, Description: "Internal Server Error"})
	}
	srv.AddUpdate(map[string]any{"message": telegramtest.PrivateMessage(42, "Alice", 1, map[string]any{
		"caption":  "report",
		"document": map[string]any{"file_id": "d", "file_unique_id": "ud", "file_name": "report.pdf", "file_size": 10},
	})})
	start(t, open(t, n, rec, nil))
	in := waitIncoming(t, rec, "123456789:42:1")
	if !strings.HasPrefix(in.Text, "report\n[document report.pdf could not be fetched from Telegram") || len(in.Attachments) != 0 {
		t.Errorf("a file that kept failing: %q, want the caption and a note", in.Text)
	}
	if c := len(srv.Calls("getFile")); c < 2*fileAttempts {
		t.Errorf("%d getFile calls: gave up before a second round", c)
	}
	eventually(t, "the offset commit", func() bool { return len(srv.Pending()) == 0 })
}

// TestAnotherBot: a user who registers another bot without unregistering
// keeps the old bot's message ids in the gateway. Telegram's message ids
// restart for every bot, so the ids name the bot: the new bot's messages
// never collide with the old one's (a collision made the core take a new
// message for a replay of an old one), and a correction, retraction,
// reaction or reply aimed at a message of the old bot never reaches an
// unrelated message of the new one. Ids of the old form (no bot) still
// mean "this bot".
func TestAnotherBot(t *testing.T) {
	const tokenB = "987654321:BBHfake-token_for_tests_0123456789xyz"
	srvA, srvB := telegramtest.New(t), telegramtest.NewBot(t, tokenB)
	recA, recB := &legacytest.Recorder{}, &legacytest.Recorder{}
	a := open(t, newNetwork(t, srvA, nil), recA, nil)
	sb, err := newNetwork(t, srvB, nil).Open(context.Background(), legacy.Account{ID: "987654321", Owner: "o", Fields: map[string]string{"token": tokenB}}, recB)
	if err != nil {
		t.Fatal(err)
	}
	b := sb.(*session)
	ctx := context.Background()

	// The same message_id in the same chat, through each bot.
	srvA.AddUpdate(telegramtest.PrivateText(42, "Alice", 1, "to the old bot"))
	start(t, a)
	inA := waitIncoming(t, recA, "123456789:42:1")
	idA, err := a.Send(ctx, &legacy.Message{Chat: "42", Text: "sent through the old bot"})
	if err != nil {
		t.Fatal(err)
	}
	srvB.AddUpdate(telegramtest.PrivateText(42, "Alice", 1, "to the new bot"))
	start(t, b)
	inB := waitIncoming(t, recB, "987654321:42:1")
	if inA.ID == inB.ID || inB.Text != "to the new bot" {
		t.Errorf("ids of the two bots' messages: %q and %q, want different ids", inA.ID, inB.ID)
	}
	idB, err := b.Send(ctx, &legacy.Message{Chat: "42", Text: "sent through the new bot"})
	if err != nil {
		t.Fatal(err)
	}
	if idA != "123456789:42:1" || idB != "987654321:42:1" {
		t.Fatalf("Send ids %q, %q: want each bot's id in them", idA, idB)
	}

	// The old bot's message through the new bot: refused, nothing called.
	for name, call := range map[string]func(legacy.MessageID) error{
		"Edit":    func(id legacy.MessageID) error { return b.Edit(ctx, "42", id, "changed") },
		"Retract": func(id legacy.MessageID) error { return b.Retract(ctx, "42", id) },
		"React":   func(id legacy.MessageID) error { return b.React(ctx, "42", id, []string{"👍"}) },
	} {
		err := call(idA)
		var re *legacy.ReasonError
		if !errors.Is(err, legacy.ErrNotFound) || !legacy.IsPermanent(err) || !errors.As(err, &re) || !strings.Contains(re.Reason, "bot no longer registered") {
			t.Errorf("%s of the old bot's message through the new bot: %v, want a permanent ErrNotFound saying why", name, err)
		}
	}
	for _, m := range []string{"editMessageText", "editMessageCaption", "deleteMessage", "setMessageReaction"} {
		if c := srvB.Calls(m); len(c) != 0 {
			t.Errorf("%s called on the new bot: %+v", m, c)
		}
	}
	if m := srvB.Messages(42); len(m) != 1 || m[0].Text != "sent through the new bot" {
		t.Errorf("the new bot's message was touched: %+v", m)
	}
	// A reply to it goes out without the reference.
	if _, err := b.Send(ctx, &legacy.Message{Chat: "42", Text: "re old", ReplyTo: idA}); err != nil {
		t.Fatal(err)
	}
	if m := srvB.Messages(42); len(m) != 2 || m[1].ReplyTo != 0 {
		t.Errorf("a reply to the old bot's message: %+v, want no reply reference", m)
	}

	// Its own ids, and ids of the old form, act on the new bot's messages.
	if err := b.Edit(ctx, "42", idB, "edited"); err != nil {
		t.Errorf("Edit of its own message: %v", err)
	}
	if _, err := b.Send(ctx, &legacy.Message{Chat: "42", Text: "re own", ReplyTo: "42:1"}); err != nil {
		t.Fatal(err)
	}
	if m := srvB.Messages(42); len(m) != 3 || m[0].Text != "edited" || m[2].ReplyTo != 1 {
		t.Errorf("after an edit and a reply by ids of this bot: %+v", m)
	}
	if err := b.Retract(ctx, "42", "42:2"); err != nil {
		t.Errorf("Retract by an id of the old form: %v", err)
	}
	for _, bad := range []legacy.MessageID{"", "42", "x:42:1", "0:42:1", "1:2:3:4", "987654321:42:0"} {
		if err := b.Retract(ctx, "42", bad); !errors.Is(err, legacy.ErrNotFound) {
			t.Errorf("Retract(%q) = %v, want ErrNotFound", bad, err)
		}
	}
}

// TestSplitMessage: a message Send had to split into several Telegram
// messages has an id naming them all: a retraction deletes every part, a
// correction is spread over the text parts (surplus parts deleted, a text
// needing more parts than there are refused with a reason), a reaction
// goes to the first part, and inbound reactions and replies to any part
// name the whole message.
func TestSplitMessage(t *testing.T) {
	srv := telegramtest.New(t)
	n := newNetwork(t, srv, nil)
	rec := &legacytest.Recorder{}
	s := open(t, n, rec, nil)
	ctx := context.Background()
	texts := func() []string {
		var out []string
		for _, m := range srv.Messages(42) {
			out = append(out, m.Text)
		}
		return out
	}
	A, B, C := strings.Repeat("A", maxText), strings.Repeat("B", maxText), strings.Repeat("C", 100)

	id, err := s.Send(ctx, &legacy.Message{Chat: "42", Text: A + B + C})
	if err != nil {
		t.Fatal(err)
	}
	if id != "123456789:42:1,2,3" || !slices.Equal(texts(), []string{A, B, C}) {
		t.Fatalf("Send = %q, sent %d messages", id, len(texts()))
	}

	// Telegram users react to and reply to parts: the whole message.
	start(t, s)
	eventually(t, "getUpdates asking for reactions", func() bool { return slices.Contains(srv.AllowedUpdates(), "message_reaction") })
	srv.AddUpdate(telegramtest.MessageReaction(42, "", 42, "Alice", 0, 2, nil, []map[string]any{telegramtest.Emoji("👍")}))
	srv.AddUpdate(map[string]any{"message": telegramtest.PrivateMessage(42, "Alice", 4, map[string]any{
		"text": "re", "reply_to_message": map[string]any{"message_id": 3, "chat": map[string]any{"id": 42, "type": "private"}, "date": 1},
	})})
	if in := waitIncoming(t, rec, "123456789:42:4"); in.ReplyTo != id {
		t.Errorf("reply to the third part: ReplyTo %q, want %q", in.ReplyTo, id)
	}
	if ev := rec.Wait(waitFor, func(ev legacy.Event) bool { _, ok := ev.(legacy.Reacted); return ok }); ev == nil || ev.(legacy.Reacted).ID != id {
		t.Errorf("reaction to the second part: %#v, want the id %q", ev, id)
	}

	// Corrections.
	X := strings.Repeat("X", maxText)
	err = s.Edit(ctx, "42", id, X+X+X+"Y")
	var re *legacy.ReasonError
	if !errors.Is(err, legacy.ErrTooLarge) || !errors.As(err, &re) || !strings.Contains(re.Reason, "3 Telegram messages") {
		t.Errorf("a correction needing 4 parts: %v, want ErrTooLarge with a reason", err)
	}
	if !slices.Equal(texts(), []string{A, B, C}) {
		t.Errorf("a refused correction changed the message")
	}
	if err := s.Edit(ctx, "42", id, X+"Y"); err != nil {
		t.Fatalf("a correction needing 2 parts: %v", err)
	}
	if !slices.Equal(texts(), []string{X, "Y"}) {
		t.Errorf("after a correction in 2 parts: %d messages %.10q", len(texts()), texts())
	}
	if err := s.Edit(ctx, "42", id, X+"Y"); err != nil {
		t.Errorf("the same correction again (a retry): %v", err)
	}
	if err := s.Edit(ctx, "42", id, X+"Y"+C); err != nil {
		t.Errorf("a correction in the 2 parts left: %v", err)
	}
	if err := s.Edit(ctx, "42", id, X+X+"Z"); !errors.Is(err, legacy.ErrTooLarge) || !errors.As(err, &re) {
		t.Errorf("a correction needing the deleted third part: %v, want ErrTooLarge with a reason", err)
	}
	if err := s.Edit(ctx, "42", id, "short"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(texts(), []string{"short"}) {
		t.Errorf("after a short correction: %.10q", texts())
	}
	if err := s.React(ctx, "42", id, []string{"👍"}); err != nil {
		t.Fatal(err)
	}
	if c := srv.Calls("setMessageReaction"); len(c) != 1 || c[0].Params["message_id"] != json.Number("1") {
		t.Errorf("a reaction to the split message: %+v, want one on its first part", c)
	}
	// A retraction deletes what is left; parts already gone are skipped.
	if err := s.Retract(ctx, "42", id); err != nil {
		t.Fatalf("Retract: %v", err)
	}
	if len(texts()) != 0 {
		t.Errorf("after the retraction: %.10q", texts())
	}
	if err := s.Retract(ctx, "42", id); !errors.Is(err, legacy.ErrNotFound) {
		t.Errorf("retracting it again: %v, want ErrNotFound", err)
	}

	// A photo whose text is too long for a caption: the text follows it.
	jpeg := []byte("\xff\xd8\xff\xe0fake jpeg")
	long := strings.Repeat("w", maxCaption+1)
	id, err = s.Send(ctx, &legacy.Message{Chat: "42", Text: long, Attachments: []legacy.Attachment{{Name: "a.jpg", Type: "image/jpeg", Data: jpeg}}})
	if err != nil {
		t.Fatal(err)
	}
	if id != "123456789:42:4f,5" { // the fake numbers only the bot's messages
		t.Fatalf("photo and text: %q", id)
	}
	if err := s.Edit(ctx, "42", id, "better"); err != nil {
		t.Fatal(err)
	}
	if m := srv.Messages(42); len(m) != 2 || m[0].Text != "" || m[1].Text != "better" {
		t.Errorf("the correction goes to the text part: %+v", m)
	}
	if err := s.Retract(ctx, "42", id); err != nil || len(srv.Messages(42)) != 0 {
		t.Errorf("Retract: %v, left %d messages", err, len(srv.Messages(42)))
	}

	// One message: a correction over 4096 is refused, not cut.
	id, err = s.Send(ctx, &legacy.Message{Chat: "42", Text: "one"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Edit(ctx, "42", id, A+"more"); !errors.Is(err, legacy.ErrTooLarge) || !errors.As(err, &re) {
		t.Errorf("a correction over 4096: %v, want ErrTooLarge with a reason", err)
	}
	if m := srv.Messages(42); len(m) != 1 || m[0].Text != "one" {
		t.Errorf("a refused correction changed the message: %+v", m)
	}
}

func TestMessageIDs(t *testing.T) {
	for _, tc := range []struct {
		parts []part
		id    legacy.MessageID
	}{
		{[]part{{id: 7}}, "5:-100:7"},
		{[]part{{id: 7, file: true}}, "5:-100:7"},
		{[]part{{id: 7, file: true}, {id: 9}}, "5:-100:7f,9"},
		{[]part{{id: 7}, {id: 8}, {id: 10}}, "5:-100:7,8,10"},
	} {
		id := partsID(5, -100, tc.parts)
		if id != tc.id {
			t.Errorf("partsID(%v) = %q, want %q", tc.parts, id, tc.id)
		}
		r, err := parseMessageID(id)
		want := tc.parts
		if len(want) == 1 {
			want = []part{{id: want[0].id}}
		}
		if err != nil || r.bot != 5 || r.chat != -100 || r.msg != tc.parts[0].id || !slices.Equal(r.parts, want) {
			t.Errorf("parseMessageID(%q) = %+v, %v", id, r, err)
		}
	}
	if r, err := parseMessageID("42:7"); err != nil || r.bot != 0 || r.chat != 42 || r.msg != 7 || len(r.parts) != 1 {
		t.Errorf("the old form: %+v, %v", r, err)
	}
	for _, bad := range []legacy.MessageID{"", "7", "42:7f", "42:7,8", "5:42:7f", "5:42:", "5:42:7,", "5:42:,7", "5:42:+7", "5:42:-7", "5:0:7", "-5:42:7",
		legacy.MessageID("5:42:" + strings.Repeat("1,", maxParts) + "1")} {
		if _, err := parseMessageID(bad); !errors.Is(err, legacy.ErrNotFound) {
			t.Errorf("parseMessageID(%q): %v, want ErrNotFound", bad, err)
		}
	}
}

// TestSplitMessageTransientErrors: when a part after the first of a split
// message meets a 429, a 5xx (JSON or not) or a timeout, Send retries
// that part (after retry_after for a 429) and sends the rest; the parts
// already sent are never sent again. When the rest cannot go out within
// Send's deadline, or fails for good, Send returns a permanent error with
// a reason naming the parts that did not go out (the core then tells the
// user instead of sending the whole message again).
func TestSplitMessageTransientErrors(t *testing.T) {
	srv := telegramtest.New(t)
	n := newNetwork(t, srv, nil)
	n.sendTimeout = 200 * time.Millisecond
	s := open(t, n, &legacytest.Recorder{}, nil)
	ctx := context.Background()
	A, B, C := strings.Repeat("A", maxText), strings.Repeat("B", maxText), strings.Repeat("C", 100)
	texts := func(chat int64) []string {
		var out []string
		for _, m := range srv.Messages(chat) {
			out = append(out, m.Text)
		}
		return out
	}

	// Each chat its own, so that the chat's rate limit does not slow the
	// test down.
	for i, fault := range []telegramtest.Fault{
		{Status: 429, Description: "Too Many Requests: retry after 1", RetryAfter: 1},
		{Status: 502, Description: "Bad Gateway"},
		{Status: 503, Body: "<html>Service Unavailable</html>"}, // a proxy's page (a 2xx that cannot be read is sent: TestSendAcceptedUnreadableReply)
		{Delay: time.Hour}, // a timeout: Telegram never answers
	} {
		chat := int64(100 + i)
		srv.Inject("sendMessage", telegramtest.Fault{}) // the first part goes out
		srv.Inject("sendMessage", fault)
		began := time.Now()
		id, err := s.Send(ctx, &legacy.Message{Chat: chatID(chat), Text: A + B + C})
		if err != nil {
			t.Errorf("fault %+v on the second part: %v", fault, err)
			continue
		}
		if want := messageID(telegramtest.BotID, chat, 1) + ",2,3"; id != want {
			t.Errorf("fault %+v: id %q, want %q", fault, id, want)
		}
		if !slices.Equal(texts(chat), []string{A, B, C}) {
			t.Errorf("fault %+v on the second part: sent %.10q, want the three parts once each", fault, texts(chat))
		}
		if fault.RetryAfter > 0 && time.Since(began) < time.Second {
			t.Errorf("the 429's retry_after was not honoured: %v", time.Since(began))
		}
	}

	// retry_after longer than Send's deadline allows: a permanent error
	// naming the parts not sent, at once; nothing sent twice.
	srv.Inject("sendMessage", telegramtest.Fault{})
	srv.Inject("sendMessage", telegramtest.Fault{Status: 429, Description: "Too Many Requests: retry after 30", RetryAfter: 30})
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err := s.Send(dctx, &legacy.Message{Chat: "110", Text: A + B + C})
	var re *legacy.ReasonError
	if !legacy.IsPermanent(err) || errors.Is(err, legacy.ErrRateLimited) || errors.Is(err, legacy.ErrUnavailable) ||
		!errors.As(err, &re) || !strings.Contains(re.Reason, "parts 2 to 3") || dctx.Err() != nil {
		t.Errorf("the rest not sendable in time: %v, want a permanent ReasonError naming parts 2 to 3, at once", err)
	}
	noToken(t, err)
	if !slices.Equal(texts(110), []string{A}) {
		t.Errorf("sent %.10q, want only the first part", texts(110))
	}

	// The rest keeps failing: retried a bounded number of times.
	srv.Inject("sendMessage", telegramtest.Fault{})
	srv.Inject("sendMessage", telegramtest.Fault{})
	for range restAttempts {
		srv.Inject("sendMessage", telegramtest.Fault{Status: 500, Description: "Internal Server Error"})
	}
	before := len(srv.Calls("sendMessage"))
	_, err = s.Send(ctx, &legacy.Message{Chat: "111", Text: A + B + C})
	if !legacy.IsPermanent(err) || !errors.As(err, &re) || !strings.Contains(re.Reason, "part 3") || strings.Contains(re.Reason, "parts") {
		t.Errorf("the last part failing: %v, want a permanent ReasonError naming part 3", err)
	}
	if c := len(srv.Calls("sendMessage")) - before; c != 2+restAttempts {
		t.Errorf("%d sendMessage calls, want %d", c, 2+restAttempts)
	}
	if !slices.Equal(texts(111), []string{A, B}) {
		t.Errorf("sent %.10q, want the first two parts", texts(111))
	}

	// A permanent error on a later part: its sentinel and code are kept.
	srv.Inject("sendMessage", telegramtest.Fault{})
	srv.Inject("sendMessage", telegramtest.Fault{Status: 400, Description: "Bad Request: can't parse entities"})
	_, err = s.Send(ctx, &legacy.Message{Chat: "112", Text: A + B})
	var ce *legacy.CodeError
	if !errors.Is(err, legacy.ErrRejected) || !errors.As(err, &re) || !errors.As(err, &ce) || !strings.Contains(re.Reason, "can't parse entities") {
		t.Errorf("a permanent error on the second part: %v, want ErrRejected with a reason", err)
	}

	// The first part failing is the core's to retry, as before.
	srv.Inject("sendMessage", telegramtest.Fault{Status: 502, Description: "Bad Gateway"})
	_, err = s.Send(ctx, &legacy.Message{Chat: "113", Text: A + B})
	if !errors.Is(err, legacy.ErrUnavailable) || legacy.IsPermanent(err) || len(texts(113)) != 0 {
		t.Errorf("the first part failing: %v (sent %d), want a transient error and nothing sent", err, len(texts(113)))
	}
}

// TestEditFileURLIsNoCaption: XMPP clients correct a file message with
// the file's URL as its body again; that URL must not become the caption
// (Send does not make it one either).
func TestEditFileURLIsNoCaption(t *testing.T) {
	srv := telegramtest.New(t)
	n := newNetwork(t, srv, nil)
	s := open(t, n, &legacytest.Recorder{}, nil)
	ctx := context.Background()
	jpeg := []byte("\xff\xd8\xff\xe0fake jpeg")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/jpeg")
		w.Write(jpeg)
	}))
	defer up.Close()
	link := up.URL + "/upload/abc/cat.jpg"
	caption := func(i int) string { return srv.Messages(42)[i].Text }

	// A photo sent without a caption (the core strips a body equal to
	// the URL), then corrected with the same body.
	id, err := s.Send(ctx, &legacy.Message{Chat: "42", Attachments: []legacy.Attachment{{Name: "cat.jpg", Type: "image/jpeg", Data: jpeg, URL: link}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Edit(ctx, "42", id, link); err != nil {
		t.Errorf("correcting with the file's URL: %v", err)
	}
	if caption(0) != "" {
		t.Errorf("caption after a correction with the file's URL: %q, want none", caption(0))
	}
	// A real caption, then a correction back to the bare URL: emptied.
	if err := s.Edit(ctx, "42", id, "my cat"); err != nil || caption(0) != "my cat" {
		t.Errorf("a caption: %v, %q", err, caption(0))
	}
	if err := s.Edit(ctx, "42", id, " "+link+"\n"); err != nil || caption(0) != "" {
		t.Errorf("back to the URL: %v, caption %q, want none", err, caption(0))
	}
	// Text around a link is a caption.
	if err := s.Edit(ctx, "42", id, "see "+link); err != nil || caption(0) != "see "+link {
		t.Errorf("a caption with a link: %v, %q", err, caption(0))
	}
	for _, c := range srv.Calls("editMessageCaption") {
		if c.Params["caption"] == link {
			t.Errorf("editMessageCaption set the caption to the file's URL")
		}
	}
	// Several files (their text is the first one's caption): the same.
	id, err = s.Send(ctx, &legacy.Message{Chat: "42", Text: "two", Attachments: []legacy.Attachment{
		{Name: "a.jpg", Type: "image/jpeg", Data: jpeg}, {Name: "b.jpg", Type: "image/jpeg", Data: jpeg}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Edit(ctx, "42", id, link); err != nil || caption(1) != "" {
		t.Errorf("several files corrected with a URL: %v, caption %q, want none", err, caption(1))
	}
	// A text message corrected to a link: that is its text.
	id, err = s.Send(ctx, &legacy.Message{Chat: "42", Text: "where?"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Edit(ctx, "42", id, link); err != nil || caption(3) != link {
		t.Errorf("a text message corrected to a link: %v, %q", err, caption(3))
	}
}
