package echo_test

import (
	"bytes"
	"context"
	"image/png"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/echo"
	"github.com/jabbergate/jabbergate/legacy/legacytest"
)

// TestAvatarIsDeterministicPNG: the generated picture is a small 64×64 PNG,
// the same bytes for the same name, different for another name.
func TestAvatarIsDeterministicPNG(t *testing.T) {
	a, b := echo.Avatar("hello"), echo.Avatar("hello")
	if !bytes.Equal(a, b) || bytes.Equal(a, echo.Avatar("world")) {
		t.Errorf("pictures are not deterministic per name")
	}
	img, err := png.Decode(bytes.NewReader(a))
	if err != nil || img.Bounds().Dx() != 64 || img.Bounds().Dy() != 64 {
		t.Fatalf("picture: %v, %v", err, img)
	}
	if len(a) > 1024 {
		t.Errorf("picture is %d bytes", len(a))
	}
	if got := echo.DisplayName("hello"); got != "Hello Echo" {
		t.Errorf("name = %q", got)
	}
}

// TestIntroducedOncePerRunningSession: a running session reports a
// contact (name and picture) before the first echo to it, once.
func TestIntroducedOncePerRunningSession(t *testing.T) {
	n, _ := echo.New(nil)
	rec := &legacytest.Recorder{}
	s, _ := n.Open(context.Background(), legacy.Account{}, rec)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	if rec.Wait(5*time.Second, func(ev legacy.Event) bool { _, ok := ev.(legacy.StatusEvent); return ok }) == nil {
		t.Fatal("session did not report its status")
	}
	// Run marks itself running just after the status: send until the
	// introduction shows up (bounded).
	deadline := time.Now().Add(5 * time.Second)
	var c legacy.Contact
	for found := false; !found; {
		if time.Now().After(deadline) {
			t.Fatalf("no introduction: %v", rec.Events())
		}
		if _, err := s.Send(context.Background(), &legacy.Message{Chat: "bob", Text: "hi"}); err != nil {
			t.Fatal(err)
		}
		for _, ev := range rec.Events() {
			if ct, ok := ev.(legacy.Contact); ok {
				c, found = ct, true
			}
		}
	}
	if c.Chat != "bob" || c.Name != "Bob Echo" || c.AvatarType != "image/png" || !bytes.Equal(c.Avatar, echo.Avatar("bob")) {
		t.Errorf("introduction = %+v", c)
	}
	before := len(rec.Events())
	if _, err := s.Send(context.Background(), &legacy.Message{Chat: "bob", Text: "again"}); err != nil {
		t.Fatal(err)
	}
	evs := rec.Events()[before:]
	if len(evs) != 1 {
		t.Errorf("second message produced %v, want only the echo", evs)
	}
}
