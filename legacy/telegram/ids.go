package telegram

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/jabbergate/jabbergate/legacy"
)

// Message ids (legacy.MessageID).
//
// A Telegram message_id is unique only within its chat and its bot's view
// of it: ids restart for every bot. So the legacy id of a message names
// all three, "<bot id>:<chat id>:<message_id>" ("123456789:42:7",
// "123456789:-1001234:15"). Every place that builds an id — inbound
// messages, edits, replies and reactions, and what Send returns — goes
// through session.messageID, so an id built for an incoming message and
// the one Send returned for the same Telegram message are equal. When a
// user registers another bot without unregistering, the core's stored ids
// (its replay marks, its map from legacy ids to stanza ids) of the old
// bot's messages can then never be taken for the new bot's.
//
// A message Send had to split — text over 4096 UTF-16 units, a caption
// over 1024 sent after its file, several files — is several Telegram
// messages. Its id lists them all, in the order they were sent, a file
// marked with "f": "123456789:42:5f,6,7" (a photo, then the text in two
// parts). The contract gives a message one MessageID, and a retraction
// must delete every part and a correction reach the text wherever it
// went, so the parts are in the id itself rather than in state that could
// be lost. A message of one part keeps the plain form, which is also what
// inbound events of that Telegram message carry (a reaction or a reply of
// a Telegram user to it finds the user's message in the core). For a
// message of several parts, inbound events naming one of its parts are
// given the whole id while the session remembers it (session.partOf, the
// last partsRemembered split messages sent in this run); after a restart
// they name the part alone, which the core does not know: the reaction or
// reply then loses its reference to the user's message, nothing worse.
//
// Ids written before the bot id was part of them, "<chat id>:<message_id>",
// are still read and mean "this session's bot", as they always did: the
// core keeps them for weeks. An id naming another bot is refused by the
// calls that act on a message (Edit, Retract, React: a permanent
// legacy.ErrNotFound whose legacy.ReasonError tells the user why) and
// dropped as a reply reference (the message goes out without it).
//
// Inbound events of messages the gateway saw before the upgrade carry the
// new form: a reply or reaction of a Telegram user to such an older
// message finds nothing in the core's maps, and an update that was
// delivered but not yet confirmed to Telegram when the gateway was
// upgraded is delivered once more. Both are one-off costs of the upgrade.

// textOtherBot is the reason given for an id of another bot.
const textOtherBot = "this message was sent through a bot no longer registered"

// msgRef is a parsed message id.
type msgRef struct {
	bot   int64 // 0 for ids of the old form: this session's bot
	chat  int64
	msg   int64  // the first part's message_id: what reactions and replies point at
	parts []part // every part, in the order sent (one for most messages)
}

// part is one Telegram message of a message that Send split.
type part struct {
	id   int64
	file bool // a file (photo, document): its text is a caption
}

// maxParts bounds the parts an id may list.
const maxParts = 256

// partsID is the legacy id of a message sent as parts (in order) in chat
// by bot; with one part, messageID.
func partsID(bot, chat int64, parts []part) legacy.MessageID {
	if len(parts) == 1 {
		return messageID(bot, chat, parts[0].id)
	}
	var b strings.Builder
	b.WriteString(strconv.FormatInt(bot, 10) + ":" + strconv.FormatInt(chat, 10) + ":")
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(p.id, 10))
		if p.file {
			b.WriteByte('f')
		}
	}
	return legacy.MessageID(b.String())
}

// messageID is the legacy id of message msg of chat, as seen by bot.
func messageID(bot, chat, msg int64) legacy.MessageID {
	return legacy.MessageID(strconv.FormatInt(bot, 10) + ":" + strconv.FormatInt(chat, 10) + ":" + strconv.FormatInt(msg, 10))
}

// messageID is the legacy id of message msg of chat, as seen by this
// session's bot.
func (s *session) messageID(chat, msg int64) legacy.MessageID {
	return messageID(s.botID, chat, msg)
}

// parseMessageID reverses messageID; it also reads the old form
// "<chat>:<message_id>" (bot 0).
func parseMessageID(id legacy.MessageID) (msgRef, error) {
	f := strings.Split(string(id), ":")
	var r msgRef
	var err error
	switch len(f) {
	case 2:
		r.chat, err = strconv.ParseInt(f[0], 10, 64)
		if err == nil {
			r.msg, err = strconv.ParseInt(f[1], 10, 64)
		}
	case 3:
		r.bot, err = strconv.ParseInt(f[0], 10, 64)
		if err == nil && r.bot <= 0 {
			err = fmt.Errorf("bot id %d", r.bot)
		}
		if err == nil {
			r.chat, err = strconv.ParseInt(f[1], 10, 64)
		}
		if err == nil {
			r.parts, err = parseParts(f[2])
		}
	default:
		err = fmt.Errorf("%d fields", len(f))
	}
	if err == nil && r.parts == nil {
		r.parts = []part{{id: r.msg}}
	}
	if err == nil {
		r.msg = r.parts[0].id
	}
	if err != nil || r.chat == 0 || r.msg <= 0 {
		return msgRef{}, fmt.Errorf("telegram: %q is not a message id of this gateway: %w", id, legacy.ErrNotFound)
	}
	return r, nil
}

// parseParts reads "5f,6,7".
func parseParts(s string) ([]part, error) {
	fs := strings.Split(s, ",")
	if len(fs) > maxParts {
		return nil, fmt.Errorf("%d parts", len(fs))
	}
	parts := make([]part, 0, len(fs))
	for _, f := range fs {
		p := part{}
		if strings.HasSuffix(f, "f") && len(fs) > 1 {
			f, p.file = f[:len(f)-1], true
		}
		id, err := strconv.ParseInt(f, 10, 64)
		if err != nil || id <= 0 || strings.HasPrefix(f, "+") {
			return nil, fmt.Errorf("part %q", f)
		}
		p.id = id
		parts = append(parts, p)
	}
	return parts, nil
}

// partsRemembered is how many split messages a session remembers for
// inbound references to their parts.
const partsRemembered = 1024

// rememberParts records the id of a message sent as several parts, so
// that inbound events naming one of its parts carry it (partOf).
func (s *session) rememberParts(chat int64, parts []part, id legacy.MessageID) {
	if len(parts) < 2 {
		return
	}
	s.partsMu.Lock()
	defer s.partsMu.Unlock()
	if s.parts == nil {
		s.parts = map[[2]int64]legacy.MessageID{}
	}
	for len(s.partsOrder) >= partsRemembered {
		old := s.partsOrder[0]
		s.partsOrder = s.partsOrder[1:]
		if r, err := parseMessageID(old); err == nil {
			for _, p := range r.parts {
				if s.parts[[2]int64{r.chat, p.id}] == old {
					delete(s.parts, [2]int64{r.chat, p.id})
				}
			}
		}
	}
	s.partsOrder = append(s.partsOrder, id)
	for _, p := range parts {
		s.parts[[2]int64{chat, p.id}] = id
	}
}

// partOf is the legacy id of the message msg of chat belongs to: the id
// of the split message Send returned when msg is one of its parts and it
// is remembered, else the message's own id.
func (s *session) partOf(chat, msg int64) legacy.MessageID {
	s.partsMu.Lock()
	id, ok := s.parts[[2]int64{chat, msg}]
	s.partsMu.Unlock()
	if ok {
		return id
	}
	return s.messageID(chat, msg)
}

// ref parses id, a message of chat, for a call that acts on it: an id of
// another bot, or of another chat, is ErrNotFound.
func (s *session) ref(chat legacy.ChatID, id legacy.MessageID) (int64, msgRef, error) {
	c, err := parseChat(chat)
	if err != nil {
		return 0, msgRef{}, err
	}
	r, err := parseMessageID(id)
	if err != nil {
		return 0, msgRef{}, err
	}
	if r.bot != 0 && r.bot != s.botID {
		return 0, msgRef{}, &legacy.ReasonError{Err: legacy.ErrNotFound, Reason: textOtherBot}
	}
	if r.chat != c {
		return 0, msgRef{}, fmt.Errorf("telegram: message %s is not in chat %s: %w", id, chat, legacy.ErrNotFound)
	}
	return c, r, nil
}

// botIDOf returns the bot id a token starts with ("123456789:AA…"), 0 if
// it has none.
func botIDOf(token string) int64 {
	head, _, ok := strings.Cut(token, ":")
	if !ok {
		return 0
	}
	id, err := strconv.ParseInt(head, 10, 64)
	if err != nil || id <= 0 {
		return 0
	}
	return id
}
