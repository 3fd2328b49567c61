package telegram

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/legacytest"
	"github.com/jabbergate/jabbergate/legacy/telegram/telegramtest"
)

// texts are the texts (or captions) the fake holds for chat, in order.
func texts(srv *telegramtest.Server, chat int64) []string {
	var out []string
	for _, m := range srv.Messages(chat) {
		out = append(out, m.Text)
	}
	return out
}

// TestSendAcceptedUnreadableReply: a sending method's reply that Telegram
// gave after taking the message (HTTP 2xx, or "ok":true) but that cannot
// be read means the message went out. Send takes it as sent, never sends
// it again (the recipient would get it twice), counts reply_malformed and
// returns no id, since it knows no message_id to map corrections,
// retractions and reactions to.
func TestSendAcceptedUnreadableReply(t *testing.T) {
	srv := telegramtest.New(t)
	n := newNetwork(t, srv, nil)
	s := open(t, n, &legacytest.Recorder{}, nil)
	ctx := context.Background()
	malformed := func() uint64 { return n.EventCounts()["reply_malformed"] }

	for i, fault := range []telegramtest.Fault{
		{Status: 200, Body: `{"ok":true,"result":{"message_id":`}, // cut short
		{Status: 200, Body: `{}`},
		{Status: 200, Body: `{"ok":true,"result":"sent"}`}, // an unreadable result
		{Status: 200, Body: `{"ok":true}`},
		{Status: 200, Body: `{"ok":true,"result":{}}`}, // no message_id
	} {
		chat := int64(200 + i)
		fault.Accepted = true
		srv.Inject("sendMessage", fault)
		before := malformed()
		id, err := s.Send(ctx, &legacy.Message{Chat: chatID(chat), Text: "hi"})
		if err != nil || id != "" {
			t.Errorf("reply %q: Send = %q, %v; want no id and no error (sent)", fault.Body, id, err)
		}
		if got := texts(srv, chat); !slices.Equal(got, []string{"hi"}) {
			t.Errorf("reply %q: sent %q, want the message once", fault.Body, got)
		}
		if got := malformed() - before; got != 1 {
			t.Errorf("reply %q: reply_malformed +%d, want +1", fault.Body, got)
		}
	}

	// A web page with a 2xx is no answer of the Bot API but of something
	// in between (a captive portal): not taken as sent, tried again.
	srv.Inject("sendMessage", telegramtest.Fault{Status: 200, Body: "<!DOCTYPE html><html>Log in to the Wi-Fi</html>"})
	if id, err := s.Send(ctx, &legacy.Message{Chat: "230", Text: "hi"}); !errors.Is(err, legacy.ErrUnavailable) || id != "" {
		t.Errorf("a 2xx web page: Send = %q, %v; want ErrUnavailable (not sent)", id, err)
	}
	if id, err := s.Send(ctx, &legacy.Message{Chat: "230", Text: "hi"}); err != nil || id == "" || !slices.Equal(texts(srv, 230), []string{"hi"}) {
		t.Errorf("sent again after the web page: %q, %v, %q", id, err, texts(srv, 230))
	}

	// A file, uploaded.
	srv.Inject("sendDocument", telegramtest.Fault{Status: 200, Body: `{"ok":true,"result":{"message_id":`, Accepted: true})
	id, err := s.Send(ctx, &legacy.Message{Chat: "210", Text: "notes", Attachments: []legacy.Attachment{{Name: "notes.txt", Type: "text/plain", Data: []byte("n")}}})
	if err != nil || id != "" || len(srv.Calls("sendDocument")) != 1 || len(srv.Messages(210)) != 1 {
		t.Errorf("a file: Send = %q, %v, %d calls; want it sent once, without an id", id, err, len(srv.Calls("sendDocument")))
	}

	// A split message: the part whose reply was unreadable is not sent
	// again, nor is the message; it gets no id (one part is unknown).
	A, B, C := strings.Repeat("A", maxText), strings.Repeat("B", maxText), strings.Repeat("C", 100)
	for i, part := range []int{0, 1} {
		chat := int64(220 + i)
		for range part {
			srv.Inject("sendMessage", telegramtest.Fault{})
		}
		srv.Inject("sendMessage", telegramtest.Fault{Status: 200, Body: `{"ok":true,"result":{"message_id":`, Accepted: true})
		id, err := s.Send(ctx, &legacy.Message{Chat: chatID(chat), Text: A + B + C})
		if err != nil || id != "" {
			t.Errorf("part %d unreadable: Send = %q, %v; want no id and no error", part+1, id, err)
		}
		if got := texts(srv, chat); !slices.Equal(got, []string{A, B, C}) {
			t.Errorf("part %d unreadable: sent %.10q, want the three parts once each", part+1, got)
		}
	}

	// A reply that is not Telegram's (a 5xx) still means nothing was
	// taken: the core retries.
	srv.Inject("sendMessage", telegramtest.Fault{Status: 502, Body: "<html>Bad Gateway</html>"})
	if _, err := s.Send(ctx, &legacy.Message{Chat: "230", Text: "hi"}); !errors.Is(err, legacy.ErrUnavailable) || legacy.IsPermanent(err) {
		t.Errorf("a 502 page: %v, want a transient ErrUnavailable", err)
	}
	// Calls that send nothing keep treating an unreadable reply as a
	// passing failure.
	srv.Inject("getMe", telegramtest.Fault{Status: 200, Body: `{"ok":true,"result":{"id":`, Accepted: true})
	if _, err := n.Register(ctx, fields()); !errors.Is(err, legacy.ErrUnavailable) {
		t.Errorf("getMe, unreadable: %v, want ErrUnavailable", err)
	}
}

// TestServerErrorCountedWhateverTheBody: a 5xx counts as server_error,
// also when its body is a proxy's HTML page rather than the Bot API's
// JSON (which is not a malformed Bot API reply), and once only.
func TestServerErrorCountedWhateverTheBody(t *testing.T) {
	srv := telegramtest.New(t)
	n := newNetwork(t, srv, nil)
	ctx := context.Background()
	for _, f := range []telegramtest.Fault{
		{Status: 502, Body: "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"},
		{Status: 503, Body: "<html>Service Temporarily Unavailable</html>"},
		{Status: 500, Description: "Internal Server Error"},
	} {
		srv.Inject("getMe", f)
		if _, err := n.Register(ctx, fields()); !errors.Is(err, legacy.ErrUnavailable) {
			t.Errorf("%d %q: %v, want ErrUnavailable", f.Status, f.Body, err)
		}
	}
	srv.Inject("getMe", telegramtest.Fault{Status: 200, Body: "<html>oops</html>"})
	n.Register(ctx, fields())
	want := map[string]uint64{"server_error": 3, "reply_malformed": 1, "rate_limited": 0, "conflict": 0}
	if got := n.EventCounts(); !maps.Equal(got, want) {
		t.Errorf("EventCounts = %v, want %v", got, want)
	}
}

// TestSplitMessagePartlySent: a split message whose later parts cannot
// follow the first (an outage, a rate limit outlasting the send) fails
// for good, so that the core does not send the first part again, with
// ErrPartlySent: not ErrTooLarge, which would tell the user to shorten a
// message whose size was not the problem.
func TestSplitMessagePartlySent(t *testing.T) {
	srv := telegramtest.New(t)
	n := newNetwork(t, srv, nil)
	s := open(t, n, &legacytest.Recorder{}, nil)
	ctx := context.Background()
	body := strings.Repeat("x", 9000) // three parts

	// The first part goes out, the rest meets 500s.
	srv.Inject("sendMessage", telegramtest.Fault{})
	for range restAttempts {
		srv.Inject("sendMessage", telegramtest.Fault{Status: 500, Description: "Internal Server Error"})
	}
	_, err := s.Send(ctx, &legacy.Message{Chat: "300", Text: body})
	var re *legacy.ReasonError
	if !errors.Is(err, legacy.ErrPartlySent) || errors.Is(err, legacy.ErrTooLarge) || !legacy.IsPermanent(err) || !errors.As(err, &re) {
		t.Fatalf("the rest failing: %v, want a permanent ErrPartlySent (not ErrTooLarge) with a reason", err)
	}
	for _, want := range []string{"3 messages", "only the first arrived", "parts 2 to 3", "could not be reached", "send the rest again"} {
		if !strings.Contains(re.Reason, want) {
			t.Errorf("reason %q does not say %q", re.Reason, want)
		}
	}
	if strings.Contains(strings.ToLower(err.Error()), "too large") {
		t.Errorf("error %q says too large", err)
	}
	if got := texts(srv, 300); len(got) != 1 {
		t.Errorf("sent %d parts, want the first only", len(got))
	}

	// A rate limit that outlasts the send: the same.
	srv.Inject("sendMessage", telegramtest.Fault{})
	srv.Inject("sendMessage", telegramtest.Fault{Status: 429, Description: "Too Many Requests: retry after 30", RetryAfter: 30})
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err = s.Send(dctx, &legacy.Message{Chat: "301", Text: body})
	if !errors.Is(err, legacy.ErrPartlySent) || errors.Is(err, legacy.ErrTooLarge) || errors.Is(err, legacy.ErrRateLimited) ||
		!legacy.IsPermanent(err) || !errors.As(err, &re) || !strings.Contains(re.Reason, "slow down") {
		t.Errorf("a rate limit on the rest: %v, want a permanent ErrPartlySent saying Telegram asked to slow down", err)
	}
}
