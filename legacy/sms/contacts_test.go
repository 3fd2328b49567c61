package sms_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/jabbergate/jabbergate/legacy"
)

// Numbers the user exchanges texts with become contacts (legacy.Contact),
// once per number per session: the first time one writes, and the first
// time the user writes to one.
func TestCorrespondentsBecomeContacts(t *testing.T) {
	e := newEnv(t, nil)
	s, rec := e.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	for i, from := range []string{contact, "+15557654321", contact} {
		in := url.Values{"MessageSid": {"SMin" + string(rune('a'+i))}, "AccountSid": {sid}, "From": {from}, "To": {myNumber}, "Body": {"hi"}}
		if w := twilioPost(t, e.net, "/twilio/sms", token, in); w.Code != http.StatusOK {
			t.Fatalf("incoming from %s: %d", from, w.Code)
		}
	}
	for _, to := range []string{"+15559990000", contact, "+15559990000"} {
		if _, err := s.Send(context.Background(), &legacy.Message{Chat: legacy.ChatID(to), Text: "hello"}); err != nil {
			t.Fatal(err)
		}
	}
	var got []legacy.ChatID
	for _, ev := range rec.Events() {
		if c, ok := ev.(legacy.Contact); ok {
			if c.Removed || c.Group {
				t.Errorf("contact event %+v", c)
			}
			got = append(got, c.Chat)
		}
	}
	want := []legacy.ChatID{contact, "+15557654321", "+15559990000"}
	if len(got) != len(want) {
		t.Fatalf("contacts reported: %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("contacts reported: %v, want %v", got, want)
			break
		}
	}
}
