// Package smpp is the SMPP 3.4 route of the SMS adapter, over
// github.com/linxGnu/gosmpp: one bind_transceiver per Client with
// enquire_link keep-alive and automatic rebind.
//
//   - MT: Submit sends one submit_sm per part the caller split (the sms
//     package's own counter, not gosmpp's Split, which over-splits and
//     copies sequence numbers): data_coding 0 (SMSC default alphabet,
//     unpacked GSM-7) or 8 (UCS-2), and for several parts a UDH with the
//     8-bit-reference concatenation element (IE 0x00) and esm_class 0x40;
//     registered_delivery 1 asks for receipts. Every part is a new PDU with
//     its own sequence number; submit_sm_resp statuses are mapped to
//     legacy sentinels (ESME_RTHROTTLED and ESME_RMSGQFUL → rate limited,
//     ESME_RINVDSTADR → invalid address, others rejected).
//   - MO: each deliver_sm is handed to Deliver and answered ESME_ROK only
//     when it returned nil, ESME_RX_T_APPN (temporary) otherwise, so the
//     SMSC redelivers.
//   - Receipts: deliver_sm with esm_class bit 0x04, read from the
//     receipted_message_id TLV or the "id:… stat:…" text of SMPP 3.4
//     appendix B, handed to Receipt.
//
// Concatenated MO parts are reported as parts (MO.Ref, Part, Total) with
// their raw user data (MO.Data, Coding); package sms reassembles them and
// decodes the joined octets (Decode). A data_coding of the GSM 03.38
// groups (message class, automatic deletion, message waiting) is mapped
// to its alphabet's SMPP value before gosmpp reads it (dataCoding).
//
// Malformed deliver_sm (guard.go): every deliver_sm is checked before
// gosmpp parses it. A broken UDH (UDHL 0 or past the short_message, an
// element running past UDHL, a concatenation element of the wrong length,
// a total of 0, a part 0 or beyond the total) is answered
// ESME_RINVESMCLASS (0x43): the esm_class announces a header (UDHI) that
// the short_message does not hold. It is a permanent status on purpose:
// the same octets would fail again, and a temporary one (ESME_RSYSERR,
// ESME_RX_T_APPN) makes SMSCs redeliver it forever. Other deliver_sm that
// do not parse (sm_length past the PDU, bad TLVs) get ESME_RX_P_APPN
// (0x65, permanent). The bind stays up, the refusal is logged (Log) and
// counted (Malformed), and the next PDUs flow.
//
// Not yet: SAR TLVs, message_payload (a UDHI deliver_sm with an empty
// short_message is read as empty), separate TX/RX binds, TLS, windowing
// limits.
package smpp

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/linxGnu/gosmpp"
	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"

	"github.com/jabbergate/jabbergate/legacy"
)

// MO is a mobile-originated message.
type MO struct {
	// From and To are the addresses, with "+" when their TON is
	// international (1).
	From, To, Text string
	// Data is the user data after the header, as the SMSC sent it, and
	// Coding its data_coding (normalised, see dataCoding): the parts of a
	// concatenated message are joined as octets and decoded together
	// (Decode), as a character may straddle two parts (a GSM-7 escape
	// pair, a UTF-16 surrogate pair).
	Data   []byte
	Coding byte
	// Ref, Part and Total describe a part of a concatenated message (UDH
	// element 0x00 with an 8-bit reference or 0x08 with a 16-bit one);
	// Total is 0 for a single message.
	Ref         uint16
	Part, Total byte
}

// Receipt is a delivery receipt.
type Receipt struct {
	// ID is the SMSC's message id, as submit_sm_resp gave it.
	ID string
	// From is the recipient of the original message (the receipt's
	// source), To our number.
	From, To string
	// State is the stat field (DELIVRD, UNDELIV, EXPIRED, REJECTD, …).
	State string
}

// Delivered reports whether the receipt is a final success.
func (r Receipt) Delivered() bool { return r.State == "DELIVRD" }

// Client is one SMPP bind. Set the fields, then call Run; Submit works
// while Run is bound. Safe for concurrent use.
type Client struct {
	Addr, SystemID, Password, SystemType string
	// Deliver and Receipt receive what the SMSC pushes. They are called
	// one at a time from the reading goroutine; a nil return
	// acknowledges the deliver_sm.
	Deliver func(MO) error
	Receipt func(Receipt) error
	// Timeout bounds a submit (default 30s).
	Timeout time.Duration
	// Log receives a line for every refused deliver_sm (nil: slog's
	// default logger).
	Log *slog.Logger

	guard     guard
	malformed atomic.Uint64

	mu      sync.Mutex
	sess    *gosmpp.Session
	pending map[int32]chan *pdu.SubmitSMResp
}

// Run binds and stays bound (rebinding after failures) until ctx ends.
// It returns the first bind's error, or nil when ctx ended.
func (c *Client) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.pending == nil {
		c.pending = map[int32]chan *pdu.SubmitSMResp{}
	}
	c.mu.Unlock()
	auth := gosmpp.Auth{SMSC: c.Addr, SystemID: c.SystemID, Password: c.Password, SystemType: c.SystemType}
	dial := func(addr string) (net.Conn, error) {
		conn, err := gosmpp.NonTLSDialer(addr)
		if err != nil {
			return nil, err
		}
		return &guardConn{Conn: conn, g: &c.guard}, nil
	}
	sess, err := gosmpp.NewSession(gosmpp.TRXConnector(dial, auth), gosmpp.Settings{
		EnquireLink: 30 * time.Second,
		ReadTimeout: 90 * time.Second,
		OnAllPDU:    c.handle,
	}, 5*time.Second)
	if err != nil {
		var be gosmpp.BindError
		if errors.As(err, &be) {
			return fmt.Errorf("smpp: bind refused (%v): %w", be.CommandStatus, legacy.ErrUnavailable)
		}
		return fmt.Errorf("smpp: bind: %w", errors.Join(legacy.ErrUnavailable, err))
	}
	c.mu.Lock()
	c.sess = sess
	c.mu.Unlock()
	<-ctx.Done()
	c.mu.Lock()
	c.sess = nil
	for seq, ch := range c.pending {
		close(ch)
		delete(c.pending, seq)
	}
	c.mu.Unlock()
	sess.Close()
	return nil
}

func (c *Client) handle(p pdu.PDU) (pdu.PDU, bool) {
	switch pd := p.(type) {
	case *pdu.SubmitSMResp:
		c.mu.Lock()
		ch := c.pending[pd.SequenceNumber]
		delete(c.pending, pd.SequenceNumber)
		c.mu.Unlock()
		if ch != nil {
			ch <- pd
		}
		return nil, false
	case *pdu.DeliverSM:
		resp := pd.GetResponse().(*pdu.DeliverSMResp)
		if bad, ok := c.guard.take(pd.SequenceNumber); ok {
			c.malformed.Add(1)
			log := c.Log
			if log == nil {
				log = slog.Default()
			}
			log.Warn("smpp: deliver_sm refused", "sequence", pd.SequenceNumber,
				"status", fmt.Sprintf("0x%08X", uint32(bad.status)), "reason", bad.reason)
			resp.CommandStatus = bad.status
			return resp, false
		}
		if err := c.deliver(pd); err != nil {
			resp.CommandStatus = data.ESME_RX_T_APPN
		}
		return resp, false
	case *pdu.EnquireLink:
		return pd.GetResponse(), false
	case *pdu.Unbind:
		return pd.GetResponse(), true
	case *pdu.DataSM:
		r := pd.GetResponse()
		return r, false
	}
	return nil, false
}

func (c *Client) deliver(pd *pdu.DeliverSM) error {
	from, to := e164(pd.SourceAddr), e164(pd.DestAddr)
	if pd.EsmClass&0x04 != 0 {
		r := parseReceipt(pd)
		r.From, r.To = from, to
		if c.Receipt == nil {
			return nil
		}
		return c.Receipt(r)
	}
	raw, _ := pd.Message.GetMessageData()
	var coding byte
	if enc := pd.Message.Encoding(); enc != nil {
		coding = enc.DataCoding()
	}
	mo := MO{From: from, To: to, Text: Decode(coding, raw), Data: raw, Coding: coding}
	udh := pd.Message.UDH()
	if total, part, ref, ok := udh.GetConcatInfo(); ok {
		mo.Total, mo.Part, mo.Ref = total, part, uint16(ref)
	} else if ie, ok := udh.FindInfoElement(data.UDH_CONCAT_MSG_16_BIT_REF); ok && len(ie.Data) == 4 {
		mo.Ref, mo.Total, mo.Part = uint16(ie.Data[0])<<8|uint16(ie.Data[1]), ie.Data[2], ie.Data[3]
	}
	if c.Deliver == nil {
		return errors.New("smpp: no Deliver handler")
	}
	return c.Deliver(mo)
}

// Decode returns the text of user data octets in data_coding coding (one
// gosmpp knows; others are read as GSM-7, the SMSC default), or a marker
// when they do not decode: the message is acknowledged all the same, as
// it would never decode.
func Decode(coding byte, b []byte) string {
	if len(b) == 0 {
		return ""
	}
	enc := data.FromDataCoding(coding)
	if enc == nil {
		enc = data.GSM7BIT
	}
	text, err := enc.Decode(b)
	if err != nil {
		return "[undecodable SMS]"
	}
	return text
}

// dataCoding maps a data_coding of the GSM 03.38 coding groups (message
// class, automatic deletion, message waiting indication) to the SMPP
// value of its alphabet, which gosmpp knows: 0x00 GSM-7, 0x04 8-bit data,
// 0x08 UCS-2. SMPP's own values (0x00–0x0F), compressed text and reserved
// alphabets are returned unchanged.
func dataCoding(dc byte) byte {
	alphabet := func(a byte) byte {
		switch a & 0x03 {
		case 0:
			return data.GSM7BITCoding
		case 1:
			return data.BINARY8BIT2Coding
		case 2:
			return data.UCS2Coding
		}
		return dc
	}
	switch {
	case dc < 0x10:
		return dc
	case dc < 0x80: // 00xx and 01xx general data coding
		if dc&0x20 != 0 {
			return dc // compressed (TS 23.042): not read
		}
		return alphabet(dc >> 2)
	case dc >= 0xC0 && dc < 0xE0: // message waiting, GSM-7
		return data.GSM7BITCoding
	case dc >= 0xE0 && dc < 0xF0: // message waiting, UCS-2
		return data.UCS2Coding
	case dc >= 0xF0: // data coding/message class: bit 2 picks 8-bit
		if dc&0x04 != 0 {
			return data.BINARY8BIT2Coding
		}
		return data.GSM7BITCoding
	}
	return dc
}

// Malformed is the number of deliver_sm refused because they were
// malformed (see the package doc) since the Client was created.
func (c *Client) Malformed() uint64 { return c.malformed.Load() }

// e164 returns an address, with "+" when its TON is international.
func e164(a pdu.Address) string {
	s := a.Address()
	if a.Ton() == 1 && s != "" && !strings.HasPrefix(s, "+") {
		return "+" + s
	}
	return s
}

// parseReceipt reads the TLVs, then the appendix-B text
// "id:IIII sub:SSS dlvrd:DDD submit date:… done date:… stat:SSSSSSS err:E text:…".
func parseReceipt(pd *pdu.DeliverSM) Receipt {
	var r Receipt
	if f, ok := pd.OptionalParameters[pdu.TagReceiptedMessageID]; ok {
		r.ID = f.String()
	}
	text, _ := pd.Message.GetMessage()
	for _, w := range strings.Fields(text) {
		k, v, ok := strings.Cut(w, ":")
		if !ok {
			continue
		}
		switch strings.ToLower(k) {
		case "id":
			if r.ID == "" {
				r.ID = v
			}
		case "stat":
			r.State = strings.ToUpper(v)
		}
	}
	return r
}

// Submit sends parts (already split by the caller, in order) from one
// address to another and returns the SMSC's message id of every part. ucs2
// chooses data_coding 8, else 0 (GSM-7).
func (c *Client) Submit(ctx context.Context, from, to string, parts []string, ucs2 bool) ([]string, error) {
	c.mu.Lock()
	sess := c.sess
	c.mu.Unlock()
	if sess == nil {
		return nil, fmt.Errorf("smpp: not bound: %w", legacy.ErrUnavailable)
	}
	if len(parts) == 0 || len(parts) > 255 {
		return nil, fmt.Errorf("smpp: %d parts: %w", len(parts), legacy.ErrRejected)
	}
	enc := data.GSM7BIT
	if ucs2 {
		enc = data.UCS2
	}
	var ref [1]byte
	rand.Read(ref[:])
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ids := make([]string, 0, len(parts))
	for i, part := range parts {
		sm := pdu.NewSubmitSM().(*pdu.SubmitSM) // a new PDU: its own sequence number
		src, err := pdu.NewAddressWithTonNpiAddr(1, 1, strings.TrimPrefix(from, "+"))
		if err != nil {
			return ids, fmt.Errorf("smpp: source %q: %w", from, legacy.ErrRejected)
		}
		dst, err := pdu.NewAddressWithTonNpiAddr(1, 1, strings.TrimPrefix(to, "+"))
		if err != nil {
			return ids, fmt.Errorf("smpp: destination %q: %w", to, legacy.ErrInvalidAddress)
		}
		sm.SourceAddr, sm.DestAddr = src, dst
		if err := sm.Message.SetMessageWithEncoding(part, enc); err != nil {
			return ids, fmt.Errorf("smpp: part %d: %v: %w", i+1, err, legacy.ErrRejected)
		}
		if len(parts) > 1 {
			sm.Message.SetUDH(pdu.UDH{pdu.NewIEConcatMessage(byte(len(parts)), byte(i+1), ref[0])})
			sm.EsmClass = 0x40
		}
		sm.RegisteredDelivery = 1
		id, err := c.submit(ctx, sess, sm, timeout)
		if err != nil {
			return ids, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func (c *Client) submit(ctx context.Context, sess *gosmpp.Session, sm *pdu.SubmitSM, timeout time.Duration) (string, error) {
	ch := make(chan *pdu.SubmitSMResp, 1)
	seq := sm.GetSequenceNumber()
	c.mu.Lock()
	if c.pending == nil {
		c.mu.Unlock()
		return "", fmt.Errorf("smpp: not bound: %w", legacy.ErrUnavailable)
	}
	c.pending[seq] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, seq)
		c.mu.Unlock()
	}
	if err := sess.Transceiver().Submit(sm); err != nil {
		forget()
		return "", fmt.Errorf("smpp: submit: %w", errors.Join(legacy.ErrUnavailable, err))
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case resp, ok := <-ch:
		if !ok {
			return "", fmt.Errorf("smpp: bind closed before submit_sm_resp: %w", legacy.ErrUnavailable)
		}
		return resp.MessageID, statusError(resp.CommandStatus)
	case <-t.C:
		forget()
		return "", fmt.Errorf("smpp: no submit_sm_resp within %s: %w", timeout, legacy.ErrUnavailable)
	case <-ctx.Done():
		forget()
		return "", fmt.Errorf("smpp: %w", errors.Join(legacy.ErrUnavailable, ctx.Err()))
	}
}

// statusError maps a submit_sm_resp command_status.
func statusError(st data.CommandStatusType) error {
	code := fmt.Sprintf("0x%08X", uint32(st))
	switch st {
	case data.ESME_ROK:
		return nil
	case data.ESME_RTHROTTLED, data.ESME_RMSGQFUL:
		return fmt.Errorf("smpp: %s (%s): %w", st.Desc(), code, &legacy.RateLimitError{RetryAfter: time.Second})
	case data.ESME_RINVDSTADR:
		return fmt.Errorf("smpp: %w", &legacy.CodeError{Code: code, Text: st.Desc(), Err: legacy.ErrInvalidAddress})
	case data.ESME_RSYSERR, data.ESME_RSUBMITFAIL:
		return fmt.Errorf("smpp: %w", &legacy.CodeError{Code: code, Text: st.Desc(), Err: legacy.ErrUnavailable})
	}
	return fmt.Errorf("smpp: %w", &legacy.CodeError{Code: code, Text: st.Desc(), Err: legacy.ErrRejected})
}
