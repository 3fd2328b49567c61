// Package telegram bridges XMPP users to Telegram through the Telegram Bot
// API (https://core.telegram.org/bots/api).
//
// Each XMPP user registers the token of their own bot (made with
// @BotFather). Every Telegram user who writes to that bot becomes a contact
// whose ChatID is the Telegram chat id; groups the bot is a member of are
// contacts too (Contact.Group), whose messages carry the sender's id and
// name. The legacy account id is the bot's numeric id from getMe, never the
// token.
//
// Inbound: the adapter runs its own getUpdates long-poll loop with an
// explicit offset. The offset is advanced only after Sink.Emit returned nil
// for every event of the update and is persisted with a SaveState event
// before Telegram is told (by the next getUpdates call), so a crash replays
// updates and never loses one; replays carry the same stable MessageIDs
// ("<bot_id>:<chat_id>:<message_id>", see ids.go), which the core
// deduplicates. A 409 Conflict
// (another program polls the same token) is logged, reported as the
// session's status and backed off. Optionally (options webhook_url and
// webhook_secret) the adapter uses setWebhook instead; the Network is then
// a legacy.Webhooker whose handler checks X-Telegram-Bot-Api-Secret-Token
// (401 otherwise) and answers 200 only once the update is durable, 5xx
// otherwise so Telegram retries.
//
// Translated: text (text_link targets kept, entity offsets converted from
// UTF-16), edits (edited_message → Edited), replies (reply_to_message →
// ReplyTo), photos, documents, voice, audio, video and animations (files
// up to the Bot API's 20 MB getFile limit become attachments; larger ones a
// note; transient getFile/download failures are retried and then leave the
// update unconfirmed, see fetch), stickers (their emoji), locations (a geo: URI, RFC 5870), shared
// contacts, forwards ("Forwarded from X:"), channel posts, and
// my_chat_member (blocked/unblocked → Presence, added to/removed from a
// group → Contact/Presence), and reactions of Telegram users
// (message_reaction, message_reaction_count → Reacted; see reactions.go).
//
// Outbound: sendMessage (chunked at 4096 UTF-16 units, never inside a
// surrogate pair; the id of a split message names every part, ids.go),
// replies (reply_parameters), editMessageText (Editor; spread over the
// parts of a split message, outbound.go), deleteMessage (Retracter, every
// part; Telegram only allows it for 48 hours),
// sendChatAction "typing" (ChatStater), setMessageReaction (Reactor, one
// emoji: bots without Premium get one reaction), sendPhoto/sendDocument
// for attachments (50 MB; a file with an http(s) legacy.Attachment.URL
// that Telegram fetches itself — photos up to 5 MB, GIF/PDF/ZIP
// documents up to 20 MB — is sent by that URL, and uploaded when Telegram
// answers 400). Token buckets (golang.org/x/time/rate) keep to
// the limits of the Bots FAQ: about 1 message/s per private chat, 20 a
// minute per group, 30/s per bot. Errors map to the legacy sentinels: 429 →
// *legacy.RateLimitError with retry_after; 5xx, malformed replies and
// timeouts → ErrUnavailable; 401 → ErrUnauthorized; 403 "blocked" or
// "can't initiate conversation" → a legacy.CodeError wrapping ErrForbidden
// with a text telling the XMPP user what to do; 400 "chat not found" →
// ErrNotFound.
//
// The token never appears in errors or logs: net/http errors contain the
// request URL (https://api.telegram.org/bot<token>/method) and are
// scrubbed.
//
// Why not github.com/go-telegram-bot-api/telegram-bot-api/v5 (v5.5.1, in
// go.mod): it has no context.Context on any call (a long poll cannot be
// cancelled at shutdown, deadlines would need a transport per call), its
// constructor does I/O (getMe), it predates reactions, reply_parameters
// and webhook secret tokens, its error strings carry the token, and its
// GetUpdatesChan confirms updates before they are processed. The adapter
// needs about a dozen methods, so client.go is a small hand-written client
// (a JSON or multipart POST per method, one error classifier) instead.
//
// Profile photos of private chats become the contacts' avatars
// (getUserProfilePhotos, fetched when the contact is first seen in a
// running session).
//
// Not yet: forum topics, group pictures, group-to-supergroup migration beyond
// an error naming the new chat id, groups as MUC rooms, a lease so that
// only one gateway instance polls a token (a second one gets 409s and
// backs off).
//
// Options (bridges[].options in the config):
//
//	api_url:        Bot API base URL (default https://api.telegram.org;
//	                a self-hosted telegram-bot-api server, or a fake in tests)
//	poll_timeout:   getUpdates long-poll duration (default 50s)
//	webhook_url:    public base URL of the gateway's webhook handler
//	                (https://gw.example.org/webhooks/telegram.example.org);
//	                empty or absent: long polling
//	webhook_secret: secret from which each bot's secret_token is derived
//	                (required with webhook_url)
package telegram

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jabbergate/jabbergate/legacy"
)

// Name is the registry name of this network.
const Name = "telegram"

// DefaultAPIURL is the public Bot API.
const DefaultAPIURL = "https://api.telegram.org"

// File size limits of the public Bot API.
const (
	maxDownload = 20 << 20 // getFile
	maxUpload   = 50 << 20 // sendDocument
)

func init() {
	legacy.Register(Name, func(options map[string]string) (legacy.Network, error) {
		return New(options)
	})
}

// Network is the Telegram network. Safe for concurrent use.
type Network struct {
	apiURL        string
	pollTimeout   time.Duration
	webhookURL    string
	webhookSecret string
	log           *slog.Logger

	// backoff bounds the poll loop's waits after errors (tests shorten it).
	minBackoff, maxBackoff time.Duration
	// fileGiveUp is how long an incoming file may keep failing with
	// transient errors before its message is delivered with a note
	// (inbound.go, fetch).
	fileGiveUp time.Duration
	// sendTimeout bounds one sendMessage call (outbound.go, sendText).
	sendTimeout time.Duration

	counts counters // legacy.EventCounter (counters.go)

	mu    sync.Mutex
	hooks map[int64]*session // webhook mode: running sessions by bot id
}

var (
	_ legacy.Network    = (*Network)(nil)
	_ legacy.Registrar  = (*Network)(nil)
	_ legacy.Resolver   = (*Network)(nil)
	_ legacy.Webhooker  = (*Network)(nil)
	_ legacy.Session    = (*session)(nil)
	_ legacy.Editor     = (*session)(nil)
	_ legacy.Retracter  = (*session)(nil)
	_ legacy.Reactor    = (*session)(nil)
	_ legacy.ChatStater = (*session)(nil)
)

// New returns a Telegram network configured by options (see the package
// doc). It does no I/O. Unknown and invalid options are an error: every
// one is reported, as a *legacy.OptionError joined with errors.Join, in the
// order of their names, then a webhook_url without its webhook_secret.
func New(options map[string]string) (*Network, error) {
	n := &Network{
		apiURL:      DefaultAPIURL,
		pollTimeout: 50 * time.Second,
		log:         slog.Default().With("network", Name),
		minBackoff:  time.Second,
		maxBackoff:  time.Minute,
		fileGiveUp:  15 * time.Minute,
		sendTimeout: callTimeout,
		hooks:       map[int64]*session{},
	}
	var errs []error
	bad := func(k, problem string) { errs = append(errs, &legacy.OptionError{Option: k, Problem: problem}) }
	for _, k := range slices.Sorted(maps.Keys(options)) {
		v := options[k]
		switch k {
		case "api_url":
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad(k, fmt.Sprintf("api_url %q is not an http(s) URL", v))
			}
			n.apiURL = strings.TrimRight(v, "/")
		case "poll_timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Second || d > 10*time.Minute {
				// Under a second, getUpdates is sent with timeout=0: short
				// polling, one request after the other.
				bad(k, fmt.Sprintf("poll_timeout %q is not a duration between 1s and 10m", v))
			}
			n.pollTimeout = d
		case "webhook_url":
			if v = strings.TrimSpace(v); v == "" {
				break // empty: long polling, as documented
			}
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad(k, fmt.Sprintf("webhook_url %q is not an http(s) URL", v))
			}
			n.webhookURL = strings.TrimRight(v, "/")
		case "webhook_secret":
			n.webhookSecret = v
		default:
			bad(k, "unknown option (known: api_url, poll_timeout, webhook_url, webhook_secret)")
		}
	}
	// Checked even when webhook_url itself is refused above: the admin
	// learns both at once.
	switch {
	case n.webhookURL == "":
	case n.webhookSecret == "":
		bad("webhook_url", "webhook_url needs a webhook_secret of at least 16 characters")
	case len(n.webhookSecret) < 16:
		// Named where the admin fixes it.
		bad("webhook_secret", fmt.Sprintf("webhook_secret must be at least 16 characters (it has %d)", len(n.webhookSecret)))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return n, nil
}

// Info implements legacy.Network.
func (n *Network) Info() legacy.Info {
	return legacy.Info{
		Name:        Name,
		DiscoType:   "telegram",
		DisplayName: "Telegram",
		Instructions: "Create a bot with @BotFather in Telegram (/newbot) and enter its token. " +
			"People who write to your bot appear as your contacts; a Telegram user must press Start in your bot before you can write to them. " +
			"For groups, add the bot to the group and disable its privacy mode (@BotFather, /setprivacy).",
		Fields: []legacy.Field{{
			Var: "token", Label: "Bot token", Type: legacy.TextPrivate, Required: true, Secret: true,
			Desc: "The token @BotFather gave you, like 123456789:AAE…",
		}},
		Prompt:     "Telegram chat id",
		PromptDesc: "Enter the numeric chat id of the Telegram user or group (they appear by themselves once they write to your bot)",
		Caps: legacy.Caps{
			Edits: true, Retractions: true, Reactions: true, ChatStates: true,
			Files: true, Groups: true, Presence: true, Replies: true, Avatars: true,
		},
		OutboxTTL:    time.Hour,
		MaxReactions: 1,
		MaxFileSize:  maxUpload,
	}
}

var tokenRE = regexp.MustCompile(`^[0-9]{1,20}:[A-Za-z0-9_-]{20,}$`)

func (n *Network) client(token string) *client {
	// No client-wide timeout: every call has a context deadline (the long
	// poll a longer one).
	return &client{base: n.apiURL, token: token, hc: &http.Client{Transport: http.DefaultTransport}, counts: &n.counts}
}

// Register implements legacy.Registrar: it checks the token with getMe and
// returns the bot's numeric id.
func (n *Network) Register(ctx context.Context, fields map[string]string) (legacy.AccountID, error) {
	token := strings.TrimSpace(fields["token"])
	if token == "" {
		return "", &legacy.FieldError{Var: "token", Reason: "the bot token is required"}
	}
	if !tokenRE.MatchString(token) {
		return "", &legacy.FieldError{Var: "token", Reason: "this does not look like a bot token (digits, a colon, then letters and digits, as @BotFather gives it)"}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	me, err := n.client(token).getMe(ctx)
	if errors.Is(err, legacy.ErrUnauthorized) {
		// The core shows a ReasonError's reason to the user: say what to
		// do, not only that the token was refused.
		n.log.Info("telegram: registration with a token Telegram rejects", "err", err)
		return "", &legacy.ReasonError{Err: legacy.ErrUnauthorized, Reason: textBadToken}
	}
	if err != nil {
		return "", fmt.Errorf("telegram: checking the bot token: %w", err)
	}
	return legacy.AccountID(strconv.FormatInt(me.ID, 10)), nil
}

// Resolve implements legacy.Resolver: a chat id is an integer (negative
// for groups); an @username cannot be resolved by a bot.
func (n *Network) Resolve(ctx context.Context, input string) (legacy.ChatID, error) {
	s := strings.TrimSpace(input)
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id == 0 {
		return "", fmt.Errorf("telegram: %q is not a Telegram chat id (a number; people appear by themselves once they write to your bot): %w", input, legacy.ErrInvalidAddress)
	}
	return legacy.ChatID(strconv.FormatInt(id, 10)), nil
}

// state is the adapter's state blob.
type state struct {
	// Offset is the next update_id to ask for: every update below it has
	// been emitted and is durable.
	Offset int64 `json:"offset"`
}

// Open implements legacy.Network. It does no I/O.
func (n *Network) Open(ctx context.Context, acct legacy.Account, sink legacy.Sink) (legacy.Session, error) {
	token := strings.TrimSpace(acct.Fields["token"])
	if token == "" {
		return nil, fmt.Errorf("telegram: the account has no bot token: %w", legacy.ErrUnauthorized)
	}
	bot := botIDOf(token)
	if bot == 0 {
		return nil, fmt.Errorf("telegram: the account's bot token does not start with the bot's id; register again: %w", legacy.ErrUnauthorized)
	}
	var st state
	if len(acct.State) > 0 {
		if err := json.Unmarshal(acct.State, &st); err != nil {
			n.log.Warn("telegram: ignoring an unreadable saved state; updates not yet confirmed to Telegram will be fetched again", "err", err)
			st = state{}
		}
	}
	s := &session{
		net:    n,
		c:      n.client(token),
		sink:   sink,
		botID:  bot,
		offset: st.Offset,
		log:    acct.Logger(n.log.With("account", string(acct.ID))),
		seen:   map[int64]string{},
		lim:    newLimiters(),
		now:    time.Now,
	}
	return s, nil
}

// webhookSecretFor derives the secret_token of one bot: 64 hex digits,
// within Telegram's alphabet.
func (n *Network) webhookSecretFor(botID int64) string {
	m := hmac.New(sha256.New, []byte(n.webhookSecret))
	fmt.Fprintf(m, "telegram-webhook:%d", botID)
	return hex.EncodeToString(m.Sum(nil))
}

// Webhook implements legacy.Webhooker. Telegram POSTs one Update per
// request to <webhook_url>/<bot id>. Without webhook_url, every request is
// answered 404.
func (n *Network) Webhook() http.Handler {
	return http.HandlerFunc(n.serveWebhook)
}
