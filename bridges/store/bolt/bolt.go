// Package bolt is the embedded store.Store: one bbolt file, zero setup, one
// gateway process per file.
//
// bbolt takes an exclusive lock (flock) on the file; a second Open of a file
// held by another process (or another Open in the same process) gives up
// after a second (option Timeout) with an error wrapping store.ErrLocked that names the
// file. Every write is one bbolt transaction, fsynced before it returns, so
// Append's entries are durable when it returns nil.
//
// # Layout
//
// Every bucket name and key that carries a caller's string is prefixed with
// one byte, so empty strings are valid and no caller's string can be taken
// for a bucket of the layout:
//
//	"meta"            "version" → 1
//	"bridges"
//	  'b'+bridge        one bucket per bridge
//	    'u'+jid           one bucket per user
//	      "account"         record.EncodeAccount
//	      "contacts"        bucket: 'c'+localpart → record.EncodeContact
//	      "q:in", "q:out"   buckets: 8-byte big-endian sequence → payload
//	      "map"             bucket: uvarint(len(ns)) ns key → expiry value
//	      "seen"            bucket: 'k'+key → expiry
//
// DeleteAccount deletes the user's bucket, and with it everything above.
// Entry ids are the bucket's NextSequence rendered as 20 decimal digits, so
// string order is numeric order; bbolt persists the sequence, so ids keep
// increasing across restarts (a deleted user's queue starts again at 1).
//
// # Expiry
//
// An expiry is 8 bytes, big-endian Unix nanoseconds, 0 for never. Readers
// treat an expired mapping or seen mark as missing, and writers overwrite it.
// To keep the file from growing with marks nobody will read again, a sweeper
// goroutine started by Open deletes expired entries every 10 minutes
// (option SweepInterval), in write transactions of at
// most 10 000 deletions so other writers are not held up; Sweep runs one
// pass on demand. bbolt reuses freed pages but never shrinks the file.
package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/internal/record"
	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Option tunes Open.
type Option func(*options)

type options struct {
	timeout       time.Duration
	sweepInterval time.Duration
	now           func() time.Time
}

// Timeout bounds how long Open waits for the file lock held by another
// process before it fails with store.ErrLocked. Default 1 s.
func Timeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// SweepInterval sets how often expired mappings and seen marks are deleted.
// Default 10 minutes; negative disables the sweeper.
func SweepInterval(d time.Duration) Option { return func(o *options) { o.sweepInterval = d } }

// Clock sets the function TTLs are measured with. Default time.Now. Tests
// pass a fake clock.
func Clock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// Store is the bbolt-backed store.Store. It is safe for concurrent use.
type Store struct {
	db   *bbolt.DB
	path string
	now  func() time.Time

	gc        groupCommit        // shared write transactions (batch.go)
	stop      context.CancelFunc // stops the sweeper
	sweeper   sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Bucket names and keys of the layout.
var (
	bktMeta     = []byte("meta")
	bktBridges  = []byte("bridges")
	bktContacts = []byte("contacts")
	bktMap      = []byte("map")
	bktSeen     = []byte("seen")
	keyVersion  = []byte("version")
	keyAccount  = []byte("account")
)

const schemaVersion = 1

// lockedError reports a file held by another process.
type lockedError struct{ path string }

func (e *lockedError) Error() string {
	return "store: " + e.path + " is in use by another jabbergate process"
}

func (e *lockedError) Unwrap() error { return store.ErrLocked }

// Open opens or creates the store file at path (mode 0600; the directory
// must exist). It fails after the Timeout option (default 1 s) with an error
// wrapping store.ErrLocked if another process holds the file.
//
// Only a missing file is a new store. An existing file that is not a
// whole bbolt database — empty (0 bytes), shorter than its meta page says,
// with no valid meta page, or with pages bbolt cannot read where Open
// looks — is refused with an error wrapping store.ErrCorrupt that names
// the file and the problem ("store file PATH is damaged: …"), and is not
// written to. Check reads the rest of the file.
func Open(path string, opts ...Option) (*Store, error) {
	o := options{timeout: time.Second, sweepInterval: 10 * time.Minute, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.timeout <= 0 {
		o.timeout = time.Second
	}
	if o.now == nil {
		o.now = time.Now
	}
	db, err := openDB(path, &bbolt.Options{Timeout: o.timeout}, func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bktMeta)
		if err != nil {
			return err
		}
		if v := meta.Get(keyVersion); v != nil {
			if n, err := strconv.Atoi(string(v)); err != nil || n != schemaVersion {
				return fmt.Errorf("unsupported schema version %q (this build reads %d)", v, schemaVersion)
			}
		} else if err := meta.Put(keyVersion, []byte(strconv.Itoa(schemaVersion))); err != nil {
			return err
		}
		_, err = tx.CreateBucketIfNotExists(bktBridges)
		return err
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{db: db, path: path, now: o.now, stop: cancel}
	if o.sweepInterval > 0 {
		s.sweeper.Go(func() { s.sweepLoop(ctx, o.sweepInterval) })
	}
	return s, nil
}

// Path returns the file the store was opened on.
func (s *Store) Path() string { return s.path }

// Close stops the sweeper and closes the file. Calling it again returns the
// first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stop()
		s.sweeper.Wait()
		s.closeErr = s.db.Close()
	})
	return s.closeErr
}

// Ping reports whether the file is open.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(bktBridges) == nil {
			return errors.New("store: bolt: layout missing")
		}
		return nil
	})
}

// --- helpers ----------------------------------------------------------------

func bridgeName(bridge string) []byte { return append([]byte{'b'}, bridge...) }
func userName(jid string) []byte      { return append([]byte{'u'}, jid...) }
func contactKey(lp string) []byte     { return append([]byte{'c'}, lp...) }
func seenKey(key string) []byte       { return append([]byte{'k'}, key...) }

func mapKey(ns, key string) []byte {
	b := make([]byte, 0, binary.MaxVarintLen64+len(ns)+len(key))
	b = binary.AppendUvarint(b, uint64(len(ns)))
	b = append(b, ns...)
	return append(b, key...)
}

var (
	bktInbox  = []byte("q:" + string(store.Inbox))
	bktOutbox = []byte("q:" + string(store.Outbox))
)

func queueName(kind store.QueueKind) []byte {
	switch kind {
	case store.Inbox:
		return bktInbox
	case store.Outbox:
		return bktOutbox
	}
	return []byte("q:" + string(kind))
}

// userBucket returns the user's bucket, or nil.
func userBucket(tx *bbolt.Tx, bridge, jid string) *bbolt.Bucket {
	b := tx.Bucket(bktBridges).Bucket(bridgeName(bridge))
	if b == nil {
		return nil
	}
	return b.Bucket(userName(jid))
}

// createUserBucket returns the user's bucket, creating it.
func createUserBucket(tx *bbolt.Tx, bridge, jid string) (*bbolt.Bucket, error) {
	b, err := tx.Bucket(bktBridges).CreateBucketIfNotExists(bridgeName(bridge))
	if err != nil {
		return nil, err
	}
	return b.CreateBucketIfNotExists(userName(jid))
}

// sub returns the named bucket inside the user's bucket, or nil.
func sub(tx *bbolt.Tx, bridge, jid string, name []byte) *bbolt.Bucket {
	u := userBucket(tx, bridge, jid)
	if u == nil {
		return nil
	}
	return u.Bucket(name)
}

func createSub(tx *bbolt.Tx, bridge, jid string, name []byte) (*bbolt.Bucket, error) {
	u, err := createUserBucket(tx, bridge, jid)
	if err != nil {
		return nil, err
	}
	return u.CreateBucketIfNotExists(name)
}

func (s *Store) expiry(ttl time.Duration) uint64 {
	if ttl <= 0 {
		return 0
	}
	return uint64(s.now().Add(ttl).UnixNano())
}

func (s *Store) update(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.db.Update(fn); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

func (s *Store) view(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(fn)
}

// --- accounts ---------------------------------------------------------------

// PutAccount creates or replaces the account (a.Bridge, a.JID).
func (s *Store) PutAccount(ctx context.Context, a *store.Account) error {
	v, err := record.EncodeAccount(a)
	if err != nil {
		return err
	}
	return s.update(ctx, func(tx *bbolt.Tx) error {
		u, err := createUserBucket(tx, a.Bridge, a.JID)
		if err != nil {
			return err
		}
		return u.Put(keyAccount, v)
	})
}

// GetAccount returns the account or store.ErrNotFound.
func (s *Store) GetAccount(ctx context.Context, bridge, jid string) (*store.Account, error) {
	var a *store.Account
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		u := userBucket(tx, bridge, jid)
		if u == nil {
			return store.ErrNotFound
		}
		v := u.Get(keyAccount)
		if v == nil {
			return store.ErrNotFound
		}
		var err error
		if a, err = record.DecodeAccount(v); err != nil {
			return &store.CorruptRecordError{Bridge: bridge, JID: jid, Key: accountPath(s.path, bridge, jid), Err: err}
		}
		return nil
	})
	return a, err
}

// accountPath describes where the account record of jid is, for errors.
func accountPath(file, bridge, jid string) string {
	return fmt.Sprintf("bucket path %q/%q/%q, key %q in %s", bktBridges, bridgeName(bridge), userName(jid), keyAccount, file)
}

// DeleteAccount removes the user's bucket: account, contacts, queues,
// mappings and seen marks.
func (s *Store) DeleteAccount(ctx context.Context, bridge, jid string) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bktBridges).Bucket(bridgeName(bridge))
		if b == nil {
			return nil
		}
		err := b.DeleteBucket(userName(jid))
		if errors.Is(err, bolterrors.ErrBucketNotFound) {
			return nil
		}
		return err
	})
}

// forUsers calls fn for each user bucket of bridge.
func forUsers(tx *bbolt.Tx, bridge string, fn func(jid string, u *bbolt.Bucket) error) error {
	b := tx.Bucket(bktBridges).Bucket(bridgeName(bridge))
	if b == nil {
		return nil
	}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v != nil || len(k) == 0 || k[0] != 'u' {
			continue
		}
		if u := b.Bucket(k); u != nil {
			if err := fn(string(k[1:]), u); err != nil {
				return err
			}
		}
	}
	return nil
}

// ListAccounts returns every account of bridge, ordered by JID; records
// that do not decode are named by a *store.CorruptAccountsError returned
// with the others.
func (s *Store) ListAccounts(ctx context.Context, bridge string) ([]*store.Account, error) {
	var as []*store.Account
	var corrupt store.CorruptAccounts
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		as, corrupt = nil, store.CorruptAccounts{}
		return forUsers(tx, bridge, func(jid string, u *bbolt.Bucket) error {
			v := u.Get(keyAccount)
			if v == nil {
				return nil
			}
			a, err := record.DecodeAccount(v)
			if err != nil {
				corrupt.Add(bridge, jid, accountPath(s.path, bridge, jid), err)
				return nil
			}
			as = append(as, a)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return as, corrupt.Err()
}

// --- contacts ---------------------------------------------------------------

// PutContact creates or replaces the contact c.Localpart.
func (s *Store) PutContact(ctx context.Context, bridge, jid string, c *store.Contact) error {
	v, err := record.EncodeContact(c)
	if err != nil {
		return err
	}
	return s.update(ctx, func(tx *bbolt.Tx) error {
		b, err := createSub(tx, bridge, jid, bktContacts)
		if err != nil {
			return err
		}
		return b.Put(contactKey(c.Localpart), v)
	})
}

// GetContact returns the contact or store.ErrNotFound.
func (s *Store) GetContact(ctx context.Context, bridge, jid, localpart string) (*store.Contact, error) {
	var c *store.Contact
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		b := sub(tx, bridge, jid, bktContacts)
		if b == nil {
			return store.ErrNotFound
		}
		v := b.Get(contactKey(localpart))
		if v == nil {
			return store.ErrNotFound
		}
		var err error
		c, err = record.DecodeContact(v)
		return err
	})
	return c, err
}

// ListContacts returns the user's contacts sorted by Localpart (bbolt keeps
// keys in byte order, which is Go's string order).
func (s *Store) ListContacts(ctx context.Context, bridge, jid string) ([]*store.Contact, error) {
	var cs []*store.Contact
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		b := sub(tx, bridge, jid, bktContacts)
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			c, err := record.DecodeContact(v)
			if err != nil {
				return err
			}
			cs = append(cs, c)
			return nil
		})
	})
	return cs, err
}

// DeleteContact removes the contact; missing is not an error.
func (s *Store) DeleteContact(ctx context.Context, bridge, jid, localpart string) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		b := sub(tx, bridge, jid, bktContacts)
		if b == nil {
			return nil
		}
		return b.Delete(contactKey(localpart))
	})
}

// --- queues -----------------------------------------------------------------

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// Append adds payloads to the end of q in one transaction and returns their
// ids. The entries are on disk when it returns nil.
func (s *Store) Append(ctx context.Context, q store.Queue, payloads ...[]byte) ([]string, error) {
	if err := record.ValidKind(q.Kind); err != nil {
		return nil, err
	}
	if len(payloads) == 0 {
		return nil, ctx.Err()
	}
	ids := make([]string, len(payloads))
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b, err := createSub(tx, q.Bridge, q.JID, queueName(q.Kind))
		if err != nil {
			return err
		}
		for i, p := range payloads {
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			// bbolt copies p into its pages at commit, before Update
			// returns, so the caller may reuse p afterwards.
			if err := b.Put(seqKey(seq), p); err != nil {
				return err
			}
			ids[i] = record.FormatID(seq)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// Read returns up to limit entries of q after the entry with id after (""
// for the head). after need not be present any more. limit <= 0 returns
// nothing.
func (s *Store) Read(ctx context.Context, q store.Queue, after string, limit int) ([]store.Entry, error) {
	if err := record.ValidKind(q.Kind); err != nil {
		return nil, err
	}
	start, none, err := record.ReadStart(after)
	if err != nil {
		return nil, err
	}
	if none {
		return nil, ctx.Err()
	}
	if limit <= 0 {
		return nil, ctx.Err()
	}
	var es []store.Entry
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		b := sub(tx, q.Bridge, q.JID, queueName(q.Kind))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(seqKey(start)); k != nil && len(es) < limit; k, v = c.Next() {
			if len(k) != 8 {
				continue
			}
			es = append(es, store.Entry{
				ID:      record.FormatID(binary.BigEndian.Uint64(k)),
				Payload: bytes.Clone(v),
			})
		}
		return nil
	})
	return es, err
}

// Ack removes the entries ids from q; unknown and malformed ids are ignored.
func (s *Store) Ack(ctx context.Context, q store.Queue, ids ...string) error {
	if err := record.ValidKind(q.Kind); err != nil {
		return err
	}
	keys := make([][]byte, 0, len(ids))
	for _, id := range ids {
		if n, ok := record.ParseID(id); ok {
			keys = append(keys, seqKey(n))
		}
	}
	if len(keys) == 0 {
		return ctx.Err()
	}
	return s.update(ctx, func(tx *bbolt.Tx) error {
		b := sub(tx, q.Bridge, q.JID, queueName(q.Kind))
		if b == nil {
			return nil
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// Len returns the number of entries in q.
func (s *Store) Len(ctx context.Context, q store.Queue) (int, error) {
	if err := record.ValidKind(q.Kind); err != nil {
		return 0, err
	}
	n := 0
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		if b := sub(tx, q.Bridge, q.JID, queueName(q.Kind)); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	})
	return n, err
}

// Queues lists the non-empty queues of kind on bridge, ordered by JID.
func (s *Store) Queues(ctx context.Context, bridge string, kind store.QueueKind) ([]store.Queue, error) {
	if err := record.ValidKind(kind); err != nil {
		return nil, err
	}
	name := queueName(kind)
	var qs []store.Queue
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return forUsers(tx, bridge, func(jid string, u *bbolt.Bucket) error {
			if b := u.Bucket(name); b != nil {
				if k, _ := b.Cursor().First(); k != nil {
					qs = append(qs, store.Queue{Bridge: bridge, JID: jid, Kind: kind})
				}
			}
			return nil
		})
	})
	return qs, err
}

// --- mappings and seen marks ------------------------------------------------

// PutMapping stores key → value in namespace ns of the user; ttl <= 0 means
// no expiry.
func (s *Store) PutMapping(ctx context.Context, bridge, jid, ns, key, value string, ttl time.Duration) error {
	v := make([]byte, 8, 8+len(value))
	binary.BigEndian.PutUint64(v, s.expiry(ttl))
	v = append(v, value...)
	return s.update(ctx, func(tx *bbolt.Tx) error {
		b, err := createSub(tx, bridge, jid, bktMap)
		if err != nil {
			return err
		}
		return b.Put(mapKey(ns, key), v)
	})
}

// GetMapping returns the value, or store.ErrNotFound if missing or expired.
func (s *Store) GetMapping(ctx context.Context, bridge, jid, ns, key string) (string, error) {
	var value string
	now := s.now().UnixNano()
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		b := sub(tx, bridge, jid, bktMap)
		if b == nil {
			return store.ErrNotFound
		}
		v := b.Get(mapKey(ns, key))
		if len(v) < 8 || record.Expired(binary.BigEndian.Uint64(v), now) {
			return store.ErrNotFound
		}
		value = string(v[8:])
		return nil
	})
	return value, err
}

// MarkSeen records key for ttl (<= 0: forever) and reports whether it was
// new: absent or expired.
func (s *Store) MarkSeen(ctx context.Context, bridge, jid, key string, ttl time.Duration) (bool, error) {
	isNew := false
	now := s.now().UnixNano()
	k := seenKey(key)
	live := func(b *bbolt.Bucket) bool {
		v := b.Get(k)
		return len(v) == 8 && !record.Expired(binary.BigEndian.Uint64(v), now)
	}
	// A replay needs no write transaction (and no fsync).
	seen := false
	if err := s.view(ctx, func(tx *bbolt.Tx) error {
		b := sub(tx, bridge, jid, bktSeen)
		seen = b != nil && live(b)
		return nil
	}); err != nil || seen {
		return false, err
	}
	exp := binary.BigEndian.AppendUint64(nil, s.expiry(ttl))
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		isNew = false
		b, err := createSub(tx, bridge, jid, bktSeen)
		if err != nil {
			return err
		}
		if live(b) {
			return nil
		}
		isNew = true
		return b.Put(k, exp)
	})
	return isNew, err
}

// --- sweeping ---------------------------------------------------------------

// sweepBatch bounds the deletions of one sweep transaction (a var for tests).
var sweepBatch = 10_000

func (s *Store) sweepLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = s.Sweep(ctx) // best effort; the next tick retries
		}
	}
}

type expiredKey struct {
	bridge, user, bucket, key []byte
}

// Sweep deletes expired mappings and seen marks now and returns how many it
// deleted. It scans in read transactions and deletes in write transactions
// of at most 10 000 keys, rechecking each expiry, so it is safe to run
// alongside other calls. It stops early when ctx ends.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		now := s.now().UnixNano()
		var batch []expiredKey
		err := s.db.View(func(tx *bbolt.Tx) error {
			bridges := tx.Bucket(bktBridges)
			return bridges.ForEachBucket(func(bn []byte) error {
				br := bridges.Bucket(bn)
				return br.ForEachBucket(func(un []byte) error {
					u := br.Bucket(un)
					for _, name := range [][]byte{bktMap, bktSeen} {
						b := u.Bucket(name)
						if b == nil {
							continue
						}
						c := b.Cursor()
						for k, v := c.First(); k != nil; k, v = c.Next() {
							if len(batch) >= sweepBatch {
								return errBatchFull
							}
							if len(v) >= 8 && record.Expired(binary.BigEndian.Uint64(v), now) {
								batch = append(batch, expiredKey{
									slices.Clone(bn), slices.Clone(un), name, slices.Clone(k),
								})
							}
						}
					}
					return nil
				})
			})
		})
		if err != nil && !errors.Is(err, errBatchFull) {
			return total, fmt.Errorf("store: sweep: %w", err)
		}
		if len(batch) == 0 {
			return total, nil
		}
		n := 0
		err = s.db.Update(func(tx *bbolt.Tx) error {
			n = 0
			bridges := tx.Bucket(bktBridges)
			for _, e := range batch {
				br := bridges.Bucket(e.bridge)
				if br == nil {
					continue
				}
				u := br.Bucket(e.user)
				if u == nil {
					continue
				}
				b := u.Bucket(e.bucket)
				if b == nil {
					continue
				}
				if v := b.Get(e.key); len(v) >= 8 && record.Expired(binary.BigEndian.Uint64(v), now) {
					if err := b.Delete(e.key); err != nil {
						return err
					}
					n++
				}
			}
			return nil
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("store: sweep: %w", err)
		}
		if len(batch) < sweepBatch || n == 0 {
			return total, nil
		}
	}
}

var errBatchFull = errors.New("batch full")
