package stanza

import (
	"bytes"
	"encoding/xml"
	"io"
	"testing"
)

// benchMessage is a typical chat message on the component link: body with an
// entity, XEP-0085 chat state, XEP-0184 receipt request, XEP-0359
// origin-id, JIDs with a resource and xml:lang (about 430 bytes).
const benchMessage = `<message from='juliet@example.org/phone-4f2a9c' to='+15551234567@sms.example.org' ` +
	`type='chat' id='a7c1e3d5-2b4f-4a6c-8e0d-9f1b3c5d7e9f' xml:lang='en'>` +
	`<body>Are you coming to the party tonight? Bring snacks &amp; drinks, see you at 8!</body>` +
	`<active xmlns='http://jabber.org/protocol/chatstates'/>` +
	`<request xmlns='urn:xmpp:receipts'/>` +
	`<origin-id xmlns='urn:xmpp:sid:0' id='a7c1e3d5-2b4f-4a6c-8e0d-9f1b3c5d7e9f'/>` +
	`</message>`

// endless serves a stream header followed by benchMessage forever, like a
// live component connection.
type endless struct {
	head []byte
	pos  int
}

func (e *endless) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(e.head) > 0 {
			c := copy(p[n:], e.head)
			e.head = e.head[c:]
			n += c
			continue
		}
		c := copy(p[n:], benchMessage[e.pos:])
		e.pos = (e.pos + c) % len(benchMessage)
		n += c
	}
	return n, nil
}

var _ io.Reader = (*endless)(nil)

func TestBenchMessageSize(t *testing.T) {
	if n := len(benchMessage); n < 400 || n > 460 {
		t.Fatalf("benchmark message is %d bytes, want about 430", n)
	}
	el := MustParse(`<stream xmlns='` + NSComponent + `'>` + benchMessage + `</stream>`).FirstChild()
	var b bytes.Buffer
	el.AppendXML(&b, NSComponent)
	back := MustParse(`<stream xmlns='` + NSComponent + `'>` + b.String() + `</stream>`).FirstChild()
	if back.String() != el.String() || back.Lang() != "en" || back.ChildText(NSComponent, "body") != el.ChildText(NSComponent, "body") {
		t.Fatalf("round trip changed the message:\n%s\n%s", el, back)
	}
}

// BenchmarkDecodeMessage decodes one message per op from a steady-state
// component stream (decoder created once).
func BenchmarkDecodeMessage(b *testing.B) {
	r := &endless{head: []byte(`<stream:stream xmlns='` + NSComponent + `' xmlns:stream='` + NSStream + `' from='sms.example.org' id='x'>`)}
	d := xml.NewDecoder(r)
	if tok, err := d.Token(); err != nil || tok.(xml.StartElement).Name.Local != "stream" {
		b.Fatal(tok, err)
	}
	b.SetBytes(int64(len(benchMessage)))
	b.ReportAllocs()
	for b.Loop() {
		tok, err := d.Token()
		if err != nil {
			b.Fatal(err)
		}
		el, err := Decode(d, tok.(xml.StartElement))
		if err != nil {
			b.Fatal(err)
		}
		if el.Local != "message" {
			b.Fatal(el)
		}
	}
}

// BenchmarkEncodeMessage encodes one message per op into a reused buffer,
// as the link's writer does.
func BenchmarkEncodeMessage(b *testing.B) {
	el := MustParse(`<stream xmlns='` + NSComponent + `'>` + benchMessage + `</stream>`).FirstChild()
	var buf bytes.Buffer
	el.AppendXML(&buf, NSComponent)
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		el.AppendXML(&buf, NSComponent)
	}
}

// BenchmarkStreamDecodeMessage is BenchmarkDecodeMessage with the link's
// decoder (StreamDecoder) instead of encoding/xml.
func BenchmarkStreamDecodeMessage(b *testing.B) {
	d := NewStreamDecoder(&endless{head: []byte(`<stream:stream xmlns='` + NSComponent + `' xmlns:stream='` + NSStream + `' from='sms.example.org' id='x'>`)}, 4096)
	if ev, err := d.Next(); err != nil || ev != EventHeader {
		b.Fatal(ev, err)
	}
	b.SetBytes(int64(len(benchMessage)))
	b.ReportAllocs()
	for b.Loop() {
		ev, err := d.Next()
		if err != nil || ev != EventStart {
			b.Fatal(ev, err)
		}
		el, err := d.Element(0)
		if err != nil {
			b.Fatal(err)
		}
		if el.Local != "message" {
			b.Fatal(el)
		}
	}
}
