package record

import (
	"fmt"
	"strconv"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
)

// The queue entry ids and expiries of the embedded stores (store/bolt,
// store/pebble), which lay them out alike.

// idWidth is the digits of the largest uint64.
const idWidth = 20

// FormatID renders a queue sequence as an entry id: idWidth decimal
// digits, so that string order is numeric order.
func FormatID(seq uint64) string {
	var buf [idWidth]byte
	for i := range buf {
		buf[i] = '0'
	}
	var tmp [idWidth]byte
	d := strconv.AppendUint(tmp[:0], seq, 10)
	copy(buf[idWidth-len(d):], d)
	return string(buf[:])
}

// ParseID returns the sequence of an id FormatID made.
func ParseID(id string) (uint64, bool) {
	if len(id) != idWidth {
		return 0, false
	}
	n, err := strconv.ParseUint(id, 10, 64)
	return n, err == nil
}

// ReadStart is the first sequence a Read after the entry id after covers
// ("" = from the head); none is set when no entry can follow after.
func ReadStart(after string) (start uint64, none bool, err error) {
	if after == "" {
		return 0, false, nil
	}
	n, ok := ParseID(after)
	if !ok {
		return 0, false, fmt.Errorf("store: invalid entry id %q", after)
	}
	if n == ^uint64(0) {
		return 0, true, nil
	}
	return n + 1, false, nil
}

// ValidKind refuses a queue kind other than store.Inbox and store.Outbox.
func ValidKind(kind store.QueueKind) error {
	if kind != store.Inbox && kind != store.Outbox {
		return fmt.Errorf("store: unknown queue kind %q", kind)
	}
	return nil
}

// ExpiryAt is the expiry of something written at now (Unix nanoseconds)
// for ttl: Unix nanoseconds, 0 (never) for ttl <= 0.
func ExpiryAt(now int64, ttl time.Duration) uint64 {
	if ttl <= 0 {
		return 0
	}
	return uint64(now + int64(ttl))
}

// Expired reports whether expiry exp has passed at now.
func Expired(exp uint64, now int64) bool { return exp != 0 && int64(exp) <= now }
