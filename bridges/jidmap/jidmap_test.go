package jidmap

import (
	"strings"
	"testing"

	"github.com/jabbergate/jabbergate/legacy"
)

func TestContactJID(t *testing.T) {
	cases := []struct {
		chat legacy.ChatID
		want string
	}{
		{"+15551234567", "+15551234567@sms.example.org"},
		{"alice@example.com", `alice\40example.com@sms.example.org`},
		{"Alice@Example.com", `alice\40example.com@sms.example.org`},
		{"123456789", "123456789@sms.example.org"},
		{"here's_a_wild_&_/cr%zy/_address", `here\27s_a_wild_\26_\2fcr%zy\2f_address@sms.example.org`},
	}
	for _, c := range cases {
		j, err := ContactJID(c.chat, "sms.example.org")
		if err != nil {
			t.Errorf("ContactJID(%q): %v", c.chat, err)
			continue
		}
		if j.String() != c.want {
			t.Errorf("ContactJID(%q) = %q, want %q", c.chat, j.String(), c.want)
		}
		if back := ChatFromLocalpart(j.Localpart()); string(back) != string(c.chat) && c.chat != "Alice@Example.com" {
			t.Errorf("ChatFromLocalpart(%q) = %q, want %q", j.Localpart(), back, c.chat)
		}
	}
	if _, err := ContactJID("", "x.org"); err == nil {
		t.Errorf("empty chat accepted")
	}
}

func TestStanzaIDDeterministic(t *testing.T) {
	a := StanzaID("echo.localhost", "o1", "m1")
	if a != StanzaID("echo.localhost", "o1", "m1") {
		t.Fatal("not deterministic")
	}
	for _, other := range []string{StanzaID("echo.localhost", "o1", "m2"), StanzaID("echo.localhost", "o2", "m1"), StanzaID("x", "o1", "m1"), StanzaID("echo.localhost", "o1m", "1")} {
		if other == a {
			t.Errorf("collision: %s", a)
		}
	}
	if OwnerKey("b", "a@x") == OwnerKey("b", "b@x") {
		t.Errorf("owner key collision")
	}
}

// TestStanzaIDGolden pins the ids: they are stored (message records, seen
// marks) and compared with the ids clients hold, so they must never change.
func TestStanzaIDGolden(t *testing.T) {
	long := "échø-😀-" + strings.Repeat("\x00", 300)
	for _, c := range [][4]string{
		{"echo.localhost", "o1", "m1", "jg-hghbsda32udn4lq4s5xzfux2"},
		{"sms.example.org", "abcdefghijklmnop", "+15551234567:1700000000", "jg-xi4rhfwhw47lboop32qm2hhg"},
		{"mail.example.org", "", "", "jg-exfpkf6g43ncwcaiqa7xmynr"},
		{"telegram.example.org", "xyz", long, "jg-z5cnbvnhmqhojxpwtomil7p6"},
	} {
		if got := StanzaID(c[0], c[1], legacy.MessageID(c[2])); got != c[3] {
			t.Errorf("StanzaID(%q, %q, %.20q…) = %s, want %s", c[0], c[1], c[2], got, c[3])
		}
	}
}
