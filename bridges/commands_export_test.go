package bridges

import "time"

// SetCommandTimeout changes how long command sessions and chat
// conversations live, for tests; it returns a function restoring the old
// value.
func SetCommandTimeout(d time.Duration) (restore func()) {
	old := commandTimeoutNanos.Swap(int64(d))
	return func() { commandTimeoutNanos.Store(old) }
}

// SetAckRetry changes how long a failing outbox ack is retried before its
// entries are sent again, for tests; it returns a function restoring the
// old value.
func SetAckRetry(d time.Duration) (restore func()) {
	old := ackRetryNanos.Swap(int64(d))
	return func() { ackRetryNanos.Store(old) }
}
