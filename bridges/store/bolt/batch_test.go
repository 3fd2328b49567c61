package bolt_test

import (
	"testing"

	"github.com/jabbergate/jabbergate/bridges/store/storetest"
)

// BenchmarkApply: Emit's and the drainer's commits, one goroutine
// (serial: one fsync per commit) and 16 per CPU (group commit shares
// fsyncs between them).
func BenchmarkApply(b *testing.B) {
	b.Run("serial", func(b *testing.B) { storetest.BenchApply(b, openBench(b), 0) })
	b.Run("parallel16", func(b *testing.B) { storetest.BenchApply(b, openBench(b), 16) })
}
