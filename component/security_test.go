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

func TestDepthLimitClosesLink(t *testing.T) {
	hs := start(t, func(c *Config) { c.MaxDepth = 8 }, nil)
	hs.up(t)
	// Exactly at the limit passes.
	if err := hs.srv.InjectRaw(nested(8)); err != nil {
		t.Fatal(err)
	}
	if got := hs.rec.next(t); got.From() != "deep@localhost/r" {
		t.Fatalf("stanza at the depth limit not delivered: %s", got)
	}
	// One level more closes the link with policy-violation and a log line
	// naming the limit and the addresses; the link comes back.
	if err := hs.srv.InjectRaw(nested(9)); err != nil {
		t.Fatal(err)
	}
	if err := hs.srv.WaitHandshakes(2, waitLong); err != nil {
		t.Fatal(err)
	}
	hs.logs.waitFor(t, "exceeds the element-depth limit of 8", `from=\"deep@localhost/r\"`,
		"stream_error_sent=policy-violation", "component link reconnecting")
	if e := hs.srv.StreamErrors(); len(e) == 0 || e[0] != "policy-violation" {
		t.Errorf("stream errors sent: %v, want policy-violation", e)
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
