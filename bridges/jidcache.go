package bridges

import (
	"strings"
	"sync"

	"github.com/jabbergate/jabbergate/bridges/jidmap"
	"github.com/jabbergate/jabbergate/legacy"
	"mellium.im/xmpp/jid"
)

// jidCache remembers the addresses the bridge parses and renders on every
// stanza: the same few come back again and again (the users' JIDs and
// resources, the gateway's, the contacts'), and parsing one (PRECIS,
// IDNA, the IP-literal check) or rendering a contact's took about a
// fifth of the allocations of an echoed message. Only valid addresses
// are kept, at most jidCacheMax of each kind (all forgotten at once
// beyond that), so a flood of made-up addresses costs what it did.
type jidCache struct {
	mu       sync.Mutex
	parsed   map[string]*parsedJID    // raw address → parsed
	contacts map[legacy.ChatID]string // chat → contact JID (jidmap.ContactJID)
}

// parsedJID is one parsed address and its two string forms.
type parsedJID struct {
	j          jid.JID
	full, bare string
}

const jidCacheMax = 4096

// parse returns raw parsed (jid.Parse), from the cache when it can.
func (c *jidCache) parse(raw string) (*parsedJID, error) {
	c.mu.Lock()
	p := c.parsed[raw]
	c.mu.Unlock()
	if p != nil {
		return p, nil
	}
	j, err := jid.Parse(raw)
	if err != nil {
		return nil, err
	}
	p = &parsedJID{j: j, full: j.String(), bare: j.Bare().String()}
	c.mu.Lock()
	if c.parsed == nil || len(c.parsed) >= jidCacheMax {
		c.parsed = make(map[string]*parsedJID)
	}
	c.parsed[raw] = p
	c.mu.Unlock()
	return p, nil
}

// contact returns the contact JID of chat under domain
// (jidmap.ContactJID), from the cache when it can.
func (c *jidCache) contact(chat legacy.ChatID, domain string) (string, error) {
	c.mu.Lock()
	s, ok := c.contacts[chat]
	c.mu.Unlock()
	if ok {
		return s, nil
	}
	j, err := jidmap.ContactJID(chat, domain)
	if err != nil {
		return "", err
	}
	s = j.String()
	c.mu.Lock()
	if c.contacts == nil || len(c.contacts) >= jidCacheMax {
		c.contacts = make(map[legacy.ChatID]string)
	}
	c.contacts[chat] = s
	c.mu.Unlock()
	return s, nil
}

// bareOf returns the bare part of a JID string.
func bareOf(j string) string {
	bare, _, _ := strings.Cut(j, "/")
	return bare
}
