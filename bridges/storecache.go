package bridges

import (
	"context"
	"errors"
	"sync"

	"github.com/jabbergate/jabbergate/bridges/store"
)

// contactCache is the bridge's view of its store with contacts cached in
// memory, so that the message path (validChat, chatFor) reads no contact
// from the store once warm. Every contact write of the bridge goes through
// it (b.st), which keeps the cache exact: PutContact, DeleteContact and
// DeleteAccount invalidate what they touch; a read racing with a write
// never caches what it read (a per-user generation counter). Absent
// contacts are cached too (messages to addresses never added).
//
// Contacts are cached only when this process is the store's only writer:
// with Options.Cluster other instances write contacts too (cache off).
//
// It also holds staged mappings: id maps that the inbox drainer and the
// outbox worker have put in a batch (store.Batch) not committed yet. They
// are committed with the ack of their queue entry, after the stanza went
// out, so a client may refer to a message (a marker, a reaction) before
// its map is in the store: GetMapping answers staged values first. If the
// commit fails the entry is not acknowledged and its maps are staged
// again when it is retried.
//
// store.Batcher is passed through (Apply), and Unwrap returns the store
// underneath for optional interfaces.
type contactCache struct {
	store.Store
	cacheContacts bool

	mu     sync.Mutex
	users  map[userKey]*userContacts
	staged map[mapRef]string
}

type mapRef struct{ bridge, jid, ns, key string }

type userKey struct{ bridge, jid string }

type userContacts struct {
	gen uint64
	m   map[string]*store.Contact // localpart → contact, nil = known absent
}

// contactCacheMax bounds the entries cached per user (dropped all at once
// beyond it).
const contactCacheMax = 4096

func newContactCache(st store.Store, cacheContacts bool) *contactCache {
	return &contactCache{Store: st, cacheContacts: cacheContacts, users: map[userKey]*userContacts{}, staged: map[mapRef]string{}}
}

// stage makes a mapping of an uncommitted batch visible to GetMapping.
func (c *contactCache) stage(bridge, jid, ns, key, value string) {
	c.mu.Lock()
	c.staged[mapRef{bridge, jid, ns, key}] = value
	c.mu.Unlock()
}

// unstage forgets the staged mappings of b (committed or abandoned).
func (c *contactCache) unstage(b *store.Batch) {
	c.mu.Lock()
	for _, op := range b.Ops {
		if op.Kind == store.OpPutMapping {
			delete(c.staged, mapRef{op.Queue.Bridge, op.Queue.JID, op.NS, op.Key})
		}
	}
	c.mu.Unlock()
}

// GetMapping answers staged mappings first.
func (c *contactCache) GetMapping(ctx context.Context, bridge, jid, ns, key string) (string, error) {
	c.mu.Lock()
	v, ok := c.staged[mapRef{bridge, jid, ns, key}]
	c.mu.Unlock()
	if ok {
		return v, nil
	}
	return c.Store.GetMapping(ctx, bridge, jid, ns, key)
}

// Unwrap returns the store underneath.
func (c *contactCache) Unwrap() store.Store { return c.Store }

// Apply passes batches through (store.Apply falls back when the store has
// no Batcher). Batches carry no contact writes.
func (c *contactCache) Apply(ctx context.Context, b *store.Batch) (*store.BatchResult, error) {
	return store.Apply(ctx, c.Store, b)
}

func cloneContact(ct *store.Contact) *store.Contact {
	cp := *ct
	return &cp
}

// GetContact answers from the cache, or reads and caches.
func (c *contactCache) GetContact(ctx context.Context, bridge, jid, localpart string) (*store.Contact, error) {
	if !c.cacheContacts {
		return c.Store.GetContact(ctx, bridge, jid, localpart)
	}
	k := userKey{bridge, jid}
	c.mu.Lock()
	uc := c.users[k]
	if uc != nil {
		if ct, ok := uc.m[localpart]; ok {
			c.mu.Unlock()
			if ct == nil {
				return nil, store.ErrNotFound
			}
			return cloneContact(ct), nil
		}
	}
	var gen uint64
	if uc != nil {
		gen = uc.gen
	}
	c.mu.Unlock()
	ct, err := c.Store.GetContact(ctx, bridge, jid, localpart)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	c.mu.Lock()
	uc = c.users[k]
	if uc == nil && gen == 0 {
		uc = &userContacts{}
		c.users[k] = uc
	}
	if uc != nil && uc.gen == gen {
		if uc.m == nil || len(uc.m) >= contactCacheMax {
			uc.m = map[string]*store.Contact{}
		}
		if ct != nil {
			uc.m[localpart] = cloneContact(ct)
		} else {
			uc.m[localpart] = nil
		}
	}
	c.mu.Unlock()
	return ct, err
}

// invalidate forgets one contact (localpart) or all of a user's ("" and
// all set).
func (c *contactCache) invalidate(bridge, jid, localpart string, all bool) {
	if !c.cacheContacts {
		return
	}
	k := userKey{bridge, jid}
	c.mu.Lock()
	defer c.mu.Unlock()
	uc := c.users[k]
	if uc == nil {
		// A read in flight must not cache what the write changes.
		c.users[k] = &userContacts{gen: 1}
		return
	}
	uc.gen++
	if all {
		uc.m = nil
	} else {
		delete(uc.m, localpart)
	}
}

// PutContact writes through and invalidates.
func (c *contactCache) PutContact(ctx context.Context, bridge, jid string, ct *store.Contact) error {
	defer c.invalidate(bridge, jid, ct.Localpart, false)
	return c.Store.PutContact(ctx, bridge, jid, ct)
}

// DeleteContact writes through and invalidates.
func (c *contactCache) DeleteContact(ctx context.Context, bridge, jid, localpart string) error {
	defer c.invalidate(bridge, jid, localpart, false)
	return c.Store.DeleteContact(ctx, bridge, jid, localpart)
}

// DeleteAccount writes through and forgets the user's contacts.
func (c *contactCache) DeleteAccount(ctx context.Context, bridge, jid string) error {
	defer c.invalidate(bridge, jid, "", true)
	return c.Store.DeleteAccount(ctx, bridge, jid)
}

// stageMap adds a mapping to bt and makes it visible until unstageMaps.
func (b *Bridge) stageMap(bt *store.Batch, u *user, ns, key, value string) {
	bt.PutMapping(b.domain, u.jid, ns, key, value, idMapTTL)
	if c, ok := b.st.(*contactCache); ok {
		c.stage(b.domain, u.jid, ns, key, value)
	}
}

// unstageMaps ends the visibility of bt's staged mappings.
func (b *Bridge) unstageMaps(bt *store.Batch) {
	if c, ok := b.st.(*contactCache); ok {
		c.unstage(bt)
	}
}
