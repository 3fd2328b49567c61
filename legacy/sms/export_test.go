package sms

import "time"

// SetHoldMax sets how long a delivery report waits for its send, for a
// test; it returns the restore.
func SetHoldMax(d time.Duration) func() {
	old := holdMax
	holdMax = d
	return func() { holdMax = old }
}
