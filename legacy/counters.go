package legacy

// EventCounter is implemented by networks that count events an operator
// should be able to watch but the core cannot see, because they never
// become a stanza: a deliver_sm refused for a broken UDH, a provider reply
// that was not the JSON its API documents, a 429 from the legacy API. The
// core exports them as jabbergate_legacy_events_total{bridge,network,event}.
//
// EventCounts returns the counts since the Network was made. The counts
// only grow, and the names are a small fixed set of snake_case words
// chosen by the adapter (never ids, numbers or addresses: they become
// label values). It is called at every scrape and must be cheap and safe
// for concurrent use.
type EventCounter interface {
	EventCounts() map[string]uint64
}
