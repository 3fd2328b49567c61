package sms

import (
	"errors"
	"sync/atomic"

	"github.com/jabbergate/jabbergate/legacy"
)

var _ legacy.EventCounter = (*Network)(nil)

// counters are the adapter's own events (legacy.EventCounter), exported by
// the core as jabbergate_legacy_events_total{event}.
type counters struct {
	routeFailed    atomic.Uint64 // a route failed and the next was tried (or none was left)
	replyMalformed atomic.Uint64 // a provider accepted a message (2xx) with an answer we could not read
	rateLimited    atomic.Uint64 // a provider or our own limits asked to slow down
	rejected       atomic.Uint64 // a message refused for good (bad number, opted out, too long, …)
	reportUnknown  atomic.Uint64 // a delivery report on a message not sent through the gateway
}

// Event names of EventCounts.
const (
	eventDeliverMalformed = "deliver_sm_malformed"
	eventRouteFailed      = "route_failed"
	eventReplyMalformed   = "provider_reply_malformed"
	eventRateLimited      = "rate_limited"
	eventRejected         = "send_rejected"
	eventReportUnknown    = "report_unknown"
)

// EventCounts implements legacy.EventCounter.
func (n *Network) EventCounts() map[string]uint64 {
	c := &n.counts
	m := map[string]uint64{
		eventRouteFailed:    c.routeFailed.Load(),
		eventReplyMalformed: c.replyMalformed.Load(),
		eventRateLimited:    c.rateLimited.Load(),
		eventRejected:       c.rejected.Load(),
		eventReportUnknown:  c.reportUnknown.Load(),
	}
	if n.smpp != nil {
		m[eventDeliverMalformed] = n.smpp.c.Malformed()
	}
	return m
}

// countSendError counts what err, returned by a route or by Send, says.
func (c *counters) countSendError(err error) {
	var rl *legacy.RateLimitError
	switch {
	case errors.As(err, &rl):
		c.rateLimited.Add(1)
	case legacy.IsPermanent(err):
		c.rejected.Add(1)
	}
}
