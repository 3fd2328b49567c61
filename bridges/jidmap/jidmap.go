// Package jidmap maps legacy identifiers to XMPP addresses and back, and
// derives deterministic stanza ids. Everything here is a pure function.
//
// A legacy ChatID becomes the localpart of a contact JID under the bridge
// domain through XEP-0106 escaping ("alice@example.com" →
// "alice\40example.com"), then PRECIS normalisation (mellium.im/xmpp/jid), so
// the JID we write is exactly the one the user's server will send back. The
// original ChatID is stored with the contact and never re-derived from a JID
// that has been case-folded.
package jidmap

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/jabbergate/jabbergate/component/xep0106"
	"github.com/jabbergate/jabbergate/legacy"
)

// ContactJID returns the bare JID of the contact chat under domain.
func ContactJID(chat legacy.ChatID, domain string) (jid.JID, error) {
	if chat == "" {
		return jid.JID{}, fmt.Errorf("jidmap: empty chat id")
	}
	j, err := jid.New(xep0106.Escape(string(chat)), domain, "")
	if err != nil {
		return jid.JID{}, fmt.Errorf("jidmap: chat id %q makes no valid JID: %w", chat, err)
	}
	if j.Localpart() == "" {
		// Found by FuzzContactJID: a chat id of spaces escapes to nothing,
		// which would make the contact the gateway JID itself.
		return jid.JID{}, fmt.Errorf("jidmap: chat id %q makes an empty localpart", chat)
	}
	return j, nil
}

// Localpart returns the normalised, escaped localpart for chat.
func Localpart(chat legacy.ChatID, domain string) (string, error) {
	j, err := ContactJID(chat, domain)
	if err != nil {
		return "", err
	}
	return j.Localpart(), nil
}

// ChatFromLocalpart returns the ChatID a localpart names, for contacts the
// store does not know yet (the user just added them).
func ChatFromLocalpart(localpart string) legacy.ChatID {
	return legacy.ChatID(xep0106.Unescape(localpart))
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// StanzaID returns the deterministic stanza id for a legacy message: the
// same (bridge, owner, message) always gives the same id, so a message
// replayed after a crash carries the id of its first delivery and clients
// and our dedupe recognise it.
//
// It is on the path of every inbound message: the hash input is built in a
// stack buffer when it fits, and the id written once in lower case, so the
// string returned is its only allocation.
func StanzaID(bridge, owner string, id legacy.MessageID) string {
	var in [256]byte
	b := append(in[:0], bridge...) // on the heap only past 256 bytes
	b = append(b, 0)
	b = append(b, owner...)
	b = append(b, 0)
	b = append(b, id...)
	sum := sha256.Sum256(b)
	var out [3 + 24]byte // "jg-" and 15 bytes in base32
	copy(out[:], "jg-")
	lowerIDEncoding.Encode(out[3:], sum[:15])
	return string(out[:])
}

// lowerIDEncoding is idEncoding in lower case (what StanzaID has always
// produced with strings.ToLower).
var lowerIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// OwnerKey returns the opaque, stable key for a user's bare JID on a
// bridge, used as legacy.Account.Owner and in logs instead of the JID.
func OwnerKey(bridge, bareJID string) string {
	sum := sha256.Sum256([]byte(bridge + "\x00" + bareJID))
	return strings.ToLower(idEncoding.EncodeToString(sum[:10]))
}
