package echo_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/echo"
	"github.com/jabbergate/jabbergate/legacy/legacytest"
)

func TestFileEcho(t *testing.T) {
	n, _ := echo.New(nil)
	if !n.Info().Caps.Files {
		t.Fatal("echo does not declare Files")
	}
	rec := &legacytest.Recorder{}
	s, _ := n.Open(context.Background(), legacy.Account{}, rec)
	data := []byte("file content")
	sent := &legacy.Message{Chat: "bob", Text: "caption", Key: "f1",
		Attachments: []legacy.Attachment{{Name: "a.txt", Type: "text/plain", Data: data}}}
	if _, err := s.Send(context.Background(), sent); err != nil {
		t.Fatal(err)
	}
	data[0] = 'X' // the echo holds its own copy
	for _, ev := range rec.Events() {
		in, ok := ev.(legacy.Incoming)
		if !ok || in.ID != "echo-f1" {
			continue
		}
		if in.Text != "caption" || len(in.Attachments) != 1 || in.Attachments[0].Name != "a.txt" ||
			in.Attachments[0].Type != "text/plain" || !bytes.Equal(in.Attachments[0].Data, []byte("file content")) {
			t.Errorf("echo = %+v", in)
		}
		return
	}
	t.Fatalf("no echo: %v", rec.Events())
}
