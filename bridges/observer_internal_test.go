package bridges

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"

	"github.com/jabbergate/jabbergate/legacy"
)

func TestSessionFailureReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, "ended"},
		{fmt.Errorf("token revoked: %w", legacy.ErrUnauthorized), "unauthorized"},
		{&legacy.RateLimitError{}, "rate_limited"},
		{fmt.Errorf("imap: %w", legacy.ErrUnavailable), "unavailable"},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, "unavailable"},
		{context.DeadlineExceeded, "unavailable"},
		{errors.New("something odd"), "error"},
	} {
		got := sessionFailureReason(tc.err)
		if got != tc.want {
			t.Errorf("sessionFailureReason(%v) = %q, want %q", tc.err, got, tc.want)
		}
		if !slices.Contains(SessionFailureReasons, got) {
			t.Errorf("%q is not in SessionFailureReasons", got)
		}
	}
}
