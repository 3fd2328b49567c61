// Package faultnet is a test-only legacy network ("fault") whose far side
// is a fake service the test controls (Server), so fault-injection tests can
// count every message in both directions and make the legacy side fail.
//
// The adapter talks to the fake service over loopback HTTP:
//
//   - inbound: Session.Run long-polls GET /poll?after=SEQ and hands each
//     message to Sink.Emit in order; its cursor advances only after Emit
//     succeeded and is saved with a SaveState event (like Telegram's
//     offset), so a crash or a refusing store replays, never loses. A
//     refused Emit is reported to the service (POST /refused), which counts
//     it, and retried after a short pause.
//   - outbound: Session.Send POSTs /send with the message and its
//     idempotency key; the service records it (Server.Sent) or, in a
//     failure mode, answers 503 or hangs until the adapter's timeout.
//
// The network registers itself as "fault" from init. The production binary
// never imports this package: cmd/jabbergate links it only when built with
// `-tags faultnet` (file faultnet_tag.go there), and the tests of
// cmd/jabbergate import it directly.
//
// Options (bridges[].options):
//
//	url:        the fake service, e.g. http://127.0.0.1:PORT (required)
//	outbox_ttl: the network's OutboxTTL (default: the core's)
//	timeout:    per-request timeout of Send (default 5s)
//
// Every contact is valid (any localpart). Not supported: edits, files,
// groups, presence; one account per service (the account id is "fault").
package faultnet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/jabbergate/jabbergate/legacy"
)

// Name is the registry name of the network.
const Name = "fault"

func init() {
	legacy.Register(Name, func(options map[string]string) (legacy.Network, error) { return New(options) })
}

// Network is the fault network.
type Network struct {
	url     string
	ttl     time.Duration
	timeout time.Duration
	client  *http.Client
}

var (
	_ legacy.Network   = (*Network)(nil)
	_ legacy.Registrar = (*Network)(nil)
	_ legacy.Session   = (*session)(nil)
)

// New validates options; it does no I/O.
func New(options map[string]string) (*Network, error) {
	n := &Network{timeout: 5 * time.Second}
	for k, v := range options {
		switch k {
		case "url":
			if _, err := url.Parse(v); err != nil {
				return nil, fmt.Errorf("faultnet: url: %w", err)
			}
			n.url = v
		case "outbox_ttl", "timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("faultnet: %s: want a positive duration, got %q", k, v)
			}
			if k == "timeout" {
				n.timeout = d
			} else {
				n.ttl = d
			}
		default:
			return nil, fmt.Errorf("faultnet: unknown option %q (known: url, outbox_ttl, timeout)", k)
		}
	}
	if n.url == "" {
		return nil, errors.New("faultnet: option url is required")
	}
	n.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	return n, nil
}

// Info implements legacy.Network.
func (n *Network) Info() legacy.Info {
	return legacy.Info{
		Name: Name, DiscoType: "xmpp", DisplayName: "Fault",
		Instructions: "Test network: submit the form to register.",
		Caps:         legacy.Caps{Receipts: true},
		OutboxTTL:    n.ttl,
	}
}

// Register implements legacy.Registrar: anything registers.
func (n *Network) Register(ctx context.Context, fields map[string]string) (legacy.AccountID, error) {
	return "fault", nil
}

// Open implements legacy.Network.
func (n *Network) Open(ctx context.Context, acct legacy.Account, sink legacy.Sink) (legacy.Session, error) {
	s := &session{net: n, sink: sink}
	if len(acct.State) > 0 {
		s.cursor, _ = strconv.ParseInt(string(acct.State), 10, 64)
	}
	return s, nil
}

type session struct {
	net    *Network
	sink   legacy.Sink
	cursor int64 // last inbound seq emitted; only Run touches it
}

// Message is one message of the fake service, either way.
type Message struct {
	Seq  int64  `json:"seq,omitempty"`
	ID   string `json:"id,omitempty"`
	Chat string `json:"chat"`
	Text string `json:"text"`
	Key  string `json:"key,omitempty"`
}

// Run polls the service and emits its messages until ctx ends.
func (s *session) Run(ctx context.Context) error {
	if err := s.sink.Emit(ctx, legacy.StatusEvent{Status: legacy.StatusConnected}); err != nil && ctx.Err() != nil {
		return nil
	}
	for ctx.Err() == nil {
		msgs, err := s.poll(ctx)
		if err != nil {
			if !pause(ctx, 200*time.Millisecond) {
				return nil
			}
			continue
		}
		for i := 0; i < len(msgs) && ctx.Err() == nil; {
			m := msgs[i]
			err := s.sink.Emit(ctx, legacy.Incoming{ID: legacy.MessageID(m.ID), Chat: legacy.ChatID(m.Chat), Text: m.Text})
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.post(ctx, "/refused?seq="+strconv.FormatInt(m.Seq, 10), nil)
				pause(ctx, 200*time.Millisecond)
				continue // the same message again: the service keeps it
			}
			s.cursor = m.Seq
			i++
		}
		if len(msgs) > 0 && ctx.Err() == nil {
			// Best effort: a lost cursor replays, which the core deduplicates.
			_ = s.sink.Emit(ctx, legacy.SaveState{State: []byte(strconv.FormatInt(s.cursor, 10))})
		}
	}
	return nil
}

func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (s *session) poll(ctx context.Context) ([]Message, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.net.url+"/poll?after="+strconv.FormatInt(s.cursor, 10), nil)
	resp, err := s.net.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("faultnet: poll: %s", resp.Status)
	}
	var msgs []Message
	if err := json.NewDecoder(resp.Body).Decode(&msgs); err != nil {
		return nil, err
	}
	return msgs, nil
}

func (s *session) post(ctx context.Context, path string, body []byte) (*http.Response, []byte, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.net.url+path, bytes.NewReader(body))
	resp, err := s.net.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// Send posts m to the service. 5xx answers and timeouts are
// ErrUnavailable (retried by the core); 4xx are ErrRejected.
func (s *session) Send(ctx context.Context, m *legacy.Message) (legacy.MessageID, error) {
	body, _ := json.Marshal(Message{Chat: string(m.Chat), Text: m.Text, Key: m.Key})
	ctx, cancel := context.WithTimeout(ctx, s.net.timeout)
	defer cancel()
	resp, b, err := s.post(ctx, "/send", body)
	if err != nil {
		return "", fmt.Errorf("faultnet: send: %w", errors.Join(legacy.ErrUnavailable, err))
	}
	switch {
	case resp.StatusCode >= 500:
		return "", fmt.Errorf("faultnet: send: %s: %w", resp.Status, legacy.ErrUnavailable)
	case resp.StatusCode != http.StatusOK:
		return "", fmt.Errorf("faultnet: send: %s: %w", resp.Status, legacy.ErrRejected)
	}
	return legacy.MessageID(bytes.TrimSpace(b)), nil
}
