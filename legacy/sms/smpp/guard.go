package smpp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"
)

// Malformed deliver_sm.
//
// gosmpp parses a PDU completely before any handler sees it, and a PDU it
// cannot parse (a UDH whose length byte runs past the short_message, an
// information element longer than the header, UDHL 0, bad TLVs) is a
// reading error: gosmpp closes the connection and rebinds, and the SMSC
// redelivers the same PDU after the rebind — forever. Worse, gosmpp
// accepts some broken headers silently (an element running past UDHL into
// the text) and strips the wrong number of octets.
//
// So the Client dials through guardConn, which frames the byte stream
// into PDUs before gosmpp reads it. Every deliver_sm is checked strictly
// (checkDeliverSM: the mandatory fields, then the UDH when esm_class has
// UDHI 0x40, per 3GPP TS 23.040 §9.2.3.24). A broken one is replaced, in
// the stream gosmpp reads, by an empty deliver_sm with the same sequence
// number, and the problem is recorded under that number; Client.handle
// finds it and answers that sequence number with an error status instead
// of delivering. The bind stays up and the next PDUs flow as before. There
// is only one writer on the connection (gosmpp), as before.

// badPDU is why a deliver_sm is refused, and with which status.
type badPDU struct {
	status data.CommandStatusType
	reason string
}

func (b badPDU) Error() string { return b.reason }

// guard is the table of refused deliver_sm, by sequence number, shared by
// the connections of one Client.
type guard struct {
	mu  sync.Mutex
	bad map[int32]badPDU
}

func (g *guard) put(seq int32, b badPDU) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.bad == nil {
		g.bad = map[int32]badPDU{}
	}
	g.bad[seq] = b
}

// take returns and forgets the problem recorded for seq.
func (g *guard) take(seq int32) (badPDU, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	b, ok := g.bad[seq]
	delete(g.bad, seq)
	return b, ok
}

// guardConn is a net.Conn whose Read returns whole PDUs, broken deliver_sm
// replaced (see above). Writes pass through.
type guardConn struct {
	net.Conn
	g   *guard
	buf bytes.Buffer // the rest of the current PDU
	// raw is set after a header gosmpp must see as it is (a length out of
	// range): from then on bytes pass through, and gosmpp closes.
	raw bool
}

func (c *guardConn) Read(p []byte) (int, error) {
	if c.buf.Len() > 0 {
		return c.buf.Read(p)
	}
	if c.raw {
		return c.Conn.Read(p)
	}
	var h [16]byte
	if _, err := io.ReadFull(c.Conn, h[:]); err != nil {
		return 0, err
	}
	n := binary.BigEndian.Uint32(h[0:4])
	if n < 16 || n > data.MAX_PDU_LEN {
		c.raw = true // not a PDU boundary we can trust: gosmpp reports it
		c.buf.Write(h[:])
		return c.buf.Read(p)
	}
	frame := make([]byte, n)
	copy(frame, h[:])
	if _, err := io.ReadFull(c.Conn, frame[16:]); err != nil {
		return 0, err
	}
	if data.CommandIDType(binary.BigEndian.Uint32(h[4:8])) == data.DELIVER_SM {
		frame = c.g.screen(frame)
	}
	c.buf.Write(frame)
	return c.buf.Read(p)
}

// screen returns frame, or for a deliver_sm that must be refused an empty
// deliver_sm with the same sequence number, the problem recorded.
func (g *guard) screen(frame []byte) []byte {
	seq := int32(binary.BigEndian.Uint32(frame[12:16]))
	dc, bad := checkDeliverSM(frame[16:])
	if bad == nil {
		if _, err := pdu.Parse(bytes.NewReader(frame)); err != nil {
			bad = &badPDU{status: data.ESME_RX_P_APPN, reason: "deliver_sm does not parse: " + err.Error()}
		}
	}
	if bad == nil {
		// gosmpp knows SMPP's data_coding values only: a GSM 03.38 one
		// (UCS-2 with a message class, 0x18) becomes its alphabet's.
		frame[16+dc] = dataCoding(frame[16+dc])
		return frame
	}
	g.put(seq, *bad)
	d := pdu.NewDeliverSM()
	d.SetSequenceNumber(seq)
	b := pdu.NewBuffer(make([]byte, 0, 64))
	d.Marshal(b)
	return b.Bytes()
}

// errShort is a deliver_sm body that ends inside its mandatory fields.
var errShort = errors.New("short")

// checkDeliverSM checks a deliver_sm body (after the header) strictly
// enough that gosmpp's parser neither fails on it nor misreads its UDH.
// It returns nil for a good one, and the offset of its data_coding.
func checkDeliverSM(body []byte) (dataCodingAt int, bad *badPDU) {
	r := bytes.NewReader(body)
	cstr := func(max int) error {
		for i := 0; ; i++ {
			b, err := r.ReadByte()
			if err != nil {
				return errShort
			}
			if b == 0 {
				return nil
			}
			if i >= max {
				return fmt.Errorf("a C-octet string longer than %d octets", max)
			}
		}
	}
	skip := func(n int) error {
		if r.Len() < n {
			return errShort
		}
		r.Seek(int64(n), io.SeekCurrent)
		return nil
	}
	var esm, smLen byte
	var err error
	// service_type, source ton+npi+addr, dest ton+npi+addr
	if err = cstr(6); err == nil {
		if err = skip(2); err == nil {
			if err = cstr(65); err == nil { // 21 in SMPP 3.4, 65 in the v5 deliver_sm; be lenient
				if err = skip(2); err == nil {
					err = cstr(65)
				}
			}
		}
	}
	if err == nil {
		if esm, err = r.ReadByte(); err != nil {
			err = errShort
		}
	}
	// protocol_id, priority_flag, schedule_delivery_time, validity_period,
	// registered_delivery, replace_if_present_flag, data_coding,
	// sm_default_msg_id
	if err == nil {
		if err = skip(2); err == nil {
			if err = cstr(17); err == nil {
				if err = cstr(17); err == nil {
					dataCodingAt = len(body) - r.Len() + 2
					err = skip(4)
				}
			}
		}
	}
	if err == nil {
		if smLen, err = r.ReadByte(); err != nil {
			err = errShort
		}
	}
	if err == nil && r.Len() < int(smLen) {
		err = fmt.Errorf("sm_length %d runs past the PDU (%d octets left)", smLen, r.Len())
	}
	if err != nil {
		if err == errShort {
			err = errors.New("the PDU ends inside its mandatory fields")
		}
		return 0, &badPDU{status: data.ESME_RX_P_APPN, reason: "deliver_sm: " + err.Error()}
	}
	if esm&0x40 == 0 || smLen == 0 {
		// No UDH, or UDHI with the message in message_payload, which we
		// do not read (see the package doc).
		return dataCodingAt, nil
	}
	sm := body[len(body)-r.Len():][:smLen]
	if err := checkUDH(sm); err != nil {
		return 0, &badPDU{status: data.ESME_RINVESMCLASS, reason: "deliver_sm with UDHI: " + err.Error()}
	}
	return dataCodingAt, nil
}

// checkUDH checks the user data header at the start of sm (3GPP TS 23.040
// §9.2.3.24): UDHL, then information elements that fill exactly UDHL
// octets; the concatenation elements (0x00: 8-bit reference, 0x08: 16-bit)
// with their fixed lengths, a total of at least 1 and a sequence number
// from 1 to the total.
func checkUDH(sm []byte) error {
	udhl := int(sm[0])
	switch {
	case udhl == 0:
		return errors.New("UDHL is 0")
	case 1+udhl > len(sm):
		return fmt.Errorf("UDHL %d runs past the short_message (%d octets)", udhl, len(sm))
	}
	h := sm[1 : 1+udhl]
	for len(h) > 0 {
		if len(h) < 2 {
			return fmt.Errorf("information element 0x%02X cut by UDHL", h[0])
		}
		id, n := h[0], int(h[1])
		if 2+n > len(h) {
			return fmt.Errorf("information element 0x%02X of %d octets runs past UDHL", id, n)
		}
		d := h[2 : 2+n]
		h = h[2+n:]
		var total, seq byte
		switch id {
		case data.UDH_CONCAT_MSG_8_BIT_REF:
			if n != 3 {
				return fmt.Errorf("concatenation element 0x00 of %d octets, want 3", n)
			}
			total, seq = d[1], d[2]
		case data.UDH_CONCAT_MSG_16_BIT_REF:
			if n != 4 {
				return fmt.Errorf("concatenation element 0x08 of %d octets, want 4", n)
			}
			total, seq = d[2], d[3]
		default:
			continue
		}
		if total == 0 {
			return errors.New("concatenation with a total of 0 parts")
		}
		if seq == 0 || seq > total {
			return fmt.Errorf("concatenation part %d of %d", seq, total)
		}
	}
	return nil
}
