package smpp

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"
)

// FuzzDeliverSM feeds arbitrary deliver_sm bodies (mandatory fields, UDH,
// TLVs) through the guard and gosmpp's parser the way the Client reads
// them, then through the inbound decoding (text, concatenation UDH,
// delivery receipts). Nothing may panic; a frame the guard lets through
// must parse; a frame it replaces must come out as an empty deliver_sm
// with the same sequence number and a recorded reason.
func FuzzDeliverSM(f *testing.F) {
	good := func(esm byte, sm []byte) []byte {
		b := []byte{0}                  // service_type ""
		b = append(b, 1, 1)             // source ton, npi
		b = append(b, "15551230000"...) // source_addr
		b = append(b, 0, 1, 1)
		b = append(b, "1234"...)
		b = append(b, 0, esm, 0, 0, 0, 0, 0, 0, 0, 0, byte(len(sm)))
		return append(b, sm...)
	}
	f.Add(good(0, []byte("hello")))
	f.Add(good(0x40, []byte{5, 0, 3, 9, 2, 1, 'h', 'i'}))    // concatenated part 1/2
	f.Add(good(0x40, []byte{6, 8, 4, 0, 9, 2, 1, 'h', 'i'})) // 16-bit reference
	f.Add(good(0x40, []byte{9, 0, 3, 9, 2, 1, 'h'}))         // UDHL past the end
	f.Add(good(0x40, []byte{0, 'x'}))                        // UDHL 0
	f.Add(good(0x04, []byte("id:abc sub:001 dlvrd:001 stat:DELIVRD err:000 text:x")))
	f.Add([]byte{0, 1})
	f.Fuzz(func(t *testing.T, body []byte) {
		frame := make([]byte, 16, 16+len(body))
		binary.BigEndian.PutUint32(frame[0:4], uint32(16+len(body)))
		binary.BigEndian.PutUint32(frame[4:8], uint32(data.DELIVER_SM))
		binary.BigEndian.PutUint32(frame[12:16], 7)
		frame = append(frame, body...)
		g := &guard{}
		out := g.screen(bytes.Clone(frame))
		p, err := pdu.Parse(bytes.NewReader(out))
		if _, refused := g.take(7); refused {
			if err != nil {
				t.Fatalf("replacement does not parse: %v", err)
			}
			if p.GetSequenceNumber() != 7 {
				t.Fatalf("replacement has sequence number %d", p.GetSequenceNumber())
			}
			return
		}
		// Let through: as it came, but for its data_coding, mapped to the
		// SMPP value of its alphabet.
		want := bytes.Clone(frame)
		if dc, bad := checkDeliverSM(body); bad == nil {
			want[16+dc] = dataCoding(frame[16+dc])
		}
		if !bytes.Equal(out, want) {
			t.Fatal("frame changed (beyond its data_coding) without a recorded reason")
		}
		if err != nil {
			t.Fatalf("the guard let through a frame gosmpp cannot parse: %v", err)
		}
		pd, ok := p.(*pdu.DeliverSM)
		if !ok {
			t.Fatalf("deliver_sm parsed as %T", p)
		}
		_, _ = e164(pd.SourceAddr), e164(pd.DestAddr)
		if pd.EsmClass&0x04 != 0 {
			_ = parseReceipt(pd)
			return
		}
		_, _ = pd.Message.GetMessage()
		raw, _ := pd.Message.GetMessageData()
		if enc := pd.Message.Encoding(); enc != nil {
			_ = Decode(enc.DataCoding(), raw)
		}
		udh := pd.Message.UDH()
		udh.GetConcatInfo()
		udh.FindInfoElement(data.UDH_CONCAT_MSG_16_BIT_REF)
	})
}
