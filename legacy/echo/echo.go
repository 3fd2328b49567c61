// Package echo is the loopback legacy network: every contact answers each
// message with the same text. It needs no credentials and no network, so an
// admin can check a deployment end to end ("add hello@echo.example.org and
// say hi"), and tests and benchmarks can drive the whole bridge without a
// real legacy service.
//
// The echo contact also mirrors the optional features (Caps): an edit of
// a sent message is answered by the same edit of its echo, a retraction by
// the retraction of its echo, reactions by the same reactions on the
// user's message, typing by typing, a read marker on an echo by a read
// marker on the message it echoed; the echo of a reply replies to the same
// message.
//
// Every word is a valid contact: `anything@echo-domain`. Registration takes
// no fields (a form carrying only FORM_TYPE, or nothing at all). The echo is
// emitted from Send itself, with legacy.AsyncSink.EmitAsync when the sink
// has it (the core's does): Send does not wait for the store, and the core
// acknowledges the outgoing message only once its echo is durable in the
// inbox, so a crash can duplicate an echo (deduplicated by its stable id)
// but never lose one. With a plain Sink, Send waits for Emit.
//
// Options (bridges[].options in the config):
//
//	prefix: text put before every echoed body (default "")
package echo

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jabbergate/jabbergate/legacy"
)

// Name is the registry name of this network.
const Name = "echo"

func init() {
	legacy.Register(Name, func(options map[string]string) (legacy.Network, error) {
		return New(options)
	})
}

// Network is the echo network.
type Network struct {
	prefix string
}

var (
	_ legacy.Network    = (*Network)(nil)
	_ legacy.Resolver   = (*Network)(nil)
	_ legacy.Registrar  = (*Network)(nil)
	_ legacy.Session    = (*session)(nil)
	_ legacy.Editor     = (*session)(nil)
	_ legacy.Retracter  = (*session)(nil)
	_ legacy.Reactor    = (*session)(nil)
	_ legacy.ChatStater = (*session)(nil)
	_ legacy.Marker     = (*session)(nil)
)

// New returns an echo network. Unknown options are an error: every one
// is reported, as a *legacy.OptionError joined with errors.Join, in the
// order of their names.
func New(options map[string]string) (*Network, error) {
	n := &Network{}
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(options)) {
		switch k {
		case "prefix":
			n.prefix = options[k]
		default:
			errs = append(errs, &legacy.OptionError{Option: k, Problem: "unknown option (known: prefix)"})
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return n, nil
}

// Info implements legacy.Network.
func (n *Network) Info() legacy.Info {
	return legacy.Info{
		Name:         Name,
		DiscoType:    "xmpp",
		DisplayName:  "Echo",
		Instructions: "The echo network needs no account: submit this form to register. Then add any contact, e.g. hello@<this domain>, and every message you send comes back.",
		Prompt:       "Any word",
		PromptDesc:   "Enter any word: it becomes an echo contact.",
		Caps: legacy.Caps{
			Receipts: true, Edits: true, Retractions: true, Reactions: true,
			ChatStates: true, Markers: true, Replies: true, Avatars: true,
			Files: true,
		},
		MaxTextLength: 64 * 1024,
	}
}

// Register implements legacy.Registrar: any (even empty) field set
// registers. The account id is the same for everyone, since there is no
// account.
func (n *Network) Register(ctx context.Context, fields map[string]string) (legacy.AccountID, error) {
	return "echo", nil
}

// Resolve implements legacy.Resolver: any non-empty input without spaces is
// a contact, lower-cased.
func (n *Network) Resolve(ctx context.Context, input string) (legacy.ChatID, error) {
	s := strings.ToLower(strings.TrimSpace(input))
	if s == "" {
		return "", fmt.Errorf("echo: empty contact name: %w", legacy.ErrInvalidAddress)
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return "", fmt.Errorf("echo: contact name %q contains spaces: %w", input, legacy.ErrInvalidAddress)
	}
	return legacy.ChatID(s), nil
}

// Open implements legacy.Network.
func (n *Network) Open(ctx context.Context, acct legacy.Account, sink legacy.Sink) (legacy.Session, error) {
	if sink == nil {
		return nil, errors.New("echo: nil sink")
	}
	return &session{net: n, sink: sink}, nil
}

type session struct {
	net  *Network
	sink legacy.Sink
}

// Run reports the session connected and waits for ctx to end.
func (s *session) Run(ctx context.Context) error {
	if err := s.sink.Emit(ctx, legacy.StatusEvent{Status: legacy.StatusConnected}); err != nil && ctx.Err() == nil {
		return err
	}
	s.introductions(ctx) // avatar.go: waits for ctx to end
	return nil
}

// Send echoes m back: it emits the echo (see the package doc for when it
// is durable). The echo's id derives from m.Key, so a resend after a crash
// yields the same id and the core drops the duplicate.
func (s *session) Send(ctx context.Context, m *legacy.Message) (legacy.MessageID, error) {
	if _, err := s.net.Resolve(ctx, string(m.Chat)); err != nil {
		return "", err
	}
	if max := s.net.Info().MaxTextLength; max > 0 && len(m.Text) > max {
		return "", fmt.Errorf("echo: text of %d bytes exceeds %d: %w", len(m.Text), max, legacy.ErrTooLarge)
	}
	key := m.Key
	if key == "" {
		key = fmt.Sprintf("t%d", time.Now().UnixNano())
	}
	sent := legacy.MessageID(outPrefix + key)
	echo := legacy.Incoming{
		ID:      legacy.MessageID(echoPrefix + key),
		Chat:    m.Chat,
		Text:    s.net.prefix + m.Text,
		Subject: m.Subject,
		Thread:  m.Thread,
		Time:    time.Now().UTC(),
	}
	echo.ReplyTo = m.ReplyTo // a reply is answered with a reply to the same message
	echo.Attachments = echoFiles(m.Attachments)
	s.introduce(ctx, m.Chat) // avatar.go: the contact's name and picture, once per session
	emit := s.sink.Emit
	if as, ok := s.sink.(legacy.AsyncSink); ok {
		emit = as.EmitAsync
	}
	if err := emit(ctx, echo); err != nil {
		return "", fmt.Errorf("echo: store echo: %w", errors.Join(legacy.ErrUnavailable, err))
	}
	return sent, nil
}

// Legacy id prefixes: the user's sent message and its echo share the key.
const (
	outPrefix  = "out-"
	echoPrefix = "echo-"
)

// echoOf returns the echo's id for a sent message id.
func echoOf(id legacy.MessageID) (legacy.MessageID, error) {
	key, ok := strings.CutPrefix(string(id), outPrefix)
	if !ok || key == "" {
		return "", fmt.Errorf("echo: no sent message %q: %w", id, legacy.ErrNotFound)
	}
	return legacy.MessageID(echoPrefix + key), nil
}

// sentOf returns the user's message id for an echo's or a sent message id.
func sentOf(id legacy.MessageID) (legacy.MessageID, error) {
	if key, ok := strings.CutPrefix(string(id), echoPrefix); ok && key != "" {
		return legacy.MessageID(outPrefix + key), nil
	}
	if key, ok := strings.CutPrefix(string(id), outPrefix); ok && key != "" {
		return id, nil
	}
	return "", fmt.Errorf("echo: no message %q: %w", id, legacy.ErrNotFound)
}

func (s *session) emit(ctx context.Context, ev legacy.Event) error {
	if err := s.sink.Emit(ctx, ev); err != nil {
		return fmt.Errorf("echo: store event: %w", errors.Join(legacy.ErrUnavailable, err))
	}
	return nil
}

// Edit implements legacy.Editor: the echo of the message is edited the
// same way.
func (s *session) Edit(ctx context.Context, chat legacy.ChatID, id legacy.MessageID, text string) error {
	e, err := echoOf(id)
	if err != nil {
		return err
	}
	return s.emit(ctx, legacy.Edited{ID: e, Chat: chat, Text: s.net.prefix + text, Time: time.Now().UTC()})
}

// Retract implements legacy.Retracter: the echo is retracted too.
func (s *session) Retract(ctx context.Context, chat legacy.ChatID, id legacy.MessageID) error {
	e, err := echoOf(id)
	if err != nil {
		return err
	}
	return s.emit(ctx, legacy.Retracted{ID: e, Chat: chat})
}

// React implements legacy.Reactor: the contact puts the same reactions on
// the user's message (the one reacted to, or the one an echo echoed).
func (s *session) React(ctx context.Context, chat legacy.ChatID, id legacy.MessageID, emojis []string) error {
	sent, err := sentOf(id)
	if err != nil {
		return err
	}
	return s.emit(ctx, legacy.Reacted{ID: sent, Chat: chat, Emojis: append([]string{}, emojis...)})
}

// SetTyping implements legacy.ChatStater: the contact types when the user
// does.
func (s *session) SetTyping(ctx context.Context, chat legacy.ChatID, typing bool) error {
	return s.emit(ctx, legacy.Typing{Chat: chat, Typing: typing})
}

// MarkRead implements legacy.Marker: when the user read an echo, the
// contact reads the message it echoed.
func (s *session) MarkRead(ctx context.Context, chat legacy.ChatID, id legacy.MessageID) error {
	sent, err := sentOf(id)
	if err != nil {
		return err
	}
	return s.emit(ctx, legacy.Displayed{ID: sent, Chat: chat})
}
