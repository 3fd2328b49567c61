// Package metrics exports Jabbergate's Prometheus metrics. Every name has
// the jabbergate_ prefix and a base unit; labels carry only bounded values
// (bridge domain, network, kind, direction, operation, reason) — never a
// JID, a phone number or an address.
//
// jabbergate_outbox_oldest_age_seconds is computed at scrape time from the
// enqueue time of the entry at the head of each user's outbox, as the
// bridges report it (OutboxOldest); users are told apart by an opaque key
// that is never exported. It covers the outboxes this process works on:
// in a cluster, each instance reports the accounts it owns.
// jabbergate_legacy_session_failures_total counts by a fixed set of
// reasons (SessionFailureReasons). RemoveBridge drops a bridge's series
// when a config reload removes or restarts it.
package metrics

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/component"
	"github.com/jabbergate/jabbergate/legacy"
)

// Metrics holds the collectors on their own registry.
type Metrics struct {
	Registry *prometheus.Registry

	linkUp       *prometheus.GaugeVec
	linkStandby  *prometheus.GaugeVec
	reconnects   *prometheus.CounterVec
	streamErrors *prometheus.CounterVec
	stanzas      *prometheus.CounterVec
	queueDepth   *prometheus.GaugeVec
	delivered    *prometheus.CounterVec
	sessions     *prometheus.GaugeVec
	storeOps     *prometheus.HistogramVec
	storeErrors  *prometheus.CounterVec
	info         *prometheus.GaugeVec
	webhooks     *prometheus.CounterVec
	sessionFails *prometheus.CounterVec

	// outboxHeads holds, per bridge and per user (an opaque key, never
	// exported), when the entry at the head of the user's outbox was
	// queued; jabbergate_outbox_oldest_age_seconds is computed from it at
	// scrape time.
	mu          sync.Mutex
	outboxHeads map[string]map[string]time.Time
	now         func() time.Time
	// networks holds, per bridge, a network that counts its own events
	// (jabbergate_legacy_events_total, read at scrape time).
	networks map[string]watchedNetwork
}

// New registers the collectors, plus the Go and process collectors.
func New(version string) *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry(), outboxHeads: map[string]map[string]time.Time{}, now: time.Now,
		networks: map[string]watchedNetwork{}}
	m.linkUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "jabbergate_link_up", Help: "1 when the component link of the bridge is connected and authenticated."}, []string{"bridge"})
	m.linkStandby = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "jabbergate_link_standby", Help: "1 while the bridge is a standby: clustered with one component link per domain, another instance holds the link (its link_up is 0 by design)."}, []string{"bridge"})
	m.reconnects = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jabbergate_link_reconnects_total", Help: "Successful re-connections of the component link after the first."}, []string{"bridge"})
	m.streamErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jabbergate_link_stream_errors_total", Help: "Stream errors received from the XMPP server, by condition."}, []string{"bridge", "condition"})
	m.stanzas = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jabbergate_stanzas_total", Help: "Stanzas read from (in) or written to (out) the component link, by kind."}, []string{"bridge", "kind", "direction"})
	m.queueDepth = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "jabbergate_queue_depth", Help: "Entries waiting in the durable queues (inbox: legacy to XMPP, outbox: XMPP to legacy) of the users this process runs, as it counted them: those found at start, queued or emitted through it. In a cluster, entries queued through another instance or present when an account moved here are not counted."}, []string{"bridge", "queue"})
	m.delivered = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jabbergate_messages_total", Help: "Messages carried by direction (in: legacy to XMPP, out: XMPP to legacy) and result."}, []string{"bridge", "direction", "result"})
	m.sessions = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "jabbergate_legacy_sessions", Help: "Legacy sessions running."}, []string{"bridge"})
	m.storeOps = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "jabbergate_store_operation_duration_seconds", Help: "Latency of store operations.", Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}}, []string{"operation"})
	m.storeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jabbergate_store_errors_total", Help: "Store operations that failed (not counting not-found)."}, []string{"operation"})
	m.webhooks = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jabbergate_webhook_requests_total", Help: "Requests to the adapters' webhooks, by HTTP status class (2xx, 4xx: refused, e.g. a bad signature; 5xx: not taken, the provider retries)."}, []string{"bridge", "code"})
	m.sessionFails = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jabbergate_legacy_session_failures_total", Help: "Legacy sessions that failed, by reason: unauthorized (credentials rejected: the session stops until the user registers again), credentials (stored credentials could not be unsealed: vault key changed?), open (the adapter could not open the session), rate_limited, unavailable (network unreachable or down), ended (the session stopped by itself), error (anything else). All but unauthorized, credentials and open are retried with backoff."}, []string{"bridge", "network", "reason"})
	m.info = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "jabbergate_build_info", Help: "Always 1; the version label tells the build."}, []string{"version"})
	m.Registry.MustRegister(m.linkUp, m.linkStandby, m.reconnects, m.streamErrors, m.stanzas, m.queueDepth, m.delivered, m.sessions, m.storeOps, m.storeErrors, m.info, m.webhooks,
		m.sessionFails, outboxAge{m}, legacyEvents{m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.info.WithLabelValues(version).Set(1)
	return m
}

// Bridge returns the observers for one bridge.
func (m *Metrics) Bridge(domain string) *BridgeMetrics {
	bm := &BridgeMetrics{m: m, domain: domain}
	m.linkUp.WithLabelValues(domain).Set(0)
	m.linkStandby.WithLabelValues(domain).Set(0)
	m.reconnects.WithLabelValues(domain)
	for c := range streamConditions { // at zero: increase() sees the first
		m.streamErrors.WithLabelValues(domain, c)
	}
	m.streamErrors.WithLabelValues(domain, "other")
	bm.inboxDepth = m.queueDepth.WithLabelValues(domain, queueName(store.Inbox))
	bm.outboxDepth = m.queueDepth.WithLabelValues(domain, queueName(store.Outbox))
	for i, kind := range stanzaKinds {
		for j, dir := range []component.Direction{component.In, component.Out} {
			bm.stanzas[i][j] = m.stanzas.WithLabelValues(domain, kind, string(dir))
		}
	}
	for i, dir := range []string{"in", "out"} {
		for j, r := range []string{"ok", "failed"} {
			bm.delivered[i][j] = m.delivered.WithLabelValues(domain, dir, r)
		}
	}
	m.sessions.WithLabelValues(domain)
	m.mu.Lock()
	if m.outboxHeads[domain] == nil {
		m.outboxHeads[domain] = map[string]time.Time{}
	}
	m.mu.Unlock()
	return bm
}

// RemoveBridge drops every series of a bridge, for a bridge removed or
// restarted by a configuration reload (Bridge makes them again). The
// bridge must have stopped.
func (m *Metrics) RemoveBridge(domain string) {
	l := prometheus.Labels{"bridge": domain}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{
		m.linkUp, m.linkStandby, m.reconnects, m.streamErrors, m.stanzas, m.queueDepth, m.delivered, m.sessions, m.webhooks, m.sessionFails,
	} {
		v.DeletePartialMatch(l)
	}
	m.mu.Lock()
	delete(m.outboxHeads, domain)
	delete(m.networks, domain)
	m.mu.Unlock()
}

// WatchNetwork exports the counts of a network that implements
// legacy.EventCounter as jabbergate_legacy_events_total; other networks
// are ignored.
func (b *BridgeMetrics) WatchNetwork(network string, n legacy.Network) {
	c, ok := n.(legacy.EventCounter)
	if !ok {
		return
	}
	b.m.mu.Lock()
	b.m.networks[b.domain] = watchedNetwork{name: network, counter: c}
	b.m.mu.Unlock()
}

// watchedNetwork is one bridge's network that counts its own events.
type watchedNetwork struct {
	name    string
	counter legacy.EventCounter
}

// legacyEvents exports jabbergate_legacy_events_total.
type legacyEvents struct{ m *Metrics }

var legacyEventsDesc = prometheus.NewDesc("jabbergate_legacy_events_total",
	"Events counted by a legacy network adapter that never become a stanza (e.g. an SMPP deliver_sm refused for a broken UDH, a provider reply that was not valid JSON, a 429 from the legacy API).",
	[]string{"bridge", "network", "event"}, nil)

func (l legacyEvents) Describe(ch chan<- *prometheus.Desc) { ch <- legacyEventsDesc }

func (l legacyEvents) Collect(ch chan<- prometheus.Metric) {
	l.m.mu.Lock()
	watched := maps.Clone(l.m.networks)
	l.m.mu.Unlock()
	for domain, w := range watched {
		for event, n := range w.counter.EventCounts() {
			ch <- prometheus.MustNewConstMetric(legacyEventsDesc, prometheus.CounterValue, float64(n), domain, w.name, event)
		}
	}
}

// SessionFailureReasons are the values of the reason label of
// jabbergate_legacy_session_failures_total; any other reason is counted
// as "error".
var SessionFailureReasons = []string{"unauthorized", "credentials", "open", "rate_limited", "unavailable", "ended", "error"}

// InitNetwork makes the bridge's jabbergate_legacy_session_failures_total
// series for its network exist at zero, so increase() sees the first
// failure.
func (b *BridgeMetrics) InitNetwork(network string) {
	for _, r := range SessionFailureReasons {
		b.m.sessionFails.WithLabelValues(b.domain, network, r)
	}
}

// SessionFailed implements bridges.SessionObserver.
func (b *BridgeMetrics) SessionFailed(network, reason string) {
	if !slices.Contains(SessionFailureReasons, reason) {
		reason = "error"
	}
	b.m.sessionFails.WithLabelValues(b.domain, network, reason).Inc()
}

// OutboxOldest implements bridges.OutboxObserver: enqueued is when the
// entry now at the head of one user's outbox was queued, zero when that
// outbox is empty or no longer worked on. user is an opaque key that only
// tells users apart; it is never exported.
func (b *BridgeMetrics) OutboxOldest(user string, enqueued time.Time) {
	b.m.mu.Lock()
	defer b.m.mu.Unlock()
	heads := b.m.outboxHeads[b.domain]
	if heads == nil {
		if enqueued.IsZero() {
			return
		}
		heads = map[string]time.Time{}
		b.m.outboxHeads[b.domain] = heads
	}
	if enqueued.IsZero() {
		delete(heads, user)
	} else {
		heads[user] = enqueued
	}
}

// outboxAge exports jabbergate_outbox_oldest_age_seconds.
type outboxAge struct{ m *Metrics }

var outboxAgeDesc = prometheus.NewDesc("jabbergate_outbox_oldest_age_seconds",
	"Age of the oldest message from an XMPP user still waiting in this process's outboxes to be sent to the legacy network (0 when none waits).",
	[]string{"bridge"}, nil)

func (o outboxAge) Describe(ch chan<- *prometheus.Desc) { ch <- outboxAgeDesc }

func (o outboxAge) Collect(ch chan<- prometheus.Metric) {
	o.m.mu.Lock()
	now := o.m.now()
	ages := make(map[string]float64, len(o.m.outboxHeads))
	for domain, heads := range o.m.outboxHeads {
		age := 0.0
		for _, t := range heads {
			age = max(age, now.Sub(t).Seconds())
		}
		ages[domain] = age
	}
	o.m.mu.Unlock()
	for domain, age := range ages {
		ch <- prometheus.MustNewConstMetric(outboxAgeDesc, prometheus.GaugeValue, age, domain)
	}
}

func queueName(k store.QueueKind) string {
	if k == store.Inbox {
		return "inbox"
	}
	return "outbox"
}

// BridgeMetrics implements component.Observer and bridges.Observer for one
// bridge.
type BridgeMetrics struct {
	m      *Metrics
	domain string

	// The series counted per stanza, looked up once (WithLabelValues
	// hashes its labels on every call).
	stanzas                 [len(stanzaKinds)][2]prometheus.Counter // [kind][in, out]
	delivered               [2][2]prometheus.Counter                // [in, out][ok, failed]
	inboxDepth, outboxDepth prometheus.Gauge
}

// stanzaKinds are the kinds component.Observer.Stanza reports.
var stanzaKinds = [...]string{"message", "presence", "iq"}

var _ component.Observer = (*BridgeMetrics)(nil)

// LinkUp implements component.Observer.
func (b *BridgeMetrics) LinkUp(up bool) {
	v := 0.0
	if up {
		v = 1
	}
	b.m.linkUp.WithLabelValues(b.domain).Set(v)
}

// LinkStandby implements bridges.StandbyObserver.
func (b *BridgeMetrics) LinkStandby(standby bool) {
	v := 0.0
	if standby {
		v = 1
	}
	b.m.linkStandby.WithLabelValues(b.domain).Set(v)
}

// Reconnected implements component.Observer.
func (b *BridgeMetrics) Reconnected() { b.m.reconnects.WithLabelValues(b.domain).Inc() }

// Stanza implements component.Observer.
func (b *BridgeMetrics) Stanza(dir component.Direction, kind string) {
	if i := slices.Index(stanzaKinds[:], kind); i >= 0 && (dir == component.In || dir == component.Out) {
		j := 0
		if dir == component.Out {
			j = 1
		}
		b.stanzas[i][j].Inc()
		return
	}
	b.m.stanzas.WithLabelValues(b.domain, kind, string(dir)).Inc()
}

// StreamError implements component.Observer.
func (b *BridgeMetrics) StreamError(condition string) {
	if !streamConditions[condition] {
		condition = "other" // the label takes what the server sent: keep it bounded
	}
	b.m.streamErrors.WithLabelValues(b.domain, condition).Inc()
}

// streamConditions are the stream error conditions of RFC 6120 §4.9.3.
var streamConditions = map[string]bool{
	"bad-format": true, "bad-namespace-prefix": true, "conflict": true, "connection-timeout": true,
	"host-gone": true, "host-unknown": true, "improper-addressing": true, "internal-server-error": true,
	"invalid-from": true, "invalid-namespace": true, "invalid-xml": true, "not-authorized": true,
	"not-well-formed": true, "policy-violation": true, "remote-connection-failed": true, "reset": true,
	"resource-constraint": true, "restricted-xml": true, "see-other-host": true, "system-shutdown": true,
	"undefined-condition": true, "unsupported-encoding": true, "unsupported-feature": true,
	"unsupported-stanza-type": true, "unsupported-version": true,
}

// QueueDepth implements bridges.Observer.
func (b *BridgeMetrics) QueueDepth(kind store.QueueKind, delta int) {
	switch kind {
	case store.Inbox:
		b.inboxDepth.Add(float64(delta))
	case store.Outbox:
		b.outboxDepth.Add(float64(delta))
	default:
		b.m.queueDepth.WithLabelValues(b.domain, queueName(kind)).Add(float64(delta))
	}
}

// Delivered implements bridges.Observer.
func (b *BridgeMetrics) Delivered(direction string, ok bool) {
	j := 0
	if !ok {
		j = 1
	}
	switch direction {
	case "in":
		b.delivered[0][j].Inc()
	case "out":
		b.delivered[1][j].Inc()
	default:
		r := "ok"
		if !ok {
			r = "failed"
		}
		b.m.delivered.WithLabelValues(b.domain, direction, r).Inc()
	}
}

// Sessions implements bridges.Observer.
func (b *BridgeMetrics) Sessions(delta int) {
	b.m.sessions.WithLabelValues(b.domain).Add(float64(delta))
}

// observe records one store operation.
func (m *Metrics) observe(op string, start time.Time, err error) {
	m.storeOps.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil && err != store.ErrNotFound {
		m.storeErrors.WithLabelValues(op).Inc()
	}
}

// storeOperations are the operation label values of the store metrics
// (timedStore's methods).
var storeOperations = []string{"put_account", "get_account", "delete_account", "list_accounts", "put_contact", "get_contact",
	"list_contacts", "delete_contact", "put_mapping", "get_mapping", "mark_seen", "append", "read", "ack", "len", "queues", "ping", "apply"}

// Store wraps s so every operation is timed. The error counter of each
// operation exists from here on at zero, so rate() and increase() see
// the first failure.
func (m *Metrics) Store(s store.Store) store.Store {
	for _, op := range storeOperations {
		m.storeErrors.WithLabelValues(op)
	}
	return &timedStore{s: s, m: m}
}

type timedStore struct {
	s store.Store
	m *Metrics
}

var _ store.Store = (*timedStore)(nil)

func (t *timedStore) PutAccount(ctx context.Context, a *store.Account) (err error) {
	defer func(s time.Time) { t.m.observe("put_account", s, err) }(time.Now())
	return t.s.PutAccount(ctx, a)
}
func (t *timedStore) GetAccount(ctx context.Context, bridge, jid string) (a *store.Account, err error) {
	defer func(s time.Time) { t.m.observe("get_account", s, err) }(time.Now())
	return t.s.GetAccount(ctx, bridge, jid)
}
func (t *timedStore) DeleteAccount(ctx context.Context, bridge, jid string) (err error) {
	defer func(s time.Time) { t.m.observe("delete_account", s, err) }(time.Now())
	return t.s.DeleteAccount(ctx, bridge, jid)
}
func (t *timedStore) ListAccounts(ctx context.Context, bridge string) (a []*store.Account, err error) {
	defer func(s time.Time) { t.m.observe("list_accounts", s, err) }(time.Now())
	return t.s.ListAccounts(ctx, bridge)
}
func (t *timedStore) PutContact(ctx context.Context, bridge, jid string, c *store.Contact) (err error) {
	defer func(s time.Time) { t.m.observe("put_contact", s, err) }(time.Now())
	return t.s.PutContact(ctx, bridge, jid, c)
}
func (t *timedStore) GetContact(ctx context.Context, bridge, jid, lp string) (c *store.Contact, err error) {
	defer func(s time.Time) { t.m.observe("get_contact", s, err) }(time.Now())
	return t.s.GetContact(ctx, bridge, jid, lp)
}
func (t *timedStore) ListContacts(ctx context.Context, bridge, jid string) (c []*store.Contact, err error) {
	defer func(s time.Time) { t.m.observe("list_contacts", s, err) }(time.Now())
	return t.s.ListContacts(ctx, bridge, jid)
}
func (t *timedStore) DeleteContact(ctx context.Context, bridge, jid, lp string) (err error) {
	defer func(s time.Time) { t.m.observe("delete_contact", s, err) }(time.Now())
	return t.s.DeleteContact(ctx, bridge, jid, lp)
}
func (t *timedStore) Append(ctx context.Context, q store.Queue, p ...[]byte) (ids []string, err error) {
	defer func(s time.Time) { t.m.observe("append", s, err) }(time.Now())
	return t.s.Append(ctx, q, p...)
}
func (t *timedStore) Read(ctx context.Context, q store.Queue, after string, limit int) (e []store.Entry, err error) {
	defer func(s time.Time) { t.m.observe("read", s, err) }(time.Now())
	return t.s.Read(ctx, q, after, limit)
}
func (t *timedStore) Ack(ctx context.Context, q store.Queue, ids ...string) (err error) {
	defer func(s time.Time) { t.m.observe("ack", s, err) }(time.Now())
	return t.s.Ack(ctx, q, ids...)
}
func (t *timedStore) Len(ctx context.Context, q store.Queue) (n int, err error) {
	defer func(s time.Time) { t.m.observe("len", s, err) }(time.Now())
	return t.s.Len(ctx, q)
}
func (t *timedStore) Queues(ctx context.Context, bridge string, kind store.QueueKind) (q []store.Queue, err error) {
	defer func(s time.Time) { t.m.observe("queues", s, err) }(time.Now())
	return t.s.Queues(ctx, bridge, kind)
}
func (t *timedStore) PutMapping(ctx context.Context, bridge, jid, ns, key, value string, ttl time.Duration) (err error) {
	defer func(s time.Time) { t.m.observe("put_mapping", s, err) }(time.Now())
	return t.s.PutMapping(ctx, bridge, jid, ns, key, value, ttl)
}
func (t *timedStore) GetMapping(ctx context.Context, bridge, jid, ns, key string) (v string, err error) {
	defer func(s time.Time) { t.m.observe("get_mapping", s, err) }(time.Now())
	return t.s.GetMapping(ctx, bridge, jid, ns, key)
}
func (t *timedStore) MarkSeen(ctx context.Context, bridge, jid, key string, ttl time.Duration) (n bool, err error) {
	defer func(s time.Time) { t.m.observe("mark_seen", s, err) }(time.Now())
	return t.s.MarkSeen(ctx, bridge, jid, key, ttl)
}
func (t *timedStore) Ping(ctx context.Context) (err error) {
	defer func(s time.Time) { t.m.observe("ping", s, err) }(time.Now())
	return t.s.Ping(ctx)
}
func (t *timedStore) Close() error { return t.s.Close() }

// Webhook wraps an adapter's webhook handler so every answer is counted by
// status class.
func (m *Metrics) Webhook(bridge string, h http.Handler) http.Handler {
	for _, c := range []string{"2xx", "4xx", "5xx"} {
		m.webhooks.WithLabelValues(bridge, c)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		m.webhooks.WithLabelValues(bridge, strconv.Itoa(sw.status/100)+"xx").Inc()
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}
