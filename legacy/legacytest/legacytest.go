// Package legacytest helps test legacy network adapters: Recorder is a fake
// Sink that records events, and Run is the conformance suite every adapter
// passes (package legacy's contract, checked from the outside).
package legacytest

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/legacy"
)

// Recorder is a legacy.Sink that keeps every event. Set Fail to make Emit
// refuse events (to test that adapters keep them on the legacy side).
// Safe for concurrent use.
type Recorder struct {
	mu     sync.Mutex
	events []legacy.Event
	notify chan struct{}
	// Fail, when non-nil, is returned by Emit and the event is not kept.
	Fail error
}

var _ legacy.Sink = (*Recorder)(nil)

// Emit implements legacy.Sink.
func (r *Recorder) Emit(ctx context.Context, ev legacy.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Fail != nil {
		return r.Fail
	}
	r.events = append(r.events, ev)
	if r.notify != nil {
		close(r.notify)
		r.notify = nil
	}
	return nil
}

// SetFail sets Fail under the lock.
func (r *Recorder) SetFail(err error) {
	r.mu.Lock()
	r.Fail = err
	r.mu.Unlock()
}

// Events returns a copy of the recorded events.
func (r *Recorder) Events() []legacy.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]legacy.Event(nil), r.events...)
}

// Wait returns the first recorded event for which match returns true,
// waiting up to timeout. It returns nil on timeout.
func (r *Recorder) Wait(timeout time.Duration, match func(legacy.Event) bool) legacy.Event {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		for _, ev := range r.events {
			if match(ev) {
				r.mu.Unlock()
				return ev
			}
		}
		if r.notify == nil {
			r.notify = make(chan struct{})
		}
		ch := r.notify
		r.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			return nil
		}
	}
}

// Suite describes an adapter under test for Run.
type Suite struct {
	// Network is the adapter, built with its test options (pointing at a
	// fake legacy server where the network is not reachable).
	Network legacy.Network
	// Fields is a valid registration.
	Fields map[string]string
	// Chat is a contact that accepts messages.
	Chat legacy.ChatID
	// CheckSent, if set, verifies on the legacy side that the message
	// with text was received (by the fake server) after Send returned.
	CheckSent func(t *testing.T, rec *Recorder, text string)
}

// Run checks the legacy contract on s.
func Run(t *testing.T, s Suite) {
	t.Helper()
	info := s.Network.Info()

	t.Run("Info", func(t *testing.T) {
		if info.Name == "" || info.DiscoType == "" || info.DisplayName == "" {
			t.Errorf("Info must name the network, its disco type and display name: %+v", info)
		}
		if _, ok := legacy.Lookup(info.Name); !ok {
			t.Errorf("network %q is not registered with legacy.Register", info.Name)
		}
		if !reflect.DeepEqual(info, s.Network.Info()) {
			t.Errorf("Info must return the same value on every call")
		}
		seen := map[string]bool{}
		for _, f := range append(append([]legacy.Field(nil), info.Fields...), info.Settings...) {
			if f.Var == "" && f.Type != legacy.Fixed {
				t.Errorf("field %+v has no Var", f)
			}
			if seen[f.Var] && f.Var != "" {
				t.Errorf("duplicate field %q", f.Var)
			}
			seen[f.Var] = true
			switch f.Type {
			case "", legacy.TextSingle, legacy.TextPrivate, legacy.Boolean, legacy.ListSingle, legacy.Fixed:
			default:
				t.Errorf("field %q has unknown type %q", f.Var, f.Type)
			}
			if f.Type == legacy.ListSingle && len(f.Options) == 0 {
				t.Errorf("list field %q has no options", f.Var)
			}
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var acctID legacy.AccountID = "test"
	if r, ok := s.Network.(legacy.Registrar); ok {
		t.Run("Register", func(t *testing.T) {
			id, err := r.Register(ctx, s.Fields)
			if err != nil {
				t.Fatalf("Register with valid fields: %v", err)
			}
			if id == "" {
				t.Fatalf("Register returned an empty account id")
			}
			acctID = id
		})
	}

	if r, ok := s.Network.(legacy.Resolver); ok {
		t.Run("Resolve", func(t *testing.T) {
			if _, err := r.Resolve(ctx, ""); !errors.Is(err, legacy.ErrInvalidAddress) {
				t.Errorf("Resolve(\"\") = %v, want an error wrapping ErrInvalidAddress", err)
			}
		})
	}

	t.Run("Session", func(t *testing.T) {
		rec := &Recorder{}
		sess, err := s.Network.Open(ctx, legacy.Account{ID: acctID, Owner: "owner", Fields: s.Fields}, rec)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- sess.Run(runCtx) }()

		text := "conformance ✓ " + time.Now().UTC().Format(time.RFC3339Nano)
		id, err := sess.Send(ctx, &legacy.Message{Chat: s.Chat, Text: text, Key: "conformance-1"})
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		if id == "" {
			t.Errorf("Send returned an empty message id")
		}
		if s.CheckSent != nil {
			s.CheckSent(t, rec, text)
		}

		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run after cancel = %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Run did not return within 10s of its context ending")
		}
	})
}
