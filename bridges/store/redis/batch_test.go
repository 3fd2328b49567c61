package redis_test

import (
	"testing"

	"github.com/jabbergate/jabbergate/bridges/store/redistest"
	"github.com/jabbergate/jabbergate/bridges/store/storetest"
)

// BenchmarkApply: Emit's and the drainer's commits (one MULTI/EXEC round
// trip each), one goroutine and 16 per CPU, on a real redis-server.
func BenchmarkApply(b *testing.B) {
	b.Run("serial", func(b *testing.B) { storetest.BenchApply(b, open(b, redistest.Start(b), "bench"), 0) })
	b.Run("parallel16", func(b *testing.B) { storetest.BenchApply(b, open(b, redistest.Start(b), "bench"), 16) })
}
