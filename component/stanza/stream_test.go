package stanza

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

const testHeader = "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' id='x'>"

// decodeStd reads the top-level elements after the header with
// encoding/xml and Decode (the reference): their serialisations, and
// whether it stopped on an error.
func decodeStd(s string) (out []string, failed bool) {
	out, failed, _ = decodeStdErr(s)
	return out, failed
}

func decodeStdErr(s string) (out []string, failed bool, err error) {
	d := xml.NewDecoder(strings.NewReader(testHeader + s))
	if _, err := d.Token(); err != nil {
		return nil, true, err
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return out, err != io.EOF, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			el, err := Decode(d, t)
			if err != nil {
				return out, true, err
			}
			out = append(out, canon(el))
		case xml.EndElement:
			return out, false, nil
		case xml.Directive:
			return out, true, ErrRestrictedXML
		}
	}
}

func decodeNew(s string) (out []string, failed bool, err error) {
	d := NewStreamDecoder(strings.NewReader(testHeader+s), 7) // tiny buffer: tokens span refills
	if ev, err := d.Next(); err != nil || ev != EventHeader {
		return nil, true, err
	}
	for {
		ev, err := d.Next()
		if err != nil {
			return out, true, err
		}
		switch ev {
		case EventStart:
			el, err := d.Element(0)
			if err != nil {
				return out, true, err
			}
			out = append(out, canon(el))
		case EventEnd:
			return out, false, nil
		}
	}
}

// canon serialises el without empty text nodes (encoding/xml reports an
// empty CDATA section as a token, StreamDecoder drops it).
func canon(el *Element) string {
	c := el.Copy()
	var strip func(e *Element)
	strip = func(e *Element) {
		kept := e.Nodes[:0]
		for _, n := range e.Nodes {
			if n.El == nil && n.Text == "" {
				continue
			}
			if n.El != nil {
				strip(n.El)
			}
			kept = append(kept, n)
		}
		e.Nodes = kept
	}
	strip(c)
	return c.String() + "|" + c.Lang()
}

var streamCases = []string{
	"<message from='a@localhost' to='echo.localhost'><body>hi</body></message>",
	"<iq type='result' id='1'/><presence/>",
	"  \n<iq type='get' id='p1' from='u@l/r' to='gw'><ping xmlns='urn:xmpp:ping'/></iq>\n",
	"<!DOCTYPE x><message/>",
	"<message><!DOCTYPE x></message>",
	"<message><body>&xxe;</body></message>",
	"<message><body>a &lt;&gt;&amp;&apos;&quot; &#65;&#x42;&#x1F600; b</body></message>",
	"<message><body>&#0;</body></message>",
	"<message><body>&#xD800;</body></message>",
	"<message><body>&#x110000;</body></message>",
	"<message><body>&#;</body></message>",
	"<message><body>& x</body></message>",
	"<message><body>a]]>b</body></message>",
	"<message><body>a<![CDATA[<b>&amp;]]>c<!-- x -->d</body></message>",
	"<message><body>x<![CDATA[]]></body></message>",
	"<message><!-- a -- b --></message>",
	"<message><!- x --></message>",
	"<message><![CDAT[x]]></message>",
	"<message a='1'b=\"2\" c = '3' />",
	"<message a=1/>",
	"<message a/>",
	"<message a='<'/>",
	"<message a='x\r\ny\rz\tw\nv'>l1\r\nl2\rl3</message>",
	"<message a='\x01'/>",
	"<message>\x01</message>",
	"<message>\xff</message>",
	"<message a='\xc3\xa9'>caf\xc3\xa9 \xef\xbf\xbe</message>",
	"<message><body>a</bod></message>",
	"<message><body>a</body ></message >",
	"<message></message></message>",
	"<message>" + strings.Repeat("<x>", 40) + strings.Repeat("</x>", 40) + "</message>",
	"<message>" + strings.Repeat("<x>", 70) + strings.Repeat("</x>", 70) + "</message>",
	"<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>",
	"<message xmlns='jabber:client'><body>x</body><x xmlns='jabber:x:data'><field var='a'/></x></message>",
	"<p:m xmlns:p='urn:p' p:a='1' q:b='2' xml:lang='en'><p:c/><d/></p:m><m2/>",
	"<a xmlns:p='urn:p'><p:b p:attr='v'>t<c/>u</p:b></a>",
	"<a><b xmlns=''><c/></b></a>",
	"<a:b:c/>",
	"<:a/>",
	"<a:/>",
	"<1a/>",
	"<a\xc3\xa9/>",
	"<message><?pi x?></message>",
	"</stream:stream>",
	"</other>",
	"<message>",
	"<message><body>abc",
	"<message a='x",
	"text between <message/> stanzas",
	"<message/><!-- c --><presence/>",
	"<message>a&amp",
	"<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' to='x'><body>b</body></message></forwarded>",
}

// TestStreamDecoderMatchesEncodingXML: StreamDecoder accepts and refuses
// what encoding/xml with Decode does, and builds the same elements.
func TestStreamDecoderMatchesEncodingXML(t *testing.T) {
	for _, s := range streamCases {
		compareDecoders(t, s)
	}
}

func compareDecoders(t *testing.T, s string) {
	t.Helper()
	want, wantFail := decodeStd(s)
	got, gotFail, err := decodeNew(s)
	if wantFail != gotFail || len(want) != len(got) {
		t.Fatalf("%q:\nencoding/xml: %q failed=%v\nStreamDecoder: %q failed=%v (%v)", s, want, wantFail, got, gotFail, err)
	}
	for i := range want {
		if want[i] != got[i] {
			t.Fatalf("%q: element %d:\nencoding/xml:  %s\nStreamDecoder: %s", s, i, want[i], got[i])
		}
	}
}

func FuzzStreamDecoder(f *testing.F) {
	for _, s := range streamCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Known differences, on input no server sends: processing
		// instructions (encoding/xml checks their target) and names
		// outside ASCII (different name tables).
		if strings.Contains(s, "<?") {
			return
		}
		// encoding/xml takes a tag that names an attribute twice, which
		// XML 1.0 forbids (Unique Att Spec) and StreamDecoder refuses:
		// the two agree up to that tag.
		if got, _, gerr := decodeNew(s); gerr != nil && strings.Contains(gerr.Error(), "given twice") {
			want, _ := decodeStd(s)
			if len(got) <= len(want) && slices.Equal(got, want[:len(got)]) {
				return
			}
			t.Fatalf("%q: before the repeated attribute:\nencoding/xml: %q\nStreamDecoder: %q (%v)", s, want, got, gerr)
		}
		ascii := true
		for i := 0; i < len(s); i++ {
			ascii = ascii && s[i] < 0x80
		}
		if !ascii {
			// Text and values outside ASCII must still agree; a
			// disagreement is tolerated only where a name is refused.
			want, wantFail, werr := decodeStdErr(s)
			got, gotFail, gerr := decodeNew(s)
			if wantFail == gotFail && slices.Equal(want, got) {
				return
			}
			for _, err := range []error{werr, gerr} {
				if err != nil && strings.Contains(err.Error(), "name") {
					return
				}
			}
			t.Fatalf("%q:\nencoding/xml: %q failed=%v (%v)\nStreamDecoder: %q failed=%v (%v)", s, want, wantFail, werr, got, gotFail, gerr)
		}
		compareDecoders(t, s)
	})
}

func TestStreamDecoderLimitAndErrors(t *testing.T) {
	d := NewStreamDecoder(strings.NewReader(testHeader+"<message from='"+strings.Repeat("z", 600)+"'/>"), 0)
	if ev, err := d.Next(); ev != EventHeader || err != nil {
		t.Fatal(ev, err)
	}
	sp, lc, attrs := d.Header()
	if sp != NSStream || lc != "stream" || len(attrs) != 1 || attrs[0].Local != "id" || attrs[0].Value != "x" {
		t.Fatalf("header %q %q %v", sp, lc, attrs)
	}
	d.SetLimit(d.InputOffset() + 100)
	if _, err := d.Next(); !errors.Is(err, ErrLimit) || !d.LimitHit() || d.InputOffset() > int64(len(testHeader))+100 {
		t.Fatalf("err %v hit %v offset %d", err, d.LimitHit(), d.InputOffset())
	}

	d = NewStreamDecoder(strings.NewReader(testHeader+"<message from='a@b' to='c'><body>x"), 0)
	d.Next()
	if ev, err := d.Next(); ev != EventStart || err != nil {
		t.Fatal(ev, err)
	}
	if sp, lc := d.StartName(); sp != NSComponent || lc != "message" {
		t.Fatal(sp, lc)
	}
	if d.StartAttr("from") != "a@b" || d.StartAttr("to") != "c" {
		t.Fatal(d.StartAttr("from"), d.StartAttr("to"))
	}
	var se *xml.SyntaxError
	if _, err := d.Element(0); !errors.As(err, &se) || d.ReadErr() != io.EOF {
		t.Fatalf("truncated stanza: %v, read error %v", err, d.ReadErr())
	}

	d = NewStreamDecoder(strings.NewReader(testHeader+"<a><b><c/></b></a>"), 0)
	d.Next()
	d.Next()
	if _, err := d.Element(2); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("depth 3 with limit 2: %v", err)
	}
}

// TestStreamDecoderRefusesDuplicateAttributes: XML 1.0's "Unique Att
// Spec", in a stanza's tag and in a child's, with few attributes and with
// many; the same local name under two prefixes is two attributes.
func TestStreamDecoderRefusesDuplicateAttributes(t *testing.T) {
	var many strings.Builder
	for i := range 40 {
		fmt.Fprintf(&many, " a%d='%d'", i, i)
	}
	read := func(stanza string) error {
		d := NewStreamDecoder(strings.NewReader(testHeader+stanza), 0)
		d.Next()
		if _, err := d.Next(); err != nil {
			return err
		}
		_, err := d.Element(0)
		return err
	}
	for name, bad := range map[string]string{
		"stanza":      "<message id='e1' to='a' id='e2'/>",
		"child":       "<message id='e1'><body xml:lang='en' xml:lang='fr'>x</body></message>",
		"many":        "<message" + many.String() + " a7='again'/>",
		"declaration": "<message xmlns:p='urn:a' xmlns:p='urn:b'/>",
	} {
		var se *xml.SyntaxError
		if err := read(bad); !errors.As(err, &se) || !strings.Contains(err.Error(), "given twice") {
			t.Errorf("%s: %v, want a syntax error naming the repeated attribute", name, err)
		}
	}
	for name, good := range map[string]string{
		"prefixes": "<message xmlns:p='urn:a' lang='x' xml:lang='en' p:lang='y'/>",
		"many":     "<message" + many.String() + "/>",
	} {
		if err := read(good); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestStreamDecoderSharesNothingMutable: elements of one stanza may be
// changed (SetAttr, Add, RemoveChildren) without touching their siblings.
func TestStreamDecoderSharesNothingMutable(t *testing.T) {
	d := NewStreamDecoder(strings.NewReader(testHeader+"<m a='1'><x b='2'/><y c='3'>t</y></m>"), 0)
	d.Next()
	d.Next()
	el, err := d.Element(0)
	if err != nil {
		t.Fatal(err)
	}
	x, y := el.Child("", "x"), el.Child("", "y")
	x.SetAttr("z", "9").AddText("added")
	el.SetAttr("n", "new")
	if y.Attr("c") != "3" || len(y.Attrs) != 1 || y.Text() != "t" || el.Attr("a") != "1" {
		t.Fatalf("neighbours changed: %s", el)
	}
	if got := el.String(); got != "<m xmlns='jabber:component:accept' a='1' n='new'><x b='2' z='9'>added</x><y c='3'>t</y></m>" {
		t.Fatal(got)
	}
}

func TestFreeze(t *testing.T) {
	q := New("http://jabber.org/protocol/disco#info", "query").Add(New("http://jabber.org/protocol/disco#info", "feature", "var", "urn:xmpp:ping"))
	want := Result(MustParse("<iq id='1' from='a@b' to='gw'/>"), q).String()
	q.Freeze(NSComponent)
	if got := Result(MustParse("<iq id='1' from='a@b' to='gw'/>"), q).String(); got != want {
		t.Fatalf("frozen payload written as\n%s\nwant\n%s", got, want)
	}
	if got := q.String(); !strings.HasPrefix(got, "<query xmlns='http://jabber.org/protocol/disco#info'>") {
		t.Fatalf("under another parent namespace: %s", got)
	}
	if c := q.Copy(); c.frozen != nil {
		t.Fatal("Copy kept the frozen serialisation")
	}
}

// decodeOne decodes the first stanza after the test header.
func decodeOne(t *testing.T, s string) *Element {
	t.Helper()
	d := NewStreamDecoder(strings.NewReader(testHeader+s), 0)
	if ev, err := d.Next(); err != nil || ev != EventHeader {
		t.Fatalf("header: %v %v", ev, err)
	}
	if ev, err := d.Next(); err != nil || ev != EventStart {
		t.Fatalf("start: %v %v", ev, err)
	}
	el, err := d.Element(0)
	if err != nil {
		t.Fatal(err)
	}
	return el
}

// sameBlock reports whether a's bytes lie within 4 KiB of b's: the decoder
// puts a stanza's attribute values and texts next to each other in one
// string, so a value sliced from it sits right by the body.
func sameBlock(a, b string) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	pa, pb := uintptr(unsafe.Pointer(unsafe.StringData(a))), uintptr(unsafe.Pointer(unsafe.StringData(b)))
	return pa+uintptr(len(a))+4096 > pb && pa < pb+uintptr(len(b))+4096
}

// A handler keeping the from of a large stanza as a map key must not keep
// its body alive: above 2 KiB, attribute values are copies; below, they
// share the stanza's one string (the cheap path).
func TestLargeStanzaAttributesDoNotPinTheBody(t *testing.T) {
	big := strings.Repeat("x", 64<<10)
	el := decodeOne(t, `<message from='a@localhost/r' to='b@echo.localhost' id='m1'><body>`+big+`</body></message>`)
	body := el.ChildText("", "body")
	if len(body) != len(big) {
		t.Fatalf("body of %d bytes, want %d", len(body), len(big))
	}
	for _, name := range []string{"from", "to", "id"} {
		if sameBlock(el.Attr(name), body) {
			t.Errorf("%s of a 64 KiB stanza shares the body's memory", name)
		}
	}
	small := decodeOne(t, `<message from='a@localhost/r' to='b@echo.localhost' id='m1'><body>hi there</body></message>`)
	if !sameBlock(small.Attr("from"), small.ChildText("", "body")) {
		t.Errorf("a small stanza's attributes were copied: the one-string path is gone")
	}
}
