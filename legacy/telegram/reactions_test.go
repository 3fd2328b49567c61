package telegram

import (
	"slices"
	"testing"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/legacytest"
	"github.com/jabbergate/jabbergate/legacy/telegram/telegramtest"
)

// TestInboundReactions: message_reaction and message_reaction_count
// updates, which Telegram only creates once allowed_updates names them,
// become legacy.Reacted on the right message with the reactor's full set.
func TestInboundReactions(t *testing.T) {
	srv := telegramtest.New(t)
	n := newNetwork(t, srv, nil)
	rec := &legacytest.Recorder{}
	s := open(t, n, rec, nil)

	// Before the bot asked for reactions, Telegram does not create them.
	if id := srv.AddUpdate(telegramtest.MessageReaction(42, "", 42, "Alice", 0, 1, nil,
		[]map[string]any{telegramtest.Emoji("👍")})); id != 0 {
		t.Fatalf("a reaction was queued before the bot asked for reactions (update %d)", id)
	}
	srv.AddCustomEmoji("5368324170671202286", "😎")
	start(t, s)
	eventually(t, "getUpdates with allowed_updates", func() bool {
		return slices.Contains(srv.AllowedUpdates(), "message_reaction") && slices.Contains(srv.AllowedUpdates(), "message_reaction_count")
	})

	add := func(body map[string]any) {
		t.Helper()
		if srv.AddUpdate(body) == 0 {
			t.Fatalf("update refused by the fake: %v", body)
		}
	}
	// Private chat: Alice reacts to message 7, then changes her set, then
	// removes it; a custom emoji and a paid reaction on message 8.
	add(telegramtest.MessageReaction(42, "", 42, "Alice", 0, 7, nil, []map[string]any{telegramtest.Emoji("👍")}))
	add(telegramtest.MessageReaction(42, "", 42, "Alice", 0, 7, []map[string]any{telegramtest.Emoji("👍")},
		[]map[string]any{telegramtest.Emoji("❤"), telegramtest.Emoji("🔥")}))
	add(telegramtest.MessageReaction(42, "", 42, "Alice", 0, 7, []map[string]any{telegramtest.Emoji("❤"), telegramtest.Emoji("🔥")}, nil))
	add(telegramtest.MessageReaction(42, "", 42, "Alice", 0, 8, nil,
		[]map[string]any{telegramtest.CustomEmoji("5368324170671202286"), telegramtest.CustomEmoji("999"), telegramtest.Paid()}))
	// A group where the bot is an admin: Bob's reaction; an anonymous
	// admin (actor_chat); then anonymous counts.
	add(telegramtest.MessageReaction(-1001, "Friends", 43, "Bob", 0, 3, nil, []map[string]any{telegramtest.Emoji("🎉")}))
	add(telegramtest.MessageReaction(-1001, "Friends", 0, "", -1001, 3, nil, []map[string]any{telegramtest.Emoji("👀")}))
	add(telegramtest.ReactionCount(-1001, "Friends", 4, telegramtest.Emoji("👍"), 3, telegramtest.Emoji("😢"), 0, telegramtest.Paid(), 2))

	var got []legacy.Reacted
	eventually(t, "7 reactions", func() bool {
		got = got[:0]
		for _, ev := range rec.Events() {
			if r, ok := ev.(legacy.Reacted); ok {
				got = append(got, r)
			}
		}
		return len(got) == 7
	})
	want := []legacy.Reacted{
		{ID: "123456789:42:7", Chat: "42", Emojis: []string{"👍"}},
		{ID: "123456789:42:7", Chat: "42", Emojis: []string{"❤", "🔥"}},
		{ID: "123456789:42:7", Chat: "42", Emojis: []string{}},
		{ID: "123456789:42:8", Chat: "42", Emojis: []string{"😎", "⭐"}}, // 999 is unknown: left out
		{ID: "123456789:-1001:3", Chat: "-1001", Sender: "43", Emojis: []string{"🎉"}},
		{ID: "123456789:-1001:3", Chat: "-1001", Sender: "-1001", Emojis: []string{"👀"}},
		{ID: "123456789:-1001:4", Chat: "-1001", Emojis: []string{"👍", "⭐"}},
	}
	for i := range want {
		if g := got[i]; g.ID != want[i].ID || g.Chat != want[i].Chat || g.Sender != want[i].Sender ||
			!slices.Equal(g.Emojis, want[i].Emojis) || g.Emojis == nil {
			t.Errorf("reaction %d = %+v, want %+v", i, g, want[i])
		}
	}
	if calls := srv.Calls("getCustomEmojiStickers"); len(calls) != 1 {
		t.Errorf("getCustomEmojiStickers called %d times, want 1", len(calls))
	}
	// The group was announced as a contact before its reactions.
	eventually(t, "the group contact", func() bool {
		for _, ev := range rec.Events() {
			if c, ok := ev.(legacy.Contact); ok && c.Chat == "-1001" && c.Group && c.Name == "Friends" {
				return true
			}
		}
		return false
	})
}
