package legacy

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Adapters wrap them (fmt.Errorf("…: %w", legacy.ErrX)) so
// the core maps them to stanza errors in one table and knows whether to
// retry. Errors that wrap none of them are treated as transient.
var (
	// ErrUnauthorized: the legacy network rejected the credentials.
	// Permanent until the user registers again.
	ErrUnauthorized = errors.New("legacy: credentials rejected")
	// ErrInvalidAddress: the address is not a valid legacy address.
	ErrInvalidAddress = errors.New("legacy: invalid address")
	// ErrNotFound: the address is valid but names no one.
	ErrNotFound = errors.New("legacy: recipient not found")
	// ErrForbidden: the recipient refuses messages (blocked, opted out).
	ErrForbidden = errors.New("legacy: recipient refuses messages")
	// ErrRejected: the content is not acceptable (too long, bad media).
	ErrRejected = errors.New("legacy: content rejected")
	// ErrPolicy: the content was blocked by the network's policy (spam).
	ErrPolicy = errors.New("legacy: blocked by policy")
	// ErrTooLarge: a file or message is larger than the network allows.
	ErrTooLarge = errors.New("legacy: too large")
	// ErrUnsupported: the network cannot do this.
	ErrUnsupported = errors.New("legacy: not supported")
	// ErrUnavailable: the network is unreachable or failing (5xx,
	// timeouts). Transient.
	ErrUnavailable = errors.New("legacy: network unavailable")
	// ErrRateLimited: slow down. Transient; see RateLimitError for the
	// delay the network asked for.
	ErrRateLimited = errors.New("legacy: rate limited")
	// ErrInvalidField: a registration field is missing or malformed.
	ErrInvalidField = errors.New("legacy: invalid registration field")
	// ErrPartlySent: a message the adapter had to send as several legacy
	// messages (a text split to fit) went out only in part: the first
	// parts arrived and the rest could not follow (the network failed, or
	// kept asking to slow down, for longer than the send could wait).
	// Wrap it in a ReasonError that names the parts that did not go out.
	// Permanent: sending the whole message again would deliver the parts
	// that arrived twice, so the sender is told and sends the rest.
	ErrPartlySent = errors.New("legacy: sent only in part")
)

// RateLimitError is returned when the network asks us to wait. It wraps
// ErrRateLimited.
type RateLimitError struct {
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("legacy: rate limited, retry after %s", e.RetryAfter)
}

// Unwrap returns ErrRateLimited.
func (e *RateLimitError) Unwrap() error { return ErrRateLimited }

// CodeError carries the legacy network's own error code (Telegram's
// description, an SMTP reply code, a provider error number) to the user.
type CodeError struct {
	Code string // the network's code, e.g. "550 5.1.1" or "21610"
	Text string // the network's message
	Err  error  // the sentinel it maps to
}

func (e *CodeError) Error() string {
	return fmt.Sprintf("%v (%s: %s)", e.Err, e.Code, e.Text)
}

// Unwrap returns the sentinel.
func (e *CodeError) Unwrap() error { return e.Err }

// ReasonError carries a reason the user should read, in plain words and
// without error prefixes ("needs 6 SMS segments, more than the limit of
// 5"), next to the sentinel it maps to. The core appends it to the stanza
// error's text; unlike CodeError it names no network code.
type ReasonError struct {
	Reason string
	Err    error // the sentinel it maps to
}

func (e *ReasonError) Error() string { return fmt.Sprintf("%v: %s", e.Err, e.Reason) }

// Unwrap returns the sentinel.
func (e *ReasonError) Unwrap() error { return e.Err }

// FieldError names the registration field that is wrong. It wraps
// ErrInvalidField.
type FieldError struct {
	Var    string
	Reason string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("legacy: field %q: %s", e.Var, e.Reason)
}

// Unwrap returns ErrInvalidField.
func (e *FieldError) Unwrap() error { return ErrInvalidField }

// IsPermanent reports whether err will not go away by retrying.
func IsPermanent(err error) bool {
	for _, p := range []error{ErrUnauthorized, ErrInvalidAddress, ErrNotFound, ErrForbidden,
		ErrRejected, ErrPolicy, ErrTooLarge, ErrUnsupported, ErrInvalidField, ErrPartlySent} {
		if errors.Is(err, p) {
			return true
		}
	}
	return false
}

// OptionError says which of the network's options (a key of the bridge's
// `options` in the config file) is wrong and why. A Factory returns it,
// alone, wrapped (fmt.Errorf("echo: %w", err)) or several joined with
// errors.Join (see OptionErrors), so that the configuration check reports
// the option's file, line and key path. Option is the name the factory
// was given (for an option read from "x_file" that is "x"; the check names
// the key as written). Problem is worded without the adapter's or the
// option's name: "unknown option (known: prefix)", "want a positive
// duration, got \"0s\"". An Option of "" is about the options as a whole
// ("give both twilio_account_sid and twilio_auth_token").
type OptionError struct {
	Option  string
	Problem string
}

func (e *OptionError) Error() string {
	if e.Option == "" {
		return "options: " + e.Problem
	}
	return "option " + e.Option + ": " + e.Problem
}
