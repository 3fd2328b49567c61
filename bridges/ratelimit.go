package bridges

import (
	"context"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/jabbergate/jabbergate/component/stanza"
)

// Defaults of the per-user inbound rate limit (Options.RateLimit,
// Options.RateBurst; access.rate_limit in the config).
const (
	DefaultRateLimit = 20  // stanzas per second, sustained
	DefaultRateBurst = 200 // stanzas at once
)

// rateLimiter is a token bucket per sender's bare JID. Idle buckets are
// forgotten, so memory follows the number of recently active senders.
// Safe for concurrent use.
type rateLimiter struct {
	rate  float64 // tokens per second; <= 0: unlimited
	burst float64

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(rate float64, burst int) *rateLimiter {
	if rate == 0 {
		rate = DefaultRateLimit
	}
	if burst <= 0 {
		burst = DefaultRateBurst
	}
	return &rateLimiter{rate: rate, burst: float64(burst), buckets: map[string]*bucket{}}
}

// allow takes one token from key's bucket and reports whether there was one.
func (l *rateLimiter) allow(key string, now time.Time) bool {
	if l == nil || l.rate < 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	if now.Sub(l.lastSweep) > time.Minute {
		// A bucket idle long enough to be full again is the same as none.
		for k, b := range l.buckets {
			if now.Sub(b.last) >= full {
				delete(l.buckets, k)
			}
		}
		l.lastSweep = now
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: l.burst, last: now}
		// A copy: strings from the stream decoder share the stanza's
		// memory, which a long-lived map key would keep alive.
		l.buckets[strings.Clone(key)] = b
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(l.burst, b.tokens+d.Seconds()*l.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// size returns the number of tracked senders (for tests).
func (l *rateLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// admit screens a stanza before dispatch and reports whether to handle it:
//
//   - a from in the gateway's own domain (the server never routes our own
//     addresses back to us; such a stanza is forged or a loop) is dropped
//     with a warning;
//   - a message to a contact from a user of a domain outside
//     access.allowed_domains is refused with forbidden (service discovery,
//     ping, the registration form and chat with the gateway JID stay open
//     to everyone, which explain the refusal; registration itself is
//     refused in register.go, so a foreign domain never has a session);
//   - a user over the per-user rate limit gets resource-constraint (type
//     wait) for messages and IQ requests; other stanzas over the limit are
//     dropped.
//
// Stanzas from the server itself and other components (no localpart) and
// broadcast presence (available, unavailable: one per contact, sent by the
// user's server) are never limited.
func (b *Bridge) admit(ctx context.Context, st *stanza.Element, from jid.JID) bool {
	dom := from.Domainpart()
	if dom == b.domain {
		b.log.Warn("stanza claiming to come from the gateway's own domain dropped", "kind", st.Local, "type", st.Type())
		return false
	}
	if from.Localpart() == "" {
		return true
	}
	typ := st.Type()
	answerable := typ != "error" && typ != "result" && st.Local != "presence"
	toContact := strings.IndexByte(st.To(), '@') > 0
	if st.Local == "message" && answerable && toContact && !b.allowed(dom) {
		b.reply(ctx, stanza.ErrorReply(st, stanza.NewError(stanza.Forbidden, "users of "+dom+" may not use this gateway")))
		return false
	}
	if st.Local == "presence" && (typ == "" || typ == "unavailable") {
		// Broadcast presence is sent by the user's server, one per contact
		// subscribed to the user: a large roster coming online must not
		// trip the limit.
		return true
	}
	if b.limiter.allow(strings.ToLower(from.Bare().String()), time.Now()) {
		return true
	}
	b.log.Debug("stanza over the per-user rate limit", "user", from.Bare().String(), "kind", st.Local)
	if answerable {
		b.reply(ctx, stanza.ErrorReply(st, &stanza.Error{Condition: stanza.ResourceConstraint, Type: stanza.ErrWait,
			Text: "too many stanzas: slow down and try again in a moment"}))
	}
	return false
}
