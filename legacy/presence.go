package legacy

// PresenceWatcher is a Session that wants to know whether its XMPP user is
// online (has at least one available resource), for example to hold mail
// while the user is away. The core calls UserPresence when that changes and
// once, with false, when the session starts (the user's presence is learnt
// from their server afterwards). It must not block.
type PresenceWatcher interface {
	UserPresence(available bool)
}
