package jidmap

import (
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/jabbergate/jabbergate/legacy"
)

// FuzzContactJID: every chat id either makes no JID or a valid bare JID
// under the domain whose localpart maps back to a chat id with the same
// localpart (the mapping is stable once normalised); stanza ids are
// deterministic and made of safe characters.
func FuzzContactJID(f *testing.F) {
	for _, s := range []string{"+15551234567", "alice@example.com", "-100123", "Ünïcødé Name", `a\20b`, "x/y z'", "", strings.Repeat("a", 1100)} {
		f.Add(s)
	}
	const domain = "gw.example.org"
	f.Fuzz(func(t *testing.T, chat string) {
		id := StanzaID(domain, "owner", legacy.MessageID(chat))
		if id != StanzaID(domain, "owner", legacy.MessageID(chat)) || strings.Trim(id[3:], "abcdefghijklmnopqrstuvwxyz234567") != "" {
			t.Fatalf("StanzaID(%q) = %q", chat, id)
		}
		j, err := ContactJID(legacy.ChatID(chat), domain)
		if err != nil {
			return
		}
		if j.Domainpart() != domain || j.Resourcepart() != "" || j.Localpart() == "" {
			t.Fatalf("ContactJID(%q) = %q", chat, j)
		}
		if _, err := jid.Parse(j.String()); err != nil {
			t.Fatalf("ContactJID(%q) = %q does not parse: %v", chat, j, err)
		}
		back := ChatFromLocalpart(j.Localpart())
		lp, err := Localpart(back, domain)
		if err != nil || lp != j.Localpart() {
			t.Fatalf("chat %q → %q → chat %q → %q, %v", chat, j.Localpart(), back, lp, err)
		}
	})
}
