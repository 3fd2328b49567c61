package storetest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
)

// BenchAppendAck measures one Append of a 256-byte payload followed by the
// Ack of its id: the per-message cost of a durable queue. It reports
// allocations.
func BenchAppendAck(b *testing.B, s store.Store) {
	ctx := context.Background()
	q := store.Queue{Bridge: bridgeA, JID: userA, Kind: store.Inbox}
	payload := make([]byte, 256)
	b.ReportAllocs()
	for b.Loop() {
		ids, err := s.Append(ctx, q, payload)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Ack(ctx, q, ids...); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchPutGetMapping measures one PutMapping with a TTL followed by one
// GetMapping of the same key. It reports allocations.
func BenchPutGetMapping(b *testing.B, s store.Store) {
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := strconv.Itoa(i)
		i++
		if err := s.PutMapping(ctx, bridgeA, userA, "msg", k, "stanza-"+k, time.Hour); err != nil {
			b.Fatal(err)
		}
		if _, err := s.GetMapping(ctx, bridgeA, userA, "msg", k); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchMarkSeen measures MarkSeen of a new key followed by MarkSeen of the
// same key (the replay case). It reports allocations.
func BenchMarkSeen(b *testing.B, s store.Store) {
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := strconv.Itoa(i)
		i++
		if ok, err := s.MarkSeen(ctx, bridgeA, userA, k, time.Hour); err != nil || !ok {
			b.Fatalf("MarkSeen(new) = %v, %v", ok, err)
		}
		if ok, err := s.MarkSeen(ctx, bridgeA, userA, k, time.Hour); err != nil || ok {
			b.Fatalf("MarkSeen(old) = %v, %v", ok, err)
		}
	}
}
