package stanza

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
)

func TestParseEncodeRoundTrip(t *testing.T) {
	in := `<message xmlns='jabber:component:accept' type='chat' id='a&amp;b' from='+1555@sms.example.org' to='juliet@example.org/phone' xml:lang='en'>` +
		`<body>1 &lt; 2 &amp; 3 &gt; 2 ✓</body><active xmlns='http://jabber.org/protocol/chatstates'/>` +
		`<x xmlns='jabber:x:data' type='submit'><field var='a'><value>v</value></field></x></message>`
	el, err := Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	if el.Local != "message" || el.Space != NSComponent || el.ID() != "a&b" || el.Lang() != "en" {
		t.Fatalf("attributes: %+v", el)
	}
	if got := el.ChildText("", "body"); got != "1 < 2 & 3 > 2 ✓" {
		t.Errorf("body = %q", got)
	}
	if el.Child("http://jabber.org/protocol/chatstates", "active") == nil || el.Child("urn:other", "active") != nil {
		t.Errorf("namespace-aware lookup failed")
	}
	out := el.String()
	// Namespaces are declared once where they change, never duplicated.
	if strings.Count(out, "xmlns='jabber:x:data'") != 1 || strings.Contains(out, `xmlns="`) {
		t.Errorf("encoding: %s", out)
	}
	back, err := Parse(out)
	if err != nil {
		t.Fatalf("re-parse %s: %v", out, err)
	}
	if back.String() != out {
		t.Errorf("round trip changed:\n%s\n%s", out, back.String())
	}
	// The stream's default namespace is omitted on top-level stanzas.
	var b bytes.Buffer
	el.AppendXML(&b, NSComponent)
	if strings.HasPrefix(b.String(), "<message xmlns=") || !strings.HasPrefix(b.String(), "<message ") {
		t.Errorf("top-level xmlns not omitted: %s", b.String())
	}
}

func TestEscaping(t *testing.T) {
	el := New(NSComponent, "message", "to", `a'b"c<d>&`)
	el.TextChild(NSComponent, "body", "x\r\ny<&>")
	out := el.String()
	back := MustParse(out)
	if back.To() != `a'b"c<d>&` || back.ChildText("", "body") != "x\r\ny<&>" {
		t.Errorf("escaping lost data: %s → %q %q", out, back.To(), back.ChildText("", "body"))
	}
}

func TestDecodeLimits(t *testing.T) {
	deep := strings.Repeat("<a>", MaxDepth+1) + strings.Repeat("</a>", MaxDepth+1)
	if _, err := Parse(deep); err != ErrTooDeep {
		t.Errorf("deep nesting = %v, want ErrTooDeep", err)
	}
	for _, bad := range []string{"<a><b></a>", "<a>", "<a x='1>"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
	d := xml.NewDecoder(strings.NewReader("<a>text</a>"))
	tok, _ := d.Token()
	if el, err := Decode(d, tok.(xml.StartElement)); err != nil || el.Text() != "text" {
		t.Errorf("Decode = %v, %v", el, err)
	}
}

func TestErrorReply(t *testing.T) {
	iq := MustParse(`<iq xmlns='jabber:component:accept' type='get' id='x1' from='a@b/c' to='gw.b'><query xmlns='urn:unknown'/></iq>`)
	r := ErrorReply(iq, NewError(ServiceUnavailable, ""))
	if r.Type() != "error" || r.ID() != "x1" || r.To() != "a@b/c" || r.From() != "gw.b" {
		t.Fatalf("reply = %s", r)
	}
	e := ParseError(r)
	if e.Condition != ServiceUnavailable || e.Type != ErrCancel {
		t.Errorf("error = %+v", e)
	}
	if r.Child("", "error").Attr("code") != "503" {
		t.Errorf("legacy code missing: %s", r)
	}
	m := MustParse(`<message xmlns='jabber:component:accept' type='chat' id='m1' from='a@b/c' to='x@gw.b'/>`)
	r = ErrorReply(m, &Error{Condition: NotAcceptable, Text: "too long", App: New("urn:x", "legacy-error", "code", "42")})
	e = ParseError(r)
	if e.Condition != NotAcceptable || e.Type != ErrModify || e.Text != "too long" || e.App.Attr("code") != "42" {
		t.Errorf("message error = %s → %+v", r, e)
	}
	// An error is never answered with an error.
	if ErrorReply(r, NewError(BadRequest, "")) != nil {
		t.Errorf("answered an error with an error")
	}
	for c := range defaultType {
		if NewError(c, "").Element().Child(NSStanzas, string(c)) == nil {
			t.Errorf("condition %s not encoded", c)
		}
	}
}

// TestGrow: children added after Grow(n) fit without another allocation,
// and Grow keeps what the element has.
func TestGrow(t *testing.T) {
	e := New(NSComponent, "message", "id", "m1").AddText("x")
	e.Grow(3)
	if len(e.Nodes) != 1 || e.Nodes[0].Text != "x" || cap(e.Nodes) < 4 {
		t.Fatalf("after Grow: %d nodes, cap %d", len(e.Nodes), cap(e.Nodes))
	}
	a, b, c := New("urn:a", "a"), New("urn:b", "b"), New("urn:c", "c")
	if n := testing.AllocsPerRun(100, func() {
		e.Nodes = e.Nodes[:1]
		e.Add(a).Add(b).Add(c)
	}); n != 0 {
		t.Errorf("%v allocations adding 3 children after Grow(3)", n)
	}
	if got := e.String(); got != "<message xmlns='jabber:component:accept' id='m1'>x<a xmlns='urn:a'/><b xmlns='urn:b'/><c xmlns='urn:c'/></message>" {
		t.Errorf("grown element = %s", got)
	}
}

// TestSizeOver: sizeBound is never below the serialised length, whatever
// the escapes, and SizeOver reports the exact length past the limit.
func TestSizeOver(t *testing.T) {
	texts := []string{"", "plain", "<&>'\"\r\n\t", "\x01\xff\xfe", "é😀", strings.Repeat("'", 100), strings.Repeat("&", 50) + "x"}
	for _, tx := range texts {
		for _, at := range texts {
			e := New(NSComponent, "message", "to", at, "id", tx)
			e.TextChild(NSComponent, "body", tx)
			e.Add(New("urn:x:"+at, "x", "v", at).AddText(tx))
			x := New("urn:y", "y")
			x.Attrs = append(x.Attrs, Attr{Space: "urn:attr:" + at, Local: "a", Value: tx})
			e.Add(x)
			got := e.String()
			if b := e.sizeBound(); b < len(got) {
				t.Errorf("sizeBound %d < %d for %s", b, len(got), got)
			}
			if n, over := e.SizeOver(len(got)-1, ""); !over || n != len(got) {
				t.Errorf("SizeOver(len-1) = %d, %v; want %d, true", n, over, len(got))
			}
			if _, over := e.SizeOver(len(got), ""); over {
				t.Errorf("SizeOver(len) = over for %s", got)
			}
		}
	}
}
