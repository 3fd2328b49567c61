package stanza

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse: any input either fails to parse or gives an element whose
// serialisation parses again to the same element; nesting never
// exceeds MaxDepth and no DTD is ever accepted.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`<message xmlns='jabber:component:accept' from='a@b/c' to='d@e' type='chat' id='1'><body>hi &amp; &#x41;</body></message>`,
		`<iq type='get' id='x'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`,
		`<a xmlns:p='urn:p'><p:b p:attr='v'>t<c/>u</p:b></a>`,
		`<!DOCTYPE a [<!ENTITY x 'y'>]><a>&x;</a>`,
		`<a><![CDATA[<b>]]></a>`,
		`<a>` + strings.Repeat("<b>", 70) + strings.Repeat("</b>", 70) + `</a>`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		el, err := Parse(s)
		if err != nil {
			return
		}
		if _, err := Parse("<!DOCTYPE x>" + s); err == nil {
			t.Fatalf("DOCTYPE accepted before %q", s)
		}
		if d := depth(el); d > MaxDepth {
			t.Fatalf("depth %d > MaxDepth", d)
		}
		out := el.String()
		el2, err := Parse(out)
		if err != nil {
			t.Fatalf("serialisation does not parse: %v\n in: %q\nout: %q", err, s, out)
		}
		if el2.Text() != el.Text() || el2.Local != el.Local || el2.Space != el.Space || len(el2.Children()) != len(el.Children()) {
			t.Fatalf("round trip changed the element:\n%q\n%q", out, el2.String())
		}
		// Empty text nodes may vanish once; after that it is a fixpoint.
		out2 := el2.String()
		if el3, err := Parse(out2); err != nil || el3.String() != out2 {
			t.Fatalf("second round trip differs: %v\n%q", err, out2)
		}
	})
}

func depth(e *Element) int {
	d := 0
	for _, c := range e.Children() {
		d = max(d, depth(c))
	}
	return d + 1
}

// FuzzSerialize: whatever text and attribute values a legacy network hands
// us, the stanza written is well-formed XML 1.0 in UTF-8, and text that
// was legal comes back unchanged.
func FuzzSerialize(f *testing.F) {
	for _, s := range []string{"hello", "a\x00b", "\xff\xfe", "\uFFFE", "tab\tnl\ncr\r", "<&>'\"", "emoji 😀", "\x1b[31m"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, text, attr string) {
		e := New(NSComponent, "message", "to", "a@b", "x", attr)
		e.TextChild(NSComponent, "body", text)
		out := e.String()
		var tb bytes.Buffer
		escapeText(&tb, text)
		if n := TextSize(text); n != tb.Len() {
			t.Fatalf("TextSize(%q) = %d, written %d", text, n, tb.Len())
		}
		if b := e.sizeBound(); b < len(out) {
			t.Fatalf("sizeBound %d below the serialised length %d: %q", b, len(out), out)
		}
		if !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8 written: %q", out)
		}
		d := xml.NewDecoder(strings.NewReader(out))
		for {
			_, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("written stanza is not well-formed (%v): %q", err, out)
			}
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatal(err)
		}
		if legal(text) && back.ChildText(NSComponent, "body") != text {
			t.Fatalf("legal text changed: %q → %q", text, back.ChildText(NSComponent, "body"))
		}
		if legal(attr) && back.Attr("x") != attr {
			t.Fatalf("legal attribute changed: %q → %q", attr, back.Attr("x"))
		}
	})
}

func legal(s string) bool {
	for i := 0; i < len(s); {
		size, bad := illegalXML(s, i)
		if bad {
			return false
		}
		i += size
	}
	return true
}
