package bridges

import (
	"errors"
	"strings"
	"testing"
)

// Phone numbers and addresses in legacy errors are not logged above
// debug level (docs/configuration.md, log.level).
func TestLogErrHidesAddresses(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"twilio: legacy: invalid address (21211: The 'To' number +15559876543 is not a valid phone number.)",
			"twilio: legacy: invalid address (21211: The 'To' number [number] is not a valid phone number.)"},
		{"smtp: 550 5.1.1 <nosuch@example.org>: mailbox unavailable", "smtp: 550 5.1.1 <[address]>: mailbox unavailable"},
		{"number +1 (555) 123-4567 blocked", "number [number] blocked"},
		{"21211: The 'To' number 15559876543 is not a valid phone number.", "21211: The 'To' number [number] is not a valid phone number."},
		{"21614: To number: 5559876543, is not a mobile number", "21614: To number: [number], is not a mobile number"},
		{"telegram: 429 retry after 30 s (code 20500, 2026-12-08)", "telegram: 429 retry after 30 s (code 20500, 2026-12-08)"},
	} {
		if got := logErr(errors.New(c.in)).Value.String(); got != c.want {
			t.Errorf("logErr(%q) = %q, want %q", c.in, got, c.want)
		}
		if strings.Contains(c.want, "[") && logErr(errors.New(c.in)).Key != "err" {
			t.Error("not logged as err")
		}
	}
}
