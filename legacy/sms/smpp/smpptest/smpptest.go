// Package smpptest is a fake SMSC for tests, built on gosmpp's pdu package
// and listening on 127.0.0.1: bind_transceiver (password "secret"),
// enquire_link, unbind, submit_sm with queued error statuses, and
// deliver_sm pushed on demand.
package smpptest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"
)

// SMSC is a fake SMSC built on gosmpp's pdu package: it accepts a
// bind_transceiver with the right password, answers enquire_link, records
// submit_sm (answering with a queued status, if any), and pushes
// deliver_sm on demand, recording the ESME's answers.
type SMSC struct {
	t  testing.TB
	ln net.Listener

	mu       sync.Mutex
	conn     net.Conn
	submits  []*pdu.SubmitSM
	statuses []data.CommandStatusType // next submit_sm_resp statuses
	answers  chan *pdu.DeliverSMResp
	bound    chan struct{}
	nextID   int
	noIDs    int // next ESME_ROK submit_sm_resp without a message_id
	hold     bool
	held     []pdu.PDU // submit_sm_resp held back (HoldSubmitResponses)
}

// HoldSubmitResponses makes the SMSC keep its submit_sm_resp until
// ReleaseSubmitResponses, as a slow SMSC whose delivery receipt overtakes
// its answer to the submit.
func (f *SMSC) HoldSubmitResponses() {
	f.mu.Lock()
	f.hold = true
	f.mu.Unlock()
}

// ReleaseSubmitResponses writes the held submit_sm_resp and answers the
// next ones at once again.
func (f *SMSC) ReleaseSubmitResponses() {
	f.mu.Lock()
	held := f.held
	f.hold, f.held = false, nil
	f.mu.Unlock()
	for _, p := range held {
		f.write(p)
	}
}

func New(t testing.TB) *SMSC {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &SMSC{t: t, ln: ln, answers: make(chan *pdu.DeliverSMResp, 16), bound: make(chan struct{}, 4)}
	go f.accept()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		if f.conn != nil {
			f.conn.Close()
		}
		f.mu.Unlock()
	})
	return f
}

// Addr is the SMSC's host:port.
func (f *SMSC) Addr() string { return f.ln.Addr().String() }

// Bound receives a value after each successful bind.
func (f *SMSC) Bound() <-chan struct{} { return f.bound }

// Submits returns the submit_sm received so far.
func (f *SMSC) Submits() []*pdu.SubmitSM {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*pdu.SubmitSM(nil), f.submits...)
}

// Fail queues command statuses for the next submit_sm_resp.
func (f *SMSC) Fail(st ...data.CommandStatusType) {
	f.mu.Lock()
	f.statuses = append(f.statuses, st...)
	f.mu.Unlock()
}

// OmitMessageIDs makes the next n successful submit_sm_resp carry an
// empty message_id (an SMSC that accepts without naming the message).
func (f *SMSC) OmitMessageIDs(n int) {
	f.mu.Lock()
	f.noIDs += n
	f.mu.Unlock()
}

func (f *SMSC) accept() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conn = c
		f.mu.Unlock()
		go f.serve(c)
	}
}

func (f *SMSC) write(p pdu.PDU) error {
	b := pdu.NewBuffer(make([]byte, 0, 64))
	p.Marshal(b)
	f.mu.Lock()
	c := f.conn
	f.mu.Unlock()
	if c == nil {
		return errors.New("no connection")
	}
	_, err := c.Write(b.Bytes())
	return err
}

func (f *SMSC) serve(c net.Conn) {
	defer c.Close()
	for {
		p, err := pdu.Parse(c)
		if err != nil {
			return
		}
		switch pd := p.(type) {
		case *pdu.BindRequest:
			resp := pd.GetResponse().(*pdu.BindResp)
			if pd.Password != "secret" {
				resp.CommandStatus = data.ESME_RINVPASWD
			}
			f.write(resp)
			if resp.CommandStatus == data.ESME_ROK {
				f.bound <- struct{}{}
			}
		case *pdu.EnquireLink:
			f.write(pd.GetResponse())
		case *pdu.Unbind:
			f.write(pd.GetResponse())
			return
		case *pdu.SubmitSM:
			f.mu.Lock()
			f.submits = append(f.submits, pd)
			st := data.ESME_ROK
			if len(f.statuses) > 0 {
				st, f.statuses = f.statuses[0], f.statuses[1:]
			}
			f.nextID++
			id := f.nextID
			omit := st == data.ESME_ROK && f.noIDs > 0
			if omit {
				f.noIDs--
			}
			f.mu.Unlock()
			resp := pd.GetResponse().(*pdu.SubmitSMResp)
			resp.CommandStatus = st
			if st == data.ESME_ROK && !omit {
				resp.MessageID = fmt.Sprintf("%X", 0xA000+id)
			}
			f.mu.Lock()
			if f.hold {
				f.held = append(f.held, resp)
				f.mu.Unlock()
				continue
			}
			f.mu.Unlock()
			f.write(resp)
		case *pdu.DeliverSMResp:
			f.answers <- pd
		}
	}
}

// Deliver sends a deliver_sm (esm 0x04 for a receipt) and returns the
// ESME's deliver_sm_resp.
func (f *SMSC) Deliver(t testing.TB, from, to, text string, esm byte, enc data.Encoding) *pdu.DeliverSMResp {
	t.Helper()
	return f.DeliverUDH(t, from, to, text, esm, enc, nil)
}

// DeliverRaw sends a deliver_sm whose short_message is exactly sm (for a
// broken user data header: set esm 0x40 yourself), with data_coding
// coding, and returns the ESME's deliver_sm_resp.
func (f *SMSC) DeliverRaw(t testing.TB, from, to string, esm, coding byte, sm []byte) *pdu.DeliverSMResp {
	t.Helper()
	return f.DeliverRawFrom(t, 1, 1, from, to, esm, coding, sm)
}

// DeliverRawFrom is DeliverRaw from a source address of the given type of
// number and numbering plan (0 unknown, 1 international, 2 national, 3
// network specific, 5 alphanumeric; plan 1 ISDN).
func (f *SMSC) DeliverRawFrom(t testing.TB, ton, npi byte, from, to string, esm, coding byte, sm []byte) *pdu.DeliverSMResp {
	t.Helper()
	d := pdu.NewDeliverSM().(*pdu.DeliverSM)
	d.SourceAddr, _ = pdu.NewAddressWithTonNpiAddr(ton, npi, from)
	d.DestAddr, _ = pdu.NewAddressWithTonNpiAddr(1, 1, to)
	d.EsmClass = esm
	if err := d.Message.SetMessageDataWithEncoding(sm, rawCoding(coding)); err != nil {
		t.Fatal(err)
	}
	return f.send(t, d)
}

// rawCoding writes any data_coding octet, gosmpp's known or not; its
// octets are set as they are, never encoded or decoded here.
type rawCoding byte

func (c rawCoding) DataCoding() byte                { return byte(c) }
func (c rawCoding) Encode(s string) ([]byte, error) { return []byte(s), nil }
func (c rawCoding) Decode(b []byte) (string, error) { return string(b), nil }

// DeliverFrame writes frame, a whole deliver_sm PDU as octets (for PDUs
// the pdu package cannot marshal), and returns the ESME's answer.
func (f *SMSC) DeliverFrame(t testing.TB, frame []byte) *pdu.DeliverSMResp {
	t.Helper()
	f.mu.Lock()
	c := f.conn
	f.mu.Unlock()
	if c == nil {
		t.Fatal("no connection")
	}
	if _, err := c.Write(frame); err != nil {
		t.Fatal(err)
	}
	seq := int32(binary.BigEndian.Uint32(frame[12:16]))
	select {
	case r := <-f.answers:
		if r.SequenceNumber != seq {
			t.Errorf("deliver_sm_resp for sequence %d, want %d", r.SequenceNumber, seq)
		}
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no deliver_sm_resp")
		return nil
	}
}

// DeliverUDH is Deliver with a user data header (esm_class 0x40 is added
// when udh is not nil).
func (f *SMSC) DeliverUDH(t testing.TB, from, to, text string, esm byte, enc data.Encoding, udh pdu.UDH) *pdu.DeliverSMResp {
	t.Helper()
	d := pdu.NewDeliverSM().(*pdu.DeliverSM)
	d.SourceAddr, _ = pdu.NewAddressWithTonNpiAddr(1, 1, from)
	d.DestAddr, _ = pdu.NewAddressWithTonNpiAddr(1, 1, to)
	d.EsmClass = esm
	if err := d.Message.SetMessageWithEncoding(text, enc); err != nil {
		t.Fatal(err)
	}
	if udh != nil {
		d.Message.SetUDH(udh)
		d.EsmClass |= 0x40
	}
	return f.send(t, d)
}

// send writes a deliver_sm and waits for its answer.
func (f *SMSC) send(t testing.TB, d *pdu.DeliverSM) *pdu.DeliverSMResp {
	t.Helper()
	if err := f.write(d); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-f.answers:
		if r.SequenceNumber != d.SequenceNumber {
			t.Errorf("deliver_sm_resp for sequence %d, want %d", r.SequenceNumber, d.SequenceNumber)
		}
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no deliver_sm_resp")
		return nil
	}
}
