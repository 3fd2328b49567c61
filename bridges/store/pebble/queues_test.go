package pebble

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/jabbergate/jabbergate/bridges/store"
)

func heads(s *Store) int {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	return len(s.heads)
}

// TestQueueHeadsFreed: the queue heads kept in memory do not grow with
// every queue ever touched: reads of a queue never written (Read, Len,
// Queues for every user of the bridge) keep none, and DeleteAccount drops
// the user's.
func TestQueueHeadsFreed(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state"), SweepInterval(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for i := range 200 {
		jid := fmt.Sprintf("u%d", i)
		in := store.Queue{Bridge: "b", JID: jid, Kind: store.Inbox}
		out := store.Queue{Bridge: "b", JID: jid, Kind: store.Outbox}
		if err := s.PutAccount(ctx, &store.Account{Bridge: "b", JID: jid}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, in, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if es, err := s.Read(ctx, in, "", 10); err != nil || len(es) != 1 {
			t.Fatalf("Read = %v, %v", es, err)
		}
		// Reads of queues never written: the user's outbox, a stranger's.
		stranger := store.Queue{Bridge: "b", JID: "stranger" + jid, Kind: store.Inbox}
		for _, q := range []store.Queue{out, stranger} {
			if es, err := s.Read(ctx, q, "", 10); err != nil || len(es) != 0 {
				t.Fatalf("Read(%v) = %v, %v", q, es, err)
			}
			if n, err := s.Len(ctx, q); err != nil || n != 0 {
				t.Fatalf("Len(%v) = %d, %v", q, n, err)
			}
		}
		if qs, err := s.Queues(ctx, "b", store.Outbox); err != nil || len(qs) != 0 {
			t.Fatalf("Queues(out) = %v, %v", qs, err)
		}
		if n := heads(s); n != 1 {
			t.Fatalf("user %d: %d queue heads in memory, want 1 (the inbox just read)", i, n)
		}
		if err := s.DeleteAccount(ctx, "b", jid); err != nil {
			t.Fatal(err)
		}
		if n := heads(s); n != 0 {
			t.Fatalf("user %d: %d queue heads in memory after DeleteAccount, want 0", i, n)
		}
	}
}

// TestHeadNotRaisedAcrossDeleteAccount: a read of a view older than a
// DeleteAccount does not record a head once the deletion is published (it
// would be a head of the deleted queue, whose successor starts again at
// 1).
func TestHeadNotRaisedAcrossDeleteAccount(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state"), SweepInterval(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	q := store.Queue{Bridge: "b", JID: "j", Kind: store.Inbox}
	p := queuePrefix(q)
	v, err := s.beginRead() // a read begins
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAccount(ctx, "b", "j"); err != nil {
		t.Fatal(err)
	}
	s.raiseHead(p, 100, v) // and ends
	s.endRead(v)
	if h := s.head(p); h != 0 {
		t.Fatalf("head %d recorded by a read older than the DeleteAccount", h)
	}
	v, err = s.beginRead()
	if err != nil {
		t.Fatal(err)
	}
	s.raiseHead(p, 100, v)
	s.endRead(v)
	if h := s.head(p); h != 100 {
		t.Fatalf("head %d, want 100", h)
	}
}

// TestTailsInRounds: the last sequences kept in memory follow what the
// database holds: within one round that appends, deletes the user and
// appends again (the queue starts again at 1), after it, and after a
// round that failed (its sequences are not kept).
func TestTailsInRounds(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state"), SweepInterval(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q := store.Queue{Bridge: "b", JID: "j", Kind: store.Inbox}
	var got []string
	appendReq := func() *commitReq {
		return &commitReq{fn: func(w *writer) error {
			ids, err := w.append(q, [][]byte{[]byte("x")})
			got = append(got, ids...)
			return err
		}}
	}
	deleteReq := &commitReq{fn: func(w *writer) error { return w.deleteUser("b", "j") }}
	if err := s.run(appendReq(), appendReq(), deleteReq, appendReq()); err != nil {
		t.Fatal(err)
	}
	if err := s.run(appendReq()); err != nil {
		t.Fatal(err)
	}
	failing := &commitReq{fn: func(w *writer) error { return fmt.Errorf("injected") }}
	if err := s.run(appendReq(), appendReq(), failing); err == nil {
		t.Fatal("a round with a failing request committed")
	}
	if err := s.run(appendReq()); err != nil {
		t.Fatal(err)
	}
	es, err := s.Read(context.Background(), q, "", 10)
	if err != nil || len(es) != 3 || es[2].ID != got[len(got)-1] {
		t.Fatalf("Read = %v, %v; want 3 entries ending with %s", es, err, got[len(got)-1])
	}
	// A committed sequence is not used by a round that deletes the user.
	if err := s.run(deleteReq, appendReq()); err != nil {
		t.Fatal(err)
	}
	// 1, 2, deletion, 1 | 2 | 3, 4 not committed | 3 | deletion, 1
	want := []string{"00000000000000000001", "00000000000000000002", "00000000000000000001", "00000000000000000002", "00000000000000000003", "00000000000000000004", "00000000000000000003", "00000000000000000001"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ids %v, want %v", got, want)
	}
}
