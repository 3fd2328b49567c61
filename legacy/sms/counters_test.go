package sms_test

import (
	"context"
	"testing"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/sms/twilio/twiliotest"
)

// The adapter counts what the core never sees as a stanza: a provider
// answering 200 with an HTML page (taken as sent), failovers, rate limits and
// permanent refusals (legacy.EventCounter → jabbergate_legacy_events_total).
func TestEventCounts(t *testing.T) {
	e := newEnv(t, nil)
	s, _ := e.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	ctx := context.Background()
	before := e.net.EventCounts()
	if _, ok := before["deliver_sm_malformed"]; ok {
		t.Errorf("deliver_sm_malformed exported without an SMPP route: %v", before)
	}

	e.tw.Fail(twiliotest.Fault200HTML) // a 2xx: taken as sent, not failed over
	if _, err := s.Send(ctx, &legacy.Message{Chat: contact, Text: "html"}); err != nil {
		t.Fatal(err)
	}
	e.tw.Fail(twiliotest.Fault429)
	if _, err := s.Send(ctx, &legacy.Message{Chat: contact, Text: "slow down"}); err != nil {
		t.Fatal(err)
	}
	e.tw.OptOut("+15557654321")
	if _, err := s.Send(ctx, &legacy.Message{Chat: "+15557654321", Text: "x"}); err == nil {
		t.Fatal("send to an opted-out number succeeded")
	}
	got := e.net.EventCounts()
	want := map[string]uint64{"provider_reply_malformed": 1, "route_failed": 1, "rate_limited": 1, "send_rejected": 1}
	for k, v := range want {
		if got[k]-before[k] != v {
			t.Errorf("%s: +%d, want +%d (counts %v)", k, got[k]-before[k], v, got)
		}
	}
}
