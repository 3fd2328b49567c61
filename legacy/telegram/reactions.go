package telegram

import (
	"context"
	"strconv"
	"time"

	"github.com/jabbergate/jabbergate/legacy"
)

// Inbound reactions (Bot API 7.0: message_reaction and
// message_reaction_count updates, which Telegram sends only when
// allowed_updates names them).
//
// message_reaction carries one reactor's full new set (new_reaction) on a
// message: exactly legacy.Reacted, an empty set being a removal. The Bot
// API documents it for chats where the bot is an administrator (grammY's
// guide says private chats too; not verified against the real service);
// reactions made by bots are not reported. message_reaction_count reports
// anonymous reactions (channels, anonymous group admins) only as counts
// per reaction, grouped and delayed by Telegram: it becomes a Reacted
// without Sender whose set is every reaction with a count above 0, once
// each (XEP-0444 has no counts).
//
// Reaction types: "emoji" is the emoji itself; "custom_emoji" (Premium
// users' emoji stickers) is resolved to the emoji its sticker stands for
// with getCustomEmojiStickers (cached per session; left out, and logged,
// when that fails); "paid" (Telegram Stars) becomes ⭐.

// ReactionType is a ReactionTypeEmoji, ReactionTypeCustomEmoji or
// ReactionTypePaid.
type ReactionType struct {
	Type          string `json:"type"`
	Emoji         string `json:"emoji,omitempty"`
	CustomEmojiID string `json:"custom_emoji_id,omitempty"`
}

// MessageReactionUpdated is a change of one user's reactions to a message.
type MessageReactionUpdated struct {
	Chat        Chat           `json:"chat"`
	MessageID   int64          `json:"message_id"`
	User        *User          `json:"user,omitempty"`
	ActorChat   *Chat          `json:"actor_chat,omitempty"`
	Date        int64          `json:"date"`
	OldReaction []ReactionType `json:"old_reaction"`
	NewReaction []ReactionType `json:"new_reaction"`
}

// ReactionCount is the number of times a reaction was added.
type ReactionCount struct {
	Type       ReactionType `json:"type"`
	TotalCount int          `json:"total_count"`
}

// MessageReactionCountUpdated reports the anonymous reactions to a message.
type MessageReactionCountUpdated struct {
	Chat      Chat            `json:"chat"`
	MessageID int64           `json:"message_id"`
	Date      int64           `json:"date"`
	Reactions []ReactionCount `json:"reactions"`
}

// paidReaction is what a paid (Telegram Stars) reaction shows as.
const paidReaction = "⭐"

// reacted translates message_reaction.
func (s *session) reacted(ctx context.Context, r *MessageReactionUpdated) []legacy.Event {
	ev := legacy.Reacted{ID: s.partOf(r.Chat.ID, r.MessageID), Chat: chatID(r.Chat.ID), Emojis: s.emojis(ctx, r.NewReaction)}
	if !r.Chat.private() {
		switch {
		case r.User != nil:
			ev.Sender = legacy.UserID(strconv.FormatInt(r.User.ID, 10))
		case r.ActorChat != nil:
			ev.Sender = legacy.UserID(strconv.FormatInt(r.ActorChat.ID, 10))
		}
	}
	return append(s.contact(r.Chat), ev)
}

// reactionCount translates message_reaction_count.
func (s *session) reactionCount(ctx context.Context, r *MessageReactionCountUpdated) []legacy.Event {
	var types []ReactionType
	for _, c := range r.Reactions {
		if c.TotalCount > 0 {
			types = append(types, c.Type)
		}
	}
	ev := legacy.Reacted{ID: s.partOf(r.Chat.ID, r.MessageID), Chat: chatID(r.Chat.ID), Emojis: s.emojis(ctx, types)}
	return append(s.contact(r.Chat), ev)
}

// emojis turns reaction types into emojis, in order and without
// duplicates. Never nil: an empty set removes the reactions.
func (s *session) emojis(ctx context.Context, types []ReactionType) []string {
	var missing []string
	for _, t := range types {
		if t.Type == "custom_emoji" && t.CustomEmojiID != "" {
			if _, ok := s.customEmoji[t.CustomEmojiID]; !ok {
				missing = append(missing, t.CustomEmojiID)
			}
		}
	}
	if len(missing) > 0 {
		s.resolveCustomEmoji(ctx, missing)
	}
	out := []string{}
	seen := map[string]bool{}
	for _, t := range types {
		var e string
		switch t.Type {
		case "emoji":
			e = t.Emoji
		case "custom_emoji":
			e = s.customEmoji[t.CustomEmojiID]
		case "paid":
			e = paidReaction
		}
		if e != "" && !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	return out
}

// resolveCustomEmoji asks for the emoji of custom emoji stickers.
func (s *session) resolveCustomEmoji(ctx context.Context, ids []string) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var stickers []struct {
		Emoji         string `json:"emoji"`
		CustomEmojiID string `json:"custom_emoji_id"`
	}
	if err := s.c.call(ctx, "getCustomEmojiStickers", map[string]any{"custom_emoji_ids": ids}, &stickers); err != nil {
		s.log.Warn("telegram: custom emoji reactions left out", "err", err)
		return
	}
	if s.customEmoji == nil {
		s.customEmoji = map[string]string{}
	}
	for _, st := range stickers {
		if st.CustomEmojiID != "" && st.Emoji != "" {
			s.customEmoji[st.CustomEmojiID] = st.Emoji
		}
	}
}
