// Package legacy is the contract between Jabbergate's core (package bridges)
// and a legacy network adapter (Telegram, email, SMS, echo, …).
//
// An adapter knows nothing of XMPP, the store or metrics. It provides a
// Network, registered by name with Register from an init function; the core
// asks the Network for its Info (capabilities, registration form), opens one
// Session per registered account and runs it. The session delivers what
// happens on the legacy side as Events to a Sink, and sends what the XMPP
// user writes with Send.
//
// Lifecycle (STYLE.md §6): a Factory validates configuration and does no
// I/O; Network.Open prepares a session and does no I/O; Session.Run does the
// network I/O until its context ends.
//
// Optional features are one-method interfaces (Editor, Retracter, Reactor,
// ChatStater, Marker, Resolver, Registrar, Webhooker) found by type
// assertion and declared in Caps, after go-smtp's add-on interfaces.
package legacy

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// Opaque identifiers. Only the adapter creates them; the core stores and
// compares them but never parses them.
type (
	// AccountID identifies the legacy account of one registration (a bot
	// id, a mailbox address, a phone number).
	AccountID string
	// ChatID identifies a conversation: a contact or a group.
	ChatID string
	// UserID identifies a person on the legacy network.
	UserID string
	// MessageID identifies a message on the legacy network. It must be
	// stable: the same legacy message always has the same MessageID, which
	// is what makes replays after a crash recognisable.
	MessageID string
)

// Network is one legacy network. Implementations must be safe for
// concurrent use.
type Network interface {
	// Info describes the network. It must return the same value on every
	// call; the core computes capabilities from it once.
	Info() Info
	// Open prepares a session for acct that delivers events to sink. It does
	// no I/O: credentials are checked by Session.Run (or earlier by
	// Registrar.Register).
	Open(ctx context.Context, acct Account, sink Sink) (Session, error)
}

// Session is one account's connection to the legacy network.
type Session interface {
	// Run connects and delivers events to the sink until ctx ends. It
	// returns nil when ctx ended, ErrUnauthorized when the credentials are
	// rejected (the core then stops the session and tells the user), and
	// any other error for a failure the core retries with backoff.
	Run(ctx context.Context) error
	// Send sends m and returns the legacy id of the sent message. Safe for
	// concurrent use with Run. Errors should wrap the sentinel errors of
	// this package so the core can tell transient from permanent failures.
	Send(ctx context.Context, m *Message) (MessageID, error)
}

// Sink receives a session's events.
type Sink interface {
	// Emit hands ev to the core. It returns nil only once the event is
	// durable (stored in the inbox); only then may the adapter acknowledge
	// it on the legacy side (advance an offset, answer a webhook). A
	// non-nil error means the event was not taken: keep it on the legacy
	// side and retry later. Safe for concurrent use; may block for store
	// I/O.
	Emit(ctx context.Context, ev Event) error
}

// AsyncSink is implemented by the core's sinks, for adapters whose legacy
// side answers a Send at once, from within Send (the echo network's
// reply): waiting for each such answer to be durable would make the
// user's next message wait for a store commit too.
type AsyncSink interface {
	Sink
	// EmitAsync takes ev and returns without waiting for the store. A
	// non-nil error means ev was refused, as Emit would refuse it (inbox
	// full, lease moved, malformed): nothing was taken. Taken events are
	// stored in the background, in call order with the session's other
	// events (Emit included). Call it only from Send: the core
	// acknowledges the message Send sent only once every event EmitAsync
	// took before Send returned is durable, and sends the message again
	// (same Key) if one of them could not be stored — so the answer is
	// never lost, and a replay of it is recognised by its stable id.
	EmitAsync(ctx context.Context, ev Event) error
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(ctx context.Context, ev Event) error

// Emit calls f.
func (f SinkFunc) Emit(ctx context.Context, ev Event) error { return f(ctx, ev) }

// Account is what the core knows of one registration when it opens a
// session.
type Account struct {
	// ID is the legacy account id the adapter returned at registration.
	ID AccountID
	// Owner is an opaque, stable key for the XMPP user (never a JID to
	// parse); adapters may use it to namespace their own state.
	Owner string
	// Fields holds the registration form values, credentials included,
	// decrypted. Adapters must not log them.
	Fields map[string]string
	// Settings holds the user's preferences (keys declared in Info.Settings).
	Settings map[string]string
	// State is the adapter's own state blob, last saved with a SaveState
	// event (cursors, watermarks). Nil at first.
	State []byte
	// Log carries the bridge, the network and the user's hashed key (never
	// a JID or the legacy address): adapters log the session's events
	// through it, so every line says whose session it was. Nil outside the
	// core (tests): use Logger.
	Log *slog.Logger
}

// Logger returns a.Log, or fallback when the core gave none.
func (a Account) Logger(fallback *slog.Logger) *slog.Logger {
	if a.Log != nil {
		return a.Log
	}
	return fallback
}

// Info describes a network.
type Info struct {
	// Name is the registry name ("echo", "telegram", "email", "sms").
	Name string
	// DiscoType is the XEP-0030 gateway identity type ("sms", "telegram",
	// "smtp", …), from the XMPP registrar's list.
	DiscoType string
	// DisplayName is the human name of the gateway ("Telegram").
	DisplayName string
	// Instructions is shown with the registration form.
	Instructions string
	// Fields are the registration form fields.
	Fields []Field
	// Settings are per-user preferences the user may change later.
	Settings []Field
	// Prompt and PromptDesc are the XEP-0100 jabber:iq:gateway texts
	// ("Phone number", "Enter the number of the person to text").
	Prompt, PromptDesc string
	// Caps lists what the network supports.
	Caps Caps
	// MaxTextLength is the longest text one Send accepts (0: no limit).
	MaxTextLength int
	// OutboxTTL is how long an outgoing message may wait for transient
	// failures to pass before the sender gets an error (0: core default).
	OutboxTTL time.Duration
	// MaxReactions is how many distinct reactions one user may put on a
	// message (0: no limit). The core refuses larger sets before calling
	// Reactor.React (XEP-0444 restrictions).
	MaxReactions int
	// AllowedReactions, when not empty, is the only set of emojis the
	// network accepts as reactions.
	AllowedReactions []string
	// MaxFileSize is the largest attachment Send accepts, in bytes (0: no
	// limit of its own; the gateway's media max_size still applies). The
	// core refuses larger files before calling Send.
	MaxFileSize int64
}

// Caps is the set of optional features a network supports. The core only
// advertises and translates what is declared here.
type Caps struct {
	Edits        bool // Editor
	Retractions  bool // Retracter
	Reactions    bool // Reactor
	ChatStates   bool // ChatStater, and Typing events
	Markers      bool // Marker, and Displayed events
	Receipts     bool // Send's success means delivered; Receipt events
	Files        bool
	Groups       bool
	Presence     bool // Presence events are meaningful
	Avatars      bool
	Replies      bool
	ContactsList bool // the network has a contact list (Contact events)
}

// FieldType is the XEP-0004 type of a registration field.
type FieldType string

// Field types.
const (
	TextSingle  FieldType = "text-single"
	TextPrivate FieldType = "text-private"
	Boolean     FieldType = "boolean"
	ListSingle  FieldType = "list-single"
	Fixed       FieldType = "fixed"
)

// Field is one registration or settings field.
type Field struct {
	Var      string    // form variable; the XEP-0077 element name when one fits (username, password, email)
	Label    string    // human label
	Type     FieldType // default TextSingle
	Required bool
	Secret   bool   // sealed at rest, never echoed back
	Default  string // default value
	Options  []Option
	Desc     string
}

// Option is one choice of a ListSingle field.
type Option struct {
	Label, Value string
}

// Message is a message the XMPP user sends to the legacy side.
type Message struct {
	// Chat is the destination.
	Chat ChatID
	// Text is the body.
	Text string
	// Subject is the optional subject (email).
	Subject string
	// Thread is the optional conversation thread id.
	Thread string
	// ReplyTo is the legacy id of the message this one answers, if any.
	ReplyTo MessageID
	// Corrects is the legacy id of the message this one corrects, when
	// the network cannot edit (Caps.Edits false) and the core sends the
	// correction as a new message ("Correction: …"); empty when unknown.
	// An adapter may keep such a message in the conversation of the one
	// it corrects (email: its thread).
	Corrects MessageID
	// Key is an idempotency key that is the same for every attempt to
	// send this message (after a retry or a crash). Adapters that can
	// deduplicate on the legacy side, or that derive their MessageID from
	// it, should.
	Key string
	// Attachments are files the user sent (only when Caps.Files), already
	// downloaded by the core within Info.MaxFileSize; Text is then the
	// caption, often empty.
	Attachments []Attachment
}

// Attachment is a file carried by a message, either way.
type Attachment struct {
	// Name is the file name the sender gave ("photo.jpg"); may be empty.
	// It is untrusted: the core never uses it as a path.
	Name string
	// Type is the MIME type ("image/jpeg"); empty when unknown (the core
	// then guesses from Name, else application/octet-stream).
	Type string
	// Data is the content. Inbound, the core stores it before Sink.Emit
	// returns, so the adapter may acknowledge the message afterwards.
	Data []byte
	// URL, for files from the XMPP user, is the http(s) URL the core
	// fetched Data from (the user's HTTP upload, XEP-0363, or any
	// jabber:x:oob URL): public, as the user's server serves it, so an
	// adapter may hand it to a network that fetches files itself instead
	// of hosting Data. Empty for files whose URL is not known; the core
	// ignores it on files from the network (Incoming), which it serves
	// under its own URLs.
	URL string
}

// Status is the state of a session, reported with a StatusEvent.
type Status string

// Session states.
const (
	StatusConnecting   Status = "connecting"
	StatusConnected    Status = "connected"
	StatusDisconnected Status = "disconnected"
	StatusUnauthorized Status = "unauthorized"
)

// Optional session interfaces. The core finds them by type assertion and
// uses them only when Caps declares the feature.

// Editor changes the text of a message already sent (XEP-0308).
type Editor interface {
	Edit(ctx context.Context, chat ChatID, id MessageID, text string) error
}

// Retracter deletes a message already sent (XEP-0424).
type Retracter interface {
	Retract(ctx context.Context, chat ChatID, id MessageID) error
}

// Reactor sets the user's reactions on a message (XEP-0444): the full set,
// replacing earlier ones.
type Reactor interface {
	React(ctx context.Context, chat ChatID, id MessageID, emojis []string) error
}

// ChatStater sends a typing notification (XEP-0085).
type ChatStater interface {
	SetTyping(ctx context.Context, chat ChatID, typing bool) error
}

// Marker marks messages up to id as read (XEP-0333).
type Marker interface {
	MarkRead(ctx context.Context, chat ChatID, id MessageID) error
}

// Resolver turns what a user typed ("+1 555 123 4567", "Alice@Example.com")
// into a ChatID (XEP-0100 jabber:iq:gateway, adding contacts). It is
// implemented by the Network, not the session: it needs no login. An input
// that names no valid contact returns an error wrapping ErrInvalidAddress.
type Resolver interface {
	Resolve(ctx context.Context, input string) (ChatID, error)
}

// Registrar checks registration fields and returns the legacy account id.
// Implemented by the Network. It may do I/O (for example getMe on Telegram).
// Bad credentials return an error wrapping ErrUnauthorized; missing or
// malformed fields an error wrapping ErrInvalidField.
type Registrar interface {
	Register(ctx context.Context, fields map[string]string) (AccountID, error)
}

// Webhooker is a Network that receives pushes from its legacy network over
// HTTP. The core mounts the handler under /webhooks/<bridge>/.
type Webhooker interface {
	Webhook() http.Handler
}
