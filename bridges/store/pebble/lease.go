package pebble

import (
	"context"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
)

// Leases and notifications of an embedded store are in-process only
// (store.Local), as on store/bolt: a Pebble directory has one process (a
// second one gets store.ErrLocked), so the only instances that can share
// its leases are bridges of that one process. They exist so the engine's
// clustered mode can be exercised without Redis; a deployment of several
// processes needs store/redis.

var (
	_ store.Leaser   = (*Store)(nil)
	_ store.Notifier = (*Store)(nil)
)

// Acquire implements store.Leaser, in process.
func (s *Store) Acquire(ctx context.Context, name, holder string, ttl time.Duration) (int64, bool, error) {
	return s.local.Acquire(ctx, name, holder, ttl)
}

// Renew implements store.Leaser, in process.
func (s *Store) Renew(ctx context.Context, name, holder string, token int64, ttl time.Duration) (bool, error) {
	return s.local.Renew(ctx, name, holder, token, ttl)
}

// Release implements store.Leaser, in process.
func (s *Store) Release(ctx context.Context, name, holder string, token int64) error {
	return s.local.Release(ctx, name, holder, token)
}

// Holder implements store.Leaser, in process.
func (s *Store) Holder(ctx context.Context, name string) (string, int64, error) {
	return s.local.Holder(ctx, name)
}

// Notify implements store.Notifier, in process.
func (s *Store) Notify(ctx context.Context, bridge, jid, topic string) error {
	return s.local.Notify(ctx, bridge, jid, topic)
}

// Subscribe implements store.Notifier, in process.
func (s *Store) Subscribe(ctx context.Context, bridge string, fn func(jid, topic string), resync func()) error {
	return s.local.Subscribe(ctx, bridge, fn, resync)
}
