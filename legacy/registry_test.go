package legacy

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func TestRegisterPanics(t *testing.T) {
	f := func(map[string]string) (Network, error) { return nil, errors.New("x") }
	mustPanic := func(name string, fn func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s: no panic", name)
			}
		}()
		fn()
	}
	mustPanic("empty name", func() { Register("", f) })
	mustPanic("nil factory", func() { Register("x-nil", nil) })
	Register("x-dup", f)
	mustPanic("duplicate", func() { Register("x-dup", f) })
	if _, err := New("x-missing", nil); err == nil {
		t.Errorf("New of an unknown network succeeded")
	}
}

func TestPermanence(t *testing.T) {
	if IsPermanent(ErrUnavailable) || IsPermanent(&RateLimitError{}) {
		t.Errorf("transient errors reported permanent")
	}
	if !IsPermanent(&CodeError{Code: "550", Err: ErrNotFound}) || !IsPermanent(&FieldError{Var: "x"}) {
		t.Errorf("permanent errors reported transient")
	}
	if !errors.Is(&RateLimitError{}, ErrRateLimited) {
		t.Errorf("RateLimitError does not wrap ErrRateLimited")
	}
}

func TestOptionErrors(t *testing.T) {
	a := &OptionError{Option: "prefx", Problem: "unknown option (known: prefix)"}
	b := &OptionError{Option: "poll_interval", Problem: "want a positive duration"}
	if got := a.Error(); got != "option prefx: unknown option (known: prefix)" {
		t.Errorf("Error() = %q", got)
	}
	if got := (&OptionError{Problem: "no route"}).Error(); got != "options: no route" {
		t.Errorf("Error() without an option = %q", got)
	}
	cases := []struct {
		name string
		err  error
		want []*OptionError
	}{
		{"nil", nil, nil},
		{"untyped", errors.New("echo: unknown option \"x\""), nil},
		{"bare", a, []*OptionError{a}},
		{"wrapped", fmt.Errorf("echo: %w", a), []*OptionError{a}},
		{"joined", errors.Join(a, errors.New("other"), fmt.Errorf("x: %w", b)), []*OptionError{a, b}},
		{"wrapped join", fmt.Errorf("email: %w", errors.Join(b, a)), []*OptionError{b, a}},
	}
	for _, c := range cases {
		if got := OptionErrors(c.err); !slices.Equal(got, c.want) {
			t.Errorf("%s: OptionErrors = %v, want %v", c.name, got, c.want)
		}
	}
}
