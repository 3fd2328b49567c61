package component

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jabbergate/jabbergate/component/stanza"
)

var (
	// ErrNotConnected is returned by the Link's Send and Barrier while there
	// is no authenticated connection.
	ErrNotConnected = errors.New("component: not connected")
	// ErrConnClosed is returned when the Conn a Send, Barrier or Request was
	// made on ended before the operation completed.
	ErrConnClosed = errors.New("component: connection closed")
	// ErrStanzaTooLarge is returned (wrapped, with the sizes) by Send for
	// a stanza whose serialisation exceeds Config.MaxStanzaSize: the
	// server would close the stream over it (policy-violation), for every
	// user of the link, and again after each reconnection if the stanza
	// is sent again. Nothing is written; the link stays up.
	ErrStanzaTooLarge = errors.New("component: stanza larger than max_stanza_size")
)

// errShutdown is the reason recorded for a connection closed because the
// context given to Run ended.
var errShutdown = errors.New("shutting down: context ended")

// errServerClosed is the reason for a stream closed by the server without a
// stream error.
var errServerClosed = errors.New("server closed the stream")

// StreamError is a stream error received from the server (RFC 6120
// §4.9.3). The stream is closed after it.
type StreamError struct {
	Condition string // defined condition, e.g. "not-authorized"
	Text      string // the optional <text/>, or the new host for see-other-host

	domain   string // component domain, for Meaning
	streamNS string // default namespace of the server's stream header, for Meaning
}

// Error implements error.
func (e *StreamError) Error() string {
	if e.Text != "" {
		return "component: stream error " + e.Condition + ": " + e.Text
	}
	return "component: stream error " + e.Condition
}

// Meaning returns a one-line explanation of the condition for
// administrators.
func (e *StreamError) Meaning() string {
	domain := e.domain
	if domain == "" {
		domain = "the component domain"
	}
	switch e.Condition {
	case "not-authorized":
		return fmt.Sprintf("the server rejected the secret for %s; check bridges[].secret matches the server's component config", domain)
	case "conflict":
		return "another component is already connected for this domain (or this connection was replaced by a newer one)"
	case "host-unknown":
		if e.fromClientPort() {
			return "addr is probably the server's client (c2s) port, not its component port: it answered as a client port " +
				"and serves no clients on this domain; point addr at the component listener (Prosody: component_ports, 5347 by default)"
		}
		return "the server has no component configured for this domain"
	case "host-gone":
		return "the server no longer serves this domain"
	case "invalid-from":
		return "we sent a stanza whose from is outside the component domain"
	case "improper-addressing":
		return "a stanza or the stream header lacked a valid to or from address"
	case "invalid-namespace":
		return "the server does not accept jabber:component:accept here; check that addr is the server's component port, not its client or s2s port"
	case "bad-namespace-prefix":
		return "the server rejected the namespace prefix of the stream or a stanza"
	case "bad-format", "invalid-xml", "not-well-formed":
		return "the server could not parse the XML we sent"
	case "restricted-xml":
		return "we sent XML features XMPP forbids (comments, processing instructions, DTDs)"
	case "policy-violation":
		return "we violated a server policy, most often its stanza size limit or a rate limit"
	case "resource-constraint":
		return "the server lacks the resources to serve this link"
	case "system-shutdown":
		return "the server is shutting down or restarting"
	case "connection-timeout":
		return "the server closed the link because it saw no traffic for too long"
	case "reset":
		return "the server reset the stream (for example after a configuration or certificate change)"
	case "see-other-host":
		return "the server asks the component to connect to another host: " + e.Text
	case "internal-server-error":
		return "the server hit an internal error"
	case "remote-connection-failed":
		return "the server could not reach a remote entity needed for this link"
	case "unsupported-encoding":
		return "the server does not support our character encoding (we always send UTF-8)"
	case "unsupported-stanza-type":
		return "we sent a top-level element the server does not support"
	case "unsupported-version":
		return "the server does not support our stream version"
	case "unsupported-feature":
		return "the server requires a feature we do not offer"
	case "undefined-condition":
		return "the server gave no defined reason; see the text"
	default:
		return "unknown stream error condition"
	}
}

// prosodyC2SHostUnknown starts the text of the host-unknown Prosody's
// client port (mod_c2s) answers a stream to a host it serves no clients
// on, such as a component's domain; its component port (mod_component)
// says "… does not match any configured external components" instead.
const prosodyC2SHostUnknown = "This server does not serve "

// fromClientPort reports whether the stream error came from a client
// (c2s) port: its stream header declared jabber:client (Prosody's does,
// whatever the stream asked for), or its text is Prosody's c2s one.
// ejabberd's client port refuses jabber:component:accept with
// invalid-namespace instead.
func (e *StreamError) fromClientPort() bool {
	return e.streamNS == stanza.NSClient || strings.HasPrefix(e.Text, prosodyC2SHostUnknown)
}

// backoffAuth reports whether the condition signals a configuration problem
// that retrying immediately cannot fix, so the next attempt waits at least
// Config.AuthBackoff.
func (e *StreamError) backoffAuth() bool {
	switch e.Condition {
	case "not-authorized", "host-unknown", "conflict", "invalid-namespace":
		return true
	}
	return false
}

// errTooLarge is returned by the limiting reader below the decoder.
var errTooLarge = errors.New("stanza size limit exceeded")

// tooLargeError is the close reason for an oversized stanza.
type tooLargeError struct {
	limit    int
	read     int64 // bytes of the stanza read before giving up
	from, to string
}

func (e *tooLargeError) Error() string {
	s := fmt.Sprintf("stanza from server exceeds the size limit of %d bytes (stopped reading at %d bytes", e.limit, e.read)
	if e.from != "" || e.to != "" {
		s += fmt.Sprintf("; from=%q to=%q", e.from, e.to)
	}
	return s + ")"
}

// tooDeepError is the close reason for a stanza nested deeper than
// Config.MaxDepth.
type tooDeepError struct {
	limit    int
	from, to string
}

func (e *tooDeepError) Error() string {
	s := fmt.Sprintf("stanza from server exceeds the element-depth limit of %d", e.limit)
	if e.from != "" || e.to != "" {
		s += fmt.Sprintf(" (from=%q to=%q)", e.from, e.to)
	}
	return s
}

// malformedError is the close reason for XML the link cannot parse.
type malformedError struct{ err error }

func (e *malformedError) Error() string { return "malformed XML from server: " + e.err.Error() }
func (e *malformedError) Unwrap() error { return e.err }
