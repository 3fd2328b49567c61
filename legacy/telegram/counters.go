package telegram

import (
	"sync/atomic"

	"github.com/jabbergate/jabbergate/legacy"
)

var _ legacy.EventCounter = (*Network)(nil)

// Event names of EventCounts (exported by the core as
// jabbergate_legacy_events_total{event}).
const (
	eventReplyMalformed = "reply_malformed" // a Bot API reply, not a 5xx, that could not be read (client.unreadable, session.sentID)
	eventRateLimited    = "rate_limited"    // 429 Too Many Requests
	eventConflict       = "conflict"        // 409: another poller or a webhook owns the bot's updates
	eventServerError    = "server_error"    // 5xx, whatever the body (a proxy's HTML page too)
)

var eventNames = []string{eventReplyMalformed, eventRateLimited, eventConflict, eventServerError}

// counters counts, for the whole network, what never becomes a stanza.
type counters struct {
	n [4]atomic.Uint64 // indexed like eventNames
}

func (c *counters) add(event string) {
	if c == nil {
		return
	}
	for i, name := range eventNames {
		if name == event {
			c.n[i].Add(1)
			return
		}
	}
}

// apiError counts an {"ok":false} reply by its code.
func (c *counters) apiError(code int) {
	switch {
	case code == 429:
		c.add(eventRateLimited)
	case code == 409:
		c.add(eventConflict)
	case code >= 500:
		c.add(eventServerError)
	}
}

// EventCounts implements legacy.EventCounter.
func (n *Network) EventCounts() map[string]uint64 {
	m := make(map[string]uint64, len(eventNames))
	for i, name := range eventNames {
		m[name] = n.counts.n[i].Load()
	}
	return m
}
