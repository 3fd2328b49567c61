package pebble_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/bolt"
	"github.com/jabbergate/jabbergate/bridges/store/pebble"
	"github.com/jabbergate/jabbergate/bridges/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Embedded("state",
		func(path string, now func() time.Time) (store.Store, error) {
			return pebble.Open(path, pebble.Clock(now))
		},
		func(s store.Store) string { return s.(*pebble.Store).Path() }))
}

func TestSecondOpenIsLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	s, err := pebble.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	s2, err := pebble.Open(path, pebble.Timeout(200*time.Millisecond))
	if err == nil {
		s2.Close()
		t.Fatal("second Open of a held directory succeeded")
	}
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second Open: %v, want an error wrapping store.ErrLocked", err)
	}
	want := "store: " + path + " is in use by another jabbergate process"
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}

	// Once the first is closed the directory opens again, with its data.
	ctx := context.Background()
	q := store.Queue{Bridge: "b", JID: "j", Kind: store.Inbox}
	if _, err := s.Append(ctx, q, []byte("kept")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s3, err := pebble.Open(path)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	defer s3.Close()
	if es, err := s3.Read(ctx, q, "", 10); err != nil || len(es) != 1 || string(es[0].Payload) != "kept" {
		t.Fatalf("Read after reopen = %v, %v", es, err)
	}
}

// TestSecondOpenOtherSpellingIsLocked: a second Open in the same process
// through another spelling of the path — a symlink, a trailing "/." — is
// refused like one through the same spelling (Pebble's fcntl lock never
// conflicts within a process; the store compares the directory itself),
// with an error naming the path given and wrapping store.ErrLocked; once
// the first is closed, the other spelling opens it.
func TestSecondOpenOtherSpellingIsLocked(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, err := pebble.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{link, dir + "/.", link + "/"} {
		s2, err := pebble.Open(p, pebble.Timeout(100*time.Millisecond))
		if err == nil {
			s2.Close()
			t.Fatalf("Open(%s) succeeded while %s is open", p, dir)
		}
		if !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), p) {
			t.Fatalf("Open(%s): %v, want store.ErrLocked naming %s", p, err, p)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := pebble.Open(link)
	if err != nil {
		t.Fatalf("Open through the symlink after Close: %v", err)
	}
	s2.Close()
}

// TestLockedByOtherProcess: a directory held by another process (this
// test binary, run again as a child) gives store.ErrLocked, and opens once
// that process has exited.
func TestLockedByOtherProcess(t *testing.T) {
	if dir := os.Getenv("JG_PEBBLE_HOLD"); dir != "" {
		s, err := pebble.Open(dir)
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(1)
		}
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin) // hold until the parent closes stdin
		s.Close()
		os.Exit(0)
	}
	path := filepath.Join(t.TempDir(), "state")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockedByOtherProcess$")
	cmd.Env = append(os.Environ(), "JG_PEBBLE_HOLD="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("child: %q, %v", line, err)
	}
	_, err = pebble.Open(path, pebble.Timeout(100*time.Millisecond))
	if !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open of a directory another process holds: %v, want store.ErrLocked naming %s", err, path)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	s, err := pebble.Open(path)
	if err != nil {
		t.Fatalf("Open after the other process exited: %v", err)
	}
	s.Close()
}

// TestLockedWaits: Open waits for the lock up to its Timeout, so a
// restart that overlaps the old process's exit succeeds.
func TestLockedWaits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	s, err := pebble.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	time.AfterFunc(100*time.Millisecond, func() { closed <- s.Close() })
	s2, err := pebble.Open(path, pebble.Timeout(time.Minute))
	if err != nil {
		t.Fatalf("Open while the holder closes: %v", err)
	}
	s2.Close()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

func TestOpenErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing-dir", "state")
	_, err := pebble.Open(path)
	if err == nil || !strings.Contains(err.Error(), path) || errors.Is(err, store.ErrLocked) {
		t.Fatalf("Open in a missing directory: %v", err)
	}
	file := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = pebble.Open(file)
	if err == nil || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("Open of a regular file: %v", err)
	}
}

func TestClosed(t *testing.T) {
	s, err := pebble.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Ping(ctx); !errors.Is(err, pebble.ErrClosed) {
		t.Errorf("Ping after Close: %v", err)
	}
	if _, err := s.Append(ctx, store.Queue{Bridge: "b", JID: "j", Kind: store.Inbox}, []byte("x")); !errors.Is(err, pebble.ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	}
	if _, err := s.GetAccount(ctx, "b", "j"); !errors.Is(err, pebble.ErrClosed) {
		t.Errorf("GetAccount after Close: %v", err)
	}
}

// TestRestartIDs: ids keep increasing across restarts, also once the
// queue was emptied (the last sequence is stored), and a second restart
// keeps the entries appended after the first.
func TestRestartIDs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	ctx := context.Background()
	q := store.Queue{Bridge: "b", JID: "j", Kind: store.Outbox}
	var all []string
	for round := range 3 {
		s, err := pebble.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		es, err := s.Read(ctx, q, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		if round == 2 { // round 1 left one entry
			if len(es) != 1 || string(es[0].Payload) != "r1-b" || es[0].ID != all[len(all)-1] {
				t.Fatalf("round %d: queue %v, want [r1-b] with id %s", round, es, all[len(all)-1])
			}
		} else if len(es) != 0 {
			t.Fatalf("round %d: queue %v, want empty", round, es)
		}
		ids, err := s.Append(ctx, q, []byte(fmtRound(round, "a")), []byte(fmtRound(round, "b")))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, ids...)
		if round == 0 { // empty the queue: the next ids must still be higher
			if err := s.Ack(ctx, q, ids...); err != nil {
				t.Fatal(err)
			}
		} else if err := s.Ack(ctx, q, ids[0]); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.IsSorted(all) || len(slices.Compact(slices.Clone(all))) != len(all) {
		t.Fatalf("ids across restarts are not strictly increasing: %q", all)
	}
}

// TestIDsAfterDeleteAccount: a queue written again after DeleteAccount
// starts again at 1 at once, in the same process, as on bolt, and reads
// from its head find the new entries (the deleted queue's head, past
// every acked id, is forgotten); ids then increase again, across a
// restart too.
func TestIDsAfterDeleteAccount(t *testing.T) {
	ctx := context.Background()
	q := store.Queue{Bridge: "b", JID: "j", Kind: store.Inbox}
	path := filepath.Join(t.TempDir(), "state")
	boltStore, err := bolt.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer boltStore.Close()
	pebbleStore, err := pebble.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { pebbleStore.Close() }()
	var got [2][]string // bolt, pebble
	for i, s := range []store.Store{boltStore, pebbleStore} {
		ids, err := s.Append(ctx, q, []byte("a"), []byte("b"), []byte("c"))
		if err != nil {
			t.Fatal(err)
		}
		if es, err := s.Read(ctx, q, "", 10); err != nil || len(es) != 3 {
			t.Fatalf("Read = %v, %v", es, err)
		}
		if err := s.Ack(ctx, q, ids...); err != nil {
			t.Fatal(err)
		}
		if es, err := s.Read(ctx, q, "", 10); err != nil || len(es) != 0 {
			t.Fatalf("Read of the emptied queue = %v, %v", es, err)
		}
		if err := s.DeleteAccount(ctx, "b", "j"); err != nil {
			t.Fatal(err)
		}
		again, err := s.Append(ctx, q, []byte("d"))
		if err != nil {
			t.Fatal(err)
		}
		got[i] = again
		if es, err := s.Read(ctx, q, "", 10); err != nil || len(es) != 1 || es[0].ID != again[0] || string(es[0].Payload) != "d" {
			t.Fatalf("Read after DeleteAccount and Append = %v, %v; want [d] with id %s", es, err, again[0])
		}
		if n, err := s.Len(ctx, q); err != nil || n != 1 {
			t.Fatalf("Len = %d, %v", n, err)
		}
		if qs, err := s.Queues(ctx, "b", store.Inbox); err != nil || len(qs) != 1 {
			t.Fatalf("Queues = %v, %v", qs, err)
		}
	}
	if !slices.Equal(got[0], got[1]) || got[1][0] != "00000000000000000001" {
		t.Fatalf("ids after DeleteAccount: bolt %q, pebble %q; want [1] on both", got[0], got[1])
	}
	if err := pebbleStore.Close(); err != nil {
		t.Fatal(err)
	}
	if pebbleStore, err = pebble.Open(path); err != nil {
		t.Fatal(err)
	}
	ids, err := pebbleStore.Append(ctx, q, []byte("e"))
	if err != nil || ids[0] != "00000000000000000002" {
		t.Fatalf("Append after restart = %q, %v; want id 2", ids, err)
	}
}

func fmtRound(r int, s string) string { return "r" + string(rune('0'+r)) + "-" + s }

// TestHeadAfterAcks: reads from the head skip what was acked, and a
// Read after an id, Len and Queues agree with it, while the queue is
// drained from the front and refilled.
func TestHeadAfterAcks(t *testing.T) {
	s, err := pebble.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	q := store.Queue{Bridge: "b", JID: "j", Kind: store.Inbox}
	var live []string
	for i := range 50 {
		ids, err := s.Append(ctx, q, []byte{byte(i)}, []byte{byte(i), 1})
		if err != nil {
			t.Fatal(err)
		}
		live = append(live, ids...)
		// Ack the oldest one of every three, reading from the head.
		es, err := s.Read(ctx, q, "", 1)
		if err != nil || len(es) != 1 || es[0].ID != live[0] {
			t.Fatalf("step %d: head read %v, %v; want %s", i, es, err, live[0])
		}
		if i%3 == 0 {
			if err := s.Ack(ctx, q, live[0], live[1]); err != nil {
				t.Fatal(err)
			}
			live = live[2:]
		}
		n, err := s.Len(ctx, q)
		if err != nil || n != len(live) {
			t.Fatalf("step %d: Len %d, %v; want %d", i, n, err, len(live))
		}
	}
	all, err := s.Read(ctx, q, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range all {
		got = append(got, e.ID)
	}
	if !slices.Equal(got, live) {
		t.Fatalf("Read = %q, want %q", got, live)
	}
	if err := s.Ack(ctx, q, live...); err != nil {
		t.Fatal(err)
	}
	if es, err := s.Read(ctx, q, "", 10); err != nil || len(es) != 0 {
		t.Fatalf("Read of the emptied queue = %v, %v", es, err)
	}
	if qs, err := s.Queues(ctx, "b", store.Inbox); err != nil || len(qs) != 0 {
		t.Fatalf("Queues after draining = %v, %v", qs, err)
	}
	ids, err := s.Append(ctx, q, []byte("again"))
	if err != nil || ids[0] <= live[len(live)-1] {
		t.Fatalf("Append after draining = %q, %v; want an id after %s", ids, err, live[len(live)-1])
	}
	if es, err := s.Read(ctx, q, "", 10); err != nil || len(es) != 1 || string(es[0].Payload) != "again" {
		t.Fatalf("Read after refill = %v, %v", es, err)
	}
	if qs, err := s.Queues(ctx, "b", store.Inbox); err != nil || len(qs) != 1 {
		t.Fatalf("Queues after refill = %v, %v", qs, err)
	}
}

func openBench(b *testing.B) *pebble.Store {
	s, err := pebble.Open(filepath.Join(b.TempDir(), "state"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func BenchmarkAppendAck(b *testing.B)     { storetest.BenchAppendAck(b, openBench(b)) }
func BenchmarkPutGetMapping(b *testing.B) { storetest.BenchPutGetMapping(b, openBench(b)) }
func BenchmarkMarkSeen(b *testing.B)      { storetest.BenchMarkSeen(b, openBench(b)) }

// BenchmarkApply: Emit's and the drainer's commits, one goroutine
// (serial: one fsync per commit) and 16 per CPU (group commit shares
// fsyncs between them).
func BenchmarkApply(b *testing.B) {
	b.Run("serial", func(b *testing.B) { storetest.BenchApply(b, openBench(b), 0) })
	b.Run("parallel16", func(b *testing.B) { storetest.BenchApply(b, openBench(b), 16) })
}
