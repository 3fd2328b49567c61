package record

import (
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
)

func TestIDs(t *testing.T) {
	for _, n := range []uint64{0, 1, 9, 10, 12345, 1<<63 + 7, ^uint64(0)} {
		id := FormatID(n)
		if len(id) != idWidth {
			t.Errorf("FormatID(%d) = %q: width %d", n, id, len(id))
		}
		if got, ok := ParseID(id); !ok || got != n {
			t.Errorf("ParseID(FormatID(%d)) = %d, %v", n, got, ok)
		}
		if m := n + 1; m != 0 && FormatID(m) <= id {
			t.Errorf("FormatID(%d) = %q sorts before or at FormatID(%d) = %q", m, FormatID(m), n, id)
		}
	}
	for _, bad := range []string{"", "1", "0000000000000000000x", "99999999999999999999", "-0000000000000000001", "1-0"} {
		if _, ok := ParseID(bad); ok {
			t.Errorf("ParseID(%q) accepted", bad)
		}
	}
}

func TestReadStart(t *testing.T) {
	for _, c := range []struct {
		after string
		start uint64
		none  bool
		err   bool
	}{
		{"", 0, false, false},
		{FormatID(0), 1, false, false},
		{FormatID(41), 42, false, false},
		{FormatID(^uint64(0)), 0, true, false},
		{"42", 0, false, true},
	} {
		start, none, err := ReadStart(c.after)
		if start != c.start || none != c.none || (err != nil) != c.err {
			t.Errorf("ReadStart(%q) = %d, %v, %v; want %d, %v, error %v", c.after, start, none, err, c.start, c.none, c.err)
		}
	}
}

func TestValidKindAndExpiry(t *testing.T) {
	if ValidKind(store.Inbox) != nil || ValidKind(store.Outbox) != nil || ValidKind("x") == nil {
		t.Error("ValidKind accepts only the inbox and the outbox")
	}
	now := time.Unix(1000, 0).UnixNano()
	if got := ExpiryAt(now, 0); got != 0 || Expired(got, now+1e18) {
		t.Errorf("ExpiryAt(now, 0) = %d: want 0, never expired", got)
	}
	exp := ExpiryAt(now, time.Second)
	if exp != uint64(now+1e9) || Expired(exp, now+1e9-1) || !Expired(exp, now+1e9) {
		t.Errorf("ExpiryAt(now, 1s) = %d: want now+1s, expired from then on", exp)
	}
}
