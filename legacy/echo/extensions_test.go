package echo_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/echo"
	"github.com/jabbergate/jabbergate/legacy/legacytest"
)

func TestOptionalFeatures(t *testing.T) {
	n, _ := echo.New(map[string]string{"prefix": "e: "})
	caps := n.Info().Caps
	if !caps.Edits || !caps.Retractions || !caps.Reactions || !caps.ChatStates || !caps.Replies || !caps.Receipts || !caps.Markers {
		t.Fatalf("caps = %+v", caps)
	}
	rec := &legacytest.Recorder{}
	s, _ := n.Open(context.Background(), legacy.Account{}, rec)
	ctx := context.Background()
	id, err := s.Send(ctx, &legacy.Message{Chat: "bob", Text: "hi", Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	// The echo of a reply replies to the same message.
	_, _ = s.Send(ctx, &legacy.Message{Chat: "bob", Text: "re", Key: "r", ReplyTo: "echo-k"})
	if in := rec.Events()[1].(legacy.Incoming); in.ReplyTo != "echo-k" {
		t.Errorf("echo of a reply = %+v", in)
	}
	if err := s.(legacy.Editor).Edit(ctx, "bob", id, "hello"); err != nil {
		t.Fatal(err)
	}
	if err := s.(legacy.Retracter).Retract(ctx, "bob", id); err != nil {
		t.Fatal(err)
	}
	if err := s.(legacy.Reactor).React(ctx, "bob", "echo-k", []string{"👍", "🎉"}); err != nil {
		t.Fatal(err)
	}
	if err := s.(legacy.ChatStater).SetTyping(ctx, "bob", true); err != nil {
		t.Fatal(err)
	}
	if err := s.(legacy.Marker).MarkRead(ctx, "bob", "echo-k"); err != nil {
		t.Fatal(err)
	}
	evs := rec.Events()[2:]
	if ed, ok := evs[0].(legacy.Edited); !ok || ed.ID != "echo-k" || ed.Text != "e: hello" || ed.Chat != "bob" {
		t.Errorf("edit echo = %+v", evs[0])
	}
	if r, ok := evs[1].(legacy.Retracted); !ok || r.ID != "echo-k" {
		t.Errorf("retraction echo = %+v", evs[1])
	}
	if r, ok := evs[2].(legacy.Reacted); !ok || r.ID != id || !slices.Equal(r.Emojis, []string{"👍", "🎉"}) {
		t.Errorf("reaction echo = %+v", evs[2])
	}
	if ty, ok := evs[3].(legacy.Typing); !ok || !ty.Typing || ty.Chat != "bob" {
		t.Errorf("typing echo = %+v", evs[3])
	}
	if d, ok := evs[4].(legacy.Displayed); !ok || d.ID != id {
		t.Errorf("marker echo = %+v", evs[4])
	}
	// Unknown ids are ErrNotFound, permanent.
	for name, err := range map[string]error{
		"edit":    s.(legacy.Editor).Edit(ctx, "bob", "nope", "x"),
		"retract": s.(legacy.Retracter).Retract(ctx, "bob", "echo-k"),
		"react":   s.(legacy.Reactor).React(ctx, "bob", "zzz", nil),
		"read":    s.(legacy.Marker).MarkRead(ctx, "bob", ""),
	} {
		if !errors.Is(err, legacy.ErrNotFound) {
			t.Errorf("%s of an unknown id = %v", name, err)
		}
	}
}
