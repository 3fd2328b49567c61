package component

import (
	"encoding/xml"
	"testing"
)

const benchMsg = `<message from='juliet@example.org/phone-4f2a9c' to='+15551234567@sms.example.org' ` +
	`type='chat' id='a7c1e3d5-2b4f-4a6c-8e0d-9f1b3c5d7e9f' xml:lang='en'>` +
	`<body>Are you coming to the party tonight? Bring snacks &amp; drinks, see you at 8!</body>` +
	`<active xmlns='http://jabber.org/protocol/chatstates'/>` +
	`<request xmlns='urn:xmpp:receipts'/>` +
	`<origin-id xmlns='urn:xmpp:sid:0' id='a7c1e3d5-2b4f-4a6c-8e0d-9f1b3c5d7e9f'/>` +
	`</message>`

type endlessStream struct {
	head []byte
	pos  int
}

func (e *endlessStream) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(e.head) > 0 {
			c := copy(p[n:], e.head)
			e.head = e.head[c:]
			n += c
			continue
		}
		c := copy(p[n:], benchMsg[e.pos:])
		e.pos = (e.pos + c) % len(benchMsg)
		n += c
	}
	return n, nil
}

// BenchmarkReadStanza is the link's read path per stanza: the size limiter
// under encoding/xml, Decode and namespace normalisation.
func BenchmarkReadStanza(b *testing.B) {
	r := newReader(&endlessStream{head: []byte(`<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' id='x'>`)}, 256*1024)
	if _, err := r.next(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(benchMsg)))
	b.ReportAllocs()
	for b.Loop() {
		tok, err := r.next()
		if err != nil {
			b.Fatal(err)
		}
		el, err := r.element(tok.(xml.StartElement))
		if err != nil {
			b.Fatal(err)
		}
		normalize(el)
		if !isStanza(el) {
			b.Fatal(el)
		}
	}
}
