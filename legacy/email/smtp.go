package email

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/net/idna"

	"github.com/jabbergate/jabbergate/legacy"
)

// Send implements legacy.Session: it builds the mail and submits it.
func (s *session) Send(ctx context.Context, m *legacy.Message) (legacy.MessageID, error) {
	if m.Chat == unknownSender {
		return "", &legacy.ReasonError{Reason: "the mail from this contact had no sender address; there is no one to answer",
			Err: legacy.ErrNotFound}
	}
	to, err := parseAddress(string(m.Chat))
	if err != nil {
		return "", err
	}
	id := s.messageID(m.Key)
	pl := s.plan(m, to, id)
	cl, release, err := s.net.dialSMTP(ctx, s.cfg)
	if err != nil {
		return "", err
	}
	defer release()
	// The envelope and the headers need the server's SMTPUTF8 (RFC 6531)
	// for non-ASCII addresses: known only once connected.
	utf8ok, _ := cl.Extension("SMTPUTF8")
	env, err := envelope(s.cfg.address, pl.rcpts, utf8ok)
	if err != nil {
		return "", err
	}
	raw, err := compose(m, pl, env, id, time.Now())
	if err != nil {
		return "", err
	}
	if err := submit(cl, env, id, raw); err != nil {
		return "", err
	}
	s.sent(ctx, pl, to, id)
	return legacy.MessageID(id), nil
}

// sent remembers the thread a sent mail belongs to, so that the user's
// next messages in the chat continue it: a mail that started a thread is
// its root (the user's next plain message answers it, "Re: <subject>");
// a mail in a known thread makes that thread the chat's current one. The
// memory is saved with the watermark (SaveState); a failure to save it
// leaves it in memory, saved with the next watermark.
func (s *session) sent(ctx context.Context, pl plan, to, id string) {
	now := time.Now().UTC()
	err := s.save(ctx, func(st *state) {
		if t := st.Threads[pl.thread]; pl.thread != "" && t != nil {
			t.Seen = now
			t.addSent(id)
			return
		}
		if st.Threads == nil {
			st.Threads = map[string]*thread{}
		}
		// A new thread (this mail is its root), or an answer to a mail not
		// remembered: its References say which thread it is, and the
		// thread is remembered as if that mail had been seen (so a retry
		// answers it again, not itself).
		key, last, refs := id, id, []string{id}
		if pl.parent != "" {
			key, last, refs = pl.refs[0], pl.parent, append([]string(nil), pl.refs...)
		}
		st.Threads[key] = &thread{Subject: rePrefix.ReplaceAllString(pl.subject, ""), Last: last, Refs: refs, Seen: now, With: to, Sent: []string{id}}
		trimThreads(st)
	})
	if err != nil {
		s.log.Warn("email: the thread of a sent mail is not saved yet", "err", err)
	}
}

// addrs are the sender's and the recipients' addresses as they go out,
// in the envelope and in From and To.
type addrs struct {
	from string
	to   []string
	utf8 bool // MAIL FROM … SMTPUTF8; the header is RFC 6532 UTF-8
}

// envelope chooses how the addresses go out. ASCII addresses go as they
// are. When the server offers SMTPUTF8, non-ASCII ones go in UTF-8 with
// SMTPUTF8 (RFC 6531) and the header carries them in UTF-8 (RFC 6532).
// Without it, a non-ASCII domain goes as its IDNA A-label (RFC 5890,
// "xn--…"), which needs nothing of the server; a non-ASCII local part
// cannot be written in ASCII at all, so such a mail is refused.
func envelope(from string, to []string, smtputf8 bool) (addrs, error) {
	a := addrs{from: from}
	var err error
	if a.from, err = outAddress(from, smtputf8, "your address"); err != nil {
		return a, err
	}
	ascii := isASCII(a.from)
	for _, t := range to {
		o, err := outAddress(t, smtputf8, "the recipient's address")
		if err != nil {
			return a, err
		}
		a.to = append(a.to, o)
		ascii = ascii && isASCII(o)
	}
	a.utf8 = smtputf8 && !ascii
	return a, nil
}

// outAddress is addr as it goes out: in UTF-8 (domain in Unicode, IDNA
// normalised) when the server offers SMTPUTF8, else with the domain as
// an A-label; a non-ASCII local part without SMTPUTF8 is an error.
func outAddress(addr string, smtputf8 bool, whose string) (string, error) {
	if isASCII(addr) {
		return addr, nil
	}
	at := strings.LastIndexByte(addr, '@')
	local, domain := addr[:at], addr[at+1:]
	ace, err := idna.Lookup.ToASCII(domain)
	if err != nil {
		return "", &legacy.ReasonError{Reason: fmt.Sprintf("%s %s has a domain that is not a valid internationalised domain name (%v)", whose, addr, err),
			Err: legacy.ErrInvalidAddress}
	}
	if smtputf8 {
		u, err := idna.Lookup.ToUnicode(ace)
		if err != nil {
			u = domain
		}
		return local + "@" + u, nil
	}
	if !isASCII(local) {
		return "", &legacy.ReasonError{Reason: fmt.Sprintf("%s %s has non-ASCII characters before the @, which needs SMTPUTF8 (RFC 6531), and your SMTP server does not offer it", whose, addr),
			Err: legacy.ErrUnsupported}
	}
	return local + "@" + ace, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// asciiDomain is the domain of addr as an A-label where it is not ASCII
// (for EHLO and Message-IDs, which are always ASCII).
func asciiDomain(addr string) string {
	d := addr[strings.LastIndexByte(addr, '@')+1:]
	if isASCII(d) {
		return d
	}
	if ace, err := idna.Lookup.ToASCII(d); err == nil {
		return ace
	}
	return "invalid"
}

// messageID is the Message-ID (without angle brackets) for an idempotency
// key: the same key always gives the same id, so a retry after a crash
// sends the same Message-ID and the recipient's client can tell.
func (s *session) messageID(key string) string {
	domain := asciiDomain(s.cfg.address)
	var sum []byte
	if key == "" {
		sum = make([]byte, 16)
		rand.Read(sum)
	} else {
		h := sha256.Sum256([]byte(string(s.acct) + "\x00" + key))
		sum = h[:16]
	}
	return "jg." + hex.EncodeToString(sum) + "@" + domain
}

// plan is how one message goes out: to whom, and in which thread.
type plan struct {
	rcpts     []string // the recipients (ChatID form): the chat, or the Reply-To of the mail answered
	subject   string
	thread    string   // the key of the remembered thread it continues, or ""
	newThread bool     // starts a thread of its own
	parent    string   // In-Reply-To, or ""
	refs      []string // References (ending with parent)
}

// plan chooses the recipients, the subject and the thread of m, sent in
// the chat with to. An answer in a thread whose last mail had a Reply-To
// (RFC 5322 §3.6.2: "the address(es) to which the author of the message
// suggests that replies be sent") goes to those addresses, as a mail
// client's "Reply" would: the no-reply sender's support address, the
// mailing list rather than its member.
//
// A message with a subject of its own that is not the subject of the
// thread it would continue (modulo "Re:") starts a new thread: no
// In-Reply-To, no References. Send remembers it (sent), so the user's
// next messages in the chat continue it. id is the Message-ID m goes out
// with: a retry of the mail that started a thread starts it again.
func (s *session) plan(m *legacy.Message, to, id string) plan {
	pl := plan{rcpts: []string{to}, subject: strings.TrimSpace(m.Subject)}
	var th *thread
	var refs []string
	var parent string
	s.mu.Lock()
	if m.ReplyTo != "" {
		// An explicit reply (XEP-0461) to a mail seen in INBOX answers that
		// mail: its subject, its References and its Message-ID.
		if t, r := s.state.replyContext(string(m.ReplyTo), to); t != nil {
			th, refs, parent = t, r, string(m.ReplyTo)
		}
	}
	if parent == "" {
		th = s.state.Threads[m.Thread]
		if th == nil && m.Thread == "" && m.ReplyTo == "" && m.Corrects != "" {
			// A correction sent as a new mail continues the thread of the
			// mail it corrects, not the chat's latest.
			th = s.state.sentIn(string(m.Corrects), to)
		}
		if th == nil && m.Thread == "" && m.ReplyTo == "" {
			// Chat clients rarely send <thread>: an answer to a correspondent
			// continues the latest thread with them, as a mail client's
			// "Reply" would.
			for _, t := range s.state.Threads {
				if t.With == to && (th == nil || t.Seen.After(th.Seen)) {
					th = t
				}
			}
		}
		if th != nil {
			refs, parent = append([]string(nil), th.Refs...), th.Last
		}
	}
	if m.ReplyTo == "" && pl.subject != "" && (th == nil || !sameSubject(pl.subject, th.Subject)) {
		// Back to an earlier thread with them, by its subject?
		var same *thread
		for _, t := range s.state.Threads {
			if t.With == to && sameSubject(pl.subject, t.Subject) && t.Last != id && (same == nil || t.Seen.After(same.Seen)) {
				same = t
			}
		}
		if same != nil {
			th, refs, parent = same, append([]string(nil), same.Refs...), same.Last
		}
	}
	if m.ReplyTo == "" && (th != nil && th.Last == id ||
		pl.subject != "" && (th == nil || !sameSubject(pl.subject, th.Subject))) {
		// A new subject, or a retry of the mail that started th: a new
		// thread.
		th, refs, parent = nil, nil, ""
		pl.newThread = true
	}
	if th != nil {
		for k, t := range s.state.Threads {
			if t == th {
				pl.thread = k
			}
		}
	}
	var thSubject string
	if th != nil {
		thSubject = th.Subject
		if th.With == to && len(th.ReplyTo) > 0 {
			pl.rcpts = append([]string(nil), th.ReplyTo...)
		}
	}
	s.mu.Unlock()
	if m.ReplyTo != "" {
		parent = string(m.ReplyTo)
	}
	if parent == "" && !pl.newThread && m.Thread != "" && strings.Contains(m.Thread, "@") {
		parent = m.Thread // the thread id is the root Message-ID
	}
	if parent != "" {
		if len(refs) == 0 && m.Thread != "" && m.Thread != parent && strings.Contains(m.Thread, "@") {
			refs = []string{m.Thread}
		}
		if len(refs) == 0 || refs[len(refs)-1] != parent {
			refs = append(refs, parent)
		}
		pl.parent, pl.refs = parent, refs
	}
	switch {
	case pl.subject != "":
	case thSubject != "":
		pl.subject = reSubject(thSubject)
	default:
		pl.subject = defaultSubject(m.Text)
	}
	return pl
}

// compose builds the RFC 5322 message of m as pl plans it; env are the
// addresses as they go out.
func compose(m *legacy.Message, pl plan, env addrs, id string, now time.Time) ([]byte, error) {
	var h mail.Header
	h.SetDate(now)
	h.SetAddressList("From", []*mail.Address{{Address: headerAddress(env.from)}})
	var to []*mail.Address
	for _, a := range env.to {
		to = append(to, &mail.Address{Address: headerAddress(a)})
	}
	h.SetAddressList("To", to)
	h.SetMessageID(id)
	h.Set("Auto-Submitted", "no")
	if pl.parent != "" {
		h.SetMsgIDList("In-Reply-To", []string{pl.parent})
		h.SetMsgIDList("References", pl.refs)
	}
	h.SetSubject(pl.subject)

	var buf bytes.Buffer
	if len(m.Attachments) == 0 {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Content-Transfer-Encoding", "quoted-printable")
		w, err := mail.CreateSingleInlineWriter(&buf, h)
		if err != nil {
			return nil, err
		}
		if _, err := io.WriteString(w, crlf(m.Text)); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	mw, err := mail.CreateWriter(&buf, h)
	if err != nil {
		return nil, err
	}
	if m.Text != "" {
		var ih mail.InlineHeader
		ih.Set("Content-Type", "text/plain; charset=utf-8")
		ih.Set("Content-Transfer-Encoding", "quoted-printable")
		w, err := mw.CreateSingleInline(ih)
		if err != nil {
			return nil, err
		}
		if _, err := io.WriteString(w, crlf(m.Text)); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	}
	for i, a := range m.Attachments {
		var ah mail.AttachmentHeader
		name := a.Name
		if name == "" {
			name = "attachment-" + strconv.Itoa(i+1)
		}
		// The name as mail clients read it: RFC 2231 in the
		// Content-Disposition (filename*=utf-8''… when it is not ASCII),
		// and, for clients that know only that, an RFC 2047 name= in the
		// Content-Type, as Thunderbird writes them — unless that would
		// pass RFC 5322's 998 characters a line (go-message does not
		// fold inside quotes; it would cut the name).
		typ, params, err := mime.ParseMediaType(a.Type)
		if err != nil {
			typ, params = "application/octet-stream", map[string]string{}
		}
		params["name"] = name
		ah.SetContentType(typ, params)
		if len(ah.Get("Content-Type")) > 900 {
			delete(params, "name")
			ah.SetContentType(typ, params)
		}
		ah.Set("Content-Disposition", attachmentDisposition(name))
		ah.Set("Content-Transfer-Encoding", "base64")
		// go-message's multipart writer drops the error of writing a
		// part's header (a value with a line break): a part whose header
		// stops short would swallow its body. Write it here first.
		if err := textproto.WriteHeader(io.Discard, ah.Header.Header); err != nil {
			return nil, &legacy.ReasonError{Reason: fmt.Sprintf("the file %q cannot be sent: %v", name, err), Err: legacy.ErrRejected}
		}
		w, err := mw.CreateAttachment(ah)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(a.Data); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// attachmentDisposition is the Content-Disposition of an attachment
// named name: filename="…" when it is ASCII, else RFC 2231's UTF-8
// extended form (filename*=), cut into numbered pieces (filename*0*,
// filename*1*, …) that a header line can fold between when it is long.
func attachmentDisposition(name string) string {
	const piece = 45 // a piece and its parameter name fit a folded line
	v := mime.FormatMediaType("attachment", map[string]string{"filename": name})
	enc, ok := strings.CutPrefix(v, "attachment; filename*=utf-8''")
	if !ok || len(enc) <= piece {
		return v
	}
	var b strings.Builder
	b.WriteString("attachment")
	for i := 0; enc != ""; i++ {
		n := min(len(enc), piece)
		if n < len(enc) && enc[n-1] == '%' {
			n-- // a %XX stays whole
		} else if n < len(enc) && enc[n-2] == '%' {
			n -= 2
		}
		for n < len(enc) && n > 3 && enc[n] == '%' && strings.IndexByte("89AB", enc[n+1]) >= 0 {
			n -= 3 // so does a UTF-8 character (%8X–%BX continue one)
		}
		if i == 0 {
			b.WriteString("; filename*0*=utf-8''" + enc[:n])
		} else {
			fmt.Fprintf(&b, "; filename*%d*=%s", i, enc[:n])
		}
		enc = enc[n:]
	}
	return b.String()
}

func crlf(s string) string {
	return strings.ReplaceAll(normalizeNewlines(s), "\n", "\r\n")
}

var rePrefix = regexp.MustCompile(`(?i)^\s*((re|aw|sv|fwd?|wg)\s*(\[\d+\])?\s*:\s*)+`)

// sameSubject reports whether two subjects are the same modulo reply
// and forward prefixes, case and spacing.
func sameSubject(a, b string) bool {
	norm := func(s string) string {
		return strings.Join(strings.Fields(strings.ToLower(rePrefix.ReplaceAllString(s, ""))), " ")
	}
	return norm(a) == norm(b)
}

// reSubject is "Re: " and the subject without stacked prefixes.
func reSubject(s string) string {
	return "Re: " + rePrefix.ReplaceAllString(s, "")
}

// defaultSubject is the first line of the text, trimmed to 60 characters.
func defaultSubject(text string) string {
	line := strings.TrimSpace(text)
	if i := strings.IndexByte(line, '\n'); i >= 0 {
		line = strings.TrimSpace(line[:i])
	}
	if line == "" {
		return "Message"
	}
	if utf8.RuneCountInString(line) > 60 {
		r := []rune(line)
		line = strings.TrimSpace(string(r[:57])) + "…"
	}
	return line
}

// submit sends raw on a connection from dialSMTP.
func submit(cl *smtp.Client, env addrs, id string, raw []byte) error {
	cl.SubmissionTimeout = 5 * time.Minute
	envid := strings.SplitN(id, "@", 2)[0]
	if err := cl.Mail(env.from, &smtp.MailOptions{Return: smtp.DSNReturnHeaders, EnvelopeID: envid, UTF8: env.utf8}); err != nil {
		return smtpError(stageMail, err)
	}
	for _, to := range env.to {
		if err := cl.Rcpt(to, &smtp.RcptOptions{Notify: []smtp.DSNNotify{smtp.DSNNotifyFailure, smtp.DSNNotifyDelayed}}); err != nil {
			return smtpError(stageRcpt, err)
		}
	}
	w, err := cl.Data()
	if err != nil {
		return smtpError(stageData, err)
	}
	if _, err := w.Write(raw); err != nil {
		return smtpError(stageData, err)
	}
	if err := w.Close(); err != nil {
		return smtpError(stageData, err)
	}
	_ = cl.Quit()
	return nil
}

// errNoStartTLS is the failure of a STARTTLS connection to a server that
// does not offer it (go-smtp reports it as text only).
var errNoStartTLS = errors.New("the server does not offer STARTTLS")

// dialSMTP connects to the submission server, secures the connection as
// smtp_security says (implicit TLS, STARTTLS), says EHLO and authenticates
// when the server offers AUTH. Its errors are the ones Send reports:
// transient (ErrUnavailable) unless the server refused the credentials or
// offers no usable mechanism; they wrap the network or TLS error, which
// Register reads to name the field at fault. release closes the
// connection.
func (n *Network) dialSMTP(ctx context.Context, c *config) (cl *smtp.Client, release func(), err error) {
	d := net.Dialer{Timeout: n.dialTimeout}
	conn, err := d.DialContext(ctx, "tcp", c.smtpAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("email: SMTP server %s unreachable: %w: %w", c.smtpAddr, err, legacy.ErrUnavailable)
	}
	// Closing conn ends whatever waits on it, the greeting included.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	fail := func(e error) (*smtp.Client, func(), error) {
		stop()
		conn.Close()
		if ctx.Err() != nil {
			e = fmt.Errorf("email: SMTP server %s: %w: %w", c.smtpAddr, ctx.Err(), legacy.ErrUnavailable)
		}
		return nil, nil, e
	}
	switch c.smtpSec {
	case SecurityTLS:
		tc := tls.Client(conn, n.tlsFor(c.smtpHost))
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail(fmt.Errorf("email: TLS with SMTP server %s: %w: %w", c.smtpAddr, err, legacy.ErrUnavailable))
		}
		cl = smtp.NewClient(tc)
	case SecurityStartTLS:
		cl, err = smtp.NewClientStartTLS(conn, n.tlsFor(c.smtpHost))
		if err != nil {
			if strings.Contains(err.Error(), "support STARTTLS") {
				err = errNoStartTLS
			}
			return fail(fmt.Errorf("email: SMTP server %s, STARTTLS: %w: %w", c.smtpAddr, err, legacy.ErrUnavailable))
		}
	default:
		cl = smtp.NewClient(conn)
	}
	release = func() {
		stop()
		cl.Close()
	}
	cl.CommandTimeout = time.Minute
	if err := cl.Hello(heloName(c.address)); err != nil {
		release()
		if ctx.Err() != nil {
			return fail(nil)
		}
		var se *smtp.SMTPError
		if c.smtpSec == SecurityStartTLS && !errors.As(err, &se) {
			// After STARTTLS the first command is where the handshake
			// happens (go-smtp starts it lazily): its failure is TLS's.
			return nil, nil, fmt.Errorf("email: SMTP EHLO after STARTTLS: %v: %w", err, &legacy.ReasonError{
				Reason: fmt.Sprintf("the SMTP server %s accepted STARTTLS but does not complete TLS (%s)", c.smtpAddr, netReason(err)), Err: legacy.ErrUnavailable})
		}
		return nil, nil, smtpError("EHLO", err)
	}
	if c.password == "" {
		return cl, release, nil
	}
	var a sasl.Client
	switch {
	case c.xoauth2:
		a = &xoauth2{user: c.username, token: c.password}
	case cl.SupportsAuth("PLAIN"):
		a = sasl.NewPlainClient("", c.username, c.password)
	case cl.SupportsAuth("LOGIN"):
		a = sasl.NewLoginClient(c.username, c.password)
	default:
		if ok, _ := cl.Extension("AUTH"); ok {
			release()
			return nil, nil, fmt.Errorf("email: %w", &legacy.ReasonError{
				Reason: "the SMTP server offers neither AUTH PLAIN nor LOGIN", Err: legacy.ErrUnsupported})
		}
	}
	if a != nil {
		if err := cl.Auth(a); err != nil {
			release()
			if ctx.Err() != nil {
				return fail(nil)
			}
			var se *smtp.SMTPError
			if errors.As(err, &se) && (se.Code == 535 || se.Code == 534 || se.Code == 530 || se.EnhancedCode[1] == 7 && se.EnhancedCode[2] == 8) {
				return nil, nil, fmt.Errorf("email: the SMTP server rejected the username or password (%d %s): %w", se.Code, se.Message, legacy.ErrUnauthorized)
			}
			return nil, nil, smtpError("AUTH", err)
		}
	}
	return cl, release, nil
}

func heloName(addr string) string { return asciiDomain(addr) }

// rateWords are what servers say when they limit a sender's rate ("421
// 4.7.0 Too many messages", "450 Rate limit exceeded", "Throttled"); not
// greylisting ("try again later") nor a per-message limit ("452 4.5.3 Too
// many recipients"), which are ordinary transient failures.
var (
	rateWords = regexp.MustCompile(`(?i)\brate\b|rate.?limit|throttl|slow down|sending limit|too many (messages|mails|e-?mails|connections|sessions|requests|errors|recipients per)`)
	greyWords = regexp.MustCompile(`(?i)gr[ea]ylist`)
)

// smtpError maps an SMTP failure to the contract's errors: 4xx is
// transient (a RateLimitError when the reply speaks of a rate), 5xx
// permanent, mapped by permanentStatus from the RFC 3463 enhanced status
// or, without one, the RFC 5321 reply code of that command.
func smtpError(stage string, err error) error {
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		return fmt.Errorf("email: SMTP %s: %w: %w", stage, err, legacy.ErrUnavailable)
	}
	var status [3]int
	if se.EnhancedCode != smtp.NoEnhancedCode && se.EnhancedCode[0] > 0 {
		status = se.EnhancedCode
	}
	code := strconv.Itoa(se.Code)
	if s := statusString(status); s != "" {
		code += " " + s
	}
	switch {
	case se.Code >= 400 && se.Code < 500:
		if rateWords.MatchString(se.Message) && !greyWords.MatchString(se.Message) {
			// The CodeError carries the server's words into the delay
			// notice.
			return fmt.Errorf("email: SMTP %s: %w: %w", stage, &legacy.CodeError{Code: code, Text: se.Message, Err: legacy.ErrRateLimited}, &legacy.RateLimitError{RetryAfter: time.Minute})
		}
		return fmt.Errorf("email: SMTP %s: %w", stage, &legacy.CodeError{Code: code, Text: se.Message, Err: legacy.ErrUnavailable})
	case se.Code >= 500 && se.Code < 600:
		if status[0] != 5 {
			status = [3]int{} // a 5xx reply with a non-5 status: trust the reply code
		}
		return fmt.Errorf("email: SMTP %s: %w", stage, permanentError(status, se.Code, stage, code, se.Message))
	}
	return fmt.Errorf("email: SMTP %s: %v: %w", stage, err, legacy.ErrUnavailable)
}
