package bridges

import (
	"errors"
	"log/slog"
	"regexp"

	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
)

// legacyErrors is the one table that maps the adapters' sentinel errors to
// stanza errors (research/legacy-networks.md §1.3). The first match wins.
var legacyErrors = []struct {
	err  error
	cond stanza.Condition
	typ  string
	text string
}{
	{legacy.ErrUnauthorized, stanza.NotAuthorized, stanza.ErrAuth, "the legacy network rejected your credentials; register again"},
	{legacy.ErrInvalidAddress, stanza.JIDMalformed, stanza.ErrModify, "this is not a valid address on the legacy network"},
	{legacy.ErrNotFound, stanza.ItemNotFound, stanza.ErrCancel, "no such recipient on the legacy network"},
	{legacy.ErrForbidden, stanza.Forbidden, stanza.ErrAuth, "the recipient does not accept your messages"},
	// not-acceptable and modify (RFC 6120 §8.3.2, §8.3.3.12): the message as sent cannot be
	// taken again — wait would invite resending it whole, repeating the
	// parts that arrived — and the remedy is to change it, sending only
	// the rest; the reason says what failed.
	{legacy.ErrPartlySent, stanza.NotAcceptable, stanza.ErrModify, "the message was sent only in part"},
	{legacy.ErrTooLarge, stanza.NotAcceptable, stanza.ErrModify, "the message is too large for the legacy network"},
	{legacy.ErrRejected, stanza.NotAcceptable, stanza.ErrModify, "the legacy network does not accept this content"},
	{legacy.ErrPolicy, stanza.PolicyViolation, stanza.ErrModify, "the legacy network blocked this message"},
	{legacy.ErrUnsupported, stanza.FeatureNotImplemented, stanza.ErrCancel, "the legacy network does not support this"},
	{legacy.ErrInvalidField, stanza.NotAcceptable, stanza.ErrModify, "a registration field is missing or invalid"},
	{legacy.ErrRateLimited, stanza.ResourceConstraint, stanza.ErrWait, "the legacy network asked us to slow down and the message expired while waiting"},
	{legacy.ErrUnavailable, stanza.RemoteServerTimeout, stanza.ErrWait, "the legacy network could not be reached in time"},
}

// stanzaError maps an adapter error to the stanza error the XMPP sender
// gets. The legacy network's own code, when the adapter gave one, travels
// in an application-specific <legacy-error/> child.
func stanzaError(err error) *stanza.Error {
	for _, e := range legacyErrors {
		if errors.Is(err, e.err) {
			se := &stanza.Error{Type: e.typ, Condition: e.cond, Text: e.text}
			if r := userReason(err); r != "" {
				se.Text = e.text + ": " + r
			}
			var ce *legacy.CodeError
			if errors.As(err, &ce) {
				se.App = stanza.New(nsJabbergate, "legacy-error", "code", ce.Code).AddText(ce.Text)
			}
			var fe *legacy.FieldError
			if errors.As(err, &fe) {
				se.Text = "field " + fe.Var + ": " + fe.Reason
			}
			return se
		}
	}
	return &stanza.Error{Type: stanza.ErrCancel, Condition: stanza.InternalServerError, Text: "the gateway failed to deliver this message"}
}

// outError is stanzaError for an outbox entry: for a correction,
// retraction or reaction, ErrNotFound is about the message it changes,
// not the recipient.
func outError(e *outboxEntry, err error) *stanza.Error {
	se := stanzaError(err)
	if e.Kind != "" && errors.Is(err, legacy.ErrNotFound) && se.Condition == stanza.ItemNotFound {
		se.Text = "the legacy network no longer knows the message this refers to"
		if r := userReason(err); r != "" {
			se.Text += ": " + r
		}
	}
	return se
}

// userReason returns what an adapter's error says for the user (a
// legacy.ReasonError's reason, else a legacy.CodeError's text), "" if
// nothing: never the Go error chain, which names packages and internals.
func userReason(err error) string {
	var re *legacy.ReasonError
	if errors.As(err, &re) && re.Reason != "" {
		return re.Reason
	}
	var ce *legacy.CodeError
	if errors.As(err, &ce) {
		return ce.Text
	}
	return ""
}

// Addresses inside legacy errors: an adapter passes its provider's text
// on (Twilio's "The 'To' number +15559876543 is not a valid phone
// number."), which may name a phone number or an email address, and
// those are logged at debug level only (docs/configuration.md).
var (
	phoneInText   = regexp.MustCompile(`\+\d[\d ().-]{4,}\d|\b\d{8,15}\b`) // international form, or a bare national/E.164 digit run
	addressInText = regexp.MustCompile(`[^\s<>"'(),;:]+@[^\s<>"'(),;:]+`)
)

// logErr is err as logged at info level and above: its text with phone
// numbers and addresses replaced (the whole text is logged at debug).
func logErr(err error) slog.Attr {
	text := err.Error()
	text = addressInText.ReplaceAllString(text, "[address]")
	text = phoneInText.ReplaceAllString(text, "[number]")
	return slog.String("err", text)
}
