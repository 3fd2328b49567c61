package bridges

import (
	"fmt"
	"testing"

	"github.com/jabbergate/jabbergate/bridges/jidmap"
	"github.com/jabbergate/jabbergate/legacy"
)

func TestJIDCache(t *testing.T) {
	var c jidCache
	p, err := c.parse("Alice@Example.ORG/Phone")
	if err != nil {
		t.Fatal(err)
	}
	if p.full != "alice@example.org/Phone" || p.bare != "alice@example.org" {
		t.Errorf("parsed %q / %q", p.full, p.bare)
	}
	if q, _ := c.parse("Alice@Example.ORG/Phone"); q != p {
		t.Error("second parse of the same address not from the cache")
	}
	for _, bad := range []string{"", "@example.org", "a@b@c", "user@/res"} {
		if _, err := c.parse(bad); err == nil {
			t.Errorf("parse(%q) accepted", bad)
		}
		if _, ok := c.parsed[bad]; ok {
			t.Errorf("invalid %q cached", bad)
		}
	}
	for i := range jidCacheMax + 10 {
		if _, err := c.parse(fmt.Sprintf("u%d@example.org", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(c.parsed); n > jidCacheMax {
		t.Errorf("%d parsed addresses cached, bound %d", n, jidCacheMax)
	}

	for _, chat := range []legacy.ChatID{"+15551234567", "alice@example.com", "Bob Smith", "+15551234567"} {
		got, err := c.contact(chat, "gw.example")
		want, werr := jidmap.ContactJID(chat, "gw.example")
		if err != nil || werr != nil || got != want.String() {
			t.Errorf("contact(%q) = %q, %v; want %q, %v", chat, got, err, want.String(), werr)
		}
	}
	if _, err := c.contact("   ", "gw.example"); err == nil {
		t.Error("a chat id that makes no localpart accepted")
	}
}
