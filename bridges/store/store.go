// Package store defines where Jabbergate keeps its state — registrations,
// contacts, durable inbox and outbox queues, message-id maps, dedupe marks —
// and the conformance suite (package storetest) every implementation
// passes. Implementations: store/bolt (embedded bbolt file, the zero-setup
// default), store/pebble (embedded Pebble LSM directory) and store/redis
// (go-redis UniversalClient: single server, Sentinel or Cluster).
//
// Every key is scoped by bridge (the component domain) and, where it
// belongs to one user, by the user's bare JID, so one store can serve many
// bridges and, on Redis Cluster, one user's keys share a hash slot.
//
// All methods are safe for concurrent use and take a context first.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("store: not found")

// ErrLocked is returned by an embedded store whose file is held by another
// process.
var ErrLocked = errors.New("store: locked by another process")

// ErrCorrupt is wrapped by the errors about stored data that cannot be
// read: an embedded store's file or directory that is damaged (Open's
// error names it and what is wrong) or one record that does not decode
// (CorruptRecordError). Restarting does not fix it: an admin must look.
var ErrCorrupt = errors.New("store: corrupt data")

// CorruptRecordError is a stored account record that does not decode:
// GetAccount's error for it, and one of ListAccounts' CorruptAccountsError.
// It wraps ErrCorrupt and the decoding error. The record is left as it
// is: only DeleteAccount (an admin's) or a PutAccount replaces it.
type CorruptRecordError struct {
	Bridge, JID string
	// Key is where the backend keeps the record (a Redis key, a bolt
	// bucket path, a Pebble key), for the admin.
	Key string
	Err error
}

func (e *CorruptRecordError) Error() string {
	return fmt.Sprintf("store: the account record of %s on %s (%s) is corrupt: %v", e.JID, e.Bridge, e.Key, e.Err)
}

func (e *CorruptRecordError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }

// CorruptAccountsError is ListAccounts' error when some account records of
// the bridge do not decode. ListAccounts then returns the accounts it could
// read with it: a caller that can do without the others (the gateway,
// which starts every other user) tells it apart with errors.As.
type CorruptAccountsError struct {
	Bridge  string
	Records []*CorruptRecordError
}

func (e *CorruptAccountsError) Error() string {
	parts := make([]string, len(e.Records))
	for i, r := range e.Records {
		parts[i] = fmt.Sprintf("%s (%s): %v", r.JID, r.Key, r.Err)
	}
	return fmt.Sprintf("store: %d account record(s) of %s are corrupt: %s", len(e.Records), e.Bridge, strings.Join(parts, "; "))
}

func (e *CorruptAccountsError) Unwrap() error { return ErrCorrupt }

// CorruptAccounts collects the corrupt records of one ListAccounts call;
// Err returns nil when there are none. Backends use it.
type CorruptAccounts struct{ e CorruptAccountsError }

// Add records the record of jid, kept at key, that failed to decode.
func (c *CorruptAccounts) Add(bridge, jid, key string, err error) {
	c.e.Bridge = bridge
	c.e.Records = append(c.e.Records, &CorruptRecordError{Bridge: bridge, JID: jid, Key: key, Err: err})
}

// Err returns the *CorruptAccountsError, or nil.
func (c *CorruptAccounts) Err() error {
	if len(c.e.Records) == 0 {
		return nil
	}
	e := c.e
	return &e
}

// Account is one user's registration with one bridge.
type Account struct {
	Bridge   string            // bridge domain
	JID      string            // the user's bare JID
	LegacyID string            // legacy account id from the adapter
	Fields   map[string]string // registration fields; secret values already sealed by the caller
	Settings map[string]string // user preferences
	State    []byte            // adapter state blob (cursors)
	Created  time.Time
	// Subscribed records the gateway-JID subscription state with the user:
	// "" (none), "to", "from" or "both", from the gateway's point of view
	// ("from": the user receives the gateway's presence).
	Subscription string
}

// Contact is a legacy contact of one user.
type Contact struct {
	Localpart string // JID localpart under the bridge domain (escaped)
	LegacyID  string // the legacy ChatID, stored, never re-derived
	Name      string
	// Subscription from the contact's point of view: "", "from" (the user
	// is subscribed to the contact's presence), "to", "both".
	Subscription string
	// Group: the chat is a legacy group (legacy.Contact.Group). Groups
	// are roster contacts for now; kept so that they can become rooms
	// without asking the adapters again.
	Group bool
	// Unavailable: the network's last word on the contact was that it is
	// unavailable (a Telegram user who blocked the bot), UnavailableStatus
	// its reason; kept so that a restarted gateway does not show the
	// contact online. Only networks with Caps.Presence set it.
	Unavailable       bool
	UnavailableStatus string
}

// Queue names one durable FIFO queue of one user on one bridge.
type Queue struct {
	Bridge string
	JID    string // bare JID of the user
	Kind   QueueKind
}

// QueueKind tells inbox from outbox.
type QueueKind string

// Queue kinds.
const (
	Inbox  QueueKind = "in"  // legacy → XMPP, waiting for the barrier
	Outbox QueueKind = "out" // XMPP → legacy, waiting for the adapter
)

// Entry is one queued item. IDs are assigned by the store, increase within a
// queue and are opaque strings; order by position in the returned slice.
type Entry struct {
	ID      string
	Payload []byte
}

// Store is the state backend.
type Store interface {
	// PutAccount creates or replaces the account (Bridge, JID).
	PutAccount(ctx context.Context, a *Account) error
	// GetAccount returns the account or ErrNotFound; a record that does
	// not decode, a *CorruptRecordError.
	GetAccount(ctx context.Context, bridge, jid string) (*Account, error)
	// DeleteAccount removes the account, its contacts, its queues and its
	// message maps. Deleting a missing account is not an error.
	DeleteAccount(ctx context.Context, bridge, jid string) error
	// ListAccounts returns every account of bridge, in no particular order.
	// Account records that do not decode are left out and named by a
	// *CorruptAccountsError, returned with the others.
	ListAccounts(ctx context.Context, bridge string) ([]*Account, error)

	// PutContact creates or replaces the contact (by Localpart).
	PutContact(ctx context.Context, bridge, jid string, c *Contact) error
	// GetContact returns the contact or ErrNotFound.
	GetContact(ctx context.Context, bridge, jid, localpart string) (*Contact, error)
	// ListContacts returns the user's contacts, sorted by Localpart.
	ListContacts(ctx context.Context, bridge, jid string) ([]*Contact, error)
	// DeleteContact removes a contact; missing is not an error.
	DeleteContact(ctx context.Context, bridge, jid, localpart string) error

	// Append adds payloads to the end of q, atomically, and returns their
	// ids. When it returns nil the entries are durable.
	Append(ctx context.Context, q Queue, payloads ...[]byte) ([]string, error)
	// Read returns up to limit entries of q in order, starting after the
	// entry with id after ("" = from the head).
	Read(ctx context.Context, q Queue, after string, limit int) ([]Entry, error)
	// Ack removes entries from q. Unknown ids are ignored.
	Ack(ctx context.Context, q Queue, ids ...string) error
	// Len returns the number of entries in q.
	Len(ctx context.Context, q Queue) (int, error)
	// Queues lists the non-empty queues of kind on bridge (used at start to
	// resume work left by a crash).
	Queues(ctx context.Context, bridge string, kind QueueKind) ([]Queue, error)

	// PutMapping stores key → value in the namespace ns of one user, expiring
	// after ttl (0: never). Used for legacy ↔ stanza id maps.
	PutMapping(ctx context.Context, bridge, jid, ns, key, value string, ttl time.Duration) error
	// GetMapping returns the value or ErrNotFound (also once expired).
	GetMapping(ctx context.Context, bridge, jid, ns, key string) (string, error)

	// MarkSeen records key (scoped by bridge and jid) for ttl and reports
	// whether it was new. Used to drop replayed events.
	MarkSeen(ctx context.Context, bridge, jid, key string, ttl time.Duration) (bool, error)

	// Ping checks that the backend is reachable.
	Ping(ctx context.Context) error
	// Close releases the backend.
	Close() error
}
