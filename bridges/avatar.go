package bridges

// Names and avatars of contacts (protocol notes §14, row 24).
//
// Names: the display name an adapter reports in legacy.Contact.Name is
// stored in store.Contact.Name; every available presence of the contact
// carries it as an XEP-0172 <nick/> (subscription requests carry it too,
// see roster.go), and the contact's vCard has it as FN and NICKNAME.
//
// Avatars, only on networks that declare Caps.Avatars: the adapter reports
// a picture with legacy.Contact.Avatar (bytes and MIME type). It is kept
// per user and contact in two store mappings without TTL:
//
//	avatar-meta: localpart → JSON {id (SHA-1 hex), type, bytes, w, h}
//	             ("" once removed): small, read for every presence
//	avatar-data: localpart → base64 of the picture, read only on request
//
// The data is written before the meta, so a reader never sees a hash
// without its picture. Pictures over maxAvatarBytes are refused with a
// log line and the previous one is kept: base64 makes them a third larger,
// and every answer must fit the link's 256 KiB stanza limit with room to
// spare. They are not downscaled: re-encoding would change the bytes the
// network's hash describes and costs CPU on the shard.
//
// Three ways to reach clients:
//
//   - XEP-0153: every available presence of a contact carries
//     <x xmlns='vcard-temp:x:update'><photo>SHA-1</photo></x> (an empty
//     <photo/> when it has none); Conversations and Gajim then fetch the
//     vCard.
//   - XEP-0054: <vCard xmlns='vcard-temp'/> get on a contact JID answers
//     FN, NICKNAME and PHOTO (TYPE, BINVAL). A contact about which the
//     gateway knows neither a name nor a picture has no vCard: that is
//     item-not-found, as XEP-0054 §3.2 asks when no vCard exists (the
//     photo hash of such a contact is empty, so clients do not ask). A
//     sender who is not registered gets item-not-found too; a set is
//     not-allowed (the vCard belongs to the legacy network).
//   - XEP-0084 emulation for clients that read only PEP (Monal): pubsub
//     items get on a contact's bare JID for urn:xmpp:avatar:metadata and
//     urn:xmpp:avatar:data (item id = SHA-1) is answered from the store,
//     and when a picture changes the contact sends the user (bare JID, so
//     the server gives it to every resource) a headline message with the
//     pubsub#event of the metadata node — what a PEP service sends to
//     resources advertising urn:xmpp:avatar:metadata+notify. Clients that
//     do not read the event ignore it.
//
// A change re-announces the contact's presence (new hash) to a user who is
// subscribed to it. Contacts' disco#info is unchanged: clients do not
// check it before these requests, and the contact feature set (and so the
// caps ver) stays the one the message capabilities define.

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/gif"  // DecodeConfig of GIF avatars
	_ "image/jpeg" // DecodeConfig of JPEG avatars
	_ "image/png"  // DecodeConfig of PNG avatars
	"net/http"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/jabbergate/jabbergate/bridges/jidmap"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
)

// Namespaces of names and avatars.
const (
	nsVCard         = "vcard-temp"
	nsVCardUpdate   = "vcard-temp:x:update"
	nsAvatarMeta    = "urn:xmpp:avatar:metadata"
	nsAvatarData    = "urn:xmpp:avatar:data"
	nsPubsubEvent   = "http://jabber.org/protocol/pubsub#event"
	mapAvatarMeta   = "avatar-meta"
	mapAvatarData   = "avatar-data"
	maxAvatarBytes  = 128 << 10
	avatarStoreWait = 5 * time.Second
)

// avatarMeta is what the store keeps about a contact's picture (and what
// XEP-0084 metadata says of it).
type avatarMeta struct {
	ID     string `json:"id"` // SHA-1 hex of the bytes
	Type   string `json:"type"`
	Bytes  int    `json:"bytes"`
	Width  int    `json:"w,omitempty"`
	Height int    `json:"h,omitempty"`
}

// newAvatar checks a picture an adapter reported and describes it.
func newAvatar(data []byte, typ string) (*avatarMeta, error) {
	if len(data) == 0 {
		return nil, errors.New("empty picture")
	}
	if len(data) > maxAvatarBytes {
		return nil, errors.New("picture over the 128 KiB limit")
	}
	if typ == "" {
		typ = http.DetectContentType(data)
	}
	if i := strings.IndexByte(typ, ';'); i >= 0 {
		typ = typ[:i]
	}
	typ = strings.ToLower(strings.TrimSpace(typ))
	if !strings.HasPrefix(typ, "image/") {
		return nil, errors.New("not an image: " + typ)
	}
	sum := sha1.Sum(data)
	m := &avatarMeta{ID: hex.EncodeToString(sum[:]), Type: typ, Bytes: len(data)}
	if cfg, _, err := image.DecodeConfig(bytes.NewReader(data)); err == nil {
		m.Width, m.Height = cfg.Width, cfg.Height
	}
	return m, nil
}

// contactAvatar applies the picture of a legacy.Contact event (saveContact
// calls it once the contact is stored): store it when it changed and tell
// the user. Failures are logged: a picture is never worth refusing the
// event.
func (b *Bridge) contactAvatar(ctx context.Context, u *user, lp string, ev legacy.Contact) {
	if ev.Avatar == nil && !ev.NoAvatar && !ev.Removed {
		return
	}
	if !b.info.Caps.Avatars {
		if ev.Avatar != nil {
			b.log.Warn("adapter reported an avatar but does not declare Caps.Avatars; ignored", "user", u.owner)
		}
		return
	}
	old, _ := b.avatarOf(ctx, u, lp)
	if ev.Removed || ev.NoAvatar || len(ev.Avatar) == 0 {
		if old == nil {
			return
		}
		if err := b.st.PutMapping(ctx, b.domain, u.jid, mapAvatarMeta, lp, "", 0); err != nil {
			b.log.Warn("store avatar removal", "user", u.owner, "err", err)
			return
		}
		_ = b.st.PutMapping(ctx, b.domain, u.jid, mapAvatarData, lp, "", 0)
		if !ev.Removed {
			b.announceAvatar(ctx, u, lp, ev.Chat, nil)
		}
		return
	}
	m, err := newAvatar(ev.Avatar, ev.AvatarType)
	if err != nil {
		b.log.Warn("contact avatar refused", "user", u.owner, "bytes", len(ev.Avatar), "reason", err.Error())
		return
	}
	if old != nil && *old == *m {
		return
	}
	if err := b.st.PutMapping(ctx, b.domain, u.jid, mapAvatarData, lp, base64.StdEncoding.EncodeToString(ev.Avatar), 0); err != nil {
		b.log.Warn("store avatar", "user", u.owner, "err", err)
		return
	}
	meta, _ := json.Marshal(m)
	if err := b.st.PutMapping(ctx, b.domain, u.jid, mapAvatarMeta, lp, string(meta), 0); err != nil {
		b.log.Warn("store avatar", "user", u.owner, "err", err)
		return
	}
	b.log.Debug("contact avatar stored", "user", u.owner, "bytes", m.Bytes, "type", m.Type)
	b.announceAvatar(ctx, u, lp, ev.Chat, m)
}

// announceAvatar tells a subscribed user that a contact's picture changed:
// its presence with the new hash, and the XEP-0084 metadata event.
func (b *Bridge) announceAvatar(ctx context.Context, u *user, lp string, chat legacy.ChatID, m *avatarMeta) {
	c, err := b.st.GetContact(ctx, b.domain, u.jid, lp)
	if err != nil || !hasFrom(c.Subscription) {
		return // the user does not receive this contact's presence (or events)
	}
	if c.LegacyID != "" {
		chat = legacy.ChatID(c.LegacyID)
	}
	b.sendContactPresence(ctx, u, chat, c)
	b.reply(ctx, b.avatarEvent(lp+"@"+b.domain, u.jid, m))
}

// avatarEvent is the pubsub event a PEP service sends when the metadata
// node of from changes; m nil announces that there is no picture any more
// (XEP-0084 §4.2: empty metadata).
func (b *Bridge) avatarEvent(from, to string, m *avatarMeta) *stanza.Element {
	id := "current"
	if m != nil {
		id = m.ID
	}
	item := stanza.New(nsPubsubEvent, "item", "id", id)
	item.Add(metadataElement(m))
	msg := stanza.New(stanza.NSComponent, "message", "type", "headline", "from", from, "to", to, "id", "avatar-"+id)
	msg.Add(stanza.New(nsPubsubEvent, "event").Add(stanza.New(nsPubsubEvent, "items", "node", nsAvatarMeta).Add(item)))
	return msg
}

// metadataElement is the XEP-0084 <metadata/> for m (empty when nil).
func metadataElement(m *avatarMeta) *stanza.Element {
	md := stanza.New(nsAvatarMeta, "metadata")
	if m == nil {
		return md
	}
	info := stanza.New(nsAvatarMeta, "info", "bytes", strconv.Itoa(m.Bytes), "id", m.ID, "type", m.Type)
	if m.Width > 0 && m.Height > 0 {
		info.SetAttr("width", strconv.Itoa(m.Width)).SetAttr("height", strconv.Itoa(m.Height))
	}
	return md.Add(info)
}

// avatarOf returns the stored picture description of a contact, or nil.
func (b *Bridge) avatarOf(ctx context.Context, u *user, lp string) (*avatarMeta, error) {
	v, err := b.st.GetMapping(ctx, b.domain, u.jid, mapAvatarMeta, lp)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		return nil, err
	}
	if v == "" {
		return nil, nil
	}
	var m avatarMeta
	if err := json.Unmarshal([]byte(v), &m); err != nil || m.ID == "" {
		return nil, fmt.Errorf("%w: its record", errAvatarDamaged)
	}
	return &m, nil
}

// errAvatarDamaged: a stored picture or its record does not decode.
var errAvatarDamaged = errors.New("bridges: stored avatar damaged")

// pictureError is the answer to a request for a picture that could not be
// read: the store not answering is temporary (wait: clients ask again),
// a damaged or vanished picture is not.
func pictureError(err error) *stanza.Error {
	switch {
	case errors.Is(err, errAvatarDamaged), errors.Is(err, store.ErrNotFound):
		return &stanza.Error{Condition: stanza.ItemNotFound, Type: stanza.ErrCancel, Text: "the contact's picture is not stored any more"}
	}
	return &stanza.Error{Condition: stanza.ResourceConstraint, Type: stanza.ErrWait,
		Text: "the gateway cannot read its store right now; ask again shortly"}
}

// avatarData returns the stored picture of a contact as base64, checked
// against m.
func (b *Bridge) avatarData(ctx context.Context, u *user, lp string, m *avatarMeta) (string, error) {
	v, err := b.st.GetMapping(ctx, b.domain, u.jid, mapAvatarData, lp)
	if err != nil {
		return "", err
	}
	raw, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return "", fmt.Errorf("%w: %w", errAvatarDamaged, err)
	}
	if sum := sha1.Sum(raw); hex.EncodeToString(sum[:]) != m.ID {
		return "", fmt.Errorf("%w: its data does not match its hash", errAvatarDamaged)
	}
	return v, nil
}

// withIdentity adds the contact's XEP-0172 nick and, on networks with
// avatars, the XEP-0153 photo hash to an available presence p from the
// contact of chat; it returns p.
func (b *Bridge) withIdentity(u *user, chat legacy.ChatID, p *stanza.Element) *stanza.Element {
	lp, err := jidmap.Localpart(chat, b.domain)
	if err != nil {
		return p
	}
	ctx, cancel := context.WithTimeout(context.Background(), avatarStoreWait)
	defer cancel()
	if c, err := b.st.GetContact(ctx, b.domain, u.jid, lp); err == nil && c.Name != "" && p.Child(nsNick, "nick") == nil {
		p.TextChild(nsNick, "nick", c.Name)
	}
	if !b.info.Caps.Avatars || p.Child(nsVCardUpdate, "x") != nil {
		return p
	}
	x := stanza.New(nsVCardUpdate, "x")
	m, err := b.avatarOf(ctx, u, lp)
	switch {
	case err != nil:
		// Not ready to say: XEP-0153 §4.1 wants an <x/> without <photo/>.
		b.log.Warn("read avatar", "user", u.owner, "err", err)
	case m == nil:
		x.Add(stanza.New(nsVCardUpdate, "photo"))
	default:
		x.TextChild(nsVCardUpdate, "photo", m.ID)
	}
	return p.Add(x)
}

// avatarContact is the registered user and the contact localpart an
// avatar or vCard request is about; nil when the sender is not registered.
func (b *Bridge) avatarContact(from, to jid.JID) (*user, string) {
	u := b.getUser(from.Bare().String())
	if u == nil || to.Localpart() == "" {
		return nil, ""
	}
	return u, to.Localpart()
}

// vcardIQ answers XEP-0054 on a contact JID.
func (b *Bridge) vcardIQ(ctx context.Context, iq *stanza.Element, from, to jid.JID) (*stanza.Element, *stanza.Error) {
	if iq.Type() != "get" {
		return nil, &stanza.Error{Condition: stanza.NotAllowed, Type: stanza.ErrCancel, Text: "a legacy contact's vCard can not be changed"}
	}
	u, lp := b.avatarContact(from, to)
	if u == nil {
		return nil, stanza.NewError(stanza.ItemNotFound, "no vCard: you are not registered with this gateway")
	}
	v := stanza.New(nsVCard, "vCard")
	if c, err := b.st.GetContact(ctx, b.domain, u.jid, lp); err == nil && c.Name != "" {
		v.TextChild(nsVCard, "FN", c.Name)
		v.TextChild(nsVCard, "NICKNAME", c.Name)
	}
	if b.info.Caps.Avatars {
		m, err := b.avatarOf(ctx, u, lp)
		if err != nil {
			return nil, pictureError(err)
		}
		if m != nil {
			data, err := b.avatarData(ctx, u, lp, m)
			if err != nil {
				b.log.Warn("read avatar data", "user", u.owner, "err", err)
				return nil, pictureError(err)
			}
			photo := stanza.New(nsVCard, "PHOTO")
			photo.TextChild(nsVCard, "TYPE", m.Type)
			photo.TextChild(nsVCard, "BINVAL", data)
			v.Add(photo)
		}
	}
	if len(v.Children()) == 0 {
		return nil, stanza.NewError(stanza.ItemNotFound, "no name or picture is known for this contact")
	}
	return stanza.Result(iq, v), nil
}

// isAvatarQuery reports whether a pubsub payload reads an XEP-0084 node.
func isAvatarQuery(p *stanza.Element) bool {
	if p.Space != nsPubsub || p.Local != "pubsub" {
		return false
	}
	items := p.Child(nsPubsub, "items")
	return items != nil && (items.Attr("node") == nsAvatarMeta || items.Attr("node") == nsAvatarData)
}

// avatarItems answers a pubsub items get on a contact's avatar metadata or
// data node, as the contact's PEP service would. A contact without a
// picture (or a request for another item id) is item-not-found.
func (b *Bridge) avatarItems(ctx context.Context, iq, p *stanza.Element, from, to jid.JID) (*stanza.Element, *stanza.Error) {
	if iq.Type() != "get" {
		return nil, &stanza.Error{Condition: stanza.Forbidden, Type: stanza.ErrAuth, Text: "a legacy contact's avatar can not be published to"}
	}
	u, lp := b.avatarContact(from, to)
	if u == nil {
		return nil, stanza.NewError(stanza.ItemNotFound, "you are not registered with this gateway")
	}
	if to.Resourcepart() != "" {
		return nil, stanza.NewError(stanza.ItemNotFound, "avatars are on the contact's bare JID")
	}
	var m *avatarMeta
	if b.info.Caps.Avatars {
		var err error
		if m, err = b.avatarOf(ctx, u, lp); err != nil {
			return nil, pictureError(err)
		}
	}
	if m == nil {
		return nil, stanza.NewError(stanza.ItemNotFound, "this contact has no avatar")
	}
	items := p.Child(nsPubsub, "items")
	for _, it := range items.Children() {
		if it.Local == "item" && it.Attr("id") != m.ID {
			return nil, stanza.NewError(stanza.ItemNotFound, "no such avatar item")
		}
	}
	node := items.Attr("node")
	item := stanza.New(nsPubsub, "item", "id", m.ID)
	if node == nsAvatarMeta {
		item.Add(metadataElement(m))
	} else {
		data, err := b.avatarData(ctx, u, lp, m)
		if err != nil {
			b.log.Warn("read avatar data", "user", u.owner, "err", err)
			return nil, pictureError(err)
		}
		item.Add(stanza.New(nsAvatarData, "data").AddText(data))
	}
	res := stanza.New(nsPubsub, "pubsub").Add(stanza.New(nsPubsub, "items", "node", node).Add(item))
	return stanza.Result(iq, res), nil
}
