// Package pebble is the embedded store.Store on a Pebble LSM database
// (github.com/cockroachdb/pebble/v2): one directory, zero setup, one
// gateway process per directory.
//
// A write is one append to Pebble's write-ahead log, fsynced, plus a
// memtable insert; concurrent writers share commits (group commit, as in
// store/bolt), so each group costs one fdatasync. When a write returns nil
// it is on disk.
//
// Pebble locks the directory (its LOCK file, fcntl); a second Open of a
// directory held by another process, or by another Open in the same
// process under any spelling of its path (the store compares the
// directory's device and inode), gives up after a second (option Timeout)
// with an error wrapping store.ErrLocked that names the directory.
//
// # Layout
//
// Keys are byte strings in one ordered keyspace. A caller's string inside
// a key is a component: its bytes with each 0x00 written as 0x00 0xff,
// ended by 0x00 0x01. No component's encoding is a prefix of another's,
// so no caller's string can be taken for another's or for the layout, and
// every key of one user starts with the same prefix — one user's keys are
// contiguous:
//
//	0x00 "version"                       → "1"
//	'u' bridge jid 'a'                   → record.EncodeAccount
//	'u' bridge jid 'c' localpart         → record.EncodeContact
//	'u' bridge jid 'm' ns key            → expiry value
//	'u' bridge jid 'q' 'i'|'o'           → 8-byte big-endian last sequence
//	'u' bridge jid 'q' 'i'|'o' sequence  → payload (8-byte big-endian sequence)
//	'u' bridge jid 's' key               → expiry
//
// (bridge, jid and ns are components; localpart and key, last in their
// keys, are raw.) Contacts sort by localpart; DeleteAccount is one range
// deletion of the user's prefix. Entry ids are the sequence rendered as
// 20 decimal digits, so string order is numeric order. The last sequence
// of a queue is written with every Append, and kept in memory for the
// next (the first Append to a queue since Open reads it from the
// database), so ids keep increasing across acks, emptied queues and
// restarts. DeleteAccount deletes it with the rest of the user's keys: a
// queue written again after it starts again at 1, at once, as on bolt
// (whose DeleteAccount drops the user's bucket and with it the queue's
// bucket sequence).
//
// # Durability
//
// Pebble shows a commit to its readers a moment before its WAL sync ends,
// so the store's read methods do not read the database as it is: they
// read a view, a Pebble snapshot taken after each commit round's synced
// commit has returned and before the round's callers are answered (and at
// Open). Rounds run one at a time, so no commit is in flight when a view
// is taken: a read sees a write only once it is durable, as on bolt, and
// a caller its own write once its call returned. A read keeps the view it
// started with; a replaced view is closed when the last read holding it
// ends. The committer's own reads — MarkSeen's "old", Append's last
// sequence, the sweeper's recheck — read the database inside a commit
// round, which starts after the previous round's fsync.
//
// A failed WAL sync (a full disk, an I/O error) leaves Pebble unable to
// go on — the failed commit is in its memtable, its commit pipeline is
// stuck — and it calls its logger's Fatalf: the store then logs the error
// at error level, naming the directory, and ends the process with status
// 1. The failed write's caller is never answered and no read sees it; a
// restart recovers what was durable.
//
// # Queues
//
// An Ack deletes entries with Pebble's SingleDelete, which a flush or
// compaction drops together with the entry it meets instead of writing a
// tombstone on and on: most entries are acknowledged before their
// memtable is flushed, so neither reaches a table. SingleDelete requires
// that a key be set once between deletions, which holds: sequences only
// increase, and the one way a queue starts again at 1, DeleteAccount,
// lays a range deletion between the old entries and the new (the case
// Pebble's documentation allows); a repeated Ack of an id is a second
// single delete, which Pebble ignores.
//
// Deleted entries still leave tombstones in the memtable that a read
// would step over until a flush drops them. The store keeps in memory,
// per queue read since Open that has a stored last sequence, the lowest
// sequence that may still be live (raised by reads that find the entries
// below it gone) and starts every read there with one seek, so acked
// entries are not scanned again. Reads of a queue never written keep
// nothing; DeleteAccount forgets the user's queues.
//
// # Expiry
//
// An expiry is 8 bytes, big-endian Unix nanoseconds, 0 for never. Readers
// treat an expired mapping or seen mark as missing, and writers overwrite
// it. A sweeper goroutine started by Open deletes expired entries every 10
// minutes (option SweepInterval), in commits of at most 10 000 deletions;
// Sweep runs one pass on demand.
package pebble

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/internal/record"
)

// Option tunes Open.
type Option func(*options)

type options struct {
	timeout       time.Duration
	sweepInterval time.Duration
	now           func() time.Time
	fs            vfs.FS
	fatal         func(msg string)
}

// Timeout bounds how long Open waits for the directory lock held by
// another process before it fails with store.ErrLocked. Default 1 s.
func Timeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// SweepInterval sets how often expired mappings and seen marks are deleted.
// Default 10 minutes; negative disables the sweeper.
func SweepInterval(d time.Duration) Option { return func(o *options) { o.sweepInterval = d } }

// Clock sets the function TTLs are measured with. Default time.Now. Tests
// pass a fake clock.
func Clock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// withFS makes Open use fs for the database (the directory itself and
// the lock file's identity are still taken from the operating system):
// tests pass a file system that injects faults.
func withFS(fs vfs.FS) Option { return func(o *options) { o.fs = fs } }

// onFatal replaces what the store does when Pebble cannot go on (fatal):
// tests pass a function that records the message.
func onFatal(fn func(msg string)) Option { return func(o *options) { o.fatal = fn } }

// ErrClosed is returned by calls on a closed Store.
var ErrClosed = errors.New("store: pebble: store is closed")

// Store is the Pebble-backed store.Store. It is safe for concurrent use.
type Store struct {
	db   *pebbledb.DB
	lock *pebbledb.Lock
	dir  os.FileInfo // the directory, as held in this process (openDirs)
	path string
	now  func() time.Time

	// mu is held shared around every use of db and exclusively by Close,
	// so no call reaches a closed database (Pebble panics on that).
	mu     sync.RWMutex
	closed bool

	gc groupCommit // shared commits (batch.go)
	// The committing round's key and value scratch, kept for the next
	// (rounds run one at a time).
	wkey, wval []byte
	// tails holds, by queue prefix, the last sequence of every queue
	// appended to since Open, as committed, so that Append need not look
	// it up in the database (a Pebble Get, a memtable seek at least).
	// Only the committer uses it; wtails is a round's pending part,
	// merged in once the round's commit is durable.
	tails, wtails map[string]uint64
	// seen holds the seen-mark filters, by the user's seen-key prefix
	// (seen.go). Only the committer uses it.
	seen map[string]*seenFilter

	// rmu guards what a read starts from: view, the readers' snapshot of
	// the database (see publish); heads, by queuePrefix, where reads of a
	// queue start (see scanQueue); resets, the count of committed
	// DeleteAccounts, which drop the user's heads.
	rmu    sync.Mutex
	view   *view
	heads  map[string]uint64
	resets uint64

	local *store.Local // in-process leases and notifications (lease.go)

	stop      context.CancelFunc // stops the sweeper
	sweeper   sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

const schemaVersion = 1

// lockedError reports a directory held by another process.
type lockedError struct{ path string }

func (e *lockedError) Error() string {
	return "store: " + e.path + " is in use by another jabbergate process"
}

func (e *lockedError) Unwrap() error { return store.ErrLocked }

// Tuning for a small embedded database: a gateway's working set is its
// users' recent queue entries, id maps and seen marks. Pebble counts its
// memtables (the one being written and any being flushed) against the
// block cache, so the cache must be several memtables large or it caches
// nothing: 32 MiB in all, of which memtables take 4 to 8 MiB.
const (
	cacheSize    = 32 << 20
	memTableSize = 4 << 20
	maxOpenFiles = 256
)

// Open opens or creates the store in directory path (created with mode
// 0700 if missing; its parent must exist). It fails after the Timeout
// option (default 1 s) with an error wrapping store.ErrLocked if another
// process holds the directory.
//
// A directory holding Pebble's data files (*.sst, MANIFEST-*, *.log) but
// no marker.manifest.* file is refused, not opened as a new store (which
// would delete the tables), and a database Pebble finds damaged (its
// write-ahead log, its MANIFEST, a table) is refused with an error naming
// the directory and the damage; both wrap store.ErrCorrupt.
func Open(path string, opts ...Option) (*Store, error) {
	o := options{timeout: time.Second, sweepInterval: 10 * time.Minute, now: time.Now, fs: vfs.Default, fatal: fatal}
	for _, opt := range opts {
		opt(&o)
	}
	if o.timeout <= 0 {
		o.timeout = time.Second
	}
	if o.now == nil {
		o.now = time.Now
	}
	if err := os.Mkdir(path, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("store: open %s: not a directory (the pebble store is a directory)", path)
	}
	lock, err := lockDir(path, fi, o.fs, o.timeout)
	if err != nil {
		return nil, err
	}
	if err := checkDir(path, o.fs); err != nil {
		lock.Close()
		releaseDir(fi)
		return nil, err
	}
	l := logger{path: path, fatal: o.fatal}
	popts := &pebbledb.Options{
		CacheSize:          cacheSize,
		MemTableSize:       memTableSize,
		MaxOpenFiles:       maxOpenFiles,
		FormatMajorVersion: pebbledb.FormatNewest,
		Logger:             l,
		EventListener:      &pebbledb.EventListener{DataCorruption: l.dataCorruption},
		Lock:               lock,
		FS:                 o.fs,
	}
	// Bloom filters in every level (the others inherit L0's): most seen
	// marks and many mappings looked up are new keys, which without a
	// filter cost a block read per table that could hold them.
	popts.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	db, err := pebbledb.Open(path, popts)
	if err != nil {
		lock.Close()
		releaseDir(fi)
		return nil, openError(path, o.fs, err)
	}
	if err := checkVersion(db); err != nil {
		db.Close()
		lock.Close()
		releaseDir(fi)
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{
		db: db, lock: lock, dir: fi, path: path, now: o.now,
		heads: map[string]uint64{},
		tails: map[string]uint64{}, wtails: map[string]uint64{},
		seen:  map[string]*seenFilter{},
		local: store.NewLocal(o.now),
		stop:  cancel,
	}
	s.publish(nil) // with the version checkVersion may have written
	if o.sweepInterval > 0 {
		s.sweeper.Go(func() { s.sweepLoop(ctx, o.sweepInterval) })
	}
	return s, nil
}

// openDirs holds the directories open in this process, by identity
// (os.SameFile: device and inode), not by path: Pebble's fcntl lock never
// conflicts within one process, and Pebble's own in-process guard compares
// path strings, so without it a second Open through another spelling of
// the path (a symlink, a trailing "/.", a bind mount) would succeed and two
// databases would write one directory.
var openDirs struct {
	sync.Mutex
	dirs []os.FileInfo
}

// holdDir records dir as open in this process; false if it already is.
func holdDir(dir os.FileInfo) bool {
	openDirs.Lock()
	defer openDirs.Unlock()
	for _, d := range openDirs.dirs {
		if os.SameFile(d, dir) {
			return false
		}
	}
	openDirs.dirs = append(openDirs.dirs, dir)
	return true
}

// releaseDir undoes holdDir.
func releaseDir(dir os.FileInfo) {
	openDirs.Lock()
	defer openDirs.Unlock()
	openDirs.dirs = slices.DeleteFunc(openDirs.dirs, func(d os.FileInfo) bool { return d == dir })
}

// lockDir takes the directory (dir is its os.Stat) in this process and its
// lock file, retrying until timeout while another holder has either.
func lockDir(path string, dir os.FileInfo, fs vfs.FS, timeout time.Duration) (*pebbledb.Lock, error) {
	deadline := time.Now().Add(timeout)
	for {
		if holdDir(dir) {
			lock, err := pebbledb.LockDirectory(path, fs)
			if err == nil {
				return lock, nil
			}
			releaseDir(dir)
			if !isLockHeld(err) {
				return nil, fmt.Errorf("store: open %s: %w", path, err)
			}
		}
		if time.Now().After(deadline) {
			return nil, &lockedError{path: path}
		}
		time.Sleep(min(50*time.Millisecond, time.Until(deadline)+time.Millisecond))
	}
}

// isLockHeld tells a lock held elsewhere from other failures to lock.
func isLockHeld(err error) bool {
	return errors.Is(err, syscall.EAGAIN) || err.Error() == "lock held by current process"
}

// checkVersion writes the schema version into a new database and checks
// it in an existing one.
func checkVersion(db *pebbledb.DB) error {
	v, c, err := db.Get(keyVersion)
	if errors.Is(err, pebbledb.ErrNotFound) {
		return db.Set(keyVersion, []byte(strconv.Itoa(schemaVersion)), pebbledb.Sync)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	if n, err := strconv.Atoi(string(v)); err != nil || n != schemaVersion {
		return fmt.Errorf("unsupported schema version %q (this build reads %d)", v, schemaVersion)
	}
	return nil
}

// logger drops Pebble's informational messages and sends its errors to
// slog's default logger.
type logger struct {
	path  string
	fatal func(msg string)
}

func (logger) Infof(string, ...any) {}

func (l logger) Errorf(format string, args ...any) {
	slog.Error("store: pebble: " + l.path + ": " + fmt.Sprintf(format, args...))
}

// Fatalf is called when Pebble cannot go on: a WAL or MANIFEST write or
// sync that failed (a full disk, an I/O error), corruption, a broken
// invariant. Pebble's state is undefined afterwards and it does not
// expect Fatalf to return: a commit whose WAL sync failed is already in
// its memtable, and its commit pipeline is stuck. Nothing the store could
// do next would be durable, and a caller must not be told a write
// succeeded, nor see it, so the gateway stops (fatal). Fatalf does not
// return.
func (l logger) Fatalf(format string, args ...any) {
	l.fatal("store: pebble: " + l.path + ": " + fmt.Sprintf(format, args...) +
		"; the gateway stops: the store can no longer write durably")
	select {} // fatal does not return; a test's replacement may
}

// dataCorruption is Pebble's DataCorruption event: a table or blob file
// that fails its checksum, met by a read or a compaction. Pebble's default
// calls Fatalf with the error and its stack traces (several KB on one log
// line); this names the file and the error's message, then stops the
// gateway as Fatalf does: reads of the damaged range would fail again.
func (l logger) dataCorruption(info pebbledb.DataCorruptionInfo) {
	l.fatal(fmt.Sprintf("store: pebble: %s: file %s is damaged (%v); the gateway stops: restore the directory from a backup",
		l.path, info.Path, info.Details))
	select {}
}

// fatal logs msg at error level and ends the process with status 1. A
// panic instead would unwind only the caller that ran the failed commit,
// which the bridges recover from (per stanza), leaving the store's
// committer claimed forever and every later write waiting for it.
func fatal(msg string) {
	slog.Error(msg)
	os.Exit(1)
}

// Path returns the directory the store was opened on.
func (s *Store) Path() string { return s.path }

// Close stops the sweeper, waits for the calls in progress and closes the
// database. Later calls fail with ErrClosed. Calling Close again returns
// the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stop()
		s.sweeper.Wait()
		s.mu.Lock()
		s.closed = true
		s.view.release() // the calls are done: no reader holds a view
		err := s.db.Close()
		s.mu.Unlock()
		s.closeErr = errors.Join(err, s.lock.Close())
		releaseDir(s.dir)
	})
	return s.closeErr
}

// enter marks the start of a use of db; leave its end.
func (s *Store) enter() error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

func (s *Store) leave() { s.mu.RUnlock() }

// Ping reports whether the database is open and readable.
func (s *Store) Ping(ctx context.Context) error {
	_, ok, err := s.get(ctx, keyVersion)
	if err == nil && !ok {
		err = errors.New("store: pebble: layout missing")
	}
	return err
}

// view is a snapshot of the database, taken after a write's fsync: all
// that readers see (see the package doc's Durability). It is reference
// counted: the Store holds it while it is the current one, and each read
// while it uses it; the last one to let go closes the snapshot.
type view struct {
	snap   *pebbledb.Snapshot
	refs   atomic.Int64
	resets uint64 // DeleteAccounts published with or before it
}

func (v *view) release() {
	if v.refs.Add(-1) == 0 {
		v.snap.Close() // never fails
	}
}

// iter opens an iterator over [lo, hi).
func (v *view) iter(lo, hi []byte) (*pebbledb.Iterator, error) {
	it, err := v.snap.NewIter(&pebbledb.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return it, nil
}

// publish makes the database as it is now the readers' view, and forgets
// the queue heads of the users deleted (prefixes). Every write calls it
// once its synced commit has returned, before its callers are answered,
// so readers see a write once it is durable, and a caller its own writes
// once its call returned. Writes run one at a time (Open's, then the
// commit rounds'), so no write is in flight when the snapshot is taken.
func (s *Store) publish(deleted [][]byte) {
	v := &view{snap: s.db.NewSnapshot()}
	v.refs.Store(1)
	s.rmu.Lock()
	if len(deleted) > 0 {
		for _, up := range deleted {
			for _, tag := range []byte{queueTag(store.Inbox), queueTag(store.Outbox)} {
				delete(s.heads, string(append(bytes.Clone(up), kindQueue, tag)))
			}
		}
		s.resets++
	}
	v.resets = s.resets
	old := s.view
	s.view = v
	s.rmu.Unlock()
	if old != nil {
		old.release()
	}
}

// beginRead starts a read: it returns the current view, which the caller
// passes to endRead when done.
func (s *Store) beginRead() (*view, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	s.rmu.Lock()
	v := s.view
	v.refs.Add(1)
	s.rmu.Unlock()
	return v, nil
}

func (s *Store) endRead(v *view) {
	v.release()
	s.leave()
}

// get returns a copy of key's value; ok is false if there is none.
func (s *Store) get(ctx context.Context, key []byte) (v []byte, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	rv, err := s.beginRead()
	if err != nil {
		return nil, false, err
	}
	defer s.endRead(rv)
	val, c, err := rv.snap.Get(key)
	if errors.Is(err, pebbledb.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("store: %w", err)
	}
	v = bytes.Clone(val)
	c.Close()
	if v == nil {
		v = []byte{}
	}
	return v, true, nil
}

func closeIter(it *pebbledb.Iterator, err *error) {
	if cerr := it.Close(); cerr != nil && *err == nil {
		*err = fmt.Errorf("store: %w", cerr)
	}
}

// --- accounts ---------------------------------------------------------------

// PutAccount creates or replaces the account (a.Bridge, a.JID). It returns
// once the write is durable.
func (s *Store) PutAccount(ctx context.Context, a *store.Account) error {
	v, err := record.EncodeAccount(a)
	if err != nil {
		return err
	}
	k := accountKey(a.Bridge, a.JID)
	return s.write(ctx, func(w *writer) error { return w.b.Set(k, v, nil) })
}

// GetAccount returns the account or store.ErrNotFound.
func (s *Store) GetAccount(ctx context.Context, bridge, jid string) (*store.Account, error) {
	v, ok, err := s.get(ctx, accountKey(bridge, jid))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, store.ErrNotFound
	}
	a, err := record.DecodeAccount(v)
	if err != nil {
		return nil, &store.CorruptRecordError{Bridge: bridge, JID: jid, Key: fmt.Sprintf("key %q in %s", accountKey(bridge, jid), s.path), Err: err}
	}
	return a, nil
}

// DeleteAccount deletes every key of the user (one range deletion):
// account, contacts, queues, mappings and seen marks.
func (s *Store) DeleteAccount(ctx context.Context, bridge, jid string) error {
	return s.write(ctx, func(w *writer) error { return w.deleteUser(bridge, jid) })
}

// ListAccounts returns every account of bridge, ordered by JID; records
// that do not decode are named by a *store.CorruptAccountsError returned
// with the others. It visits each user's keys with two seeks, whatever
// they hold.
func (s *Store) ListAccounts(ctx context.Context, bridge string) (as []*store.Account, err error) {
	var corrupt store.CorruptAccounts
	err = s.forUsers(ctx, bridge, func(_ *view, it *pebbledb.Iterator, up []byte, jid string) error {
		k := append(bytes.Clone(up), kindAccount)
		if !it.SeekGE(k) || !bytes.Equal(it.Key(), k) {
			return nil
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		a, err := record.DecodeAccount(v)
		if err != nil {
			corrupt.Add(bridge, jid, fmt.Sprintf("key %q in %s", k, s.path), err)
			return nil
		}
		as = append(as, a)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return as, corrupt.Err()
}

// forUsers calls fn for each user of bridge that has keys, in JID order,
// with the view read, an iterator over the bridge's keys in it (which fn
// may move) and the user's key prefix.
func (s *Store) forUsers(ctx context.Context, bridge string, fn func(v *view, it *pebbledb.Iterator, up []byte, jid string) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	v, err := s.beginRead()
	if err != nil {
		return err
	}
	defer s.endRead(v)
	bp := bridgePrefix(bridge)
	it, err := v.iter(bp, successor(bp))
	if err != nil {
		return err
	}
	defer closeIter(it, &err)
	for valid := it.First(); valid; {
		_, jid, n, ok := splitUser(it.Key())
		if !ok { // not of the layout: skip
			valid = it.Next()
			continue
		}
		up := bytes.Clone(it.Key()[:n])
		if err := fn(v, it, up, jid); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		valid = it.SeekGE(successor(up))
	}
	return it.Error()
}

// --- contacts ---------------------------------------------------------------

// PutContact creates or replaces the contact c.Localpart.
func (s *Store) PutContact(ctx context.Context, bridge, jid string, c *store.Contact) error {
	v, err := record.EncodeContact(c)
	if err != nil {
		return err
	}
	k := contactKey(bridge, jid, c.Localpart)
	return s.write(ctx, func(w *writer) error { return w.b.Set(k, v, nil) })
}

// GetContact returns the contact or store.ErrNotFound.
func (s *Store) GetContact(ctx context.Context, bridge, jid, localpart string) (*store.Contact, error) {
	v, ok, err := s.get(ctx, contactKey(bridge, jid, localpart))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, store.ErrNotFound
	}
	return record.DecodeContact(v)
}

// ListContacts returns the user's contacts sorted by Localpart (keys sort
// in byte order, which is Go's string order).
func (s *Store) ListContacts(ctx context.Context, bridge, jid string) (cs []*store.Contact, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	v, err := s.beginRead()
	if err != nil {
		return nil, err
	}
	defer s.endRead(v)
	p := contactPrefix(bridge, jid)
	it, err := v.iter(p, successor(p))
	if err != nil {
		return nil, err
	}
	defer closeIter(it, &err)
	for valid := it.First(); valid; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		c, err := record.DecodeContact(v)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, it.Error()
}

// DeleteContact removes the contact; missing is not an error.
func (s *Store) DeleteContact(ctx context.Context, bridge, jid, localpart string) error {
	k := contactKey(bridge, jid, localpart)
	return s.write(ctx, func(w *writer) error { return w.b.Delete(k, nil) })
}

// --- queues -----------------------------------------------------------------

// A queue's head is the lowest sequence that may still be live: reads
// from the head start there, with one seek, instead of stepping over the
// tombstones of acked entries. It is learned by reads (the first live
// entry they find, or one past the queue's last sequence when they find
// none) and only ever raised, since sequences are assigned in increasing
// order. Only queues with a stored last sequence get one, and
// DeleteAccount drops the user's: the map holds at most two entries per
// user with a queue in the database. An emptied queue keeps its head, so
// the next read after it refills does not step over every tombstone left
// since the last compaction.

// head returns where reads of queue p may start (0 if unknown). Call it
// after taking the view the read scans: read before, it could be the head
// of a queue that a DeleteAccount published since then has deleted.
func (s *Store) head(p []byte) uint64 {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	return s.heads[string(p)]
}

// raiseHead records that no live entry of queue p is below h, learned by
// a read of view v: unless a DeleteAccount has been published since v,
// which may have emptied the queue and restarted its sequence.
func (s *Store) raiseHead(p []byte, h uint64, v *view) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if s.resets != v.resets {
		return
	}
	if cur, ok := s.heads[string(p)]; !ok || h > cur {
		s.heads[string(p)] = h
	}
}

// Append adds payloads to the end of q in one commit and returns their ids.
// The entries are on disk when it returns nil.
func (s *Store) Append(ctx context.Context, q store.Queue, payloads ...[]byte) ([]string, error) {
	if err := record.ValidKind(q.Kind); err != nil {
		return nil, err
	}
	if len(payloads) == 0 {
		return nil, ctx.Err()
	}
	var ids []string
	err := s.write(ctx, func(w *writer) error {
		var err error
		ids, err = w.append(q, payloads)
		return err
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
	from, none, err := record.ReadStart(after)
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
	err = s.scanQueue(ctx, q, from, func(seq uint64, it *pebbledb.Iterator) (bool, error) {
		v, err := it.ValueAndErr()
		if err != nil {
			return false, err
		}
		es = append(es, store.Entry{ID: record.FormatID(seq), Payload: bytes.Clone(v)})
		return len(es) < limit, nil
	})
	return es, err
}

// scanQueue calls fn for the entries of q from sequence from on, in order,
// until fn returns false. It starts at the queue's head when from is
// below it, and raises the head when it scanned from there.
func (s *Store) scanQueue(ctx context.Context, q store.Queue, from uint64, fn func(seq uint64, it *pebbledb.Iterator) (bool, error)) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	v, err := s.beginRead()
	if err != nil {
		return err
	}
	defer s.endRead(v)
	p := queuePrefix(q)
	head := s.head(p)
	fromHead := from <= head
	if fromHead {
		from = head
	}
	// Over the queue's last sequence (key p) and its entries.
	it, err := v.iter(p, successor(p))
	if err != nil {
		return err
	}
	defer closeIter(it, &err)
	first := true
	for valid := it.SeekGE(entryKey(p, from)); valid; valid = it.Next() {
		k := it.Key()
		if len(k) != len(p)+8 {
			continue
		}
		seq := binary.BigEndian.Uint64(k[len(p):])
		if first && fromHead && seq > head {
			s.raiseHead(p, seq, v)
		}
		first = false
		more, err := fn(seq, it)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if !more {
			return nil
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if first && fromHead && it.First() && bytes.Equal(it.Key(), p) {
		// Nothing from the head on: every entry up to the queue's last
		// sequence is gone. (No last sequence: the queue was never
		// written, and gets no head.)
		last, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if len(last) == 8 && binary.BigEndian.Uint64(last)+1 > head {
			s.raiseHead(p, binary.BigEndian.Uint64(last)+1, v)
		}
	}
	return nil
}

// Ack removes the entries ids from q; unknown and malformed ids are ignored.
func (s *Store) Ack(ctx context.Context, q store.Queue, ids ...string) error {
	if err := record.ValidKind(q.Kind); err != nil {
		return err
	}
	if len(ids) == 0 {
		return ctx.Err()
	}
	return s.write(ctx, func(w *writer) error { return w.ack(q, ids) })
}

// Len returns the number of entries in q. It counts them, from the head.
func (s *Store) Len(ctx context.Context, q store.Queue) (int, error) {
	if err := record.ValidKind(q.Kind); err != nil {
		return 0, err
	}
	n := 0
	err := s.scanQueue(ctx, q, 0, func(uint64, *pebbledb.Iterator) (bool, error) {
		n++
		return true, nil
	})
	return n, err
}

// Queues lists the non-empty queues of kind on bridge, ordered by JID. It
// visits each user with two seeks.
func (s *Store) Queues(ctx context.Context, bridge string, kind store.QueueKind) ([]store.Queue, error) {
	if err := record.ValidKind(kind); err != nil {
		return nil, err
	}
	var qs []store.Queue
	err := s.forUsers(ctx, bridge, func(v *view, it *pebbledb.Iterator, up []byte, jid string) error {
		q := store.Queue{Bridge: bridge, JID: jid, Kind: kind}
		p := append(bytes.Clone(up), kindQueue, queueTag(kind))
		head := s.head(p)
		if it.SeekGE(entryKey(p, head)) && bytes.HasPrefix(it.Key(), p) && len(it.Key()) == len(p)+8 {
			if seq := binary.BigEndian.Uint64(it.Key()[len(p):]); seq > head {
				s.raiseHead(p, seq, v)
			}
			qs = append(qs, q)
		}
		return nil
	})
	return qs, err
}

// --- mappings and seen marks ------------------------------------------------

// PutMapping stores key → value in namespace ns of the user; ttl <= 0 means
// no expiry.
func (s *Store) PutMapping(ctx context.Context, bridge, jid, ns, key, value string, ttl time.Duration) error {
	k := mapKey(bridge, jid, ns, key)
	v := mapValue(record.ExpiryAt(s.now().UnixNano(), ttl), value)
	return s.write(ctx, func(w *writer) error { return w.b.Set(k, v, nil) })
}

func mapValue(exp uint64, value string) []byte {
	return appendMapValue(make([]byte, 0, 8+len(value)), exp, value)
}

func appendMapValue(dst []byte, exp uint64, value string) []byte {
	return append(binary.BigEndian.AppendUint64(dst, exp), value...)
}

// GetMapping returns the value, or store.ErrNotFound if missing or expired.
func (s *Store) GetMapping(ctx context.Context, bridge, jid, ns, key string) (string, error) {
	now := s.now().UnixNano()
	v, ok, err := s.get(ctx, mapKey(bridge, jid, ns, key))
	if err != nil {
		return "", err
	}
	if !ok || len(v) < 8 || record.Expired(binary.BigEndian.Uint64(v), now) {
		return "", store.ErrNotFound
	}
	return string(v[8:]), nil
}

// MarkSeen records key for ttl (<= 0: forever) and reports whether it was
// new: absent or expired. It reports a key old only once the mark is
// durable: it reads in a commit round, after every earlier round's fsync,
// not from the database directly, where Pebble shows a commit before its
// WAL sync (a replay dropped on the strength of a mark a crash then loses
// would be lost). A replay writes nothing: a round that only read
// commits nothing and costs no fsync.
func (s *Store) MarkSeen(ctx context.Context, bridge, jid, key string, ttl time.Duration) (bool, error) {
	now := s.now().UnixNano()
	k := seenKey(bridge, jid, key)
	isNew := false
	err := s.write(ctx, func(w *writer) error {
		var err error
		isNew, err = w.markSeen(k, len(key), now, record.ExpiryAt(now, ttl))
		return err
	})
	return isNew, err
}
