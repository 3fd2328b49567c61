package email

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/textproto"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/charset" // legacy charsets
	"github.com/emersion/go-message/mail"
	"github.com/k3a/html2text"

	"github.com/jabbergate/jabbergate/legacy"
)

// parsed is what the gateway takes from one mail.
type parsed struct {
	id        string // Message-ID, or empty
	messageID string
	from      string // lower-cased addr-spec
	fromName  string
	// noFrom: the mail has no usable From (none, or a group such as
	// "undisclosed-recipients:;"); from is then its Sender, else its
	// envelope sender (Return-Path), else empty.
	noFrom bool
	// replyTo are the Reply-To addresses (RFC 5322 §3.6.2) when they are
	// not just the From address: where a reply goes. replyToText is the
	// field as the user reads it ("Support Team <support@shop.example>").
	replyTo     []string
	replyToText string
	subject     string
	text        string
	thread      string // root Message-ID
	inReplyTo   string
	references  []string
	date        time.Time
	automated   string // "automatic", "list" or ""
	bounce      *bounce

	attachments []legacy.Attachment
}

// bounce is the gist of a delivery status notification (RFC 3464).
type bounce struct {
	recipient, action, status, diagnostic string
	original                              string // Message-ID of the returned mail
}

// err maps the bounce's RFC 3463 status to the sentinel errors, as SMTP
// replies are mapped (permanentStatus): 5.1.x not found, 5.2.2 the
// mailbox is full, 5.3.4 too large, 5.7.x a policy refusal, …
func (b *bounce) err() error {
	text := b.diagnostic
	if text == "" {
		text = "the mail was returned as undeliverable"
	}
	st := parseStatus(b.status)
	if st[0] != 5 {
		st = [3]int{} // a failure without a permanent status: no more than "rejected"
	}
	return permanentError(st, 0, "", b.status, text)
}

var wordDecoder = &mime.WordDecoder{CharsetReader: func(cs string, r io.Reader) (io.Reader, error) {
	return message.CharsetReader(cs, r)
}}

// Text labelled ISO-8859-1 or US-ASCII is very often Windows-1252 ("smart
// quotes", €, dashes in 0x80–0x9F, where ISO-8859-1 has only control
// characters). As browsers do (WHATWG Encoding Standard), these labels
// are read as Windows-1252, a superset of ISO-8859-1's printable
// characters: in bodies (message.CharsetReader, below; go-message passes
// US-ASCII through, and an 8-bit byte in it makes the text invalid
// UTF-8, read as Windows-1252 by parse) and in RFC 2047 words
// (cleanHeader: the standard library decodes ISO-8859-1 words itself).
var windows1252Labels = map[string]bool{
	"ansi_x3.4-1968": true, "ascii": true, "cp819": true, "csisolatin1": true, "ibm819": true,
	"iso-8859-1": true, "iso-ir-100": true, "iso8859-1": true, "iso88591": true, "iso_8859-1": true,
	"iso_8859-1:1987": true, "l1": true, "latin1": true, "us-ascii": true, "x-cp1252": true,
}

func init() {
	next := message.CharsetReader // go-message/charset's, set by its init
	message.CharsetReader = func(cs string, r io.Reader) (io.Reader, error) {
		if windows1252Labels[strings.ToLower(cs)] {
			cs = "windows-1252"
		}
		return next(cs, r)
	}
}

// latin1Word matches the start of an RFC 2047 encoded word whose charset
// is read as Windows-1252 (also with an RFC 2231 language:
// "=?iso-8859-1*de?Q?").
var latin1Word = regexp.MustCompile(`(?i)=\?(` + strings.Join(slices.Sorted(maps.Keys(windows1252Labels)), "|") + `)(\*[a-z0-9-]*)?\?([bq])\?`)

// cleanHeader prepares a header for reading: a value that is not UTF-8
// (raw 8-bit text, "From: J\xf6rg <j@example.org>", which RFC 5322
// forbids and some mailers send) is read as Windows-1252, so the name
// and subject are readable and no invalid UTF-8 goes on; the encoded
// words labelled ISO-8859-1 or US-ASCII are read as Windows-1252.
func cleanHeader(h *message.Header) {
	var keys []string
	for fs := h.Fields(); fs.Next(); {
		if v := fs.Value(); cleanValue(v) != v && !slices.Contains(keys, fs.Key()) {
			keys = append(keys, fs.Key())
		}
	}
	for _, k := range keys {
		vs := h.Values(k) // the first is what Get returns
		h.Del(k)
		for i := len(vs) - 1; i >= 0; i-- { // Get returns the last added
			h.Add(k, cleanValue(vs[i]))
		}
	}
}

func cleanValue(v string) string {
	if !utf8.ValidString(v) {
		v = string(windows1252([]byte(v)))
	}
	if !strings.Contains(v, "=?") {
		return v
	}
	return latin1Word.ReplaceAllString(v, "=?windows-1252?$3?")
}

// parse converts a raw mail. It never fails: what cannot be read is
// described in the text, so a broken mail still reaches the user.
func parse(raw []byte, maxFile int64) *parsed {
	p := &parsed{}
	var problems []string
	mr, err := mail.CreateReader(bytes.NewReader(raw))
	// mr is nil for an unknown top-level transfer encoding (found by
	// FuzzParse: "Content-Transfer-Encoding: 0" crashed the session).
	if mr == nil || (err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err)) {
		h := readHeaderLoose(raw)
		cleanHeader(&h.Header)
		p.header(h)
		p.text = fmt.Sprintf("[This mail could not be read (%v); %d bytes, read it in your mail client.]", err, len(raw))
		return p
	}
	if err != nil {
		problems = append(problems, charsetNote(err))
	}
	cleanHeader(&mr.Header.Header)
	p.header(mr.Header)
	top, params, _ := mr.Header.ContentType()
	// A delivery status notification: RFC 3464, or its RFC 6533 form for
	// internationalised mail (report-type global-delivery-status, as
	// Postfix sends it, or delivery-status with the global parts).
	rt := strings.ToLower(params["report-type"])
	isReport := top == "multipart/report" && (rt == "delivery-status" || rt == "global-delivery-status")

	var plain, html []string // the body's text parts, in order
	// The most read of a part: a larger file is left in the mailbox, a
	// longer text is cut.
	textLimit := max(maxFile, 1<<20)
	var original string
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil && !message.IsUnknownCharset(err) {
			problems = append(problems, "broken MIME structure: "+err.Error())
			break
		}
		if err != nil {
			problems = append(problems, charsetNote(err))
		}
		var h message.Header
		switch ph := part.Header.(type) {
		case *mail.InlineHeader:
			h = ph.Header
		case *mail.AttachmentHeader:
			h = ph.Header
		}
		cleanHeader(&h)
		typ, _, err := h.ContentType()
		if err != nil { // a malformed Content-Type: its media type as written
			typ, _, _ = strings.Cut(strings.ToLower(typ), ";")
			typ = strings.TrimSpace(typ)
		}
		body, rerr := io.ReadAll(io.LimitReader(part.Body, textLimit+1))
		if rerr != nil {
			problems = append(problems, "part unreadable: "+rerr.Error())
			continue
		}
		switch {
		case isReport && (typ == "message/delivery-status" || typ == "message/global-delivery-status"):
			p.bounce = parseDSN(body)
			continue
		case isReport && (typ == "text/rfc822-headers" || typ == "message/rfc822" ||
			typ == "message/global-headers" || typ == "message/global"):
			rh := readHeaderLoose(body)
			if id, err := rh.MessageID(); err == nil && id != "" {
				original = id
			}
			continue
		}
		ah, isAttachment := part.Header.(*mail.AttachmentHeader)
		if !isAttachment && !bodyText(typ, h) {
			// An inline image or other inline non-text part (cid:), a
			// text file shown inline (a patch, "notes.txt"), text that is
			// neither plain nor HTML (text/calendar): a file.
			ah, isAttachment = &mail.AttachmentHeader{Header: h}, true
		}
		if isAttachment {
			name := fileName(ah.Header)
			if name == "" {
				// An inline image (cid:) often has no name: one from its
				// type, so the file has an extension ("image-1.png").
				name = unnamedFile(typ, len(p.attachments)+1)
			}
			if int64(len(body)) > maxFile {
				problems = append(problems, fmt.Sprintf("attachment %q is larger than %d bytes and was left in the mailbox", name, maxFile))
				continue
			}
			p.attachments = append(p.attachments, legacy.Attachment{Name: name, Type: typ, Data: body})
			continue
		}
		if int64(len(body)) > textLimit {
			body = body[:textLimit]
			if t := trimPartialRune(body); utf8.Valid(t) {
				body = t // UTF-8 cut in the middle of a character
			}
			problems = append(problems, fmt.Sprintf("… cut by the gateway: the text of this mail is longer than %d KiB; read it whole in your mail client", textLimit>>10))
		}
		if !utf8.Valid(body) {
			// An unknown or lying charset, 8-bit text labelled US-ASCII or
			// not labelled: Windows-1252 keeps every byte readable.
			body = windows1252(body)
		}
		if typ == "text/html" {
			html = append(html, htmlText(string(body)))
		} else {
			plain = append(plain, normalizeNewlines(string(body)))
		}
	}
	// The plain text parts (all of them: Apple Mail splits the text
	// around an inline image), else the HTML ones.
	switch {
	case len(plain) > 0:
		p.text = trimQuote(joinParts(plain))
	case len(html) > 0:
		p.text = trimQuote(joinParts(html))
	}
	if isReport && p.bounce == nil {
		p.bounce = &bounce{action: "failed"}
	}
	if p.bounce != nil {
		p.bounce.original = original
		p.text = p.bounce.describe()
		if p.bounce.recipient != "" {
			if a, err := parseAddress(p.bounce.recipient); err == nil {
				p.from, p.fromName, p.noFrom = a, "", false
			}
		}
		p.automated = ""
		p.replyTo, p.replyToText = nil, ""
	}
	if len(problems) > 0 {
		seen := map[string]bool{}
		var notes []string
		for _, pr := range problems {
			if !seen[pr] {
				seen[pr] = true
				notes = append(notes, pr)
			}
		}
		p.text = strings.TrimSpace(p.text + "\n\n[" + strings.Join(notes, "; ") + "]")
	}
	return p
}

// header fills the header-derived fields.
func (p *parsed) header(h mail.Header) {
	if addrs, err := h.AddressList("From"); err == nil && len(addrs) > 0 {
		if a, err := canonicalAddress(addrs[0].Address); err == nil {
			p.from, p.fromName = a, addrs[0].Name
		}
	} else if v := h.Get("From"); v != "" {
		if i, j := strings.LastIndexByte(v, '<'), strings.LastIndexByte(v, '>'); i >= 0 && j > i {
			v = v[i+1 : j]
		}
		if a, err := parseAddress(v); err == nil {
			p.from = a
		}
	}
	if p.from == "" {
		p.noFrom = true
		for _, k := range []string{"Sender", "Return-Path"} {
			if addrs, err := h.AddressList(k); err == nil && len(addrs) > 0 {
				if a, err := canonicalAddress(addrs[0].Address); err == nil {
					p.from, p.fromName = a, addrs[0].Name
					break
				}
			}
		}
	}
	if addrs, err := h.AddressList("Reply-To"); err == nil {
		var shown []string
		for _, a := range addrs {
			c, err := canonicalAddress(a.Address)
			if err != nil {
				continue
			}
			p.replyTo = append(p.replyTo, c)
			if n := headerText(a.Name); n != "" {
				shown = append(shown, n+" <"+c+">")
			} else {
				shown = append(shown, c)
			}
		}
		if len(p.replyTo) == 1 && p.replyTo[0] == p.from {
			p.replyTo = nil // Reply-To: the sender itself
		}
		if len(p.replyTo) > 0 {
			p.replyToText = strings.Join(shown, ", ")
		}
	}
	if s, err := h.Subject(); err == nil {
		p.subject = s
	} else if s, err := wordDecoder.DecodeHeader(h.Get("Subject")); err == nil {
		p.subject = s
	} else {
		p.subject = h.Get("Subject")
	}
	// A header value is one line: a stray CR or LF (a malformed header, a
	// decoded encoded-word) becomes a space; and it is UTF-8.
	p.subject, p.fromName = headerText(p.subject), headerText(p.fromName)
	p.messageID, _ = h.MessageID()
	p.id = p.messageID
	p.references, _ = h.MsgIDList("References")
	irt, _ := h.MsgIDList("In-Reply-To")
	if len(irt) > 0 {
		p.inReplyTo = irt[0]
	}
	switch {
	case len(p.references) > 0:
		p.thread = p.references[0]
	case p.inReplyTo != "":
		p.thread = p.inReplyTo
	default:
		p.thread = p.messageID
	}
	if d, err := h.Date(); err == nil {
		p.date = d
	}
	as := strings.ToLower(strings.TrimSpace(h.Get("Auto-Submitted")))
	prec := strings.ToLower(strings.TrimSpace(h.Get("Precedence")))
	xar := strings.ToLower(strings.TrimSpace(h.Get("X-Autoreply")))
	// X-Autoreply (vacation programs, Zimbra) and Precedence: auto_reply
	// mark auto-replies of mailers without Auto-Submitted; not
	// X-Auto-Response-Suppress, which Outlook sets on ordinary mail too.
	switch {
	case as != "" && as != "no", xar != "" && xar != "no", prec == "auto_reply":
		p.automated = "automatic"
	case h.Get("List-Id") != "" || prec == "list" || prec == "bulk" || prec == "junk":
		p.automated = "list"
	}
}

// bodyText reports whether an inline part of type typ is text of the
// mail's body: plain text or HTML without a file name.
func bodyText(typ string, h message.Header) bool {
	return (typ == "text/plain" || typ == "text/html" || typ == "") && param(h, "Content-Disposition", "filename") == ""
}

// joinParts joins the texts of a body's parts, an empty line between
// two, the empty ones left out.
func joinParts(parts []string) string {
	var texts []string
	for _, t := range parts {
		if t = strings.TrimRight(strings.Trim(t, "\n"), " \t\n"); strings.TrimSpace(t) != "" {
			texts = append(texts, t)
		}
	}
	return strings.Join(texts, "\n\n")
}

// fileName is the name of an attachment: the Content-Disposition's
// filename, else the Content-Type's name (RFC 2231 or RFC 2047), in any
// charset; "" without one.
func fileName(h message.Header) string {
	if n := param(h, "Content-Disposition", "filename"); n != "" {
		return n
	}
	return param(h, "Content-Type", "name")
}

// param is the parameter name of the header field, decoded (RFC 2231 or
// RFC 2047, any charset); "" without one.
func param(h message.Header, field, name string) string {
	v := h.Get(field)
	if v == "" {
		return ""
	}
	if n := param2231(v, name); n != "" {
		return n
	}
	_, params, err := mime.ParseMediaType(v)
	if err != nil || params[name] == "" {
		return ""
	}
	n, err := wordDecoder.DecodeHeader(params[name])
	if err != nil {
		n = params[name]
	}
	if !utf8.ValidString(n) { // percent-encoded bytes that are no UTF-8
		n = string(windows1252([]byte(n)))
	}
	return n
}

// ext2231 matches the start of an RFC 2231 extended parameter, its name
// and charset ("filename*=iso-8859-1'", "name*0*=\"koi8-r'").
var ext2231 = regexp.MustCompile(`(?i)(?:^|;)\s*([a-z0-9_.-]+)\*(?:0\*)?\s*=\s*"?([^'"\s;]*)'`)

// param2231 returns the parameter param of the header value v when it
// is an RFC 2231 extended value in a charset other than UTF-8, which the
// standard library leaves out ("filename*=iso-8859-1'fr'r%E9sum%E9.pdf")
// or takes as UTF-8 (US-ASCII): its bytes, decoded from that charset.
func param2231(v, param string) string {
	for _, m := range ext2231.FindAllStringSubmatchIndex(v, -1) {
		cs := v[m[4]:m[5]]
		if !strings.EqualFold(v[m[2]:m[3]], param) || cs == "" || strings.EqualFold(cs, "utf-8") {
			continue
		}
		_, params, err := mime.ParseMediaType(v[:m[4]] + "utf-8" + v[m[5]:])
		if err != nil || params[param] == "" {
			return ""
		}
		r, err := message.CharsetReader(strings.ToLower(cs), strings.NewReader(params[param]))
		if err != nil {
			return ""
		}
		b, err := io.ReadAll(r)
		if err != nil || !utf8.Valid(b) {
			return ""
		}
		return string(b)
	}
	return ""
}

// readHeaderLoose reads the header of a mail whose MIME structure is
// broken, as far as it goes.
func readHeaderLoose(raw []byte) mail.Header {
	h := mail.Header{Header: message.Header{}}
	mh, _ := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw))).ReadMIMEHeader()
	for k, vs := range mh {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	return h
}

// parseDSN reads a message/delivery-status body: per-message fields, then
// one block per recipient; the first failed (else first) recipient wins.
func parseDSN(body []byte) *bounce {
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(body)))
	var b *bounce
	first := true
	for {
		h, err := r.ReadMIMEHeader()
		if len(h) > 0 && !first {
			cand := &bounce{
				recipient:  addrType(h.Get("Final-Recipient")),
				action:     strings.ToLower(strings.TrimSpace(h.Get("Action"))),
				status:     strings.TrimSpace(h.Get("Status")),
				diagnostic: addrType(h.Get("Diagnostic-Code")),
			}
			if b == nil || (b.action != "failed" && cand.action == "failed") {
				b = cand
			}
		}
		first = false
		if err != nil {
			break
		}
	}
	if b == nil {
		b = &bounce{action: "failed"}
	}
	return b
}

// addrType strips the "rfc822;" or "smtp;" type of a DSN field.
func addrType(v string) string {
	if i := strings.IndexByte(v, ';'); i >= 0 {
		return strings.TrimSpace(v[i+1:])
	}
	return strings.TrimSpace(v)
}

func (b *bounce) describe() string {
	var sb strings.Builder
	switch b.action {
	case "delayed":
		sb.WriteString("Your mail has not been delivered yet; the server keeps trying.")
	case "delivered", "relayed", "expanded":
		sb.WriteString("Your mail was delivered.")
	default:
		sb.WriteString("Your mail could not be delivered.")
	}
	if b.recipient != "" {
		sb.WriteString("\nRecipient: " + b.recipient)
	}
	if b.status != "" {
		sb.WriteString("\nStatus: " + b.status)
	}
	if b.diagnostic != "" {
		sb.WriteString("\nReason: " + b.diagnostic)
	}
	return sb.String()
}

func charsetNote(err error) string {
	if message.IsUnknownCharset(err) {
		return "this mail uses a charset the gateway does not know; text shown as Latin-1"
	}
	return err.Error()
}

// trimPartialRune removes the start of a UTF-8 character that b ends
// with: what is left of a text cut at a byte count.
func trimPartialRune(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}

// windows1252 decodes b as Windows-1252 (Latin-1 with the printable
// characters of 0x80–0x9F).
func windows1252(b []byte) []byte {
	if r, err := charset.Reader("windows-1252", bytes.NewReader(b)); err == nil {
		if u, err := io.ReadAll(r); err == nil {
			return u
		}
	}
	return []byte(strings.ToValidUTF8(string(b), "\uFFFD"))
}

func normalizeNewlines(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

var attribution = regexp.MustCompile(`(?i)^(on\s.+wrote:|le\s.+a écrit\s?:|am\s.+schrieb\s.+:|-+\s*original message\s*-+|-+\s*ursprüngliche nachricht\s*-+)\s*$`)

// trimQuote removes the signature (after "-- ") and a trailing quote: an
// attribution line followed only by quoted or empty lines, an Outlook
// "Original Message" block, or a trailing block of ">" lines. Interleaved
// quotes (answers between quoted lines) are kept.
func trimQuote(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if l == "-- " {
			lines = lines[:i]
			break
		}
	}
	cut := len(lines)
	for i := len(lines) - 1; i >= 0; i-- {
		t := strings.TrimSpace(lines[i])
		if t == "" || strings.HasPrefix(t, ">") {
			cut = i
			continue
		}
		break
	}
	// An attribution just before the quote, or an Outlook header anywhere.
	for i := 0; i < len(lines); i++ {
		t := strings.TrimSpace(lines[i])
		if !attribution.MatchString(t) {
			continue
		}
		lt := strings.ToLower(strings.Trim(t, "- "))
		if strings.HasPrefix(lt, "original message") || strings.HasPrefix(lt, "ursprüngliche") || i+1 >= cut {
			cut = i
			break
		}
	}
	out := strings.TrimRight(strings.Join(lines[:cut], "\n"), " \n\t")
	if strings.TrimSpace(out) == "" {
		// Nothing but a quote: show it rather than nothing.
		return strings.TrimRight(strings.Join(lines, "\n"), " \n\t")
	}
	return out
}

// headerText is a decoded header value as the user reads it: one line,
// valid UTF-8 (an encoded word that says UTF-8 and is not: U+FFFD).
func headerText(s string) string {
	return strings.ToValidUTF8(oneLine(s), "\uFFFD")
}

// oneLine replaces the line breaks in a header value with spaces (a run
// of them with one).
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' }), " ")
}

var (
	// anchorNoHref is an <a> without href (a named anchor): html2text
	// would hide everything after it when it keeps link texts.
	anchorNoHref = regexp.MustCompile(`(?i)<a(\s[^>]*)?>`)
	hasHref      = regexp.MustCompile(`(?i)\shref\s*=`)
	cellEnd      = regexp.MustCompile(`(?i)</t[dh]\s*>`)
	rowOrBlock   = regexp.MustCompile(`(?i)<(/tr|/?table|/div|/?blockquote)(\s[^>]*)?>`)
	cellSep      = regexp.MustCompile(`[ \t]*\t[ \t]*`)
	linkURL      = regexp.MustCompile(`\s?<((?:https?|mailto|ftp|tel):[^<>\s]*)>`)
	blankLines   = regexp.MustCompile(`\n{3,}`)
)

// htmlText converts an HTML body to text with html2text, keeping what a
// reader needs: a link's text with its URL after it in parentheses
// ("Confirm my account (https://…)", the URL alone when it is the text),
// list items on lines of their own with a bullet, table cells separated
// by " | " and rows (and divs) on lines of their own.
func htmlText(h string) string {
	h = anchorNoHref.ReplaceAllStringFunc(h, func(tag string) string {
		if hasHref.MatchString(tag) {
			return tag
		}
		return ""
	})
	h = cellEnd.ReplaceAllString(h, "$0&#9;")
	h = rowOrBlock.ReplaceAllString(h, "$0<br>")
	t := html2text.HTML2TextWithOptions(h, html2text.WithUnixLineBreaks(), html2text.WithLinksInnerText(), html2text.WithListSupportPrefix("• "))
	t = normalizeNewlines(t)
	t = linkURL.ReplaceAllStringFunc(t, func(m string) string {
		url := linkURL.FindStringSubmatch(m)[1]
		return " (" + url + ")"
	})
	lines := strings.Split(t, "\n")
	for i, l := range lines {
		l = strings.TrimRight(strings.Trim(l, "\t"), " \t")
		l = cellSep.ReplaceAllString(l, " | ")
		// A link whose text is its URL: once.
		if strings.Contains(l, " (") {
			l = dupURL(l)
		}
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.TrimSpace(blankLines.ReplaceAllString(strings.Join(lines, "\n"), "\n\n"))
}

// dupURL turns "https://x (https://x)" into "https://x".
func dupURL(l string) string {
	var b strings.Builder
	for {
		i := strings.Index(l, " (")
		if i < 0 {
			break
		}
		j := strings.IndexByte(l[i:], ')')
		if j < 0 {
			break
		}
		url := l[i+2 : i+j]
		if strings.HasSuffix(l[:i], url) && url != "" {
			b.WriteString(l[:i])
		} else {
			b.WriteString(l[:i+j+1])
		}
		l = l[i+j+1:]
	}
	b.WriteString(l)
	return b.String()
}

// usualExt is the extension people expect for the types mail carries;
// mime.ExtensionsByType sorts its answers, so its first is often a rare
// one (".jfif" for image/jpeg). As the SMS adapter names MMS parts.
var usualExt = map[string]string{
	"image/jpeg": ".jpg", "image/jpg": ".jpg", "image/pjpeg": ".jpg", "image/png": ".png", "image/gif": ".gif",
	"image/webp": ".webp", "image/bmp": ".bmp", "image/heic": ".heic", "image/svg+xml": ".svg", "image/tiff": ".tif",
	"video/mp4": ".mp4", "video/quicktime": ".mov", "video/webm": ".webm", "audio/mpeg": ".mp3", "audio/mp4": ".m4a",
	"audio/ogg": ".ogg", "audio/wav": ".wav", "text/plain": ".txt", "text/html": ".html", "text/calendar": ".ics",
	"text/vcard": ".vcf", "application/pdf": ".pdf", "application/zip": ".zip", "message/rfc822": ".eml",
}

// unnamedFile names the i-th file of a mail that has no name: its kind
// (image, audio, video, else "attachment"), i and the extension of typ.
func unnamedFile(typ string, i int) string {
	typ = strings.ToLower(typ)
	kind := "attachment"
	if k, _, ok := strings.Cut(typ, "/"); ok && (k == "image" || k == "audio" || k == "video") {
		kind = k
	}
	ext, ok := usualExt[typ]
	if !ok {
		if exts, _ := mime.ExtensionsByType(typ); len(exts) > 0 {
			ext = exts[0]
		}
	}
	return kind + "-" + strconv.Itoa(i) + ext
}
