package component

import (
	"strings"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/component/stanza"
)

// nested returns a message with depth levels of elements in total (the
// message itself is level 1).
func nested(depth int) string {
	var b strings.Builder
	b.WriteString("<message from='deep@localhost/r' to='" + testDomain + "' type='chat'>")
	for i := 1; i < depth; i++ {
		b.WriteString("<x xmlns='urn:test'>")
	}
	for i := 1; i < depth; i++ {
		b.WriteString("</x>")
	}
	b.WriteString("</message>")
	return b.String()
}

// TestDepthLimitRefusesStanza: a stanza nested deeper than the limit is
// skipped and its sender gets a policy-violation error; the link stays up
// and the stanzas around it are delivered intact (any user of the server
// can send such a stanza: it must not cut everyone off).
func TestDepthLimitRefusesStanza(t *testing.T) {
	hs := start(t, func(c *Config) { c.MaxDepth = 8 }, nil)
	hs.up(t)
	// Exactly at the limit passes.
	if err := hs.srv.InjectRaw(nested(8)); err != nil {
		t.Fatal(err)
	}
	if got := hs.rec.next(t); got.From() != "deep@localhost/r" {
		t.Fatalf("stanza at the depth limit not delivered: %s", got)
	}
	// Deeper, with what the skipping must step over: attributes holding
	// '>' and '/', self-closing elements, text with entities, CDATA and
	// a comment past the point where the limit is hit.
	tooDeep := strings.Replace(nested(12), "<x xmlns='urn:test'></x>",
		`<x xmlns='urn:test' a='1>2' b="/>"><y/><z q='/'/>t &amp; &lt;x&gt;<![CDATA[</message><x>]]><!-- </x> --></x>`, 1)
	tooDeep = strings.Replace(tooDeep, "<message from='deep@localhost/r'", "<message id='d1' from='deep@localhost/r'", 1)
	after := "<message from='next@localhost/r' to='" + testDomain + "' type='chat'><body>after</body></message>"
	if err := hs.srv.InjectRaw(tooDeep + after); err != nil {
		t.Fatal(err)
	}
	got := hs.rec.next(t)
	if got.From() != "next@localhost/r" || got.ChildText(stanza.NSComponent, "body") != "after" {
		t.Fatalf("the stanza after the refused one = %s", got)
	}
	reply, err := hs.srv.WaitFor(waitLong, func(e *stanza.Element) bool { return e.ID() == "d1" })
	if err != nil {
		t.Fatalf("no error reply to the refused stanza: %v", err)
	}
	se := stanza.ParseError(reply)
	if reply.Type() != "error" || reply.To() != "deep@localhost/r" || reply.From() != testDomain || se == nil ||
		se.Condition != stanza.PolicyViolation || !strings.Contains(se.Text, "deeper than the 8 levels") {
		t.Errorf("reply to the refused stanza = %s", reply)
	}
	hs.logs.waitFor(t, "refused a stanza from the server; the link stays up", `from=deep@localhost/r`, "deeper than the 8 levels")
	if n := hs.srv.Handshakes(); n != 1 {
		t.Errorf("handshakes = %d: the link was dropped", n)
	}
	if e := hs.srv.StreamErrors(); len(e) != 0 {
		t.Errorf("stream errors sent: %v, want none", e)
	}
	hs.rec.none(t, 50*time.Millisecond)
}

func TestDepthLimitDefault(t *testing.T) {
	c, err := Config{Addr: "127.0.0.1:1", Domain: testDomain, Secret: "s"}.withDefaults()
	if err != nil || c.MaxDepth != 32 {
		t.Fatalf("default MaxDepth = %d, %v; want 32", c.MaxDepth, err)
	}
}

// TestDoctypeRejected: a DTD inside or between stanzas closes the link with
// restricted-xml (RFC 6120 §11.1); entities are never expanded.
func TestDoctypeRejected(t *testing.T) {
	for name, raw := range map[string]string{
		"between stanzas": "<!DOCTYPE message [<!ENTITY x 'boom'>]><message from='a@localhost' to='" + testDomain + "'><body>x</body></message>",
		"inside a stanza": "<message from='a@localhost' to='" + testDomain + "'><!DOCTYPE body [<!ENTITY x 'boom'>]><body>x</body></message>",
	} {
		t.Run(name, func(t *testing.T) {
			hs := start(t, nil, nil)
			hs.up(t)
			if err := hs.srv.InjectRaw(raw); err != nil {
				t.Fatal(err)
			}
			if err := hs.srv.WaitHandshakes(2, waitLong); err != nil {
				t.Fatal(err)
			}
			hs.logs.waitFor(t, "restricted XML", "stream_error_sent=restricted-xml")
			if e := hs.srv.StreamErrors(); len(e) == 0 || e[0] != "restricted-xml" {
				t.Errorf("stream errors sent: %v, want restricted-xml", e)
			}
			hs.rec.none(t, 50*time.Millisecond)
		})
	}
	// An entity reference that a DTD would have declared is a syntax
	// error, not an expansion.
	if _, err := stanza.Parse("<body>&x;</body>"); err == nil {
		t.Errorf("undeclared entity accepted")
	}
	if el, err := stanza.Parse("<body>&lt;&#x41;</body>"); err != nil || el.Text() != "<A" {
		t.Errorf("predefined entities = %v, %v", el, err)
	}
}
