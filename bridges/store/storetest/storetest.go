// Package storetest is the conformance suite every store.Store
// implementation passes, plus shared benchmarks.
//
// A backend's test calls Run with a Harness:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Harness{
//			Open:   func(t *testing.T) store.Store { ... a new, empty store ... },
//			Reopen: func(t *testing.T, old store.Store) store.Store { ... },
//		})
//	}
//
// The suite checks behaviour only through the store.Store interface: it
// promises nothing about the form of entry ids beyond the order of returned
// slices and that Read's after parameter pages through a queue. Where the
// interface is silent, the suite pins these choices down:
//
//   - any string is a valid bridge, JID, localpart, namespace, key or value,
//     including "", NUL, invalid UTF-8 and the characters : | { } % \ @;
//     scopes that differ only in where such characters fall never share data;
//   - Read with limit <= 0 returns no entries; Read after an id that has
//     been acked still returns the entries that follow it;
//   - Append with no payloads returns no ids and no error; Ack ignores
//     unknown and malformed ids;
//   - DeleteAccount also removes seen marks, and index entries, so the user
//     disappears from ListAccounts and Queues;
//   - values are copied in and out: changing a slice or map after Put, or
//     one returned by Get, does not change what is stored;
//   - a call with a canceled context returns an error wrapping
//     context.Canceled and changes nothing;
//   - Close may be called twice.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
)

// Harness connects the suite to one implementation.
type Harness struct {
	// Open returns a new, empty store that shares no data with any store
	// Open returned before. It is called once per subtest, and must arrange
	// for the store to be closed when the test ends (t.Cleanup). The suite
	// may close a store itself first, so Close must be idempotent.
	Open func(t *testing.T) store.Store

	// Reopen closes old and returns a store over the same data, as a
	// restarted process would see it. Nil skips the persistence subtests
	// (with a logged reason).
	Reopen func(t *testing.T, old store.Store) store.Store

	// Advance makes d pass for the TTLs of s (a fake clock, or miniredis
	// FastForward). Nil means the suite sleeps for real; the TTL subtests
	// then take about 2.5 s.
	Advance func(t *testing.T, s store.Store, d time.Duration)
}

// TTL used by the expiry subtests, and how long they wait for it to pass.
// Redis keeps TTLs in milliseconds (SET PX), so whole seconds are safe.
const (
	shortTTL = 1 * time.Second
	ttlWait  = 1200 * time.Millisecond
)

// Run runs the conformance suite against the implementation h describes.
func Run(t *testing.T, h Harness) {
	if h.Open == nil {
		t.Fatal("storetest: Harness.Open is nil")
	}
	s := suite{h: h}
	t.Run("Account", s.account)
	t.Run("Contact", s.contact)
	t.Run("Queue", s.queue)
	t.Run("Mapping", s.mapping)
	t.Run("MarkSeen", s.markSeen)
	t.Run("DeleteAccount", s.deleteAccount)
	t.Run("Keys", s.keys)
	t.Run("Persistence", s.persistence)
	t.Run("Misc", s.misc)
	t.Run("Batch", s.batch) // batch.go
	t.Run("Lease", s.lease) // lease.go: the optional Leaser and Notifier
}

type suite struct{ h Harness }

func (s suite) advance(t *testing.T, st store.Store, d time.Duration) {
	t.Helper()
	if s.h.Advance != nil {
		s.h.Advance(t, st, d)
		return
	}
	time.Sleep(d)
}

// ctx returns a context bounded so that a hung backend fails the test
// instead of the whole run.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

const (
	bridgeA = "telegram.example.org"
	bridgeB = "sms.example.org"
	userA   = "alice@example.org"
	userB   = "bob@example.net"
)

// --- accounts ---------------------------------------------------------------

func sampleAccount(bridge, jid string) *store.Account {
	return &store.Account{
		Bridge:   bridge,
		JID:      jid,
		LegacyID: "legacy:" + jid,
		Fields: map[string]string{
			"token":  "v1:\x00\xff sealed bytes",
			"phone":  "+1 555 123 4567",
			"emoji":  "🦊 ü 例",
			"colon:": "{a}|b\\c",
		},
		Settings:     map[string]string{"lang": "de", "receipts": "on"},
		State:        []byte{0, 1, 2, 0xfe, 0xff, '\n'},
		Created:      time.Date(2024, 2, 29, 13, 14, 15, 123456789, time.UTC),
		Subscription: "both",
	}
}

func eqAccount(a, b *store.Account) bool {
	return a.Bridge == b.Bridge && a.JID == b.JID && a.LegacyID == b.LegacyID &&
		maps.Equal(a.Fields, b.Fields) && maps.Equal(a.Settings, b.Settings) &&
		bytes.Equal(a.State, b.State) && a.Created.Equal(b.Created) &&
		a.Subscription == b.Subscription
}

func checkAccount(t *testing.T, st store.Store, want *store.Account) {
	t.Helper()
	got, err := st.GetAccount(ctx(t), want.Bridge, want.JID)
	if err != nil {
		t.Fatalf("GetAccount(%q, %q): %v", want.Bridge, want.JID, err)
	}
	if !eqAccount(got, want) {
		t.Fatalf("GetAccount(%q, %q) =\n %+v\nwant\n %+v", want.Bridge, want.JID, got, want)
	}
}

func checkNoAccount(t *testing.T, st store.Store, bridge, jid string) {
	t.Helper()
	a, err := st.GetAccount(ctx(t), bridge, jid)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetAccount(%q, %q) = %+v, %v; want ErrNotFound", bridge, jid, a, err)
	}
}

func listJIDs(t *testing.T, st store.Store, bridge string) []string {
	t.Helper()
	as, err := st.ListAccounts(ctx(t), bridge)
	if err != nil {
		t.Fatalf("ListAccounts(%q): %v", bridge, err)
	}
	var jids []string
	for _, a := range as {
		if a.Bridge != bridge {
			t.Errorf("ListAccounts(%q) returned an account of bridge %q", bridge, a.Bridge)
		}
		jids = append(jids, a.JID)
	}
	sort.Strings(jids)
	return jids
}

func (s suite) account(t *testing.T) {
	t.Run("GetMissing", func(t *testing.T) {
		st := s.h.Open(t)
		checkNoAccount(t, st, bridgeA, userA)
	})
	t.Run("PutGet", func(t *testing.T) {
		st := s.h.Open(t)
		a := sampleAccount(bridgeA, userA)
		must(t, st.PutAccount(ctx(t), a))
		checkAccount(t, st, sampleAccount(bridgeA, userA))
		checkNoAccount(t, st, bridgeB, userA)
		checkNoAccount(t, st, bridgeA, userB)
	})
	t.Run("Minimal", func(t *testing.T) {
		st := s.h.Open(t)
		a := &store.Account{Bridge: bridgeA, JID: userA}
		must(t, st.PutAccount(ctx(t), a))
		checkAccount(t, st, a)
	})
	t.Run("Replace", func(t *testing.T) {
		st := s.h.Open(t)
		must(t, st.PutAccount(ctx(t), sampleAccount(bridgeA, userA)))
		b := &store.Account{
			Bridge: bridgeA, JID: userA, LegacyID: "other",
			Fields:  map[string]string{"only": "this"},
			State:   []byte("new state"),
			Created: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		}
		must(t, st.PutAccount(ctx(t), b))
		// A replace, not a merge: old fields and settings are gone.
		checkAccount(t, st, b)
		if got := listJIDs(t, st, bridgeA); !slices.Equal(got, []string{userA}) {
			t.Errorf("ListAccounts after replace = %q, want [%q]", got, userA)
		}
	})
	t.Run("Copies", func(t *testing.T) {
		st := s.h.Open(t)
		a := sampleAccount(bridgeA, userA)
		must(t, st.PutAccount(ctx(t), a))
		// Changing the caller's value after Put, or the value Get
		// returned, must not change what is stored.
		a.Fields["token"] = "changed"
		a.State[0] = 42
		got, err := st.GetAccount(ctx(t), bridgeA, userA)
		must(t, err)
		got.Settings["lang"] = "fr"
		got.State[1] = 42
		checkAccount(t, st, sampleAccount(bridgeA, userA))
	})
	t.Run("List", func(t *testing.T) {
		st := s.h.Open(t)
		if got := listJIDs(t, st, bridgeA); len(got) != 0 {
			t.Fatalf("ListAccounts on an empty store = %q", got)
		}
		want := []string{userA, userB, "carol@example.com"}
		for _, j := range want {
			must(t, st.PutAccount(ctx(t), sampleAccount(bridgeA, j)))
		}
		must(t, st.PutAccount(ctx(t), sampleAccount(bridgeB, "dave@example.com")))
		sort.Strings(want)
		if got := listJIDs(t, st, bridgeA); !slices.Equal(got, want) {
			t.Errorf("ListAccounts(%q) = %q, want %q", bridgeA, got, want)
		}
		if got := listJIDs(t, st, bridgeB); !slices.Equal(got, []string{"dave@example.com"}) {
			t.Errorf("ListAccounts(%q) = %q", bridgeB, got)
		}
		if got := listJIDs(t, st, "unknown.example"); len(got) != 0 {
			t.Errorf("ListAccounts(unknown) = %q", got)
		}
		as, err := st.ListAccounts(ctx(t), bridgeA)
		must(t, err)
		for _, a := range as {
			if !eqAccount(a, sampleAccount(bridgeA, a.JID)) {
				t.Errorf("ListAccounts returned %+v", a)
			}
		}
	})
	t.Run("DeleteMissing", func(t *testing.T) {
		st := s.h.Open(t)
		must(t, st.DeleteAccount(ctx(t), bridgeA, userA))
		must(t, st.PutAccount(ctx(t), sampleAccount(bridgeA, userA)))
		must(t, st.DeleteAccount(ctx(t), bridgeA, userA))
		must(t, st.DeleteAccount(ctx(t), bridgeA, userA))
		checkNoAccount(t, st, bridgeA, userA)
		if got := listJIDs(t, st, bridgeA); len(got) != 0 {
			t.Errorf("ListAccounts after delete = %q", got)
		}
	})
}

// --- contacts ---------------------------------------------------------------

func listContacts(t *testing.T, st store.Store, bridge, jid string) []*store.Contact {
	t.Helper()
	cs, err := st.ListContacts(ctx(t), bridge, jid)
	if err != nil {
		t.Fatalf("ListContacts(%q, %q): %v", bridge, jid, err)
	}
	return cs
}

func (s suite) contact(t *testing.T) {
	t.Run("GetMissing", func(t *testing.T) {
		st := s.h.Open(t)
		c, err := st.GetContact(ctx(t), bridgeA, userA, "x")
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetContact = %+v, %v; want ErrNotFound", c, err)
		}
		if cs := listContacts(t, st, bridgeA, userA); len(cs) != 0 {
			t.Fatalf("ListContacts on an empty store = %+v", cs)
		}
	})
	t.Run("PutGetReplaceDelete", func(t *testing.T) {
		st := s.h.Open(t)
		c := &store.Contact{Localpart: "+15551234567", LegacyID: "chat:-100123", Name: "Zoë 🦊", Subscription: "both", Group: true,
			Unavailable: true, UnavailableStatus: "blocked your bot"}
		must(t, st.PutContact(ctx(t), bridgeA, userA, c))
		got, err := st.GetContact(ctx(t), bridgeA, userA, c.Localpart)
		must(t, err)
		if *got != *c {
			t.Fatalf("GetContact = %+v, want %+v", got, c)
		}
		c2 := &store.Contact{Localpart: c.Localpart, LegacyID: "chat:-100123", Name: "Zoe"}
		must(t, st.PutContact(ctx(t), bridgeA, userA, c2))
		got, err = st.GetContact(ctx(t), bridgeA, userA, c.Localpart)
		must(t, err)
		if *got != *c2 {
			t.Fatalf("GetContact after replace = %+v, want %+v", got, c2)
		}
		if cs := listContacts(t, st, bridgeA, userA); len(cs) != 1 || *cs[0] != *c2 {
			t.Fatalf("ListContacts after replace = %+v", cs)
		}
		// Other users and bridges do not see it.
		if _, err := st.GetContact(ctx(t), bridgeA, userB, c.Localpart); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetContact of another user: %v, want ErrNotFound", err)
		}
		if _, err := st.GetContact(ctx(t), bridgeB, userA, c.Localpart); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetContact on another bridge: %v, want ErrNotFound", err)
		}
		must(t, st.DeleteContact(ctx(t), bridgeA, userA, c.Localpart))
		must(t, st.DeleteContact(ctx(t), bridgeA, userA, c.Localpart)) // missing: no error
		must(t, st.DeleteContact(ctx(t), bridgeB, "nobody@example.org", "nothing"))
		if _, err := st.GetContact(ctx(t), bridgeA, userA, c.Localpart); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetContact after delete: %v, want ErrNotFound", err)
		}
		if cs := listContacts(t, st, bridgeA, userA); len(cs) != 0 {
			t.Errorf("ListContacts after delete = %+v", cs)
		}
	})
	t.Run("ListSorted", func(t *testing.T) {
		st := s.h.Open(t)
		lps := []string{"zed", "amy", "+4930123", "b\\40c", "Émile", "a", "aa", "例", "x\\3ay", "mid"}
		for i, lp := range lps {
			must(t, st.PutContact(ctx(t), bridgeA, userA, &store.Contact{
				Localpart: lp, LegacyID: fmt.Sprint("id", i), Name: "n" + lp,
			}))
		}
		must(t, st.PutContact(ctx(t), bridgeA, userB, &store.Contact{Localpart: "other"}))
		must(t, st.PutContact(ctx(t), bridgeB, userA, &store.Contact{Localpart: "other"}))
		cs := listContacts(t, st, bridgeA, userA)
		var got []string
		for _, c := range cs {
			got = append(got, c.Localpart)
			i := slices.Index(lps, c.Localpart)
			if i < 0 || c.LegacyID != fmt.Sprint("id", i) || c.Name != "n"+c.Localpart {
				t.Errorf("ListContacts returned %+v", c)
			}
		}
		want := slices.Clone(lps)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("ListContacts localparts = %q, want sorted %q", got, want)
		}
	})
}

// --- queues -----------------------------------------------------------------

func qOf(bridge, jid string, kind store.QueueKind) store.Queue {
	return store.Queue{Bridge: bridge, JID: jid, Kind: kind}
}

func appendN(t *testing.T, st store.Store, q store.Queue, payloads ...string) []string {
	t.Helper()
	ps := make([][]byte, len(payloads))
	for i, p := range payloads {
		ps[i] = []byte(p)
	}
	ids, err := st.Append(ctx(t), q, ps...)
	if err != nil {
		t.Fatalf("Append(%v): %v", q, err)
	}
	if len(ids) != len(payloads) {
		t.Fatalf("Append(%v) returned %d ids for %d payloads", q, len(ids), len(payloads))
	}
	return ids
}

func readAll(t *testing.T, st store.Store, q store.Queue) []store.Entry {
	t.Helper()
	es, err := st.Read(ctx(t), q, "", 1<<20)
	if err != nil {
		t.Fatalf("Read(%v): %v", q, err)
	}
	return es
}

func payloads(es []store.Entry) []string {
	var ps []string
	for _, e := range es {
		ps = append(ps, string(e.Payload))
	}
	return ps
}

func entryIDs(es []store.Entry) []string {
	var ids []string
	for _, e := range es {
		ids = append(ids, e.ID)
	}
	return ids
}

func checkLen(t *testing.T, st store.Store, q store.Queue, want int) {
	t.Helper()
	n, err := st.Len(ctx(t), q)
	if err != nil {
		t.Fatalf("Len(%v): %v", q, err)
	}
	if n != want {
		t.Fatalf("Len(%v) = %d, want %d", q, n, want)
	}
}

func checkDistinct(t *testing.T, ids []string) {
	t.Helper()
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if id == "" {
			t.Fatal("empty entry id")
		}
		if seen[id] {
			t.Fatalf("duplicate entry id %q", id)
		}
		seen[id] = true
	}
}

func listQueues(t *testing.T, st store.Store, bridge string, kind store.QueueKind) []string {
	t.Helper()
	qs, err := st.Queues(ctx(t), bridge, kind)
	if err != nil {
		t.Fatalf("Queues(%q, %q): %v", bridge, kind, err)
	}
	var jids []string
	for _, q := range qs {
		if q.Bridge != bridge || q.Kind != kind {
			t.Errorf("Queues(%q, %q) returned %+v", bridge, kind, q)
		}
		jids = append(jids, q.JID)
	}
	sort.Strings(jids)
	return jids
}

func (s suite) queue(t *testing.T) {
	q := qOf(bridgeA, userA, store.Inbox)
	t.Run("Empty", func(t *testing.T) {
		st := s.h.Open(t)
		if es := readAll(t, st, q); len(es) != 0 {
			t.Fatalf("Read of a new queue = %v", es)
		}
		checkLen(t, st, q, 0)
		ids, err := st.Append(ctx(t), q)
		if err != nil || len(ids) != 0 {
			t.Fatalf("Append() with no payloads = %q, %v; want none, nil", ids, err)
		}
		checkLen(t, st, q, 0)
		must(t, st.Ack(ctx(t), q))
	})
	t.Run("FIFO", func(t *testing.T) {
		st := s.h.Open(t)
		var ids []string
		ids = append(ids, appendN(t, st, q, "1", "2", "3")...)
		ids = append(ids, appendN(t, st, q, "4")...)
		ids = append(ids, appendN(t, st, q, "5", "6")...)
		checkDistinct(t, ids)
		es := readAll(t, st, q)
		if got := payloads(es); !slices.Equal(got, []string{"1", "2", "3", "4", "5", "6"}) {
			t.Fatalf("Read payloads = %q", got)
		}
		if got := entryIDs(es); !slices.Equal(got, ids) {
			t.Fatalf("Read ids = %q, Append returned %q", got, ids)
		}
		checkLen(t, st, q, 6)
		// Reading does not consume.
		if got := payloads(readAll(t, st, q)); len(got) != 6 {
			t.Fatalf("second Read = %q", got)
		}
	})
	t.Run("Paging", func(t *testing.T) {
		st := s.h.Open(t)
		var want []string
		for i := range 10 {
			want = append(want, fmt.Sprint("m", i))
			appendN(t, st, q, want[i])
		}
		var got []string
		after := ""
		pages := 0
		for pages = 0; pages < 20; pages++ {
			es, err := st.Read(ctx(t), q, after, 3)
			must(t, err)
			if len(es) > 3 {
				t.Fatalf("Read(limit 3) returned %d entries", len(es))
			}
			if len(es) == 0 {
				break
			}
			got = append(got, payloads(es)...)
			after = es[len(es)-1].ID
		}
		if pages != 4 {
			t.Errorf("paging took %d pages, want 4", pages)
		}
		if !slices.Equal(got, want) {
			t.Errorf("paged payloads = %q, want %q", got, want)
		}
		es, err := st.Read(ctx(t), q, "", 0)
		if err != nil || len(es) != 0 {
			t.Errorf("Read(limit 0) = %d entries, %v; want none", len(es), err)
		}
	})
	t.Run("Ack", func(t *testing.T) {
		st := s.h.Open(t)
		ids := appendN(t, st, q, "a", "b", "c", "d", "e")
		must(t, st.Ack(ctx(t), q, ids[1], ids[3]))
		checkLen(t, st, q, 3)
		if got := payloads(readAll(t, st, q)); !slices.Equal(got, []string{"a", "c", "e"}) {
			t.Fatalf("Read after Ack = %q", got)
		}
		// Reading after an acked id still starts at the right place.
		es, err := st.Read(ctx(t), q, ids[1], 10)
		must(t, err)
		if got := payloads(es); !slices.Equal(got, []string{"c", "e"}) {
			t.Fatalf("Read after acked id = %q, want [c e]", got)
		}
		es, err = st.Read(ctx(t), q, ids[4], 10)
		if err != nil || len(es) != 0 {
			t.Fatalf("Read after the last id = %v, %v", es, err)
		}
		// Unknown ids: already acked, malformed, empty. Ignored.
		must(t, st.Ack(ctx(t), q, ids[1], "no-such-id", "", "999999999999999999999999", "0-0", "{}:|\\"))
		checkLen(t, st, q, 3)
		must(t, st.Ack(ctx(t), q, ids[0], ids[2], ids[4], ids[0]))
		checkLen(t, st, q, 0)
		if es := readAll(t, st, q); len(es) != 0 {
			t.Fatalf("Read after acking all = %v", es)
		}
		// The queue keeps working, in order, after being emptied.
		more := appendN(t, st, q, "f", "g")
		if got := payloads(readAll(t, st, q)); !slices.Equal(got, []string{"f", "g"}) {
			t.Fatalf("Read after refill = %q", got)
		}
		checkDistinct(t, append(more, ids...))
	})
	t.Run("Isolation", func(t *testing.T) {
		st := s.h.Open(t)
		qs := []store.Queue{
			qOf(bridgeA, userA, store.Inbox),
			qOf(bridgeA, userA, store.Outbox),
			qOf(bridgeA, userB, store.Inbox),
			qOf(bridgeB, userA, store.Inbox),
		}
		for i, q := range qs {
			for j := range i + 1 {
				appendN(t, st, q, fmt.Sprint(i, "/", j))
			}
		}
		for i, q := range qs {
			checkLen(t, st, q, i+1)
			for j, p := range payloads(readAll(t, st, q)) {
				if p != fmt.Sprint(i, "/", j) {
					t.Errorf("queue %v entry %d = %q", q, j, p)
				}
			}
		}
		// Acking all of one queue leaves the others alone.
		es := readAll(t, st, qs[3])
		must(t, st.Ack(ctx(t), qs[3], entryIDs(es)...))
		checkLen(t, st, qs[3], 0)
		checkLen(t, st, qs[2], 3)
	})
	t.Run("Queues", func(t *testing.T) {
		st := s.h.Open(t)
		if got := listQueues(t, st, bridgeA, store.Inbox); len(got) != 0 {
			t.Fatalf("Queues on an empty store = %q", got)
		}
		appendN(t, st, qOf(bridgeA, userA, store.Inbox), "x")
		appendN(t, st, qOf(bridgeA, userB, store.Inbox), "x", "y")
		appendN(t, st, qOf(bridgeA, userA, store.Outbox), "x")
		appendN(t, st, qOf(bridgeB, "carol@example.com", store.Inbox), "x")
		drained := qOf(bridgeA, "drained@example.com", store.Inbox)
		ids := appendN(t, st, drained, "x", "y")
		must(t, st.Ack(ctx(t), drained, ids...))
		must(t, st.PutAccount(ctx(t), sampleAccount(bridgeA, "idle@example.com")))

		want := []string{userA, userB}
		sort.Strings(want)
		if got := listQueues(t, st, bridgeA, store.Inbox); !slices.Equal(got, want) {
			t.Errorf("Queues(A, in) = %q, want %q", got, want)
		}
		if got := listQueues(t, st, bridgeA, store.Outbox); !slices.Equal(got, []string{userA}) {
			t.Errorf("Queues(A, out) = %q, want [%q]", got, userA)
		}
		if got := listQueues(t, st, bridgeB, store.Inbox); !slices.Equal(got, []string{"carol@example.com"}) {
			t.Errorf("Queues(B, in) = %q", got)
		}
		if got := listQueues(t, st, bridgeB, store.Outbox); len(got) != 0 {
			t.Errorf("Queues(B, out) = %q", got)
		}
		if got := listQueues(t, st, "unknown.example", store.Inbox); len(got) != 0 {
			t.Errorf("Queues(unknown) = %q", got)
		}
		// Refilling a drained queue lists it again.
		appendN(t, st, drained, "z")
		want = append(want, drained.JID)
		sort.Strings(want)
		if got := listQueues(t, st, bridgeA, store.Inbox); !slices.Equal(got, want) {
			t.Errorf("Queues(A, in) after refill = %q, want %q", got, want)
		}
	})
	t.Run("Payloads", func(t *testing.T) {
		st := s.h.Open(t)
		all := make([]byte, 256)
		for i := range all {
			all[i] = byte(i)
		}
		big := bytes.Repeat([]byte("0123456789abcdef\x00\xff"), 256<<10/18)
		want := [][]byte{{}, all, []byte("ü 例 🦊"), {0}, []byte("p=\r\n*1\r\n$4\r\nPING\r\n"), big}
		ids, err := st.Append(ctx(t), q, want...)
		must(t, err)
		checkDistinct(t, ids)
		es := readAll(t, st, q)
		if len(es) != len(want) {
			t.Fatalf("Read returned %d entries, want %d", len(es), len(want))
		}
		for i, e := range es {
			if !bytes.Equal(e.Payload, want[i]) {
				t.Errorf("entry %d: payload of %d bytes differs from the %d bytes appended", i, len(e.Payload), len(want[i]))
			}
		}
		// The store keeps its own copy.
		all[0] = 42
		if es := readAll(t, st, q); es[1].Payload[0] != 0 {
			t.Error("store shares the appended slice with the caller")
		}
	})
	t.Run("ConcurrentAppend", func(t *testing.T) {
		st := s.h.Open(t)
		const workers, rounds = 8, 25
		var wg sync.WaitGroup
		idc := make(chan []string, workers*rounds)
		errc := make(chan error, workers*rounds)
		for w := range workers {
			wg.Go(func() {
				for r := range rounds {
					// Alternate single and double appends.
					ps := [][]byte{fmt.Appendf(nil, "%d/%d/0", w, r)}
					if r%2 == 1 {
						ps = append(ps, fmt.Appendf(nil, "%d/%d/1", w, r))
					}
					ids, err := st.Append(context.Background(), q, ps...)
					if err != nil {
						errc <- err
						return
					}
					idc <- ids
				}
			})
		}
		wg.Wait()
		close(idc)
		close(errc)
		for err := range errc {
			t.Fatal(err)
		}
		var ids []string
		for batch := range idc {
			ids = append(ids, batch...)
		}
		total := workers * (rounds + rounds/2)
		if len(ids) != total {
			t.Fatalf("got %d ids, want %d", len(ids), total)
		}
		checkDistinct(t, ids)
		checkLen(t, st, q, total)
		es := readAll(t, st, q)
		if len(es) != total {
			t.Fatalf("Read returned %d entries, want %d", len(es), total)
		}
		got := make(map[string]bool, total)
		next := make([]int, workers) // per worker: next expected round
		for i, e := range es {
			var w, r, k int
			if _, err := fmt.Sscanf(string(e.Payload), "%d/%d/%d", &w, &r, &k); err != nil || w < 0 || w >= workers {
				t.Fatalf("entry %d: unexpected payload %q", i, e.Payload)
			}
			got[string(e.Payload)] = true
			// One worker's appends stay in order, and the two payloads of
			// one Append stay adjacent.
			if k == 0 {
				if r != next[w] {
					t.Fatalf("worker %d: round %d read before round %d", w, r, next[w])
				}
				next[w]++
			} else if i == 0 || string(es[i-1].Payload) != fmt.Sprintf("%d/%d/0", w, r) {
				t.Fatalf("entry %d (%q) is not right after its batch mate", i, e.Payload)
			}
		}
		if len(got) != total {
			t.Fatalf("read %d distinct payloads, want %d", len(got), total)
		}
		if !slices.Equal(entryIDs(es), entryIDs(readAll(t, st, q))) {
			t.Fatal("two reads disagree on the order")
		}
		idset := make(map[string]bool)
		for _, id := range ids {
			idset[id] = true
		}
		for _, e := range es {
			if !idset[e.ID] {
				t.Fatalf("Read returned id %q that no Append returned", e.ID)
			}
		}
	})
}

// --- mappings and seen marks ------------------------------------------------

func getMapping(t *testing.T, st store.Store, bridge, jid, ns, key string) (string, bool) {
	t.Helper()
	v, err := st.GetMapping(ctx(t), bridge, jid, ns, key)
	if errors.Is(err, store.ErrNotFound) {
		return "", false
	}
	if err != nil {
		t.Fatalf("GetMapping(%q, %q, %q, %q): %v", bridge, jid, ns, key, err)
	}
	return v, true
}

func checkMapping(t *testing.T, st store.Store, bridge, jid, ns, key, want string) {
	t.Helper()
	v, ok := getMapping(t, st, bridge, jid, ns, key)
	if !ok {
		t.Fatalf("GetMapping(%q, %q, %q, %q): not found, want %q", bridge, jid, ns, key, want)
	}
	if v != want {
		t.Fatalf("GetMapping(%q, %q, %q, %q) = %q, want %q", bridge, jid, ns, key, v, want)
	}
}

func checkNoMapping(t *testing.T, st store.Store, bridge, jid, ns, key string) {
	t.Helper()
	if v, ok := getMapping(t, st, bridge, jid, ns, key); ok {
		t.Fatalf("GetMapping(%q, %q, %q, %q) = %q, want ErrNotFound", bridge, jid, ns, key, v)
	}
}

func markSeen(t *testing.T, st store.Store, bridge, jid, key string, ttl time.Duration) bool {
	t.Helper()
	ok, err := st.MarkSeen(ctx(t), bridge, jid, key, ttl)
	if err != nil {
		t.Fatalf("MarkSeen(%q, %q, %q): %v", bridge, jid, key, err)
	}
	return ok
}

func (s suite) mapping(t *testing.T) {
	t.Run("PutGet", func(t *testing.T) {
		st := s.h.Open(t)
		checkNoMapping(t, st, bridgeA, userA, "msg", "1")
		must(t, st.PutMapping(ctx(t), bridgeA, userA, "msg", "1", "stanza-1", 0))
		must(t, st.PutMapping(ctx(t), bridgeA, userA, "stanza", "stanza-1", "1", time.Hour))
		checkMapping(t, st, bridgeA, userA, "msg", "1", "stanza-1")
		checkMapping(t, st, bridgeA, userA, "stanza", "stanza-1", "1")
		must(t, st.PutMapping(ctx(t), bridgeA, userA, "msg", "1", "stanza-2", time.Hour))
		checkMapping(t, st, bridgeA, userA, "msg", "1", "stanza-2")
		// Scoped by bridge, user and namespace.
		checkNoMapping(t, st, bridgeB, userA, "msg", "1")
		checkNoMapping(t, st, bridgeA, userB, "msg", "1")
		checkNoMapping(t, st, bridgeA, userA, "other", "1")
	})
	t.Run("Values", func(t *testing.T) {
		st := s.h.Open(t)
		vals := []string{"", "\x00", "\xff\xfe not utf-8", "ü 例 🦊", strings.Repeat("v", 100_000), "a:b{c}|d\\e@f"}
		for i, v := range vals {
			must(t, st.PutMapping(ctx(t), bridgeA, userA, "ns", fmt.Sprint(i), v, 0))
		}
		for i, v := range vals {
			checkMapping(t, st, bridgeA, userA, "ns", fmt.Sprint(i), v)
		}
	})
	t.Run("Expiry", func(t *testing.T) {
		st := s.h.Open(t)
		must(t, st.PutMapping(ctx(t), bridgeA, userA, "msg", "short", "v", shortTTL))
		must(t, st.PutMapping(ctx(t), bridgeA, userA, "msg", "long", "v", time.Hour))
		must(t, st.PutMapping(ctx(t), bridgeA, userA, "msg", "forever", "v", 0))
		// Overwrites replace the TTL too.
		must(t, st.PutMapping(ctx(t), bridgeA, userA, "msg", "made-permanent", "v", shortTTL))
		must(t, st.PutMapping(ctx(t), bridgeA, userA, "msg", "made-permanent", "w", 0))
		must(t, st.PutMapping(ctx(t), bridgeA, userA, "msg", "made-temporary", "v", 0))
		must(t, st.PutMapping(ctx(t), bridgeA, userA, "msg", "made-temporary", "w", shortTTL))
		checkMapping(t, st, bridgeA, userA, "msg", "short", "v")
		checkMapping(t, st, bridgeA, userA, "msg", "made-temporary", "w")
		s.advance(t, st, ttlWait)
		checkNoMapping(t, st, bridgeA, userA, "msg", "short")
		checkNoMapping(t, st, bridgeA, userA, "msg", "made-temporary")
		checkMapping(t, st, bridgeA, userA, "msg", "long", "v")
		checkMapping(t, st, bridgeA, userA, "msg", "forever", "v")
		checkMapping(t, st, bridgeA, userA, "msg", "made-permanent", "w")
		// An expired key can be set again.
		must(t, st.PutMapping(ctx(t), bridgeA, userA, "msg", "short", "again", 0))
		checkMapping(t, st, bridgeA, userA, "msg", "short", "again")
	})
}

func (s suite) markSeen(t *testing.T) {
	t.Run("NewOld", func(t *testing.T) {
		st := s.h.Open(t)
		if !markSeen(t, st, bridgeA, userA, "upd:1", time.Hour) {
			t.Fatal("first MarkSeen reported old")
		}
		if markSeen(t, st, bridgeA, userA, "upd:1", time.Hour) {
			t.Fatal("second MarkSeen reported new")
		}
		if markSeen(t, st, bridgeA, userA, "upd:1", 0) {
			t.Fatal("third MarkSeen (ttl 0) reported new")
		}
		for _, c := range []struct{ bridge, jid, key string }{
			{bridgeA, userA, "upd:2"},
			{bridgeA, userB, "upd:1"},
			{bridgeB, userA, "upd:1"},
		} {
			if !markSeen(t, st, c.bridge, c.jid, c.key, time.Hour) {
				t.Errorf("MarkSeen(%q, %q, %q) reported old", c.bridge, c.jid, c.key)
			}
		}
		// Seen marks and mappings do not share keys.
		checkNoMapping(t, st, bridgeA, userA, "", "upd:1")
	})
	t.Run("Expiry", func(t *testing.T) {
		st := s.h.Open(t)
		markSeen(t, st, bridgeA, userA, "short", shortTTL)
		markSeen(t, st, bridgeA, userA, "long", time.Hour)
		markSeen(t, st, bridgeA, userA, "forever", 0)
		s.advance(t, st, ttlWait)
		if !markSeen(t, st, bridgeA, userA, "short", shortTTL) {
			t.Error("MarkSeen after expiry reported old")
		}
		if markSeen(t, st, bridgeA, userA, "short", shortTTL) {
			t.Error("MarkSeen right after re-marking reported new")
		}
		if markSeen(t, st, bridgeA, userA, "long", time.Hour) {
			t.Error("MarkSeen of an unexpired key reported new")
		}
		if markSeen(t, st, bridgeA, userA, "forever", 0) {
			t.Error("MarkSeen of a key without TTL reported new")
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		st := s.h.Open(t)
		const n = 16
		var wg sync.WaitGroup
		results := make(chan bool, n)
		for range n {
			wg.Go(func() {
				ok, err := st.MarkSeen(context.Background(), bridgeA, userA, "race", time.Hour)
				if err != nil {
					t.Error(err)
				}
				results <- ok
			})
		}
		wg.Wait()
		close(results)
		newCount := 0
		for ok := range results {
			if ok {
				newCount++
			}
		}
		if newCount != 1 {
			t.Errorf("%d of %d concurrent MarkSeen calls reported new, want exactly 1", newCount, n)
		}
	})
}

// --- DeleteAccount cascade --------------------------------------------------

// populate gives (bridge, jid) an account, contacts, both queues, mappings
// and seen marks.
func populate(t *testing.T, st store.Store, bridge, jid string) {
	t.Helper()
	must(t, st.PutAccount(ctx(t), sampleAccount(bridge, jid)))
	for _, lp := range []string{"c1", "c2"} {
		must(t, st.PutContact(ctx(t), bridge, jid, &store.Contact{Localpart: lp, LegacyID: lp}))
	}
	appendN(t, st, qOf(bridge, jid, store.Inbox), "in1", "in2")
	appendN(t, st, qOf(bridge, jid, store.Outbox), "out1")
	must(t, st.PutMapping(ctx(t), bridge, jid, "msg", "k", "forever", 0))
	must(t, st.PutMapping(ctx(t), bridge, jid, "stanza", "k", "hour", time.Hour))
	markSeen(t, st, bridge, jid, "seen-forever", 0)
	markSeen(t, st, bridge, jid, "seen-hour", time.Hour)
}

// checkPopulated checks what populate wrote. It marks seen keys again, which
// changes nothing when they are present.
func checkPopulated(t *testing.T, st store.Store, bridge, jid string) {
	t.Helper()
	checkAccount(t, st, sampleAccount(bridge, jid))
	if cs := listContacts(t, st, bridge, jid); len(cs) != 2 {
		t.Fatalf("%s %s: %d contacts, want 2", bridge, jid, len(cs))
	}
	if got := payloads(readAll(t, st, qOf(bridge, jid, store.Inbox))); !slices.Equal(got, []string{"in1", "in2"}) {
		t.Fatalf("%s %s: inbox %q", bridge, jid, got)
	}
	if got := payloads(readAll(t, st, qOf(bridge, jid, store.Outbox))); !slices.Equal(got, []string{"out1"}) {
		t.Fatalf("%s %s: outbox %q", bridge, jid, got)
	}
	checkMapping(t, st, bridge, jid, "msg", "k", "forever")
	checkMapping(t, st, bridge, jid, "stanza", "k", "hour")
	for _, k := range []string{"seen-forever", "seen-hour"} {
		if markSeen(t, st, bridge, jid, k, time.Hour) {
			t.Fatalf("%s %s: seen mark %q lost", bridge, jid, k)
		}
	}
}

func (s suite) deleteAccount(t *testing.T) {
	st := s.h.Open(t)
	populate(t, st, bridgeA, userA) // deleted
	populate(t, st, bridgeA, userB) // same bridge, other user
	populate(t, st, bridgeB, userA) // same user, other bridge
	must(t, st.DeleteAccount(ctx(t), bridgeA, userA))

	checkNoAccount(t, st, bridgeA, userA)
	if cs := listContacts(t, st, bridgeA, userA); len(cs) != 0 {
		t.Errorf("contacts survive DeleteAccount: %+v", cs)
	}
	if _, err := st.GetContact(ctx(t), bridgeA, userA, "c1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetContact after DeleteAccount: %v, want ErrNotFound", err)
	}
	for _, k := range []store.QueueKind{store.Inbox, store.Outbox} {
		checkLen(t, st, qOf(bridgeA, userA, k), 0)
		if es := readAll(t, st, qOf(bridgeA, userA, k)); len(es) != 0 {
			t.Errorf("queue %s survives DeleteAccount: %d entries", k, len(es))
		}
		if got := listQueues(t, st, bridgeA, k); !slices.Equal(got, []string{userB}) {
			t.Errorf("Queues(A, %s) after DeleteAccount = %q, want [%q]", k, got, userB)
		}
	}
	checkNoMapping(t, st, bridgeA, userA, "msg", "k")
	checkNoMapping(t, st, bridgeA, userA, "stanza", "k")
	if !markSeen(t, st, bridgeA, userA, "seen-forever", 0) || !markSeen(t, st, bridgeA, userA, "seen-hour", 0) {
		t.Error("seen marks survive DeleteAccount")
	}
	if got := listJIDs(t, st, bridgeA); !slices.Equal(got, []string{userB}) {
		t.Errorf("ListAccounts(A) after DeleteAccount = %q, want [%q]", got, userB)
	}

	checkPopulated(t, st, bridgeA, userB)
	checkPopulated(t, st, bridgeB, userA)

	// The user can register again from scratch.
	populate(t, st, bridgeA, userA)
	checkPopulated(t, st, bridgeA, userA)
}

// --- keys with awkward characters -------------------------------------------

// keys checks that JIDs, bridges, namespaces and keys containing the
// separators a backend might use in its key layout cannot collide.
func (s suite) keys(t *testing.T) {
	type scope struct{ bridge, jid string }
	// Pairs that a naive "bridge:jid" or "{bridge|jid}" layout would mix up.
	scopes := []scope{
		{"a", "b|c"}, {"a|b", "c"},
		{"a", "b:c"}, {"a:b", "c"},
		{"a}", "b"}, {"a", "}b"}, {"{a}", "b"}, {"a", "{b}"},
		{"a%7C", "b"}, {"a", "%7Cb"}, {"a%", "7Cb"},
		{"a\\", "b"}, {"a", "\\b"},
		{"x", "u@d/res"}, {"x", "u\\40d@d"}, {"x", "ü@例え.jp"},
		{"x", "y:acct"}, {"x", "y}:acct"}, {"x", "y}:q:in"}, {"x", "y|z}:contacts"},
		{"x", ""}, {"", "x"}, {"", ""},
		{"n\x00ul", "b"}, {"n", "\x00ulb"},
		{"x", "\xff\xfe@bad.utf8"}, {"\xc3", "x"},
	}
	st := s.h.Open(t)
	for i, sc := range scopes {
		a := sampleAccount(sc.bridge, sc.jid)
		a.LegacyID = fmt.Sprint(i)
		must(t, st.PutAccount(ctx(t), a))
		must(t, st.PutContact(ctx(t), sc.bridge, sc.jid, &store.Contact{Localpart: "c{:}|\\@", LegacyID: fmt.Sprint(i)}))
		appendN(t, st, qOf(sc.bridge, sc.jid, store.Inbox), fmt.Sprint(i))
		must(t, st.PutMapping(ctx(t), sc.bridge, sc.jid, "n:s", "k", fmt.Sprint(i), time.Hour))
		must(t, st.PutMapping(ctx(t), sc.bridge, sc.jid, "n", "s:k", "other"+fmt.Sprint(i), time.Hour))
		if !markSeen(t, st, sc.bridge, sc.jid, "s{e}e:n|", time.Hour) {
			t.Fatalf("scope %d %q: first MarkSeen reported old (collision)", i, sc)
		}
	}
	byBridge := map[string][]string{}
	for i, sc := range scopes {
		byBridge[sc.bridge] = append(byBridge[sc.bridge], sc.jid)
		a, err := st.GetAccount(ctx(t), sc.bridge, sc.jid)
		must(t, err)
		if a.LegacyID != fmt.Sprint(i) || a.Bridge != sc.bridge || a.JID != sc.jid {
			t.Errorf("scope %d %q: got account %q/%q/%q", i, sc, a.Bridge, a.JID, a.LegacyID)
		}
		cs := listContacts(t, st, sc.bridge, sc.jid)
		if len(cs) != 1 || cs[0].LegacyID != fmt.Sprint(i) || cs[0].Localpart != "c{:}|\\@" {
			t.Errorf("scope %d %q: contacts %+v", i, sc, cs)
		}
		if got := payloads(readAll(t, st, qOf(sc.bridge, sc.jid, store.Inbox))); !slices.Equal(got, []string{fmt.Sprint(i)}) {
			t.Errorf("scope %d %q: inbox %q", i, sc, got)
		}
		checkMapping(t, st, sc.bridge, sc.jid, "n:s", "k", fmt.Sprint(i))
		checkMapping(t, st, sc.bridge, sc.jid, "n", "s:k", "other"+fmt.Sprint(i))
	}
	for bridge, jids := range byBridge {
		sort.Strings(jids)
		if got := listJIDs(t, st, bridge); !slices.Equal(got, jids) {
			t.Errorf("ListAccounts(%q) = %q, want %q", bridge, got, jids)
		}
		if got := listQueues(t, st, bridge, store.Inbox); !slices.Equal(got, jids) {
			t.Errorf("Queues(%q) = %q, want %q", bridge, got, jids)
		}
	}
	// Deleting one scope leaves every other intact.
	must(t, st.DeleteAccount(ctx(t), "a", "b|c"))
	checkNoAccount(t, st, "a", "b|c")
	for i, sc := range scopes[1:] {
		a, err := st.GetAccount(ctx(t), sc.bridge, sc.jid)
		must(t, err)
		if a.LegacyID != fmt.Sprint(i+1) {
			t.Errorf("scope %q: account changed by deleting another", sc)
		}
		checkLen(t, st, qOf(sc.bridge, sc.jid, store.Inbox), 1)
		checkMapping(t, st, sc.bridge, sc.jid, "n:s", "k", fmt.Sprint(i+1))
		if markSeen(t, st, sc.bridge, sc.jid, "s{e}e:n|", time.Hour) {
			t.Errorf("scope %q: seen mark lost by deleting another", sc)
		}
	}
}

// --- persistence ------------------------------------------------------------

func (s suite) persistence(t *testing.T) {
	if s.h.Reopen == nil {
		t.Skip("storetest: Harness.Reopen is nil; persistence not tested")
	}
	st := s.h.Open(t)
	populate(t, st, bridgeA, userA)
	q := qOf(bridgeA, userB, store.Outbox)
	ids := appendN(t, st, q, "1", "2", "3", "4")
	must(t, st.Ack(ctx(t), q, ids[0], ids[2]))

	st = s.h.Reopen(t, st)
	checkPopulated(t, st, bridgeA, userA)
	es := readAll(t, st, q)
	if got := payloads(es); !slices.Equal(got, []string{"2", "4"}) {
		t.Fatalf("after reopen: queue %q, want [2 4]", got)
	}
	// Ids assigned after the restart come after the old ones.
	more := appendN(t, st, q, "5", "6")
	checkDistinct(t, append(slices.Clone(ids), more...))
	if got := payloads(readAll(t, st, q)); !slices.Equal(got, []string{"2", "4", "5", "6"}) {
		t.Fatalf("after reopen and append: queue %q", got)
	}
	page, err := st.Read(ctx(t), q, ids[3], 10)
	must(t, err)
	if got := payloads(page); !slices.Equal(got, []string{"5", "6"}) {
		t.Fatalf("Read after a pre-restart id = %q, want [5 6]", got)
	}
	if got := listQueues(t, st, bridgeA, store.Outbox); !slices.Equal(got, []string{userA, userB}) {
		t.Fatalf("Queues(out) after reopen = %q", got)
	}
	// Acked entries stay acked; a second restart keeps the new state.
	must(t, st.Ack(ctx(t), q, ids[1]))
	st = s.h.Reopen(t, st)
	if got := payloads(readAll(t, st, q)); !slices.Equal(got, []string{"4", "5", "6"}) {
		t.Fatalf("after second reopen: queue %q", got)
	}
}

// --- everything else --------------------------------------------------------

func (s suite) misc(t *testing.T) {
	t.Run("Ping", func(t *testing.T) {
		st := s.h.Open(t)
		must(t, st.Ping(ctx(t)))
	})
	t.Run("Canceled", func(t *testing.T) {
		st := s.h.Open(t)
		c, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := st.GetAccount(c, bridgeA, userA); !errors.Is(err, context.Canceled) {
			t.Errorf("GetAccount with a canceled context: %v, want context.Canceled", err)
		}
		if _, err := st.Append(c, qOf(bridgeA, userA, store.Inbox), []byte("x")); !errors.Is(err, context.Canceled) {
			t.Errorf("Append with a canceled context: %v, want context.Canceled", err)
		}
		checkLen(t, st, qOf(bridgeA, userA, store.Inbox), 0)
	})
	t.Run("CloseTwice", func(t *testing.T) {
		st := s.h.Open(t)
		must(t, st.Close())
		if err := st.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
}
