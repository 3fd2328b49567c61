package storetest

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
)

// BenchApply measures one store.Apply of what the gateway's Emit commits
// (a seen mark and an Append) followed, in a second Apply, by what its
// drainer commits (a delivered mapping and the Ack): two commits per op,
// as BenchAppendAck does with two calls. With parallelism 0 it runs in
// one goroutine; with parallelism > 0, that many goroutines per GOMAXPROCS
// run it at once, each on its own user's queue, so a store with group
// commit (store.Batcher) shares commits between them. It reports
// allocations.
func BenchApply(b *testing.B, s store.Store, parallelism int) {
	ctx := context.Background()
	payload := make([]byte, 256)
	var next atomic.Int64
	b.ReportAllocs()
	body := func(more func() bool) {
		jid := fmt.Sprintf("user%d@example.org", next.Add(1))
		q := store.Queue{Bridge: bridgeA, JID: jid, Kind: store.Inbox}
		i := 0
		for more() {
			i++
			k := strconv.Itoa(i)
			var bt store.Batch
			bt.MarkSeen(bridgeA, jid, "in:"+k, time.Hour).Append(q, payload)
			res, err := store.Apply(ctx, s, &bt)
			if err != nil {
				b.Fatal(err)
			}
			bt.Reset()
			bt.PutMapping(bridgeA, jid, "delivered", k, "1", time.Hour).Ack(q, res.IDs[1]...)
			if _, err := store.Apply(ctx, s, &bt); err != nil {
				b.Fatal(err)
			}
		}
	}
	if parallelism <= 0 {
		n := 0
		body(func() bool { n++; return n <= b.N })
		return
	}
	b.SetParallelism(parallelism)
	b.RunParallel(func(pb *testing.PB) { body(pb.Next) })
}
