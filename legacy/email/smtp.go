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
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/jabbergate/jabbergate/legacy"
)

// Send implements legacy.Session: it builds the mail and submits it.
func (s *session) Send(ctx context.Context, m *legacy.Message) (legacy.MessageID, error) {
	to, err := parseAddress(string(m.Chat))
	if err != nil {
		return "", err
	}
	id := s.messageID(m.Key)
	raw, err := s.compose(m, to, id, time.Now())
	if err != nil {
		return "", err
	}
	if err := s.submit(ctx, to, id, raw); err != nil {
		return "", err
	}
	return legacy.MessageID(id), nil
}

// messageID is the Message-ID (without angle brackets) for an idempotency
// key: the same key always gives the same id, so a retry after a crash
// sends the same Message-ID and the recipient's client can tell.
func (s *session) messageID(key string) string {
	domain := s.cfg.address[strings.LastIndexByte(s.cfg.address, '@')+1:]
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

// compose builds the RFC 5322 message.
func (s *session) compose(m *legacy.Message, to, id string, now time.Time) ([]byte, error) {
	var h mail.Header
	h.SetDate(now)
	h.SetAddressList("From", []*mail.Address{{Address: s.cfg.address}})
	h.SetAddressList("To", []*mail.Address{{Address: to}})
	h.SetMessageID(id)
	h.Set("Auto-Submitted", "no")

	subject := strings.TrimSpace(m.Subject)
	var refs []string
	var parent string
	var thSubject string
	s.mu.Lock()
	if m.ReplyTo != "" {
		// An explicit reply (XEP-0461) to a mail seen in INBOX answers that
		// mail: its subject, its References and its Message-ID.
		if t, r := s.state.replyContext(string(m.ReplyTo), to); t != nil {
			refs, parent, thSubject = r, string(m.ReplyTo), t.Subject
		}
	}
	if parent == "" {
		th := s.state.Threads[m.Thread]
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
			refs, parent, thSubject = append([]string(nil), th.Refs...), th.Last, th.Subject
		}
	}
	s.mu.Unlock()
	if m.ReplyTo != "" {
		parent = string(m.ReplyTo)
	}
	if parent == "" && m.Thread != "" && strings.Contains(m.Thread, "@") {
		parent = m.Thread // the thread id is the root Message-ID
	}
	if parent != "" {
		if len(refs) == 0 && m.Thread != "" && m.Thread != parent && strings.Contains(m.Thread, "@") {
			refs = []string{m.Thread}
		}
		if len(refs) == 0 || refs[len(refs)-1] != parent {
			refs = append(refs, parent)
		}
		h.SetMsgIDList("In-Reply-To", []string{parent})
		h.SetMsgIDList("References", refs)
	}
	switch {
	case subject != "":
	case thSubject != "":
		subject = reSubject(thSubject)
	default:
		subject = defaultSubject(m.Text)
	}
	h.SetSubject(subject)

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
		io.WriteString(w, crlf(m.Text))
		w.Close()
	}
	for i, a := range m.Attachments {
		var ah mail.AttachmentHeader
		typ := a.Type
		if typ == "" {
			typ = "application/octet-stream"
		}
		ah.Set("Content-Type", typ)
		name := a.Name
		if name == "" {
			name = "attachment-" + strconv.Itoa(i+1)
		}
		ah.SetFilename(name)
		ah.Set("Content-Transfer-Encoding", "base64")
		w, err := mw.CreateAttachment(ah)
		if err != nil {
			return nil, err
		}
		w.Write(a.Data)
		w.Close()
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func crlf(s string) string {
	return strings.ReplaceAll(normalizeNewlines(s), "\n", "\r\n")
}

var rePrefix = regexp.MustCompile(`(?i)^\s*((re|aw|sv|fwd?|wg)\s*(\[\d+\])?\s*:\s*)+`)

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

// submit sends raw to the submission server.
func (s *session) submit(ctx context.Context, to, id string, raw []byte) (err error) {
	cl, release, err := s.net.dialSMTP(ctx, s.cfg)
	if err != nil {
		return err
	}
	defer release()
	cl.SubmissionTimeout = 5 * time.Minute
	envid := strings.SplitN(id, "@", 2)[0]
	if err := cl.Mail(s.cfg.address, &smtp.MailOptions{Return: smtp.DSNReturnHeaders, EnvelopeID: envid}); err != nil {
		return smtpError(stageMail, err)
	}
	if err := cl.Rcpt(to, &smtp.RcptOptions{Notify: []smtp.DSNNotify{smtp.DSNNotifyFailure, smtp.DSNNotifyDelayed}}); err != nil {
		return smtpError(stageRcpt, err)
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

func heloName(addr string) string {
	return addr[strings.LastIndexByte(addr, '@')+1:]
}

var rateWords = regexp.MustCompile(`(?i)rate|too many|throttl|slow down|try again later`)

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
		if rateWords.MatchString(se.Message) {
			return fmt.Errorf("email: SMTP %s: %s %s: %w", stage, code, se.Message, &legacy.RateLimitError{RetryAfter: time.Minute})
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
