package legacy

import (
	"errors"
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
