package component

import "github.com/jabbergate/jabbergate/component/stanza"

// Deliver hands an IQ result or error that reached another connection for
// the same domain to the request of this link's current connection that
// it answers, and reports whether such a request was waiting.
//
// A server that accepts several component links for one domain (ejabberd)
// routes each stanza for the domain to one of them, replies to our pings
// and requests included: with several gateway instances, a reply may land
// at another instance, which forwards it here (bridges/cluster.go).
// Safe for concurrent use.
func (l *Link) Deliver(el *stanza.Element) bool {
	c := l.current()
	return c != nil && el.Local == "iq" && c.deliver(el)
}
