package legacy

import "time"

// Event is something that happened on the legacy network. The concrete
// types are the structs below; the core switches on them.
type Event interface {
	event()
}

// Incoming is a message from the legacy network to the XMPP user.
type Incoming struct {
	// ID is the legacy id. It must be stable: a replayed message carries
	// the same ID, so the core can drop the duplicate.
	ID MessageID
	// Chat is the conversation (the contact for 1:1 chats).
	Chat ChatID
	// Sender is the author in a group chat; empty in 1:1 chats.
	Sender UserID
	// SenderName is the author's display name in a group chat.
	SenderName string
	// Text is the body.
	Text string
	// Subject is the optional subject (email).
	Subject string
	// Thread is the optional thread id.
	Thread string
	// ReplyTo is the legacy id of the message this one answers, if any.
	ReplyTo MessageID
	// Time is when the message was sent on the legacy side (zero: now).
	Time time.Time
	// Carbon marks a message the user sent from the legacy network's own
	// app, to be shown as sent by the user.
	Carbon bool
	// Attachments are files carried by the message (with Caps.Files);
	// Text is then their caption. Each file reaches the user as its own
	// message (an HTTP link to the gateway's media store), after the
	// caption.
	Attachments []Attachment
}

// Edited is a correction of an earlier message (XEP-0308).
type Edited struct {
	ID   MessageID // the message that was edited
	Chat ChatID
	Text string
	Time time.Time
}

// Retracted is the deletion of an earlier message (XEP-0424).
type Retracted struct {
	ID   MessageID
	Chat ChatID
}

// Reacted is the full set of a legacy user's reactions to a message
// (XEP-0444).
type Reacted struct {
	ID     MessageID
	Chat   ChatID
	Sender UserID
	Emojis []string
}

// Typing is a chat-state change of a legacy contact (XEP-0085).
type Typing struct {
	Chat   ChatID
	Typing bool
}

// Receipt reports that a message the user sent was delivered (XEP-0184).
type Receipt struct {
	ID   MessageID
	Chat ChatID
}

// Undelivered reports that a message the user sent, which Send had
// accepted, finally failed on the legacy side: an email bounce, an SMS
// delivery report with an error. Err wraps one of the sentinel errors
// (usually in a CodeError carrying the network's code); the user gets a
// message error on the original message.
type Undelivered struct {
	ID   MessageID // the id Send returned
	Chat ChatID
	Err  error
}

// Displayed reports that the contact read the user's messages up to ID
// (XEP-0333).
type Displayed struct {
	ID   MessageID
	Chat ChatID
}

// Presence is the availability of a legacy contact.
type Presence struct {
	Chat      ChatID
	Available bool
	Away      bool
	Status    string
}

// Contact adds or updates a contact of the user's legacy contact list.
type Contact struct {
	Chat    ChatID
	Name    string
	Group   bool
	Removed bool

	// Avatar is the contact's picture (PNG, JPEG, GIF or WebP; small, at
	// most 128 KiB, ideally a square of 64 to 192 pixels) and AvatarType
	// its MIME type (sniffed when empty). A nil Avatar leaves the stored
	// picture as it is, so a contact list reported without pictures erases
	// nothing; NoAvatar removes it. Networks that report pictures declare
	// Caps.Avatars.
	Avatar     []byte
	AvatarType string
	NoAvatar   bool
}

// StatusEvent reports the state of the session, shown to the user as the
// gateway's presence.
type StatusEvent struct {
	Status Status
	Text   string
}

// SaveState asks the core to store the adapter's state blob (cursors,
// watermarks) durably; the next Open receives it in Account.State.
type SaveState struct {
	State []byte
}

func (Incoming) event()    {}
func (Edited) event()      {}
func (Retracted) event()   {}
func (Reacted) event()     {}
func (Typing) event()      {}
func (Receipt) event()     {}
func (Undelivered) event() {}
func (Displayed) event()   {}
func (Presence) event()    {}
func (Contact) event()     {}
func (StatusEvent) event() {}
func (SaveState) event()   {}
