package sms_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

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

// partTaken fails the test unless the SMSC's deliver_sm got ESME_ROK.
func partTaken(t *testing.T, r *pdu.DeliverSMResp) {
	t.Helper()
	if r.CommandStatus != data.ESME_ROK {
		t.Fatalf("part answered %v", r.CommandStatus)
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
	ok := func(r *pdu.DeliverSMResp) { t.Helper(); partTaken(t, r) }
	ok(f.DeliverUDH(t, from, to, "world", 0, data.GSM7BIT, ie8(7, 3, 2)))
	ok(f.DeliverUDH(t, from, to, "world", 0, data.GSM7BIT, ie8(7, 3, 2))) // duplicate
	ok(f.DeliverUDH(t, from, to, "Hello ", 0, data.GSM7BIT, ie8(7, 3, 1)))
	var saved []byte
	for _, ev := range rec.Events() {
		if st, ok := ev.(legacy.SaveState); ok {
			saved = st.State
		}
	}
	if !strings.Contains(string(saved), base64.StdEncoding.EncodeToString([]byte("Hello "))) || len(incomingTexts(rec)) != 0 {
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

// ucs2Octets is s in UTF-16BE, as data_coding 8 carries it.
func ucs2Octets(s string) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = append(b, byte(u>>8), byte(u))
	}
	return b
}

// TestSMPPConcatSplitCharacter: phones cut long messages by octets, so a
// GSM-7 escape pair or a UTF-16 surrogate pair may straddle two parts;
// the parts are joined before they are decoded.
func TestSMPPConcatSplitCharacter(t *testing.T) {
	f, e := smppEnv(t, nil)
	_, rec := e.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	waitBound(t, f)
	from, to := strings.TrimPrefix(contact, "+"), strings.TrimPrefix(myNumber, "+")
	udh := func(ref, total, part byte) []byte { return []byte{5, 0, 3, ref, total, part} }
	ok := func(r *pdu.DeliverSMResp) { t.Helper(); partTaken(t, r) }
	// GSM-7 (unpacked): part 1 ends with the escape of "€" (0x1B 0x65).
	ok(f.DeliverRaw(t, from, to, 0x40, 0, append(udh(8, 2, 1), append([]byte(strings.Repeat("x", 152)), 0x1B)...)))
	ok(f.DeliverRaw(t, from, to, 0x40, 0, append(udh(8, 2, 2), 0x65, 'O', 'K')))
	// UCS-2: 😀 (a surrogate pair) cut after its high half.
	u := ucs2Octets(strings.Repeat("a", 66) + "😀b")
	ok(f.DeliverRaw(t, from, to, 0x40, 8, append(udh(9, 2, 1), u[:134]...)))
	ok(f.DeliverRaw(t, from, to, 0x40, 8, append(udh(9, 2, 2), u[134:]...)))
	want := []string{strings.Repeat("x", 152) + "€OK", strings.Repeat("a", 66) + "😀b"}
	if got := incomingTexts(rec); !slices.Equal(got, want) {
		t.Errorf("incoming = %q\nwant %q", got, want)
	}
}

// TestSMPPDataCodingGroups reads the GSM 03.38 data_coding groups that
// carry a message class or an indication by their alphabet.
func TestSMPPDataCodingGroups(t *testing.T) {
	f, e := smppEnv(t, nil)
	_, rec := e.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	waitBound(t, f)
	from, to := strings.TrimPrefix(contact, "+"), strings.TrimPrefix(myNumber, "+")
	cases := []struct {
		coding byte
		sm     []byte
		want   string
	}{
		{0x18, ucs2Octets("class 0 ✓"), "class 0 ✓"}, // UCS-2, class 0 (flash)
		{0x19, ucs2Octets("class 1 ✓"), "class 1 ✓"},
		{0x48, ucs2Octets("auto-delete ✓"), "auto-delete ✓"},
		{0xE8, ucs2Octets("voicemail ✓"), "voicemail ✓"},
		{0x11, []byte("GSM class 1"), "GSM class 1"},
		{0xF0, []byte("GSM flash"), "GSM flash"},
		{0x03, []byte("caf\xe9"), "café"}, // SMPP's own Latin-1
	}
	for _, c := range cases {
		if r := f.DeliverRaw(t, from, to, 0, c.coding, c.sm); r.CommandStatus != data.ESME_ROK {
			t.Fatalf("data_coding 0x%02X answered %v", c.coding, r.CommandStatus)
		}
	}
	got := incomingTexts(rec)
	for i, c := range cases {
		if i >= len(got) || got[i] != c.want {
			t.Errorf("data_coding 0x%02X: incoming %q, want %q", c.coding, got, c.want)
		}
	}
}

// TestSMPPSenderWithoutPlus: an SMSC that sends an international number
// without "+" and with type of number 0 (unknown) names the same contact
// as with it, one the user can answer.
func TestSMPPSenderWithoutPlus(t *testing.T) {
	f, e := smppEnv(t, nil)
	s, rec := e.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	waitBound(t, f)
	to := strings.TrimPrefix(myNumber, "+")
	if r := f.DeliverRawFrom(t, 0, 1, "447700900123", to, 0, 0, []byte("from the UK")); r.CommandStatus != data.ESME_ROK {
		t.Fatalf("MO answered %v", r.CommandStatus)
	}
	// Our own number without "+", type unknown: still our session.
	if r := f.DeliverRawFrom(t, 0, 1, "447700900123", to, 0, 0, []byte("again")); r.CommandStatus != data.ESME_ROK {
		t.Fatalf("MO answered %v", r.CommandStatus)
	}
	for _, ev := range rec.Events() {
		if m, ok := ev.(legacy.Incoming); ok && m.Chat != "+447700900123" {
			t.Errorf("incoming from %q, want +447700900123", m.Chat)
		}
	}
	if len(incomingTexts(rec)) != 2 {
		t.Fatalf("incoming = %q", incomingTexts(rec))
	}
	if !waitFor(10*time.Second, func() bool {
		_, err := s.Send(context.Background(), &legacy.Message{Chat: "+447700900123", Text: "hello"})
		return err == nil
	}) {
		t.Fatal("the reply was not sent")
	}
	if sm := f.Submits()[len(f.Submits())-1]; sm.DestAddr.Address() != "447700900123" {
		t.Errorf("reply to %q", sm.DestAddr.Address())
	}
	// A short code and an alphanumeric sender stay as they came.
	f.DeliverRawFrom(t, 3, 0, "72345", to, 0, 0, []byte("short code"))
	f.DeliverRawFrom(t, 5, 0, "VODAFONE", to, 0, 0, []byte("alphanumeric"))
	var chats []legacy.ChatID
	for _, ev := range rec.Events() {
		if m, ok := ev.(legacy.Incoming); ok {
			chats = append(chats, m.Chat)
		}
	}
	if len(chats) != 4 || chats[2] != "72345" || chats[3] != "VODAFONE" {
		t.Errorf("chats = %q", chats)
	}
}

// TestSMPPPartReceipts: the failure of any part of a long message is the
// message's failure, reported once; "delivered" comes with the last part
// and never after a failure.
func TestSMPPPartReceipts(t *testing.T) {
	f, e := smppEnv(t, nil)
	s, rec := e.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	waitBound(t, f)
	ctx := context.Background()
	text := strings.Repeat("long GSM text ", 15) // 2 parts
	var id legacy.MessageID
	if !waitFor(10*time.Second, func() bool {
		var err error
		id, err = s.Send(ctx, &legacy.Message{Chat: contact, Text: text})
		return err == nil
	}) {
		t.Fatal("no send over SMPP")
	}
	subs := f.Submits()
	if len(subs) != 2 {
		t.Fatalf("%d submit_sm, want 2", len(subs))
	}
	first := fmt.Sprintf("%X", 0xA000+1) // the fake SMSC's ids, in order
	if string(id) != fmt.Sprintf("smpp-%X", 0xA000+2) {
		t.Fatalf("Send = %s, want the last part's id", id)
	}
	from, to := strings.TrimPrefix(contact, "+"), strings.TrimPrefix(myNumber, "+")
	receipt := func(smscID, stat string) {
		t.Helper()
		rt := "id:" + smscID + " sub:001 dlvrd:000 submit date:2612082100 done date:2612082101 stat:" + stat + " err:000 text:long"
		if r := f.Deliver(t, from, to, rt, 0x04, data.GSM7BIT); r.CommandStatus != data.ESME_ROK {
			t.Fatalf("receipt answered %v", r.CommandStatus)
		}
	}
	receipt(first, "DELIVRD") // a part: not yet the message
	receipt(first, "UNDELIV")
	receipt(first, "UNDELIV") // the SMSC's repeat
	receipt(strings.TrimPrefix(string(id), "smpp-"), "DELIVRD")
	var undelivered, receipts int
	for _, ev := range rec.Events() {
		switch ev := ev.(type) {
		case legacy.Undelivered:
			undelivered++
			var ce *legacy.CodeError
			if ev.ID != id || !errors.As(ev.Err, &ce) || ce.Code != "UNDELIV" {
				t.Errorf("Undelivered = %+v, want on %s with UNDELIV", ev, id)
			}
		case legacy.Receipt:
			receipts++
		}
	}
	if undelivered != 1 || receipts != 0 {
		t.Errorf("%d Undelivered, %d Receipt; want 1 and 0", undelivered, receipts)
	}
}
