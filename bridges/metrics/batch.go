package metrics

import (
	"context"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
)

var _ store.Batcher = (*timedStore)(nil)

// Apply passes a batch through to the wrapped store (store.Apply: its
// group commit when it is a store.Batcher), timed as operation "apply".
// Without it the wrapper would hide the Batcher and every batch would fall
// back to one store call per operation.
func (t *timedStore) Apply(ctx context.Context, b *store.Batch) (r *store.BatchResult, err error) {
	defer func(s time.Time) { t.m.observe("apply", s, err) }(time.Now())
	return store.Apply(ctx, t.s, b)
}
