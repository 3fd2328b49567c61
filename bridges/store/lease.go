package store

import (
	"context"
	"sync"
	"time"
)

// Leaser is an optional add-on of a Store that several gateway processes
// share (store/redis): named, expiring, fenced leases. The engine uses one
// lease per account ("which instance runs this user's legacy session and
// queues") and, where the XMPP server accepts only one component link per
// domain, one per bridge ("which instance holds the link").
//
// A lease is held by one holder (an instance name, unique per process) until
// it is released or its ttl passes without a Renew. Each successful Acquire
// of a free lease returns a fencing token larger than every token issued
// before for that name, so a write that carries a token can be refused
// when a newer holder exists.
//
// The holder must stop acting on a lease before its ttl ends counted from
// the moment it sent the last successful Acquire or Renew (the server's
// clock may run slightly faster: keep a margin). All methods are safe for
// concurrent use and take a context first.
type Leaser interface {
	// Acquire takes the lease name for holder for ttl. When the lease is
	// free it returns a new fencing token and true; when holder already
	// holds it, it extends it by ttl and returns the current token and
	// true; when someone else holds it, it returns 0 and false.
	Acquire(ctx context.Context, name, holder string, ttl time.Duration) (token int64, ok bool, err error)
	// Renew extends the lease by ttl if holder still holds it with token;
	// it reports false when the lease expired or another holder took it.
	Renew(ctx context.Context, name, holder string, token int64, ttl time.Duration) (bool, error)
	// Release gives the lease up if holder holds it with token; otherwise
	// it does nothing (releasing a lost lease is not an error).
	Release(ctx context.Context, name, holder string, token int64) error
	// Holder returns the current holder of name and its token, or
	// ErrNotFound when the lease is free.
	Holder(ctx context.Context, name string) (holder string, token int64, err error)
}

// Notifier is an optional add-on of a shared Store: a best-effort signal
// from one gateway instance to the others that something changed for a
// user, so that the instance running that user reacts at once instead of
// at its next periodic rescan. Signals may be lost (for example while the
// connection to the store is down); Subscribe's resync callback is the
// chance to catch up.
type Notifier interface {
	// Notify publishes topic (no '|' in it) for the user jid of bridge to every
	// subscriber, this process included. It does not wait for them.
	Notify(ctx context.Context, bridge, jid, topic string) error
	// Subscribe calls fn for every notification on bridge until ctx ends,
	// and resync each time the subscription is established (the first
	// time included), after which notifications published meanwhile may
	// have been missed. fn and resync are called from one goroutine and
	// must not block. Subscribe returns when ctx ends.
	Subscribe(ctx context.Context, bridge string, fn func(jid, topic string), resync func()) error
}

// Local is an in-process Leaser and Notifier: leases and notifications are
// shared only by the users of one Local value. Embedded stores, which one
// process owns alone, use it, and so can tests that run several bridges in
// one process. The zero value is ready; it is safe for concurrent use.
type Local struct {
	mu     sync.Mutex
	now    func() time.Time // nil: time.Now
	leases map[string]localLease
	tokens map[string]int64
	subs   map[string]map[*localSub]bool // by bridge
}

// NewLocal returns a Local whose expiry clock is now (nil: time.Now).
func NewLocal(now func() time.Time) *Local { return &Local{now: now} }

type localLease struct {
	holder string
	token  int64
	until  time.Time
}

type localSub struct {
	ch chan [2]string
}

var (
	_ Leaser   = (*Local)(nil)
	_ Notifier = (*Local)(nil)
)

func (l *Local) clock() time.Time {
	if l.now != nil {
		return l.now()
	}
	return time.Now()
}

// current returns the live lease of name; l.mu is held.
func (l *Local) current(name string) (localLease, bool) {
	le, ok := l.leases[name]
	if !ok || !l.clock().Before(le.until) {
		return localLease{}, false
	}
	return le, true
}

// Acquire implements Leaser.
func (l *Local) Acquire(ctx context.Context, name, holder string, ttl time.Duration) (int64, bool, error) {
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.leases == nil {
		l.leases, l.tokens = map[string]localLease{}, map[string]int64{}
	}
	le, held := l.current(name)
	switch {
	case held && le.holder != holder:
		return 0, false, nil
	case !held:
		l.tokens[name]++
		le = localLease{holder: holder, token: l.tokens[name]}
	}
	le.until = l.clock().Add(ttl)
	l.leases[name] = le
	return le.token, true, nil
}

// Renew implements Leaser.
func (l *Local) Renew(ctx context.Context, name, holder string, token int64, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	le, held := l.current(name)
	if !held || le.holder != holder || le.token != token {
		return false, nil
	}
	le.until = l.clock().Add(ttl)
	l.leases[name] = le
	return true, nil
}

// Release implements Leaser.
func (l *Local) Release(ctx context.Context, name, holder string, token int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if le, held := l.current(name); held && le.holder == holder && le.token == token {
		delete(l.leases, name)
	}
	return nil
}

// Holder implements Leaser.
func (l *Local) Holder(ctx context.Context, name string) (string, int64, error) {
	if err := ctx.Err(); err != nil {
		return "", 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	le, held := l.current(name)
	if !held {
		return "", 0, ErrNotFound
	}
	return le.holder, le.token, nil
}

// Notify implements Notifier. A subscriber more than 1024 signals behind
// misses the newest ones (Local calls resync only once, at Subscribe).
func (l *Local) Notify(ctx context.Context, bridge, jid, topic string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for s := range l.subs[bridge] {
		select {
		case s.ch <- [2]string{jid, topic}:
		default:
		}
	}
	return nil
}

// Subscribe implements Notifier.
func (l *Local) Subscribe(ctx context.Context, bridge string, fn func(jid, topic string), resync func()) error {
	s := &localSub{ch: make(chan [2]string, 1024)}
	l.mu.Lock()
	if l.subs == nil {
		l.subs = map[string]map[*localSub]bool{}
	}
	if l.subs[bridge] == nil {
		l.subs[bridge] = map[*localSub]bool{}
	}
	l.subs[bridge][s] = true
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.subs[bridge], s)
		l.mu.Unlock()
	}()
	if resync != nil {
		resync()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-s.ch:
			fn(m[0], m[1])
		}
	}
}
