// Package email is the email legacy network: mail arrives over IMAP
// (RFC 9051/3501, IDLE per RFC 2177, polling where the server lacks it) and
// leaves over SMTP submission (RFC 6409; implicit TLS per RFC 8314 or
// STARTTLS), with MIME (RFC 2045–2049, RFC 2047 encoded words, RFC 2231)
// handled by github.com/emersion/go-message.
//
// Each XMPP user registers one mailbox. A correspondent is a contact whose
// ChatID is the lower-cased addr-spec ("alice@example.com"); the core turns
// it into a JID with XEP-0106 escaping.
//
// Inbound: the session watches INBOX (read-only, BODY.PEEK, so nothing is
// marked \Seen) and imports every mail above the (UIDVALIDITY, last UID)
// watermark, in UID order, advancing and saving the watermark (SaveState)
// only after Sink.Emit returned nil: a crash imports nothing twice (the
// core deduplicates by id) and skips nothing. The first session starts at
// the mailbox's end as it was when the session was opened (no history
// import; mail delivered between Open and the first connection, to the
// second, is imported). When UIDVALIDITY changes,
// only mail whose INTERNALDATE is after the last imported mail's is
// imported again; older mail is marked seen without being delivered. Text
// is text/plain when there is one, else text/html converted with
// github.com/k3a/html2text; a trailing quote ("On … wrote:" followed by
// ">" lines, "-----Original Message-----", a trailing ">" block) and the
// signature after "-- " are trimmed. Attachments become legacy
// attachments (within max_file_size; larger ones are named in the text).
// Automatic mail (Auto-Submitted other than "no", Precedence bulk/list/junk,
// List-Id) is delivered with an "[automatic]"/"[list]" tag, or skipped
// when the user's "automated" setting says so; it never causes mail to be
// sent. Bounces (multipart/report; report-type=delivery-status, RFC 3464)
// are delivered as a readable notice from the failed recipient whose
// ReplyTo is the Message-ID of the returned mail, which is the MessageID
// Send returned for it; a failed one is also emitted as
// legacy.Undelivered, which the core turns into an error on the user's
// original message, carrying the RFC 3463 status.
//
// Outbound: Send builds a text/plain UTF-8 quoted-printable mail
// (multipart/mixed with attachments) with From, To, Date, a Message-ID
// derived from Message.Key (a retry sends the same Message-ID),
// In-Reply-To/References when continuing a thread and Auto-Submitted: no,
// and submits it with AUTH PLAIN or LOGIN, or XOAUTH2 when the user chose
// it (the password field then holds an OAuth 2.0 access token, used for
// IMAP AUTHENTICATE too; the gateway does not refresh it). Send's success
// means the submission server accepted the mail (250 after DATA): that is
// what Caps.Receipts promises here, not delivery to the recipient's
// mailbox.
// SMTP 4xx replies are transient (ErrUnavailable, or RateLimitError when
// the reply mentions a rate), 5xx are CodeErrors carrying the reply code.
//
// The user's "delivery" setting makes delivery presence-aware: "headers"
// delivers sender and subject only, "hold" leaves mail on the server while
// the user has no available resource (legacy.PresenceWatcher).
//
// Not yet: OAuth token refresh, OAUTHBEARER, folders other than INBOX,
// appending sent mail to the Sent folder, format=flowed reflowing.
//
// Options (bridges[].options in the config):
//
//	allow_insecure_loopback: "true" lets imap_security/smtp_security be
//	                         "none" when the host is a loopback address
//	                         (tests, a local Dovecot); never elsewhere
//	poll_interval:           how often to poll when the server lacks IDLE (default 60s)
//	idle:                    "false" polls every poll_interval even when the server
//	                         offers IDLE (default true)
//	idle_refresh:            how long one IDLE lasts before the mailbox is checked
//	                         again (default 10m): the bound on the delay of mail that
//	                         a server does not report because it arrived just before
//	                         IDLE began (see imap.go, runOnce)
//	max_file_size:           largest attachment, either way (default 20MiB); a size is
//	                         bytes or a number with KiB, MiB, GiB, KB, MB or GB
//	max_message_size:        larger mails are imported as a notice only (default 25MiB)
package email

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/mail"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/idna"

	"github.com/jabbergate/jabbergate/legacy"
)

// Name is the registry name of this network.
const Name = "email"

func init() {
	legacy.Register(Name, func(options map[string]string) (legacy.Network, error) {
		return New(options)
	})
}

// Security modes of the IMAP and SMTP connections.
const (
	SecurityTLS      = "tls"
	SecurityStartTLS = "starttls"
	SecurityNone     = "none"
)

// Network is the email network.
type Network struct {
	allowInsecureLoopback bool
	pollInterval          time.Duration
	noIdle                bool // option idle: "false": poll even when the server offers IDLE
	maxFileSize           int64
	maxMessageSize        int64

	// For tests.
	tlsConfig              *tls.Config // base TLS config (RootCAs)
	minBackoff, maxBackoff time.Duration
	dialTimeout            time.Duration
	idleRefresh            time.Duration // option idle_refresh: re-check the mailbox while idling
	replyTimeout           time.Duration // silence during an IMAP command that ends the connection (imap.go, replyGuard)
}

var (
	_ legacy.Network   = (*Network)(nil)
	_ legacy.Resolver  = (*Network)(nil)
	_ legacy.Registrar = (*Network)(nil)
	_ legacy.Session   = (*session)(nil)
)

// New returns an email network. Unknown and invalid options are an error:
// every one is reported, as a *legacy.OptionError joined with errors.Join,
// in the order of their names.
func New(options map[string]string) (*Network, error) {
	n := &Network{
		pollInterval:   60 * time.Second,
		maxFileSize:    20 << 20,
		maxMessageSize: 25 << 20,
		minBackoff:     time.Second,
		maxBackoff:     5 * time.Minute,
		dialTimeout:    30 * time.Second,
		idleRefresh:    10 * time.Minute,
		replyTimeout:   90 * time.Second,
	}
	var errs []error
	bad := func(k, problem string) { errs = append(errs, &legacy.OptionError{Option: k, Problem: problem}) }
	for _, k := range slices.Sorted(maps.Keys(options)) {
		v := options[k]
		switch k {
		case "allow_insecure_loopback":
			b, err := strconv.ParseBool(v)
			if err != nil {
				bad(k, fmt.Sprintf("want true or false, got %q", v))
			}
			n.allowInsecureLoopback = b
		case "poll_interval":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				bad(k, fmt.Sprintf("want a positive duration, got %q", v))
			}
			n.pollInterval = d
		case "idle":
			b, err := strconv.ParseBool(v)
			if err != nil {
				bad(k, fmt.Sprintf("want true or false, got %q", v))
			}
			n.noIdle = !b
		case "idle_refresh":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				bad(k, fmt.Sprintf("want a positive duration, got %q", v))
			}
			n.idleRefresh = d
		case "max_file_size", "max_message_size":
			i, err := parseSize(v)
			if err != nil {
				bad(k, err.Error())
			}
			if k == "max_file_size" {
				n.maxFileSize = i
			} else {
				n.maxMessageSize = i
			}
		default:
			bad(k, "unknown option (known: allow_insecure_loopback, poll_interval, idle, idle_refresh, max_file_size, max_message_size)")
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return n, nil
}

// sizeUnits are the size suffixes of docs/configuration.md: B, KiB, MiB,
// GiB (powers of 1024) and KB, MB, GB (powers of 1000), case-insensitive.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
	"kb": 1000, "mb": 1000 * 1000, "gb": 1000 * 1000 * 1000,
}

// parseSize reads a positive size option: bytes ("20971520") or a number
// with a unit ("20MiB", "20 MB", "512KiB"), as the config's own sizes are
// written (docs/configuration.md). Bridge options reach the adapter as
// strings, so the adapter parses them itself.
func parseSize(v string) (int64, error) {
	t := strings.TrimSpace(v)
	i := 0
	for i < len(t) && '0' <= t[i] && t[i] <= '9' {
		i++
	}
	mult, ok := sizeUnits[strings.ToLower(strings.TrimSpace(t[i:]))]
	if i == 0 || !ok {
		return 0, fmt.Errorf("want a positive size: bytes, or a number with KiB, MiB, GiB, KB, MB or GB (e.g. 20MiB), got %q", v)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is too large", v)
	}
	if n == 0 {
		return 0, fmt.Errorf("want a positive size, got %q", v)
	}
	return n * mult, nil
}

var securityOptions = []legacy.Option{
	{Label: "TLS (implicit)", Value: SecurityTLS},
	{Label: "STARTTLS", Value: SecurityStartTLS},
	{Label: "None (local servers only)", Value: SecurityNone},
}

// Info implements legacy.Network.
func (n *Network) Info() legacy.Info {
	return legacy.Info{
		Name:        Name,
		DiscoType:   "smtp",
		DisplayName: "Email",
		Instructions: "Enter your mailbox: the address, the IMAP server for incoming mail and the SMTP submission server for outgoing mail. " +
			"Empty hosts default to imap.<domain> and smtp.<domain>; empty ports to the standard port of the chosen security (993/143, 465/587). " +
			"The username defaults to the address. Your password is stored encrypted.",
		Fields: []legacy.Field{
			{Var: "address", Label: "Email address", Required: true},
			{Var: "imap_host", Label: "IMAP server"},
			{Var: "imap_port", Label: "IMAP port"},
			{Var: "imap_security", Label: "IMAP security", Type: legacy.ListSingle, Default: SecurityTLS, Options: securityOptions},
			{Var: "smtp_host", Label: "SMTP server"},
			{Var: "smtp_port", Label: "SMTP port"},
			{Var: "smtp_security", Label: "SMTP security", Type: legacy.ListSingle, Default: SecurityTLS, Options: securityOptions},
			{Var: "username", Label: "Username"},
			{Var: "password", Label: "Password", Type: legacy.TextPrivate, Secret: true, Required: true},
			{Var: "auth", Label: "Authentication", Type: legacy.ListSingle, Default: "password",
				Options: []legacy.Option{{Label: "Password (PLAIN/LOGIN)", Value: "password"}, {Label: "OAuth 2.0 access token (XOAUTH2)", Value: "xoauth2"}},
				Desc:    "With XOAUTH2 the password field holds an OAuth 2.0 access token; the gateway does not refresh it."},
		},
		Settings: []legacy.Field{
			{Var: "automated", Label: "Automatic and mailing-list mail", Type: legacy.ListSingle, Default: "deliver",
				Options: []legacy.Option{{Label: "Deliver, tagged", Value: "deliver"}, {Label: "Skip", Value: "skip"}}},
			{Var: "delivery", Label: "Mail delivery", Type: legacy.ListSingle, Default: "full",
				Options: []legacy.Option{{Label: "Full mail", Value: "full"}, {Label: "Headers only (sender and subject)", Value: "headers"},
					{Label: "Hold while I am offline", Value: "hold"}},
				Desc: "With \"hold\", mail stays on the server while none of your XMPP clients is online and arrives when one comes back; the gateway learns that from your presence, so approve its presence subscription request."},
		},
		Prompt:     "Email address",
		PromptDesc: "Enter the email address of the person to write to.",
		Caps: legacy.Caps{
			Receipts: true, // Send's success: accepted by the submission server
			Files:    true,
			Replies:  true,
		},
		MaxTextLength: 1 << 20,
		OutboxTTL:     24 * time.Hour,
		MaxFileSize:   n.maxFileSize,
	}
}

// Resolve implements legacy.Resolver: "Alice <Alice@Example.com>",
// "mailto:alice@example.com" and "alice@example.com" all give
// "alice@example.com".
func (n *Network) Resolve(ctx context.Context, input string) (legacy.ChatID, error) {
	addr, err := parseAddress(input)
	if err != nil {
		return "", err
	}
	return legacy.ChatID(addr), nil
}

// parseAddress returns the canonical addr-spec of a typed address: the
// local part lower-cased (quoted where it is no dot-atom, as in
// "\"john doe\"@example.net"), the domain as canonicalDomain gives it.
func parseAddress(input string) (string, error) {
	s := strings.TrimSpace(input)
	if len(s) >= 7 && strings.EqualFold(s[:7], "mailto:") {
		s = s[7:]
		if i := strings.IndexByte(s, '?'); i >= 0 {
			s = s[:i]
		}
	}
	if s == "" {
		return "", fmt.Errorf("email: empty address: %w", legacy.ErrInvalidAddress)
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		// Plain quotes: the gateway shows this to the user (Resolve).
		return "", fmt.Errorf("email: \"%s\" is not an email address (%s): %w", oneLine(input), strings.TrimPrefix(err.Error(), "mail: "), legacy.ErrInvalidAddress)
	}
	c, err := canonicalAddress(a.Address)
	if err != nil {
		return "", fmt.Errorf("email: \"%s\" is not an email address: %w", oneLine(input), legacy.ErrInvalidAddress)
	}
	return c, nil
}

// canonicalAddress is the contact id of an address as net/mail and
// go-message give it (the local part unquoted: "john doe@example.net"):
// the local part lower-cased and quoted (RFC 5322 quoted-string) when it
// is not a dot-atom, the domain canonical. Control characters and an
// empty local part or domain are refused.
func canonicalAddress(addr string) (string, error) {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return "", errors.New("no local part or domain")
	}
	for _, r := range addr {
		if r < 0x20 || r == 0x7f {
			return "", errors.New("control character")
		}
	}
	local, domain := strings.ToLower(addr[:at]), canonicalDomain(addr[at+1:])
	if strings.ContainsAny(domain, " \"\\") {
		return "", errors.New("bad domain")
	}
	if !isDotAtom(local) {
		local = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(local) + `"`
	}
	return local + "@" + domain, nil
}

// isDotAtom reports whether s is an RFC 5322 dot-atom (UTF-8 allowed,
// RFC 6532): atext runs separated by single dots.
func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 0x80, 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		case strings.ContainsRune("!#$%&'*+-/=?^_`{|}~.", r):
		default:
			return false
		}
	}
	return true
}

// headerAddress is a contact id as go-message's header writer wants it:
// the local part unquoted (it quotes it again).
func headerAddress(id string) string {
	if !strings.HasPrefix(id, `"`) {
		return id
	}
	if a, err := mail.ParseAddress(id); err == nil {
		return a.Address
	}
	return id
}

// canonicalDomain is the one form of a domain in contact ids, whichever
// way the address came: lower-cased, an internationalised domain as its
// U-label ("bücher.de" for "xn--bcher-kva.de" and "Bücher.de", RFC 5890).
// Mail to it goes out with the A-label when the server lacks SMTPUTF8
// (outAddress), and the answer, from the A-label, is the same contact. A
// domain IDNA refuses (a domain literal, an underscore) is only
// lower-cased.
func canonicalDomain(d string) string {
	d = strings.ToLower(d)
	if u, err := idna.Lookup.ToUnicode(d); err == nil && u != "" {
		return strings.ToLower(u)
	}
	return d
}

// config is one account's parsed registration.
type config struct {
	address            string // lower-cased
	imapAddr, smtpAddr string // host:port
	imapHost, smtpHost string
	imapSec, smtpSec   string
	username, password string
	xoauth2            bool
}

func (n *Network) parseFields(f map[string]string) (*config, error) {
	addr, err := parseAddress(f["address"])
	if err != nil {
		return nil, &legacy.FieldError{Var: "address", Reason: "not an email address"}
	}
	domain := addr[strings.LastIndexByte(addr, '@')+1:]
	c := &config{address: addr, username: f["username"], password: f["password"]}
	if c.username == "" {
		c.username = addr
	}
	if c.password == "" {
		return nil, &legacy.FieldError{Var: "password", Reason: "required"}
	}
	switch strings.ToLower(strings.TrimSpace(f["auth"])) {
	case "", "password":
	case "xoauth2":
		c.xoauth2 = true
	default:
		return nil, &legacy.FieldError{Var: "auth", Reason: "want password or xoauth2"}
	}
	var e error
	c.imapHost, c.imapAddr, c.imapSec, e = n.server(f, "imap", "imap."+domain, 993, 143)
	if e != nil {
		return nil, e
	}
	c.smtpHost, c.smtpAddr, c.smtpSec, e = n.server(f, "smtp", "smtp."+domain, 465, 587)
	if e != nil {
		return nil, e
	}
	return c, nil
}

func (n *Network) server(f map[string]string, proto, defHost string, tlsPort, startTLSPort int) (host, addr, sec string, err error) {
	host = strings.TrimSpace(f[proto+"_host"])
	if host == "" {
		host = defHost
	}
	sec = strings.ToLower(strings.TrimSpace(f[proto+"_security"]))
	if sec == "" {
		sec = SecurityTLS
	}
	port := tlsPort
	switch sec {
	case SecurityTLS:
	case SecurityStartTLS:
		port = startTLSPort
	case SecurityNone:
		if !n.allowInsecureLoopback || !isLoopback(host) {
			return "", "", "", &legacy.FieldError{Var: proto + "_security", Reason: "\"none\" is only allowed for a loopback host on a gateway with allow_insecure_loopback"}
		}
		port = startTLSPort
	default:
		return "", "", "", &legacy.FieldError{Var: proto + "_security", Reason: "want tls, starttls or none"}
	}
	if p := strings.TrimSpace(f[proto+"_port"]); p != "" {
		i, err := strconv.Atoi(p)
		if err != nil || i <= 0 || i > 65535 {
			return "", "", "", &legacy.FieldError{Var: proto + "_port", Reason: "want a port number"}
		}
		port = i
	}
	return host, net.JoinHostPort(host, strconv.Itoa(port)), sec, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (n *Network) tlsFor(host string) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if n.tlsConfig != nil {
		c = n.tlsConfig.Clone()
	}
	c.ServerName = host
	return c
}

// Register implements legacy.Registrar: it logs in to the IMAP server,
// then checks the SMTP submission server the way Send will use it
// (connect, TLS or STARTTLS, EHLO, AUTH, QUIT: no mail is sent), so that
// a wrong SMTP host, port, security or password is refused now rather
// than found by every message waiting out the outbox TTL. The account id
// is the lower-cased address.
func (n *Network) Register(ctx context.Context, fields map[string]string) (legacy.AccountID, error) {
	c, err := n.parseFields(fields)
	if err != nil {
		return "", err
	}
	cl, _, err := n.dialIMAP(ctx, c, nil)
	if err != nil {
		return "", err
	}
	cl.Logout().Wait()
	cl.Close()
	if err := n.checkSMTP(ctx, c); err != nil {
		return "", err
	}
	return legacy.AccountID(c.address), nil
}

// checkSMTP connects and authenticates to the submission server and says
// QUIT, within dialTimeout. Its errors name the registration field at
// fault where one is: smtp_host for a name that does not resolve,
// smtp_port for a refused connection or a server that does not speak
// SMTP, smtp_security for a TLS mismatch or a server without STARTTLS.
// Rejected credentials are ErrUnauthorized; a server that does not answer
// in time is ErrUnavailable, as for IMAP.
func (n *Network) checkSMTP(ctx context.Context, c *config) error {
	cctx, cancel := context.WithTimeout(ctx, n.dialTimeout)
	defer cancel()
	cl, release, err := n.dialSMTP(cctx, c)
	if err != nil {
		return smtpCheckError(cctx, c, n.dialTimeout, err)
	}
	defer release()
	if err := cl.Quit(); err != nil && cctx.Err() != nil {
		return smtpCheckError(cctx, c, n.dialTimeout, err)
	}
	return nil
}

// smtpCheckError turns a failed SMTP check into the registration error.
func smtpCheckError(ctx context.Context, c *config, timeout time.Duration, err error) error {
	if legacy.IsPermanent(err) {
		return err // rejected credentials, no usable AUTH, a 5xx refusal
	}
	port := c.smtpAddr[strings.LastIndexByte(c.smtpAddr, ':')+1:]
	hint := "465 is usually tls, 587 starttls"
	var dns *net.DNSError
	var rec tls.RecordHeaderError
	var proto textproto.ProtocolError
	switch {
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		return fmt.Errorf("email: the SMTP server %s did not answer within %s (is smtp_security right for port %s? %s): %w",
			c.smtpAddr, timeout, port, hint, legacy.ErrUnavailable)
	case errors.As(err, &dns) && dns.IsNotFound:
		return &legacy.FieldError{Var: "smtp_host", Reason: fmt.Sprintf("the SMTP server %s does not exist (no such host)", c.smtpHost)}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &legacy.FieldError{Var: "smtp_port", Reason: fmt.Sprintf("nothing accepts connections on port %s of %s (connection refused)", port, c.smtpHost)}
	case errors.Is(err, errNoStartTLS):
		return &legacy.FieldError{Var: "smtp_security", Reason: fmt.Sprintf("the SMTP server %s does not offer STARTTLS (%s)", c.smtpAddr, hint)}
	case errors.As(err, &rec):
		return &legacy.FieldError{Var: "smtp_security", Reason: fmt.Sprintf("the SMTP server %s does not speak TLS on this port (%s)", c.smtpAddr, hint)}
	case errors.As(err, &proto):
		return &legacy.FieldError{Var: "smtp_port", Reason: fmt.Sprintf("the server at %s does not answer as an SMTP server", c.smtpAddr)}
	}
	return err
}

// Open implements legacy.Network.
func (n *Network) Open(ctx context.Context, acct legacy.Account, sink legacy.Sink) (legacy.Session, error) {
	if sink == nil {
		return nil, errors.New("email: nil sink")
	}
	c, err := n.parseFields(acct.Fields)
	if err != nil {
		return nil, err
	}
	s := &session{net: n, cfg: c, sink: sink, acct: acct.ID, automated: acct.Settings["automated"],
		delivery: acct.Settings["delivery"], wake: make(chan struct{}, 1), opened: time.Now(),
		log: acct.Logger(slog.Default())}
	if err := s.state.unmarshal(acct.State); err != nil {
		return nil, fmt.Errorf("email: saved state: %v", err)
	}
	return s, nil
}
