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
	bot  int64 // 0 for ids of the old form: this session's bot
	chat int64
	msg  int64
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
			r.msg, err = strconv.ParseInt(f[2], 10, 64)
		}
	default:
		err = fmt.Errorf("%d fields", len(f))
	}
	if err != nil || r.chat == 0 || r.msg <= 0 {
		return msgRef{}, fmt.Errorf("telegram: %q is not a message id of this gateway: %w", id, legacy.ErrNotFound)
	}
	return r, nil
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
