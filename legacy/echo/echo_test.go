package echo_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/echo"
	"github.com/jabbergate/jabbergate/legacy/legacytest"
)

func TestConformance(t *testing.T) {
	n, err := echo.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	legacytest.Run(t, legacytest.Suite{
		Network: n,
		Fields:  map[string]string{},
		Chat:    "hello",
		CheckSent: func(t *testing.T, rec *legacytest.Recorder, text string) {
			ev := rec.Wait(5*time.Second, func(ev legacy.Event) bool {
				in, ok := ev.(legacy.Incoming)
				return ok && in.Text == text
			})
			if ev == nil {
				t.Fatalf("no echo of %q; events: %v", text, rec.Events())
			}
		},
	})
}

func TestEchoIsDurableBeforeSendReturns(t *testing.T) {
	n, _ := echo.New(map[string]string{"prefix": "echo: "})
	rec := &legacytest.Recorder{}
	s, _ := n.Open(context.Background(), legacy.Account{}, rec)
	id, err := s.Send(context.Background(), &legacy.Message{Chat: "bob", Text: "hi", Key: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	evs := rec.Events()
	if len(evs) != 1 {
		t.Fatalf("events after Send = %v, want the echo", evs)
	}
	in := evs[0].(legacy.Incoming)
	if in.Text != "echo: hi" || in.Chat != "bob" || in.ID != "echo-k1" || in.ReplyTo != "" || id != "out-k1" {
		t.Errorf("echo = %+v, sent id %q", in, id)
	}
	// Same key, same ids: a resend after a crash is recognisable.
	id2, _ := s.Send(context.Background(), &legacy.Message{Chat: "bob", Text: "hi", Key: "k1"})
	if id2 != id || rec.Events()[1].(legacy.Incoming).ID != "echo-k1" {
		t.Errorf("resend produced different ids")
	}
}

func TestSendFailsWhenSinkRefuses(t *testing.T) {
	n, _ := echo.New(nil)
	rec := &legacytest.Recorder{}
	rec.SetFail(errors.New("store down"))
	s, _ := n.Open(context.Background(), legacy.Account{}, rec)
	_, err := s.Send(context.Background(), &legacy.Message{Chat: "bob", Text: "hi", Key: "k"})
	if !errors.Is(err, legacy.ErrUnavailable) || legacy.IsPermanent(err) {
		t.Fatalf("Send with a failing sink = %v, want a transient ErrUnavailable", err)
	}
}

func TestOptionsAndResolve(t *testing.T) {
	if _, err := echo.New(map[string]string{"prefx": "x"}); err == nil {
		t.Errorf("unknown option accepted")
	}
	n, _ := echo.New(nil)
	for in, want := range map[string]legacy.ChatID{"Hello": "hello", "  bot ": "bot", "+1555": "+1555"} {
		got, err := n.Resolve(context.Background(), in)
		if err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := n.Resolve(context.Background(), "two words"); !errors.Is(err, legacy.ErrInvalidAddress) {
		t.Errorf("Resolve with a space = %v", err)
	}
}

// TestNewReportsEveryOption: New reports every unknown option at once, each
// a *legacy.OptionError, in the order of their names, the same on every
// call (options is a map: its order must not leak into the error).
func TestNewReportsEveryOption(t *testing.T) {
	opts := map[string]string{"sufix": "<", "prefix": "> ", "prefx": ">", "Prefix": "x"}
	want := []legacy.OptionError{
		{Option: "Prefix", Problem: "unknown option (known: prefix)"},
		{Option: "prefx", Problem: "unknown option (known: prefix)"},
		{Option: "sufix", Problem: "unknown option (known: prefix)"},
	}
	legacytest.CheckOptionErrors(t, want, func() error {
		if n, err := echo.New(opts); n == nil {
			return err
		}
		return nil
	})
}
