package bridges_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/bolt"
	"github.com/jabbergate/jabbergate/bridges/vault"
	"github.com/jabbergate/jabbergate/component"
	"github.com/jabbergate/jabbergate/legacy/echo"
)

// benchSessionObs counts started user sessions.
type benchSessionObs struct {
	sessions atomic.Int64
}

func (o *benchSessionObs) QueueDepth(store.QueueKind, int) {}
func (o *benchSessionObs) Delivered(string, bool)          {}
func (o *benchSessionObs) Sessions(d int)                  { o.sessions.Add(int64(d)) }

// BenchmarkStartup: N registered users (synthetic echo accounts) on a bolt
// store; one op = bridges.New + Run until the link is up and every user's
// session, inbox drainer and outbox worker are started. Reports
// ms-to-ready, and KiB of Go memory (heap in use + stacks, after GC) and
// goroutines per idle user once settled. Seeding the store (one fsync per
// account) is not timed. 100 000 users only with JG_BENCH_100K=1 (seeding
// takes ~30 s on a virtual disk).
func BenchmarkStartup(b *testing.B) {
	sizes := []int{1000, 10000}
	if os.Getenv("JG_BENCH_100K") != "" {
		sizes = append(sizes, 100000)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("users=%d", n), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "jg.db")
			benchSeed(b, path, n)
			b.ResetTimer()
			var readyMS, kibPerUser, gorPerUser float64
			for i := 0; i < b.N; i++ {
				r, k, g := benchStartOnce(b, path, n)
				readyMS += r
				kibPerUser += k
				gorPerUser += g
			}
			b.ReportMetric(readyMS/float64(b.N), "ms-to-ready")
			b.ReportMetric(kibPerUser/float64(b.N), "KiB/user")
			b.ReportMetric(gorPerUser/float64(b.N), "goroutines/user")
		})
	}
}

func benchSeed(b *testing.B, path string, n int) {
	st, err := bolt.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	now := time.Now().UTC()
	for i := range n {
		if err := st.PutAccount(ctx, &store.Account{Bridge: domain, JID: fmt.Sprintf("u%d@localhost", i), LegacyID: fmt.Sprintf("u%d", i),
			Fields: map[string]string{}, Created: now, Subscription: "both"}); err != nil {
			b.Fatal(err)
		}
	}
}

func benchMemInUse() (uint64, int) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse, runtime.NumGoroutine()
}

// benchStartOnce starts a bridge on path with n users and returns ms to ready,
// KiB per user and goroutines per user.
func benchStartOnce(b *testing.B, path string, n int) (float64, float64, float64) {
	b.StopTimer()
	st, err := bolt.Open(path, bolt.SweepInterval(-1))
	if err != nil {
		b.Fatal(err)
	}
	peer := newBenchPeer(b)
	mem0, gor0 := benchMemInUse()
	obs := &benchSessionObs{}
	en, _ := echo.New(nil)
	v, _ := vault.New(map[int][]byte{1: bytes.Repeat([]byte{7}, 32)})
	b.StartTimer()
	start := time.Now()
	br, err := bridges.New(bridges.Options{
		Domain: domain, Network: en, Store: st, Vault: v, AllowedDomains: []string{"localhost"},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Observer: obs,
		Link:     component.Config{Addr: peer.ln.Addr().String(), Secret: "s3cret", MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond},
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- br.Run(ctx) }()
	deadline := time.Now().Add(120 * time.Second)
	for obs.sessions.Load() < int64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d sessions after 120 s", obs.sessions.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case <-peer.up:
	case <-time.After(30 * time.Second):
		b.Fatal("link not up")
	}
	ready := time.Since(start)
	b.StopTimer()
	time.Sleep(time.Second) // let the sessions' first events settle
	mem1, gor1 := benchMemInUse()
	cancel()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		b.Errorf("bridge did not stop")
	}
	st.Close()
	b.StartTimer()
	return float64(ready.Microseconds()) / 1000, float64(int64(mem1)-int64(mem0)) / 1024 / float64(n), float64(gor1-gor0) / float64(n)
}
