package email

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/legacytest"
)

const (
	testUser = "alice"
	testPass = "secret"
	testAddr = "alice@example.com"
)

// imapServer is an in-memory IMAP server on loopback.
type imapServer struct {
	mu     sync.Mutex
	nudges []chan struct{}
	addr   string
	user   *imapmemserver.User
	srv    *imapserver.Server
}

func startIMAP(t *testing.T, withIdle bool) *imapServer {
	t.Helper()
	mem := imapmemserver.New()
	user := imapmemserver.NewUser(testUser, testPass)
	if err := user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(user)
	caps := imap.CapSet{imap.CapIMAP4rev1: {}}
	if withIdle {
		caps[imap.CapIdle] = struct{}{}
	}
	s := &imapServer{user: user}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			is := &idleSession{Session: mem.NewSession(), nudge: make(chan struct{}, 1)}
			s.mu.Lock()
			s.nudges = append(s.nudges, is.nudge)
			s.mu.Unlock()
			return is, nil, nil
		},
		InsecureAuth: true,
		Caps:         caps,
		Logger:       discardLogger{},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	s.addr, s.srv = ln.Addr().String(), srv
	return s
}

// idleSession makes the memory server's IDLE report mail appended just
// before IDLE began (as Dovecot does): the memory server's own IDLE only
// reports changes made after it registered, which loses a race in tests.
// It polls at the start and whenever deliver nudges it.
type idleSession struct {
	imapserver.Session
	nudge chan struct{}
}

// XOAUTH2 for tests: the access token testToken logs in as testUser.
func (s *idleSession) AuthenticateMechanisms() []string { return []string{"XOAUTH2"} }

func (s *idleSession) Authenticate(mech string) (sasl.Server, error) {
	return &xoauth2Server{ok: func(user, token string) error {
		if user != testUser || token != testToken {
			return imapserver.ErrAuthFailed
		}
		return s.Session.Login(testUser, testPass)
	}}, nil
}

const testToken = "ya29.test-token"

// xoauth2Server is the server side of XOAUTH2, failing the way Google
// does: a JSON challenge, then the error after the client's empty answer.
type xoauth2Server struct {
	ok     func(user, token string) error
	failed error
}

func (s *xoauth2Server) Next(resp []byte) ([]byte, bool, error) {
	if s.failed != nil {
		return nil, true, s.failed
	}
	var user, token string
	for _, kv := range strings.Split(string(resp), "\x01") {
		if v, ok := strings.CutPrefix(kv, "user="); ok {
			user = v
		}
		if v, ok := strings.CutPrefix(kv, "auth=Bearer "); ok {
			token = v
		}
	}
	if err := s.ok(user, token); err != nil {
		s.failed = err
		return []byte(`{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`), false, nil
	}
	return nil, true, nil
}

func (s *idleSession) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	for {
		if err := s.Session.Poll(w, true); err != nil {
			return err
		}
		select {
		case <-s.nudge:
		case <-stop:
			return nil
		}
	}
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}

type literal struct {
	*bytes.Reader
}

func (l literal) Size() int64 { return int64(l.Reader.Len()) }

// deliver appends a mail to INBOX with the given internal date (zero: now).
func (s *imapServer) deliver(t *testing.T, raw string, date time.Time) {
	t.Helper()
	if date.IsZero() {
		date = time.Now()
	}
	raw = crlf(raw)
	if _, err := s.user.Append("INBOX", literal{bytes.NewReader([]byte(raw))}, &imap.AppendOptions{Time: date}); err != nil {
		t.Fatalf("append: %v", err)
	}
	s.mu.Lock()
	for _, ch := range s.nudges {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	s.mu.Unlock()
}

// smtpServer is a go-smtp submission server on loopback that records mail.
type smtpServer struct {
	addr string
	mu   sync.Mutex
	got  []sentMail
	// rcptErr, if set, is returned for RCPT TO; dataErr for DATA.
	rcptErr, dataErr error
	notify           chan struct{}
	// password is the SMTP password (testPass when empty), so a test can
	// make SMTP refuse what IMAP accepts.
	password string
	// sessions counts connections.
	sessions int
}

type sentMail struct {
	from string
	to   []string
	data []byte
	opts *smtp.MailOptions
}

func startSMTP(t *testing.T) *smtpServer {
	t.Helper()
	return startSMTPWith(t, nil)
}

// startSMTPWith starts the server after setup changed its options
// (EnableSMTPUTF8, …).
func startSMTPWith(t *testing.T, setup func(*smtp.Server)) *smtpServer {
	t.Helper()
	s := &smtpServer{notify: make(chan struct{}, 100)}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		s.mu.Lock()
		s.sessions++
		s.mu.Unlock()
		return &smtpSession{srv: s}, nil
	}))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.EnableDSN = true
	srv.ErrorLog = discardLogger{}
	if setup != nil {
		setup(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	s.addr = ln.Addr().String()
	return s
}

func (s *smtpServer) setRcptErr(err error) {
	s.mu.Lock()
	s.rcptErr = err
	s.mu.Unlock()
}

func (s *smtpServer) setDataErr(err error) {
	s.mu.Lock()
	s.dataErr = err
	s.mu.Unlock()
}

func (s *smtpServer) mails() []sentMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sentMail(nil), s.got...)
}

type smtpSession struct {
	srv    *smtpServer
	authed bool
	cur    sentMail
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain, "XOAUTH2"} }

func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	if mech == "XOAUTH2" {
		return &xoauth2Server{ok: func(user, token string) error {
			if user != testUser || token != testToken {
				return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "invalid token"}
			}
			s.authed = true
			return nil
		}}, nil
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		s.srv.mu.Lock()
		want := s.srv.password
		s.srv.mu.Unlock()
		if want == "" {
			want = testPass
		}
		if username != testUser || password != want {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		s.authed = true
		return nil
	}), nil
}

func (s *smtpSession) Mail(from string, opts *smtp.MailOptions) error {
	if !s.authed {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "auth required"}
	}
	s.cur = sentMail{from: from, opts: opts}
	return nil
}

func (s *smtpSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	s.srv.mu.Lock()
	err := s.srv.rcptErr
	s.srv.mu.Unlock()
	if err != nil {
		return err
	}
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.srv.mu.Lock()
	derr := s.srv.dataErr
	s.srv.mu.Unlock()
	if derr != nil {
		return derr
	}
	s.cur.data = b
	s.srv.mu.Lock()
	s.srv.got = append(s.srv.got, s.cur)
	s.srv.mu.Unlock()
	s.srv.notify <- struct{}{}
	return nil
}

func (s *smtpSession) Reset()        { s.cur = sentMail{} }
func (s *smtpSession) Logout() error { return nil }

// testNetwork is a network for loopback servers with fast backoff.
func testNetwork(t *testing.T) *Network {
	t.Helper()
	n, err := New(map[string]string{"allow_insecure_loopback": "true", "poll_interval": "20ms"})
	if err != nil {
		t.Fatal(err)
	}
	n.minBackoff, n.maxBackoff, n.dialTimeout = 5*time.Millisecond, 50*time.Millisecond, 5*time.Second
	n.idleRefresh = time.Hour // IDLE notifications must do
	return n
}

func fields(imapAddr, smtpAddr string) map[string]string {
	ih, ip, _ := net.SplitHostPort(imapAddr)
	f := map[string]string{
		"address": "Alice@Example.com", "username": testUser, "password": testPass,
		"imap_host": ih, "imap_port": ip, "imap_security": "none",
	}
	if smtpAddr != "" {
		sh, sp, _ := net.SplitHostPort(smtpAddr)
		f["smtp_host"], f["smtp_port"], f["smtp_security"] = sh, sp, "none"
	} else {
		f["smtp_host"], f["smtp_port"], f["smtp_security"] = "127.0.0.1", "1", "none"
	}
	return f
}

// running is a session under test.
type running struct {
	rec  *legacytest.Recorder
	sess *session
	stop context.CancelFunc
	done chan error
}

func runSession(t *testing.T, n *Network, f map[string]string, st []byte) *running {
	t.Helper()
	rec := &legacytest.Recorder{}
	ls, err := n.Open(context.Background(), legacy.Account{ID: testAddr, Owner: "o", Fields: f, State: st}, rec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{rec: rec, sess: ls.(*session), stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- ls.Run(ctx) }()
	t.Cleanup(func() { r.close(t) })
	return r
}

func (r *running) close(t *testing.T) error {
	t.Helper()
	r.stop()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("Run did not return after cancel")
		return nil
	}
}

// waitState waits for a SaveState whose watermark is at least uid and
// returns its blob.
func (r *running) waitState(t *testing.T, uid uint32) []byte {
	t.Helper()
	var last []byte
	ev := r.rec.Wait(10*time.Second, func(ev legacy.Event) bool {
		ss, ok := ev.(legacy.SaveState)
		if !ok {
			return false
		}
		var st state
		if st.unmarshal(ss.State) != nil {
			return false
		}
		return st.LastUID >= uid && st.UIDValidity != 0
	})
	if ev == nil {
		t.Fatalf("no SaveState with last_uid >= %d", uid)
	}
	for _, ev := range r.rec.Events() {
		if ss, ok := ev.(legacy.SaveState); ok {
			last = ss.State
		}
	}
	return last
}

func (r *running) waitIncoming(t *testing.T, n int) []legacy.Incoming {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	in := incomings(r.rec)
	for len(in) < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		in = incomings(r.rec)
	}
	if len(in) < n {
		t.Fatalf("got %d incoming mails, want %d: %+v; events %+v", len(in), n, in, r.rec.Events())
	}
	return in
}

func incomings(rec *legacytest.Recorder) []legacy.Incoming {
	var out []legacy.Incoming
	for _, ev := range rec.Events() {
		if in, ok := ev.(legacy.Incoming); ok {
			out = append(out, in)
		}
	}
	return out
}

func simpleMail(from, subject, id, body string) string {
	return "From: " + from + "\nTo: alice@example.com\nSubject: " + subject +
		"\nMessage-ID: <" + id + ">\nDate: Tue, 24 Nov 2026 10:00:00 +0000\nContent-Type: text/plain; charset=utf-8\n\n" + body + "\n"
}

func isErr(err, target error) bool { return errors.Is(err, target) }

func asCodeError(err error, ce **legacy.CodeError) bool { return errors.As(err, ce) }

func runSessionSettings(t *testing.T, n *Network, f, settings map[string]string) *running {
	t.Helper()
	rec := &legacytest.Recorder{}
	ls, err := n.Open(context.Background(), legacy.Account{ID: testAddr, Owner: "o", Fields: f, Settings: settings}, rec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{rec: rec, sess: ls.(*session), stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- ls.Run(ctx) }()
	t.Cleanup(func() { r.close(t) })
	return r
}
