package bridges

// Attachments (protocol.md §15, row 25, §18).
//
// legacy → XMPP: Sink.Emit writes every attachment of an Incoming to the
// media store (synced to disk) before the inbox entry that names it, so a
// file is durable once the adapter is told the message is taken. The
// message reaches the user as a caption message (the text, with the
// message's own stanza id) followed by one message per file whose body is
// exactly the file's signed URL plus <x xmlns='jabber:x:oob'> with the same
// URL — what Conversations needs to show the file inline. Without a caption
// the first file message carries the message's id. When the gateway has no
// media.base_url, or a file is over media.max_size, the file is replaced by
// a text note in the message.
//
// XMPP → legacy: a message with a jabber:x:oob http(s) URL (the body equal
// to it, or absent) is a file. On a network with Caps.Files, the outbox
// worker — never the read loop — downloads it (size limit: the smaller of
// Info.MaxFileSize and media.max_size; timeout; http and https only;
// no private addresses unless media.allow_private_fetch) and hands it to
// Send as an Attachment (Data, and the URL it came from in URL, so that a
// network fetching files itself — Twilio's MediaUrl — can be given the
// user's own URL), with a body that differs from the URL as its caption. A file over the limit is refused with not-acceptable naming the
// size and the limit; a URL the gateway will not fetch with not-allowed;
// a URL the server says does not exist with item-not-found. On a network
// without Caps.Files the URL is sent as plain text: the contact still gets
// a working link, which is what the sender meant.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jabbergate/jabbergate/bridges/media"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
)

const nsOOB = "jabber:x:oob"

// inFile is a stored inbound attachment, as kept in an inbox entry.
type inFile struct {
	URL  string `json:"u"`
	Name string `json:"n,omitempty"`
	Size int64  `json:"z,omitempty"`
}

// oobURL returns the http(s) URL of a message's jabber:x:oob, or "".
func oobURL(st *stanza.Element) string {
	x := st.Child(nsOOB, "x")
	if x == nil {
		return ""
	}
	u := strings.TrimSpace(x.ChildText("", "url"))
	if !media.FetchableURL(u) {
		return ""
	}
	return u
}

// bodyOrURL returns body, or for a message with only an OOB URL a body
// holding the URL, so the rest of the outbound path sees its text.
func bodyOrURL(body *stanza.Element, url string) *stanza.Element {
	if body != nil || url == "" {
		return body
	}
	return stanza.New(stanza.NSComponent, "body").AddText(url)
}

// prepareFile marks an outbox entry as a file when the message carries an
// OOB URL and the network takes files; the body is then the caption, empty
// when it is just the URL. Otherwise the message goes as text (the URL).
func (b *Bridge) prepareFile(e *outboxEntry, url string) {
	if url == "" || e.Kind != "" || !b.info.Caps.Files || b.opts.Media == nil {
		return
	}
	e.File = url
	if strings.TrimSpace(e.Text) == url {
		e.Text = ""
	}
	if strings.TrimSpace(e.Quoted) == url {
		e.Quoted = ""
	}
}

// sendEntry is sendOut for entries that carry a file: the file is fetched
// once per delivery (cached in *file across retries) and sent as an
// attachment.
func (b *Bridge) sendEntry(ctx context.Context, u *user, sess legacy.Session, e *outboxEntry, file **legacy.Attachment) (legacy.MessageID, error) {
	if e.File == "" || e.Kind != "" {
		return b.sendOut(ctx, u, sess, e)
	}
	if b.opts.Media == nil || !b.info.Caps.Files {
		return "", notImplemented(b, "files")
	}
	if *file == nil {
		a, err := b.fetchFile(ctx, e.File)
		if err != nil {
			return "", err
		}
		*file = a
	}
	return b.sendOut(ctx, u, sess, e, **file)
}

// fileLimit is the largest file the network takes through this gateway.
func (b *Bridge) fileLimit() int64 {
	limit := b.opts.Media.MaxSize()
	if mf := b.info.MaxFileSize; mf > 0 && mf < limit {
		limit = mf
	}
	return limit
}

// fetchFile downloads an outbound attachment. Permanent failures are
// *stanza.Error for the sender; others are retried by deliverOut.
func (b *Bridge) fetchFile(ctx context.Context, url string) (*legacy.Attachment, error) {
	limit := b.fileLimit()
	f, err := b.opts.Media.Fetch(ctx, url, limit)
	if err == nil {
		return &legacy.Attachment{Name: f.Name, Type: f.Type, Data: f.Data, URL: strings.TrimSpace(url)}, nil
	}
	return nil, b.fetchError(err)
}

// fetchError is the error of a failed download: a *stanza.Error for the
// sender when trying again cannot help, else err, retried.
func (b *Bridge) fetchError(err error) error {
	var tl *media.TooLargeError
	var fe *media.FetchError
	var de *net.DNSError
	switch {
	case errors.As(err, &tl):
		size := "larger than " + humanSize(tl.Limit)
		if tl.Known {
			size = humanSize(tl.Size)
		}
		return &stanza.Error{Condition: stanza.NotAcceptable, Type: stanza.ErrModify,
			Text: fmt.Sprintf("the file is %s; %s accepts files of at most %s through this gateway", size, b.info.DisplayName, humanSize(tl.Limit))}
	case errors.As(err, &fe) && fe.Forbidden:
		return &stanza.Error{Condition: stanza.NotAllowed, Type: stanza.ErrCancel,
			Text: "the gateway does not download this file: " + fe.Reason}
	case errors.As(err, &fe):
		return &stanza.Error{Condition: stanza.ItemNotFound, Type: stanza.ErrCancel,
			Text: "the file could not be downloaded: " + fe.Reason}
	case errors.As(err, &de) && de.IsNotFound:
		// The name does not exist (NXDOMAIN), which waiting does not
		// change; a resolver that fails or times out is retried.
		return &stanza.Error{Condition: stanza.ItemNotFound, Type: stanza.ErrCancel,
			Text: "the file could not be downloaded: its host " + de.Name + " does not exist"}
	}
	return err
}

// humanSize writes n bytes for people, with the exact count.
func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB (%d bytes)", float64(n)/(1<<20), n)
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB (%d bytes)", float64(n)/(1<<10), n)
	}
	return fmt.Sprintf("%d bytes", n)
}

// storeAttachments writes an inbound message's files to the media store
// and records their URLs in e; files that cannot be served become a note
// in the text. An error means the event was not taken.
func (b *Bridge) storeAttachments(ctx context.Context, u *user, e *inboxEntry, atts []legacy.Attachment) error {
	var notes []string
	for _, a := range atts {
		name := media.SanitizeName(a.Name)
		size := int64(len(a.Data))
		ms := b.opts.Media
		switch {
		case ms == nil || !ms.Enabled():
			notes = append(notes, fmt.Sprintf("[file %s, %s: not shown, this gateway has no media storage (media.base_url)]", name, humanSize(size)))
			continue
		case size > ms.MaxSize():
			notes = append(notes, fmt.Sprintf("[file %s, %s: not shown, larger than the gateway's limit of %s]", name, humanSize(size), humanSize(ms.MaxSize())))
			continue
		}
		url, err := ms.Put(a.Name, a.Type, a.Data)
		if err != nil {
			// The gateway's own disk (full, not writable): the event is
			// not taken, so that it is not lost, and the adapter offers
			// it again; the reason says whose fault the wait is.
			b.log.Error("cannot store inbound file; the message waits until it can be", "user", u.owner, "file", name, "err", err)
			return fmt.Errorf("bridges: store attachment: %w", &legacy.ReasonError{
				Reason: "the gateway cannot store an attached file on its disk (the admin can see why in its log)",
				Err:    errors.Join(legacy.ErrUnavailable, err)})
		}
		e.Files = append(e.Files, inFile{URL: url, Name: name, Size: size})
	}
	if len(notes) > 0 {
		text := strings.Join(notes, "\n")
		if e.Text != "" {
			text = e.Text + "\n" + text
		}
		e.Text = text
	}
	return nil
}

// renderEntry renders an inbox entry as the stanzas for the user: one for
// most entries, a caption and one message per file for a message with
// attachments.
func (b *Bridge) renderEntry(ctx context.Context, u *user, e *inboxEntry, sid string) ([]*stanza.Element, error) {
	if e.Kind == "undelivered" {
		return b.renderUndelivered(ctx, u, e, sid)
	}
	if e.Kind != "msg" || len(e.Files) == 0 {
		st, err := b.renderInbound(ctx, u, e, sid)
		if st == nil || err != nil {
			return nil, err
		}
		return []*stanza.Element{st}, nil
	}
	from, err := b.contactJID(legacy.ChatID(e.Chat))
	if err != nil {
		return nil, err
	}
	var out []*stanza.Element
	files := e.Files
	if e.Text == "" {
		// No caption: the first file is the message itself (markable,
		// known by the message's id).
		first := *e
		first.Text, first.SenderName = files[0].URL, ""
		m, err := b.renderInbound(ctx, u, &first, sid)
		if err != nil {
			return nil, err
		}
		out = append(out, m.Add(oob(files[0].URL)))
		files = files[1:]
	} else {
		m, err := b.renderInbound(ctx, u, e, sid)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	// Each file's message is the same legacy message for the user's
	// reactions, replies and markers: a record under its own id.
	r := recvRecord{LegacyID: e.ID, Chat: e.Chat}
	if b.info.Caps.Replies {
		r.Excerpt = excerpt(e.Text)
	}
	for i, f := range files {
		id := fmt.Sprintf("%s-f%d", sid, len(e.Files)-len(files)+i)
		if err := b.putMapIn(ctx, u, mapRecv, id, r.pack()); err != nil {
			return nil, err
		}
		m := stanza.New(stanza.NSComponent, "message", "type", "chat", "id", id, "from", from, "to", u.jid)
		m.TextChild(stanza.NSComponent, "body", f.URL)
		m.Add(oob(f.URL), stanza.New(nsSID, "origin-id", "id", id))
		if !e.Time.IsZero() && time.Since(e.Time) > 10*time.Second {
			m.Add(stanza.New(nsDelay, "delay", "stamp", e.Time.UTC().Format(time.RFC3339), "from", b.domain))
		}
		out = append(out, m)
	}
	return out, nil
}

func oob(url string) *stanza.Element {
	return stanza.New(nsOOB, "x").Add(stanza.New(nsOOB, "url").AddText(url))
}
