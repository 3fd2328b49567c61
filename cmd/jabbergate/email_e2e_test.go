package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/xmppo/go-xmpp"

	"github.com/jabbergate/jabbergate/component/servertest"
	"github.com/jabbergate/jabbergate/legacy/email/emailtest"
)

// mailbox is an IMAP server (go-imap's in-memory one, which checks
// passwords) and an SMTP submission server (go-smtp) on loopback.
type mailbox struct {
	user     *imapmemserver.User
	imapAddr string
	smtpAddr string
	mu       sync.Mutex
	sent     [][]byte
}

func startMailbox(t *testing.T, user, password string) *mailbox {
	t.Helper()
	mb := &mailbox{}
	mem := imapmemserver.New()
	mb.user = imapmemserver.NewUser(user, password)
	if err := mb.user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(mb.user)
	isrv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		InsecureAuth: true,
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}},
	})
	il, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go isrv.Serve(il)
	t.Cleanup(func() { isrv.Close() })
	mb.imapAddr = il.Addr().String()

	ssrv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &submission{mb: mb, user: user, password: password}, nil
	}))
	ssrv.Domain = "localhost"
	ssrv.AllowInsecureAuth = true
	sl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go ssrv.Serve(sl)
	t.Cleanup(func() { ssrv.Close() })
	mb.smtpAddr = sl.Addr().String()
	return mb
}

func (mb *mailbox) submitted() [][]byte {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return append([][]byte(nil), mb.sent...)
}

type submission struct {
	mb             *mailbox
	user, password string
	authed         bool
}

func (s *submission) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *submission) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, u, p string) error {
		if u != s.user || p != s.password {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		s.authed = true
		return nil
	}), nil
}
func (s *submission) Mail(string, *smtp.MailOptions) error {
	if !s.authed {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "auth required"}
	}
	return nil
}
func (s *submission) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *submission) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.mb.mu.Lock()
	s.mb.sent = append(s.mb.sent, b)
	s.mb.mu.Unlock()
	return nil
}
func (s *submission) Reset()        {}
func (s *submission) Logout() error { return nil }

// TestEmailEndToEnd runs the whole path: a real XMPP client on a real
// Prosody, the gateway with the email adapter, a real Dovecot mailbox and
// an SMTP submission server; a mail delivered into Dovecot reaches the
// client, and the client's answer leaves as a mail continuing the thread.
func TestEmailEndToEnd(t *testing.T) {
	const mailDomain = "mail.localhost"
	mb := startMailbox(t, "alice", "mailpw")
	srv := servertest.Start(t, "prosody", servertest.Options{
		Components: map[string]string{mailDomain: gwSecret},
		Users:      map[string]string{"alice": "alicepw"},
	})
	g := newGatewayProc(t)
	yaml := fmt.Sprintf(`
xmpp:
  server: %s
bridges:
  - network: email
    domain: %s
    secret: %s
    options:
      allow_insecure_loopback: "true"
      poll_interval: 200ms
store:
  backend: bolt
  path: %s
http:
  listen: %s
access:
  allowed_domains: [localhost]
log:
  level: debug
`, srv.ComponentAddr, mailDomain, gwSecret, filepath.Join(t.TempDir(), "jg.db"), g.http)
	runGateway(t, g, yaml)

	alice := dialClient(t, srv, "alice", "alicepw", "mail")
	field := func(k, v string) string { return fmt.Sprintf("<field var='%s'><value>%s</value></field>", k, v) }
	form := func(imapAddr string) string {
		ih, ip, _ := net.SplitHostPort(imapAddr)
		sh, sp, _ := net.SplitHostPort(mb.smtpAddr)
		return field("address", "alice@example.com") + field("imap_host", ih) + field("imap_port", ip) + field("imap_security", "none") +
			field("smtp_host", sh) + field("smtp_port", sp) + field("smtp_security", "none") + field("username", "alice")
	}
	// The in-memory IMAP server checks passwords: a wrong one is refused.
	alice.send(`<iq type='set' id='r0' to='%s'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>%s</x></query></iq>`,
		mailDomain, form(mb.imapAddr)+field("password", "wrong"))
	if r := alice.waitIQ("r0"); r.Type != "error" || r.Error.Condition != "not-authorized" {
		t.Errorf("wrong mail password = %+v", r)
	}
	// The mailbox itself is a real Dovecot (pre-authenticated), with
	// go-smtp's server for submission.
	dv := emailtest.StartDovecot(t, "alice")
	alice.send(`<iq type='set' id='r1' to='%s'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>%s</x></query></iq>`,
		mailDomain, form(dv.Addr)+field("password", "mailpw"))
	if r := alice.waitIQ("r1"); r.Type != "result" {
		t.Fatalf("register = %+v", r)
	}
	// The prompt turns an address into the escaped contact JID.
	alice.send(`<iq type='set' id='g1' to='%s'><query xmlns='jabber:iq:gateway'><prompt>Bob &lt;Bob@Example.ORG&gt;</prompt></query></iq>`, mailDomain)
	if r := alice.waitIQ("g1"); r.Type != "result" || !strings.Contains(string(r.Query), `bob\40example.org@`+mailDomain) {
		t.Errorf("iq:gateway = %+v %s", r, r.Query)
	}

	// Mail → XMPP: wait until the adapter has synchronised the mailbox (it
	// starts at its end), which the gateway's presence reports, then deliver.
	alice.wait("gateway connected", func(st any) bool {
		p, ok := st.(xmpp.Presence)
		return ok && bare(p.From) == mailDomain && p.Type == "" && p.Show == ""
	})
	dv.Deliver(t, "From: Bob <bob@example.org>\nTo: alice@example.com\nSubject: =?utf-8?q?Caf=C3=A9?=\n"+
		"Message-ID: <e2e-1@example.org>\nDate: "+time.Now().UTC().Format(time.RFC1123Z)+"\nMIME-Version: 1.0\n"+
		"Content-Type: text/plain; charset=utf-8\n\nHello from email\n")
	m := alice.waitChat("mail from Bob", func(m xmpp.Chat) bool { return m.Text != "" && bare(m.Remote) == `bob\40example.org@`+mailDomain })
	if m.Text != "Hello from email" || m.Subject != "Café" {
		t.Errorf("inbound mail = %+v", m)
	}

	// XMPP → mail.
	alice.send(`<message type='chat' id='o1' to='bob\40example.org@%s'><body>Answer by mail</body></message>`, mailDomain)
	deadline := time.Now().Add(e2eWait)
	for {
		sent := mb.submitted()
		if len(sent) > 0 && bytes.Contains(sent[len(sent)-1], []byte("Answer by mail")) {
			mail := string(sent[len(sent)-1])
			if !strings.Contains(mail, "To: <bob@example.org>") && !strings.Contains(mail, "To: bob@example.org") {
				t.Errorf("mail without the right To:\n%s", mail)
			}
			if !strings.Contains(mail, "In-Reply-To: <e2e-1@example.org>") {
				t.Errorf("the answer does not continue the thread:\n%s", mail)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no mail submitted; got %d", len(sent))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
