package servertest

import (
	"fmt"
	"testing"
)

// fatalRecorder is a testing.TB whose Fatal/Fatalf record the message and
// stop the helper with a panic caught by catchFatal.
type fatalRecorder struct {
	testing.TB
	msg string
}

type fatalPanic struct{}

func (f *fatalRecorder) Fatal(args ...any) { f.msg = fmt.Sprint(args...); panic(fatalPanic{}) }
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(fatalPanic{})
}

func catchFatal(t *testing.T, fn func(tb testing.TB)) string {
	t.Helper()
	f := &fatalRecorder{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(fatalPanic); !ok {
					panic(r)
				}
			}
		}()
		fn(f)
	}()
	return f.msg
}

// A missing server binary fails the test with the install command.
// Not parallel: it swaps findBinary.
func TestMissingBinaryFails(t *testing.T) {
	saved := findBinary
	t.Cleanup(func() { findBinary = saved })
	findBinary = func(string, ...string) (string, bool) { return "", false }

	for kind, want := range map[string]string{
		"prosody":  "prosody not found: install it with 'apt-get install prosody prosody-modules' (or run 'make deps' as root)",
		"ejabberd": "ejabberd not found: install it with 'apt-get install ejabberd' (or run 'make deps' as root)",
	} {
		got := catchFatal(t, func(tb testing.TB) { Start(tb, kind, Options{}) })
		if got != want {
			t.Errorf("%s: Fatal message\n got %q\nwant %q", kind, got, want)
		}
	}
	if got := catchFatal(t, func(tb testing.TB) { Start(tb, "openfire", Options{}) }); got == "" {
		t.Error("unknown kind did not fail")
	}
}

func TestLuaQuote(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:       `"plain"`,
		`a"b\c`:       `"a\"b\\c"`,
		"nl\n1":       `"nl\0101"`,
		"héllo":       `"héllo"`,
		"tab\there\r": `"tab\009here\013"`,
	} {
		if got := luaQuote(in); got != want {
			t.Errorf("luaQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
