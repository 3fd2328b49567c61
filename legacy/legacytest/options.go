package legacytest

import (
	"slices"
	"testing"

	"github.com/jabbergate/jabbergate/legacy"
)

// CheckOptionErrors checks an adapter's New with bad options: build (a
// call of New that returns its error, or nil when New built a network)
// fails with exactly want, as legacy.OptionErrors in that order, and with
// the same text on every call (options are a map: its order must not leak
// into the error). It calls build 20 times.
func CheckOptionErrors(t testing.TB, want []legacy.OptionError, build func() error) {
	t.Helper()
	var first string
	for i := range 20 {
		err := build()
		if err == nil {
			t.Fatal("New built a network; want an error")
		}
		var got []legacy.OptionError
		for _, oe := range legacy.OptionErrors(err) {
			got = append(got, *oe)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("OptionErrors = %+v\nwant %+v", got, want)
		}
		if i == 0 {
			first = err.Error()
		} else if err.Error() != first {
			t.Fatalf("call %d: %q, first call: %q", i, err, first)
		}
	}
}
