package sms_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/sms"
	"github.com/jabbergate/jabbergate/legacy/sms/twilio"
	"github.com/jabbergate/jabbergate/legacy/sms/twilio/twiliotest"
)

// twilioCallback posts a status callback as Twilio would, to the
// StatusCallback URL the adapter gave (callback: the full URL, under
// publicURL).
func twilioCallback(n *sms.Network, callback string, params url.Values) int {
	target := strings.TrimPrefix(callback, publicURL)
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(params.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("X-Twilio-Signature", twilio.Signature(token, callback, params))
	w := httptest.NewRecorder()
	n.Webhook().ServeHTTP(w, r)
	return w.Code
}

// countEvents counts the events of rec of type T.
func countEvents[T legacy.Event](evs []legacy.Event) int {
	n := 0
	for _, ev := range evs {
		if _, ok := ev.(T); ok {
			n++
		}
	}
	return n
}

// A failure reported before Twilio's 201 fails the user's message (Send
// returns it, permanent, with Twilio's code): no Undelivered under an id
// the core does not know yet, no receipt, no other route; a later
// "delivered" for that SID is not reported.
func TestTwilioStatusBeforeAnswer(t *testing.T) {
	e := newEnv(t, nil)
	s, rec := e.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	codes := make(chan int, 1)
	e.tw.BeforeAnswer = func(m twiliotest.Message) {
		go func() {
			codes <- twilioCallback(e.net, m.StatusCallback, url.Values{"MessageSid": {m.SID}, "MessageStatus": {"failed"},
				"ErrorCode": {"30007"}, "From": {m.From}, "To": {m.To}, "AccountSid": {sid}})
		}()
		time.Sleep(300 * time.Millisecond) // the callback is handled before the answer
	}
	_, err := s.Send(context.Background(), &legacy.Message{Chat: contact, Text: "hello", Key: "k1"})
	var ce *legacy.CodeError
	if !errors.Is(err, legacy.ErrPolicy) || !legacy.IsPermanent(err) || !errors.As(err, &ce) || ce.Code != "30007" {
		t.Errorf("Send = %v, want the permanent 30007 failure", err)
	}
	select {
	case code := <-codes:
		if code != http.StatusOK {
			t.Errorf("status callback: %d, want 200", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("status callback not answered")
	}
	if n := countEvents[legacy.Undelivered](rec.Events()); n != 0 {
		t.Errorf("%d Undelivered events, want none (Send reported the failure): %v", n, rec.Events())
	}
	if sent := e.tw.Sent(); len(sent) != 1 || len(e.kn.sent()) != 0 {
		t.Fatalf("sent %d by Twilio, %d by Kannel; want once, by Twilio only", len(sent), len(e.kn.sent()))
	}
	m := e.tw.Sent()[0]
	if code := twilioCallback(e.net, m.StatusCallback, url.Values{"MessageSid": {m.SID}, "MessageStatus": {"delivered"},
		"From": {m.From}, "To": {m.To}, "AccountSid": {sid}}); code != http.StatusOK {
		t.Errorf("delivered after failed: %d", code)
	}
	if n := countEvents[legacy.Receipt](rec.Events()); n != 0 {
		t.Errorf("a receipt for a failed message: %v", rec.Events())
	}

	// "delivered" before the answer: Send succeeds, the receipt follows.
	e.tw.BeforeAnswer = func(m twiliotest.Message) {
		go func() {
			codes <- twilioCallback(e.net, m.StatusCallback, url.Values{"MessageSid": {m.SID}, "MessageStatus": {"delivered"},
				"From": {m.From}, "To": {m.To}, "AccountSid": {sid}})
		}()
		time.Sleep(300 * time.Millisecond)
	}
	id, err := s.Send(context.Background(), &legacy.Message{Chat: contact, Text: "again", Key: "k2"})
	if err != nil {
		t.Fatal(err)
	}
	if code := <-codes; code != http.StatusOK {
		t.Errorf("delivered callback: %d", code)
	}
	if ev := rec.Wait(time.Second, func(ev legacy.Event) bool { r, ok := ev.(legacy.Receipt); return ok && r.ID == id }); ev == nil {
		t.Errorf("no receipt for %s: %v", id, rec.Events())
	}
}

// The same for a Kannel DLR that comes before sendsms answered.
func TestKannelDLRBeforeAnswer(t *testing.T) {
	e := newEnv(t, map[string]string{"routes": "kannel"})
	s, rec := e.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	codes := make(chan int, 1)
	e.kn.mu.Lock()
	e.kn.before = func(q url.Values) {
		dlr := strings.Replace(strings.TrimPrefix(q.Get("dlr-url"), publicURL), "%d", "16", 1)
		go func() { codes <- kannelGet(e.net, dlr).Code }()
		time.Sleep(300 * time.Millisecond)
	}
	e.kn.mu.Unlock()
	_, err := s.Send(context.Background(), &legacy.Message{Chat: contact, Text: "hello", Key: "k1"})
	if !errors.Is(err, legacy.ErrRejected) || !legacy.IsPermanent(err) {
		t.Errorf("Send = %v, want the DLR's rejection", err)
	}
	if code := <-codes; code != http.StatusOK {
		t.Errorf("DLR: %d, want 200", code)
	}
	if n := countEvents[legacy.Undelivered](rec.Events()); n != 0 {
		t.Errorf("%d Undelivered events, want none: %v", n, rec.Events())
	}
}

// A status callback on a SID no send of the gateway returned (another
// application's message on the same number, its callback pointed here) is
// logged and counted, not shown to the user. One that carries the token
// of the gateway's callback URLs is still reported when the SID is not
// known (sent before a restart).
func TestTwilioStatusUnknownSID(t *testing.T) {
	e := newEnv(t, nil)
	_, rec := e.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	before := e.net.EventCounts()["report_unknown"]
	st := url.Values{"MessageSid": {"SMstranger"}, "MessageStatus": {"failed"}, "ErrorCode": {"30007"},
		"From": {myNumber}, "To": {"+15557654321"}, "AccountSid": {sid}}
	if code := twilioCallback(e.net, publicURL+"/twilio/status", st); code != http.StatusOK {
		t.Errorf("unknown SID: %d, want 200", code)
	}
	st.Set("MessageStatus", "delivered")
	if code := twilioCallback(e.net, publicURL+"/twilio/status", st); code != http.StatusOK {
		t.Errorf("unknown SID delivered: %d, want 200", code)
	}
	if n := countEvents[legacy.Undelivered](rec.Events()) + countEvents[legacy.Receipt](rec.Events()); n != 0 {
		t.Errorf("events for a stranger's message: %v", rec.Events())
	}
	if got := e.net.EventCounts()["report_unknown"] - before; got != 2 {
		t.Errorf("report_unknown: +%d, want +2", got)
	}

	st.Set("MessageStatus", "failed")
	st.Set("MessageSid", "SMbeforerestart")
	if code := twilioCallback(e.net, publicURL+"/twilio/status?m=0123456789abcdef", st); code != http.StatusOK {
		t.Errorf("status with a token: %d, want 200", code)
	}
	if ev := rec.Wait(time.Second, func(ev legacy.Event) bool {
		u, ok := ev.(legacy.Undelivered)
		return ok && u.ID == "SMbeforerestart"
	}); ev == nil {
		t.Errorf("no Undelivered for a message sent before a restart: %v", rec.Events())
	}
}

// A "failed" callback that waited for its send longer than the hold (the
// provider answers the send only after the callback was answered) is left
// for that send, which its token names: Send still returns the failure,
// and nothing is reported under an id of its own.
func TestTwilioStatusLongBeforeAnswer(t *testing.T) {
	defer sms.SetHoldMax(200 * time.Millisecond)()
	e := newEnv(t, nil)
	s, rec := e.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	code := 0
	e.tw.BeforeAnswer = func(m twiliotest.Message) {
		// Synchronous: the 201 comes only after the callback's answer,
		// which the hold gives up on first.
		code = twilioCallback(e.net, m.StatusCallback, url.Values{"MessageSid": {m.SID}, "MessageStatus": {"failed"},
			"ErrorCode": {"30006"}, "From": {m.From}, "To": {m.To}, "AccountSid": {sid}})
	}
	_, err := s.Send(context.Background(), &legacy.Message{Chat: contact, Text: "late answer", Key: "k1"})
	var ce *legacy.CodeError
	if !legacy.IsPermanent(err) || !errors.As(err, &ce) || ce.Code != "30006" {
		t.Errorf("Send = %v, want the permanent 30006 failure", err)
	}
	if code != http.StatusOK {
		t.Errorf("status callback: %d, want 200", code)
	}
	time.Sleep(100 * time.Millisecond)
	if n := countEvents[legacy.Undelivered](rec.Events()); n != 0 {
		t.Errorf("%d Undelivered events, want none (Send reported the failure): %v", n, rec.Events())
	}
}
