package sms_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/legacytest"
	"github.com/jabbergate/jabbergate/legacy/sms/smpp/smpptest"
	"github.com/jabbergate/jabbergate/legacy/sms/twilio/twiliotest"
)

// TestSMPPRoute drives the Network over a fake SMSC: the shared bind comes
// up with the first session, long messages go out in concatenated parts,
// MO and receipts come back, and Twilio fails over to SMPP.
func TestSMPPRoute(t *testing.T) {
	f := smpptest.New(t)
	e := newEnv(t, map[string]string{"routes": "twilio,smpp", "smpp_addr": f.Addr(), "smpp_system_id": "gw",
		"smpp_password": "secret", "help_text": "Example gateway: reply STOP to opt out."})
	s, rec := e.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	select {
	case <-f.Bound():
	case <-time.After(10 * time.Second):
		t.Fatal("no SMPP bind")
	}
	ctx := context.Background()
	text := strings.Repeat("long GSM text ", 15) // 210 septets: 2 parts
	var id legacy.MessageID
	var err error
	for i := 0; i < 200; i++ {
		e.tw.Fail(twiliotest.Fault500) // Twilio down: SMPP takes it
		if id, err = s.Send(ctx, &legacy.Message{Chat: contact, Text: text}); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond) // the bind's session is set just after the bind
	}
	if err != nil || !strings.HasPrefix(string(id), "smpp-") {
		t.Fatalf("Send over SMPP = %q, %v", id, err)
	}
	subs := f.Submits()
	if len(subs) != 2 {
		t.Fatalf("SMSC got %d submit_sm, want 2", len(subs))
	}
	var joined string
	for i, sm := range subs {
		total, part, _, ok := sm.Message.UDH().GetConcatInfo()
		if !ok || total != 2 || int(part) != i+1 || sm.DestAddr.Address() != strings.TrimPrefix(contact, "+") {
			t.Errorf("part %d: concat %d/%d %v, dest %q", i+1, part, total, ok, sm.DestAddr.Address())
		}
		p, _ := sm.Message.GetMessage()
		joined += p
	}
	if joined != text || subs[0].SequenceNumber == subs[1].SequenceNumber {
		t.Errorf("parts join to %q (sequences %d, %d)", joined, subs[0].SequenceNumber, subs[1].SequenceNumber)
	}

	// Receipt of the last part → legacy.Receipt on the id Send returned.
	smscID := strings.TrimPrefix(string(id), "smpp-")
	rt := "id:" + smscID + " sub:001 dlvrd:001 submit date:2611242100 done date:2611242101 stat:DELIVRD err:000 text:long"
	if r := f.Deliver(t, strings.TrimPrefix(contact, "+"), strings.TrimPrefix(myNumber, "+"), rt, 0x04, data.GSM7BIT); r.CommandStatus != data.ESME_ROK {
		t.Errorf("receipt answered %v", r.CommandStatus)
	}
	if rec.Wait(5*time.Second, func(ev legacy.Event) bool {
		r, ok := ev.(legacy.Receipt)
		return ok && r.ID == id && r.Chat == contact
	}) == nil {
		t.Errorf("no receipt for %s: %v", id, rec.Events())
	}

	// A final failure → legacy.Undelivered with the receipt's state.
	rt = strings.Replace(rt, "stat:DELIVRD", "stat:UNDELIV", 1)
	if r := f.Deliver(t, strings.TrimPrefix(contact, "+"), strings.TrimPrefix(myNumber, "+"), rt, 0x04, data.GSM7BIT); r.CommandStatus != data.ESME_ROK {
		t.Errorf("failure receipt answered %v", r.CommandStatus)
	}
	if rec.Wait(5*time.Second, func(ev legacy.Event) bool {
		u, ok := ev.(legacy.Undelivered)
		var ce *legacy.CodeError
		return ok && u.ID == id && errors.As(u.Err, &ce) && ce.Code == "UNDELIV"
	}) == nil {
		t.Errorf("no Undelivered for UNDELIV: %v", rec.Events())
	}

	// MO: taken → ESME_ROK; store down → ESME_RX_T_APPN; unknown number → ESME_RX_T_APPN.
	from, to := strings.TrimPrefix(contact, "+"), strings.TrimPrefix(myNumber, "+")
	if r := f.Deliver(t, from, to, "hi from SMPP ✓", 0, data.UCS2); r.CommandStatus != data.ESME_ROK {
		t.Errorf("MO answered %v", r.CommandStatus)
	}
	if rec.Wait(5*time.Second, func(ev legacy.Event) bool {
		m, ok := ev.(legacy.Incoming)
		return ok && m.Text == "hi from SMPP ✓" && m.Chat == contact
	}) == nil {
		t.Errorf("no incoming: %v", rec.Events())
	}
	rec.SetFail(errors.New("store down"))
	if r := f.Deliver(t, from, to, "lost?", 0, data.GSM7BIT); r.CommandStatus != data.ESME_RX_T_APPN {
		t.Errorf("MO with the store down answered %v, want ESME_RX_T_APPN", r.CommandStatus)
	}
	rec.SetFail(nil)
	if r := f.Deliver(t, from, "15559990000", "nobody", 0, data.GSM7BIT); r.CommandStatus != data.ESME_RX_T_APPN {
		t.Errorf("MO for a number without session answered %v", r.CommandStatus)
	}
	// HELP is answered through SMPP with help_text.
	if r := f.Deliver(t, from, to, "help", 0, data.GSM7BIT); r.CommandStatus != data.ESME_ROK {
		t.Errorf("HELP answered %v", r.CommandStatus)
	}
	if !waitFor(10*time.Second, func() bool {
		subs := f.Submits()
		last, _ := subs[len(subs)-1].Message.GetMessage()
		return last == "Example gateway: reply STOP to opt out."
	}) {
		t.Errorf("no HELP reply through SMPP")
	}
}

func smppEnv(t *testing.T, extra map[string]string) (*smpptest.SMSC, *env) {
	t.Helper()
	f := smpptest.New(t)
	opts := map[string]string{"routes": "smpp", "smpp_addr": f.Addr(), "smpp_system_id": "gw", "smpp_password": "secret"}
	for k, v := range extra {
		opts[k] = v
	}
	return f, newEnv(t, opts)
}

func waitBound(t *testing.T, f *smpptest.SMSC) {
	t.Helper()
	select {
	case <-f.Bound():
	case <-time.After(10 * time.Second):
		t.Fatal("no SMPP bind")
	}
}

func incomingTexts(rec *legacytest.Recorder) []string {
	var out []string
	for _, ev := range rec.Events() {
		if m, ok := ev.(legacy.Incoming); ok {
			out = append(out, m.Text)
		}
	}
	return out
}

// TestSMPPConcatenatedMO reassembles parts (8-bit and 16-bit references,
// out of order, duplicated), keeps every part durable in the session state
// before acknowledging it, and survives a store failure on the last part.
func TestSMPPConcatenatedMO(t *testing.T) {
	f, e := smppEnv(t, nil)
	_, rec := e.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	waitBound(t, f)
	from, to := strings.TrimPrefix(contact, "+"), strings.TrimPrefix(myNumber, "+")
	ie8 := func(ref, total, part byte) pdu.UDH { return pdu.UDH{pdu.NewIEConcatMessage(total, part, ref)} }
	ie16 := func(ref uint16, total, part byte) pdu.UDH {
		return pdu.UDH{pdu.InfoElement{ID: 0x08, Data: []byte{byte(ref >> 8), byte(ref), total, part}}}
	}
	ok := func(r *pdu.DeliverSMResp) {
		t.Helper()
		if r.CommandStatus != data.ESME_ROK {
			t.Fatalf("part answered %v", r.CommandStatus)
		}
	}
	ok(f.DeliverUDH(t, from, to, "world", 0, data.GSM7BIT, ie8(7, 3, 2)))
	ok(f.DeliverUDH(t, from, to, "world", 0, data.GSM7BIT, ie8(7, 3, 2))) // duplicate
	ok(f.DeliverUDH(t, from, to, "Hello ", 0, data.GSM7BIT, ie8(7, 3, 1)))
	var saved []byte
	for _, ev := range rec.Events() {
		if st, ok := ev.(legacy.SaveState); ok {
			saved = st.State
		}
	}
	if !strings.Contains(string(saved), "Hello ") || len(incomingTexts(rec)) != 0 {
		t.Fatalf("after 2 of 3 parts: state %s, incoming %q", saved, incomingTexts(rec))
	}
	// The last part arrives while the store is down: temporary error, then
	// the SMSC's redelivery completes the message.
	rec.SetFail(errors.New("store down"))
	if r := f.DeliverUDH(t, from, to, "!", 0, data.GSM7BIT, ie8(7, 3, 3)); r.CommandStatus != data.ESME_RX_T_APPN {
		t.Errorf("last part with the store down answered %v", r.CommandStatus)
	}
	rec.SetFail(nil)
	ok(f.DeliverUDH(t, from, to, "!", 0, data.GSM7BIT, ie8(7, 3, 3)))
	if got := incomingTexts(rec); len(got) != 1 || got[0] != "Hello world!" {
		t.Errorf("incoming = %q, want one \"Hello world!\"", got)
	}
	// 16-bit reference, UCS-2, in reverse order.
	ok(f.DeliverUDH(t, from, to, "мир ✓", 0, data.UCS2, ie16(0x1234, 2, 2)))
	ok(f.DeliverUDH(t, from, to, "привет ", 0, data.UCS2, ie16(0x1234, 2, 1)))
	if got := incomingTexts(rec); len(got) != 2 || got[1] != "привет мир ✓" {
		t.Errorf("incoming = %q", got)
	}
}

// TestSMPPConcatTimeout delivers what arrived, with a marker, when parts
// stop coming.
func TestSMPPConcatTimeout(t *testing.T) {
	f, e := smppEnv(t, map[string]string{"smpp_concat_timeout": "50ms"})
	_, rec := e.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	waitBound(t, f)
	udh := pdu.UDH{pdu.NewIEConcatMessage(3, 1, 9)}
	if r := f.DeliverUDH(t, strings.TrimPrefix(contact, "+"), strings.TrimPrefix(myNumber, "+"), "first ", 0, data.GSM7BIT, udh); r.CommandStatus != data.ESME_ROK {
		t.Fatalf("part answered %v", r.CommandStatus)
	}
	ev := rec.Wait(10*time.Second, func(ev legacy.Event) bool { _, ok := ev.(legacy.Incoming); return ok })
	if m, _ := ev.(legacy.Incoming); m.Text != "first [part 2 missing][part 3 missing]" || m.Chat != contact {
		t.Errorf("timed-out message = %+v", ev)
	}
}

// ESME_ROK without a message_id: the SMSC took the message; it is sent
// (not resent) under an id of its own, never "smpp-", which every receipt
// without an id would match.
func TestSMPPAcceptedWithoutID(t *testing.T) {
	f, e := smppEnv(t, nil)
	s, _ := e.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	waitBound(t, f)
	f.OmitMessageIDs(1)
	var id legacy.MessageID
	var err error
	for i := 0; i < 200; i++ {
		if id, err = s.Send(context.Background(), &legacy.Message{Chat: contact, Text: "no id", Key: "k1"}); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond) // the bind's session is set just after the bind
	}
	if err != nil || !strings.HasPrefix(string(id), "smpp-noid-") || len(f.Submits()) != 1 {
		t.Errorf("Send = %q, %v (%d submit_sm); want one submit under a smpp-noid- id", id, err, len(f.Submits()))
	}
}

// TestSMPPReceiptBeforeSubmitResp: a failure receipt that overtakes the
// submit_sm_resp of its message is answered ESME_RX_T_APPN (the bind's
// reading goroutine cannot wait for that answer, which it must read
// itself), so the SMSC delivers it again; delivered again once Send has
// returned the id, it is reported on that id.
func TestSMPPReceiptBeforeSubmitResp(t *testing.T) {
	f, e := smppEnv(t, nil)
	s, rec := e.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	waitBound(t, f)
	ctx := context.Background()
	// The bind's session is set just after the bind: a first message.
	if !waitFor(10*time.Second, func() bool { _, err := s.Send(ctx, &legacy.Message{Chat: contact, Text: "first"}); return err == nil }) {
		t.Fatal("no send over SMPP")
	}
	f.HoldSubmitResponses()
	type result struct {
		id  legacy.MessageID
		err error
	}
	done := make(chan result, 1)
	go func() {
		id, err := s.Send(ctx, &legacy.Message{Chat: contact, Text: "overtaken"})
		done <- result{id, err}
	}()
	if !waitFor(10*time.Second, func() bool {
		subs := f.Submits()
		m, _ := subs[len(subs)-1].Message.GetMessage()
		return m == "overtaken"
	}) {
		t.Fatal("the submit_sm never reached the SMSC")
	}
	smscID := fmt.Sprintf("%X", 0xA000+len(f.Submits())) // the id its held answer carries
	rt := "id:" + smscID + " sub:001 dlvrd:000 submit date:2612072100 done date:2612072101 stat:UNDELIV err:001 text:overtaken"
	from, to := strings.TrimPrefix(contact, "+"), strings.TrimPrefix(myNumber, "+")
	if r := f.Deliver(t, from, to, rt, 0x04, data.GSM7BIT); r.CommandStatus != data.ESME_RX_T_APPN {
		t.Errorf("receipt overtaking its submit_sm_resp answered %v, want ESME_RX_T_APPN", r.CommandStatus)
	}
	f.ReleaseSubmitResponses()
	var res result
	select {
	case res = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Send did not return after the answer")
	}
	if res.err != nil || res.id != legacy.MessageID("smpp-"+smscID) {
		t.Fatalf("Send = %q, %v; want smpp-%s", res.id, res.err, smscID)
	}
	for _, ev := range rec.Events() {
		if u, ok := ev.(legacy.Undelivered); ok {
			t.Fatalf("the overtaking receipt was reported before the id was known: %+v", u)
		}
	}
	// The SMSC's redelivery: reported on the id Send returned.
	if r := f.Deliver(t, from, to, rt, 0x04, data.GSM7BIT); r.CommandStatus != data.ESME_ROK {
		t.Errorf("redelivered receipt answered %v", r.CommandStatus)
	}
	if rec.Wait(5*time.Second, func(ev legacy.Event) bool {
		u, ok := ev.(legacy.Undelivered)
		return ok && u.ID == res.id
	}) == nil {
		t.Errorf("no Undelivered on %s: %v", res.id, rec.Events())
	}
}
