package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
)

// lease checks the optional store.Leaser and store.Notifier add-ons; a
// store without them passes with a logged note.
func (s suite) lease(t *testing.T) {
	t.Run("Leaser", s.leaser)
	t.Run("Notifier", s.notifier)
}

func (s suite) leaser(t *testing.T) {
	st := s.h.Open(t)
	l, ok := st.(store.Leaser)
	if !ok {
		t.Logf("%T does not implement store.Leaser (optional)", st)
		return
	}
	const ttl = time.Minute
	holderIs := func(t *testing.T, name, want string, wantTok int64) {
		t.Helper()
		h, tok, err := l.Holder(ctx(t), name)
		if want == "" {
			if !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Holder(%q) = %q, %d, %v; want ErrNotFound", name, h, tok, err)
			}
			return
		}
		if err != nil || h != want || tok != wantTok {
			t.Fatalf("Holder(%q) = %q, %d, %v; want %q, %d", name, h, tok, err, want, wantTok)
		}
	}
	t.Run("AcquireRenewRelease", func(t *testing.T) {
		name := "user:" + userA
		holderIs(t, name, "", 0)
		t1, ok, err := l.Acquire(ctx(t), name, "i1", ttl)
		if err != nil || !ok || t1 <= 0 {
			t.Fatalf("Acquire free = %d, %v, %v; want a positive token", t1, ok, err)
		}
		holderIs(t, name, "i1", t1)
		if tok, ok, err := l.Acquire(ctx(t), name, "i2", ttl); err != nil || ok || tok != 0 {
			t.Fatalf("Acquire held by another = %d, %v, %v; want 0, false", tok, ok, err)
		}
		if tok, ok, err := l.Acquire(ctx(t), name, "i1", ttl); err != nil || !ok || tok != t1 {
			t.Fatalf("Acquire again by the holder = %d, %v, %v; want %d, true", tok, ok, err, t1)
		}
		for _, c := range []struct {
			holder string
			token  int64
			want   bool
		}{{"i1", t1, true}, {"i1", t1 + 1, false}, {"i2", t1, false}} {
			if ok, err := l.Renew(ctx(t), name, c.holder, c.token, ttl); err != nil || ok != c.want {
				t.Fatalf("Renew(%q, %d) = %v, %v; want %v", c.holder, c.token, ok, err, c.want)
			}
		}
		must(t, l.Release(ctx(t), name, "i2", t1)) // not the holder: nothing happens
		must(t, l.Release(ctx(t), name, "i1", t1+1))
		holderIs(t, name, "i1", t1)
		must(t, l.Release(ctx(t), name, "i1", t1))
		holderIs(t, name, "", 0)
		must(t, l.Release(ctx(t), name, "i1", t1)) // released twice: no error
		if ok, err := l.Renew(ctx(t), name, "i1", t1, ttl); err != nil || ok {
			t.Fatalf("Renew after Release = %v, %v; want false", ok, err)
		}
		t2, ok, err := l.Acquire(ctx(t), name, "i2", ttl)
		if err != nil || !ok || t2 <= t1 {
			t.Fatalf("Acquire after Release = %d, %v, %v; want a token > %d", t2, ok, err, t1)
		}
		holderIs(t, name, "i2", t2)
	})
	t.Run("Expiry", func(t *testing.T) {
		name := "link:" + bridgeA
		t1, ok, err := l.Acquire(ctx(t), name, "i1", shortTTL)
		if err != nil || !ok {
			t.Fatalf("Acquire = %d, %v, %v", t1, ok, err)
		}
		s.advance(t, st, ttlWait)
		holderIs(t, name, "", 0)
		if ok, err := l.Renew(ctx(t), name, "i1", t1, ttl); err != nil || ok {
			t.Fatalf("Renew of an expired lease = %v, %v; want false", ok, err)
		}
		t2, ok, err := l.Acquire(ctx(t), name, "i2", ttl)
		if err != nil || !ok || t2 <= t1 {
			t.Fatalf("Acquire of an expired lease = %d, %v, %v; want a token > %d", t2, ok, err, t1)
		}
		// A renewal keeps a lease alive past its first ttl.
		name = "renewed"
		t3, _, err := l.Acquire(ctx(t), name, "i1", shortTTL)
		must(t, err)
		s.advance(t, st, shortTTL/2)
		if ok, err := l.Renew(ctx(t), name, "i1", t3, ttl); err != nil || !ok {
			t.Fatalf("Renew = %v, %v", ok, err)
		}
		s.advance(t, st, ttlWait)
		holderIs(t, name, "i1", t3)
	})
	t.Run("Names", func(t *testing.T) {
		names := []string{"", "a", "a}", "{a", "a|b", "a:b", "%7D", "\x00", "\xff"}
		toks := map[string]int64{}
		for i, n := range names {
			tok, ok, err := l.Acquire(ctx(t), n, "h"+names[i], ttl)
			if err != nil || !ok {
				t.Fatalf("Acquire(%q) = %d, %v, %v", n, tok, ok, err)
			}
			toks[n] = tok
		}
		for _, n := range names {
			holderIs(t, n, "h"+n, toks[n])
		}
	})
	t.Run("Race", func(t *testing.T) {
		const n = 8
		var wg sync.WaitGroup
		wins := make(chan string, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h := string(rune('a' + i))
				if _, ok, err := l.Acquire(ctx(t), "race", h, ttl); err != nil {
					t.Error(err)
				} else if ok {
					wins <- h
				}
			}()
		}
		wg.Wait()
		close(wins)
		var got []string
		for h := range wins {
			got = append(got, h)
		}
		if len(got) != 1 {
			t.Fatalf("%d holders won one lease: %q", len(got), got)
		}
		h, _, err := l.Holder(ctx(t), "race")
		if err != nil || h != got[0] {
			t.Fatalf("Holder = %q, %v; want the winner %q", h, err, got[0])
		}
	})
}

func (s suite) notifier(t *testing.T) {
	st := s.h.Open(t)
	n, ok := st.(store.Notifier)
	if !ok {
		t.Logf("%T does not implement store.Notifier (optional)", st)
		return
	}
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	type note struct{ bridge, jid, topic string }
	got := make(chan note, 16)
	ready := make(chan string, 4)
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, b := range []string{bridgeA, bridgeB} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := n.Subscribe(c, b, func(jid, topic string) {
				got <- note{b, jid, topic}
			}, func() { ready <- b })
			if err != nil {
				t.Errorf("Subscribe(%q): %v", b, err)
			}
		}()
	}
	for range 2 {
		select {
		case <-ready:
		case <-c.Done():
			t.Fatal("Subscribe never called resync")
		}
	}
	const odd = "a|b:{c}@example.org"
	must(t, n.Notify(c, bridgeA, odd, "out"))
	must(t, n.Notify(c, bridgeB, userB, "acct"))
	want := map[note]bool{{bridgeA, odd, "out"}: true, {bridgeB, userB, "acct"}: true}
	for len(want) > 0 {
		select {
		case m := <-got:
			if !want[m] {
				t.Fatalf("unexpected notification %+v", m)
			}
			delete(want, m)
		case <-time.After(10 * time.Second):
			t.Fatalf("notifications not received within 10 s: %v", want)
		}
	}
}
