package faultnet_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/legacytest"
	"github.com/jabbergate/jabbergate/legacy/legacytest/faultnet"
)

func start(t *testing.T, opts map[string]string) (*faultnet.Server, *faultnet.Network) {
	t.Helper()
	fs, err := faultnet.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fs.Close() })
	o := map[string]string{"url": fs.URL}
	for k, v := range opts {
		o[k] = v
	}
	n, err := faultnet.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return fs, n
}

func TestConformance(t *testing.T) {
	fs, n := start(t, nil)
	legacytest.Run(t, legacytest.Suite{
		Network: n, Chat: "peer",
		CheckSent: func(t *testing.T, rec *legacytest.Recorder, text string) {
			for _, m := range fs.Sent() {
				if m.Text == text {
					return
				}
			}
			t.Errorf("%q not received by the fake service: %+v", text, fs.Sent())
		},
	})
}

// TestInboundKeptWhileRefused: messages the sink refuses stay on the
// legacy side, are reported, and are delivered in order once Emit works.
func TestInboundKeptWhileRefused(t *testing.T) {
	fs, n := start(t, nil)
	rec := &legacytest.Recorder{Fail: errors.New("store down")}
	s, err := n.Open(context.Background(), legacy.Account{ID: "fault"}, rec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	fs.Push("peer", "a")
	fs.Push("peer", "b")
	deadline := time.Now().Add(10 * time.Second)
	for fs.Refused() < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if fs.Refused() < 2 {
		t.Fatalf("refused = %d, want the refusals reported", fs.Refused())
	}
	rec.SetFail(nil)
	var got []string
	for time.Now().Before(deadline.Add(10 * time.Second)) {
		got = got[:0]
		for _, ev := range rec.Events() {
			if in, ok := ev.(legacy.Incoming); ok {
				got = append(got, string(in.ID)+"="+in.Text)
			}
		}
		if len(got) >= 2 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(got) != 2 || got[0] != "peer-1=a" || got[1] != "peer-2=b" {
		t.Errorf("incoming = %v, want [peer-1=a peer-2=b]", got)
	}
}

// TestSendFailures: 503 and hanging requests are transient errors.
func TestSendFailures(t *testing.T) {
	fs, n := start(t, map[string]string{"timeout": "300ms"})
	s, err := n.Open(context.Background(), legacy.Account{ID: "fault"}, &legacytest.Recorder{})
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []faultnet.Mode{faultnet.ModeFail, faultnet.ModeHang} {
		fs.SetMode(mode)
		_, err := s.Send(context.Background(), &legacy.Message{Chat: "peer", Text: "x", Key: "k"})
		if !errors.Is(err, legacy.ErrUnavailable) || legacy.IsPermanent(err) {
			t.Errorf("mode %d: err = %v, want transient ErrUnavailable", mode, err)
		}
	}
	fs.SetMode(faultnet.ModeOK)
	id, err := s.Send(context.Background(), &legacy.Message{Chat: "peer", Text: "y", Key: "k2"})
	if err != nil || id != "out-k2" || len(fs.Sent()) != 1 || len(fs.Attempts()) != 3 {
		t.Errorf("ok: id %q err %v sent %+v attempts %d", id, err, fs.Sent(), len(fs.Attempts()))
	}
}
