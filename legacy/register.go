package legacy

import "context"

// Form is one step of a multi-step registration: the fields the user fills
// in next (a login code, a 2FA password, a choice of account).
type Form struct {
	// Title and Instructions are shown with the form ("Telegram login",
	// "Enter the code we sent to +1 555 …").
	Title, Instructions string
	// Fields are the next step's fields. Secret fields are never echoed.
	Fields []Field
}

// StepRegistrar is an optional Network interface for logins that need more
// than one form: a phone number, then a code sent to it; an address, then a
// password and a 2FA code; a QR code to scan, then a confirmation.
// Networks whose registration is one form (Info.Fields checked once) use
// Registrar, or nothing at all, and need not implement it.
//
// The core drives the steps through the ad-hoc command with node
// jabber:iq:register (XEP-0050) or the conversational "register" chat
// command:
//
//   - Step 0 receives the values of Info.Fields (already checked against
//     Required and Options) and a nil state.
//   - Each later step n receives the values of the form the step n-1 call
//     returned, and the state that call returned.
//   - A call that returns a non-nil next Form asks for one more step; its
//     acct is ignored and newState is kept in memory (never stored) until
//     the next step, or dropped when the user cancels or lets the command
//     time out.
//   - A call that returns next == nil finishes the registration: acct is
//     the legacy account id and newState becomes the account's initial
//     Account.State (a session token, for example; the core stores it as
//     is, so it should hold only what the session needs to reconnect).
//   - An error ends the registration; its sentinel (ErrUnauthorized,
//     ErrInvalidField with a FieldError, ErrUnavailable, …) tells the user
//     why. A wrong code can also be reported by returning the same step's
//     Form again with Instructions that say so.
//
// Only the values of Info.Fields are stored with the account (secret ones
// sealed), as for one-step registrations; answers to later steps (codes)
// are one-time and are not stored.
//
// When a user registers with a one-shot XEP-0077 form, the core calls step
// 0 only; if it asks for another step, the user is told to use the ad-hoc
// command or the chat command instead.
type StepRegistrar interface {
	RegisterStep(ctx context.Context, step int, fields map[string]string, state []byte) (next *Form, acct AccountID, newState []byte, err error)
}
