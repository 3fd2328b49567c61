package smpp_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/sms/smpp"
	"github.com/jabbergate/jabbergate/legacy/sms/smpp/smpptest"
)

func run(t *testing.T, c *smpp.Client, f *smpptest.SMSC) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return")
		}
	})
	select {
	case <-f.Bound():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no bind")
	}
	// Run sets the session right after the bind returned.
	for i := 0; i < 200; i++ {
		if _, err := c.Submit(context.Background(), "", "", nil, false); !errors.Is(err, legacy.ErrUnavailable) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("client never became ready")
}

func TestSubmitParts(t *testing.T) {
	f := smpptest.New(t)
	c := &smpp.Client{Addr: f.Addr(), SystemID: "gw", Password: "secret"}
	run(t, c, f)
	ctx := context.Background()

	ids, err := c.Submit(ctx, "+15550001111", "+15551234567", []string{"hello"}, false)
	if err != nil || len(ids) != 1 || ids[0] == "" {
		t.Fatalf("Submit = %v, %v", ids, err)
	}
	ids, err = c.Submit(ctx, "+15550001111", "+15551234567", []string{"part one ", "part two ", "part three"}, false)
	if err != nil || len(ids) != 3 {
		t.Fatalf("Submit 3 parts = %v, %v", ids, err)
	}
	if _, err := c.Submit(ctx, "+15550001111", "+15551234567", []string{"приве́т ✓"}, true); err != nil {
		t.Fatal(err)
	}
	subs := f.Submits()
	if len(subs) != 5 {
		t.Fatalf("SMSC got %d submit_sm, want 5", len(subs))
	}
	if s := subs[0]; s.EsmClass != 0 || s.Message.UDH() != nil || s.DestAddr.Address() != "15551234567" || s.RegisteredDelivery != 1 {
		t.Errorf("single part: esm %#x udh %v dest %q", s.EsmClass, s.Message.UDH(), s.DestAddr.Address())
	}
	seqs := map[int32]bool{}
	var ref byte
	for i, s := range subs[1:4] {
		if seqs[s.SequenceNumber] {
			t.Errorf("duplicate sequence number %d", s.SequenceNumber)
		}
		seqs[s.SequenceNumber] = true
		total, part, r, ok := s.Message.UDH().GetConcatInfo()
		if !ok || total != 3 || int(part) != i+1 || s.EsmClass != 0x40 {
			t.Errorf("part %d: concat %d/%d ok=%v esm %#x", i+1, part, total, ok, s.EsmClass)
		}
		if i == 0 {
			ref = r
		} else if r != ref {
			t.Errorf("part %d: reference %d, want %d", i+1, r, ref)
		}
		if text, _ := s.Message.GetMessage(); text != []string{"part one ", "part two ", "part three"}[i] {
			t.Errorf("part %d text %q", i+1, text)
		}
	}
	if s := subs[4]; s.Message.Encoding().DataCoding() != data.UCS2Coding {
		t.Errorf("UCS-2 part has data_coding %#x", s.Message.Encoding().DataCoding())
	} else if text, _ := s.Message.GetMessage(); text != "приве́т ✓" {
		t.Errorf("UCS-2 text %q", text)
	}

	// Status mapping.
	for st, want := range map[data.CommandStatusType]error{
		data.ESME_RTHROTTLED: legacy.ErrRateLimited, data.ESME_RMSGQFUL: legacy.ErrRateLimited,
		data.ESME_RINVDSTADR: legacy.ErrInvalidAddress, data.ESME_RSYSERR: legacy.ErrUnavailable,
		data.ESME_RINVSRCADR: legacy.ErrRejected,
	} {
		f.Fail(st)
		if _, err := c.Submit(ctx, "+15550001111", "+15551234567", []string{"x"}, false); !errors.Is(err, want) {
			t.Errorf("status %v: Submit = %v, want %v", st, err, want)
		}
	}
}

func TestDeliverAndReceipts(t *testing.T) {
	f := smpptest.New(t)
	var mu sync.Mutex
	var mos []smpp.MO
	var rcpts []smpp.Receipt
	fail := false
	c := &smpp.Client{Addr: f.Addr(), SystemID: "gw", Password: "secret",
		Deliver: func(m smpp.MO) error {
			mu.Lock()
			defer mu.Unlock()
			if fail {
				return errors.New("store down")
			}
			mos = append(mos, m)
			return nil
		},
		Receipt: func(r smpp.Receipt) error {
			mu.Lock()
			defer mu.Unlock()
			rcpts = append(rcpts, r)
			return nil
		},
	}
	run(t, c, f)
	if r := f.Deliver(t, "15551234567", "15550001111", "hello ✓", 0, data.UCS2); r.CommandStatus != data.ESME_ROK {
		t.Errorf("MO answered %v, want ESME_ROK", r.CommandStatus)
	}
	mu.Lock()
	fail = true
	mu.Unlock()
	if r := f.Deliver(t, "15551234567", "15550001111", "again", 0, data.GSM7BIT); r.CommandStatus != data.ESME_RX_T_APPN {
		t.Errorf("MO with a failing store answered %v, want ESME_RX_T_APPN", r.CommandStatus)
	}
	rt := "id:A001 sub:001 dlvrd:001 submit date:2611242100 done date:2611242101 stat:DELIVRD err:000 text:hello"
	if r := f.Deliver(t, "15551234567", "15550001111", rt, 0x04, data.GSM7BIT); r.CommandStatus != data.ESME_ROK {
		t.Errorf("receipt answered %v", r.CommandStatus)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(mos) != 1 || mos[0].Text != "hello ✓" || mos[0].From != "+15551234567" || mos[0].To != "+15550001111" {
		t.Errorf("MO = %+v", mos)
	}
	if len(rcpts) != 1 || rcpts[0].ID != "A001" || !rcpts[0].Delivered() || rcpts[0].From != "+15551234567" {
		t.Errorf("receipts = %+v", rcpts)
	}
}

func TestBindRefused(t *testing.T) {
	f := smpptest.New(t)
	c := &smpp.Client{Addr: f.Addr(), SystemID: "gw", Password: "wrong"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Run(ctx); !errors.Is(err, legacy.ErrUnavailable) {
		t.Errorf("Run with a wrong password = %v", err)
	}
	if _, err := c.Submit(ctx, "+1", "+2", []string{"x"}, false); !errors.Is(err, legacy.ErrUnavailable) {
		t.Errorf("Submit unbound = %v", err)
	}
}

// TestBrokenUDH sends deliver_sm whose user data header is broken, each
// followed by a good message on the same bind: every broken one is
// answered ESME_RINVESMCLASS and counted, never delivered; the bind stays
// up (no second bind) and the good messages are delivered.
func TestBrokenUDH(t *testing.T) {
	f := smpptest.New(t)
	var mu sync.Mutex
	var mos []smpp.MO
	c := &smpp.Client{Addr: f.Addr(), SystemID: "gw", Password: "secret",
		Deliver: func(m smpp.MO) error {
			mu.Lock()
			defer mu.Unlock()
			mos = append(mos, m)
			return nil
		},
	}
	run(t, c, f)
	hi := []byte("hi")
	cases := []struct {
		name string
		sm   []byte
	}{
		{"UDHL beyond the payload", append([]byte{0x10, 0x00, 0x03, 7, 2, 1}, hi...)},
		{"UDHL beyond a short payload", []byte{0x05, 0x00, 0x03}},
		{"UDHL 0", append([]byte{0x00}, hi...)},
		{"element beyond UDHL", append([]byte{0x03, 0x00, 0x03, 7, 2, 1}, hi...)},
		{"element length beyond the payload", []byte{0x05, 0x00, 0xF0, 7, 2, 1}},
		{"element cut by UDHL", append([]byte{0x06, 0x00, 0x03, 7, 2, 1, 0x24}, hi...)},
		{"8-bit concat of 2 octets", append([]byte{0x04, 0x00, 0x02, 7, 2}, hi...)},
		{"16-bit concat of 3 octets", append([]byte{0x05, 0x08, 0x03, 0, 7, 2}, hi...)},
		{"total 0", append([]byte{0x05, 0x00, 0x03, 7, 0, 1}, hi...)},
		{"part 0", append([]byte{0x05, 0x00, 0x03, 7, 2, 0}, hi...)},
		{"part beyond total", append([]byte{0x05, 0x00, 0x03, 7, 2, 3}, hi...)},
		{"16-bit part beyond total", append([]byte{0x06, 0x08, 0x04, 0, 7, 2, 5}, hi...)},
	}
	for i, tc := range cases {
		r := f.DeliverRaw(t, "15551234567", "15550001111", 0x40, 0, tc.sm)
		if r.CommandStatus != data.ESME_RINVESMCLASS {
			t.Errorf("%s: answered %v, want ESME_RINVESMCLASS", tc.name, r.CommandStatus)
		}
		if got := c.Malformed(); got != uint64(i+1) {
			t.Errorf("%s: Malformed() = %d, want %d", tc.name, got, i+1)
		}
		if r := f.Deliver(t, "15551234567", "15550001111", "good "+tc.name, 0, data.GSM7BIT); r.CommandStatus != data.ESME_ROK {
			t.Errorf("good message after %s: answered %v", tc.name, r.CommandStatus)
		}
	}
	// A good UDH with an element we do not know next to the concatenation
	// element still goes through.
	good := append([]byte{0x09, 0x24, 0x02, 1, 2, 0x00, 0x03, 9, 2, 1}, hi...)
	if r := f.DeliverRaw(t, "15551234567", "15550001111", 0x40, 0, good); r.CommandStatus != data.ESME_ROK {
		t.Errorf("good UDH answered %v", r.CommandStatus)
	}
	// A deliver_sm whose sm_length runs past the PDU: refused as
	// permanent, the bind stays.
	d := pdu.NewDeliverSM().(*pdu.DeliverSM)
	d.SourceAddr, _ = pdu.NewAddressWithTonNpiAddr(1, 1, "15551234567")
	d.DestAddr, _ = pdu.NewAddressWithTonNpiAddr(1, 1, "15550001111")
	d.Message.SetMessageWithEncoding("cut", data.GSM7BIT)
	b := pdu.NewBuffer(nil)
	d.Marshal(b)
	frame := b.Bytes()
	frame[len(frame)-4] = 40 // sm_length: 40 octets, 3 present
	if r := f.DeliverFrame(t, frame); r.CommandStatus != data.ESME_RX_P_APPN {
		t.Errorf("sm_length past the PDU answered %v, want ESME_RX_P_APPN", r.CommandStatus)
	}
	if r := f.Deliver(t, "15551234567", "15550001111", "after", 0, data.GSM7BIT); r.CommandStatus != data.ESME_ROK {
		t.Errorf("good message after a cut PDU: answered %v", r.CommandStatus)
	}
	select {
	case <-f.Bound():
		t.Error("the bind was dropped and bound again")
	default:
	}
	mu.Lock()
	defer mu.Unlock()
	if len(mos) != len(cases)+2 {
		t.Fatalf("delivered %d messages, want %d: %+v", len(mos), len(cases)+2, mos)
	}
	for i, tc := range cases {
		if mos[i].Text != "good "+tc.name || mos[i].Total != 0 {
			t.Errorf("message %d = %+v", i, mos[i])
		}
	}
	if last := mos[len(cases)]; last.Text != "hi" || last.Total != 2 || last.Part != 1 || last.Ref != 9 {
		t.Errorf("message with a good UDH = %+v", last)
	}
}
