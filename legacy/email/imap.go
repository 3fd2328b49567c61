package email

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/jabbergate/jabbergate/legacy"
)

// ownMessageID matches the Message-IDs Send generates.
var ownMessageID = regexp.MustCompile(`^jg\.[0-9a-f]{32}@`)

// maxThreads bounds the thread memory kept in the state blob.
const maxThreads = 200

// state is the session's saved state (SaveState): the watermark and what
// Send needs to continue a thread.
type state struct {
	UIDValidity uint32 `json:"uidvalidity"`
	LastUID     uint32 `json:"last_uid"`
	// LastDate is the INTERNALDATE of the last imported mail.
	LastDate time.Time `json:"last_date,omitzero"`
	// Floor, set after a UIDVALIDITY change, hides the mail older than it
	// among the UIDs up to FloorUntil (the mailbox as it was at the
	// change); mail that arrives after the change is imported whatever
	// its date (a mail moved in from another folder keeps its old one).
	Floor      time.Time `json:"floor,omitzero"`
	FloorUntil uint32    `json:"floor_until,omitempty"`
	// Threads maps a thread id (root Message-ID) to what a reply needs.
	Threads map[string]*thread `json:"threads,omitempty"`
}

type thread struct {
	Subject string    `json:"subject"`
	Last    string    `json:"last"` // Message-ID of the last mail
	Refs    []string  `json:"refs,omitempty"`
	Seen    time.Time `json:"seen"`
	With    string    `json:"with,omitempty"` // the correspondent's address
	// ReplyTo are the Reply-To addresses of the last mail, when it had
	// some other than With: an answer in this thread goes there.
	ReplyTo []string `json:"reply_to,omitempty"`
	// Sent are the Message-IDs of the last mails the user sent in this
	// thread (at most maxSentPerThread), so that a correction of one
	// (legacy.Message.Corrects) continues the thread it is in.
	Sent []string `json:"sent,omitempty"`
}

// maxSentPerThread bounds thread.Sent.
const maxSentPerThread = 20

// addSent records id as sent in t.
func (t *thread) addSent(id string) {
	if slices.Contains(t.Sent, id) {
		return
	}
	t.Sent = append(t.Sent, id)
	if len(t.Sent) > maxSentPerThread {
		t.Sent = slices.Delete(t.Sent, 0, len(t.Sent)-maxSentPerThread)
	}
}

// sentIn returns the thread with the correspondent with in which the user
// sent the mail id, or nil. Call with s.mu held.
func (st *state) sentIn(id, with string) *thread {
	var best *thread
	for k, t := range st.Threads {
		if t.With != with || (k != id && !slices.Contains(t.Sent, id)) {
			continue
		}
		if best == nil || t.Seen.After(best.Seen) {
			best = t
		}
	}
	return best
}

func (s *state) unmarshal(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	return json.Unmarshal(b, s)
}

// session is one mailbox.
type session struct {
	net       *Network
	cfg       *config
	sink      legacy.Sink
	acct      legacy.AccountID
	automated string
	delivery  string      // "full" (default), "headers" or "hold"
	online    atomic.Bool // the XMPP user has an available resource (PresenceWatcher)
	wake      chan struct{}
	opened    time.Time // when Open made the session: the first run imports mail from then on

	log      *slog.Logger
	saveMu   sync.Mutex // serialises save: the SaveStates of Run and Send reach the core in the order of the changes
	mu       sync.Mutex // guards state
	state    state
	contacts map[string]bool // senders reported this run (Run's goroutine only)
}

var _ legacy.PresenceWatcher = (*session)(nil)

// UserPresence implements legacy.PresenceWatcher: with delivery "hold",
// mail is imported only while the user is online; coming online wakes the
// import loop.
func (s *session) UserPresence(available bool) {
	s.online.Store(available)
	if available {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// holding reports whether mail must stay on the server for now.
func (s *session) holding() bool { return s.delivery == "hold" && !s.online.Load() }

// authError wraps an IMAP login failure.
func authError(err error) error {
	return reason("the IMAP server rejected the username or password",
		fmt.Errorf("email: the IMAP server rejected the username or password (%v): %w", err, legacy.ErrUnauthorized))
}

// reason gives err the text the user reads about it (the gateway's
// presence status, the login-failed notice, a registration error): a
// legacy.ReasonError whose Err is err itself, so errors.Is still finds
// the sentinel and the log still gets the whole chain.
func reason(text string, err error) error {
	return &legacy.ReasonError{Reason: text, Err: err}
}

// netReason says in a few words why a connection failed: "connection
// refused", "no such host", "no answer", else "network error".
func netReason(err error) string {
	var dns *net.DNSError
	var ne net.Error
	switch {
	case errors.As(err, &dns) && dns.IsNotFound:
		return "no such host"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "host unreachable"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return "connection closed"
	case errors.As(err, &ne) && ne.Timeout():
		return "no answer"
	}
	var cert *tls.CertificateVerificationError
	var rec tls.RecordHeaderError
	switch {
	case errors.As(err, &cert):
		return "its certificate is not trusted"
	case errors.As(err, &rec):
		return "it does not speak TLS on this port"
	}
	return "network error"
}

// statusText is what the user reads about the end of a connection: the
// reason an error carries, else that the connection was lost (after the
// mailbox was open) or could not be made.
func statusText(err error, connected bool) string {
	var re *legacy.ReasonError
	switch {
	case errors.As(err, &re) && re.Reason != "":
		return re.Reason
	case errors.Is(err, legacy.ErrUnauthorized):
		return "the IMAP server rejected the username or password"
	case connected:
		return "the connection to the IMAP server was lost; reconnecting"
	}
	return "cannot connect to the IMAP server; retrying"
}

// progressConn notes when bytes last came from the server (replyGuard).
type progressConn struct {
	net.Conn
	last atomic.Int64 // unix nanoseconds
}

func (c *progressConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

// replyGuard closes an IMAP connection whose server goes silent while a
// command waits for its reply: go-imap sets no deadline on a reply, and a
// server or middlebox that hangs but keeps the TCP connection (which
// keepalives never notice) would hold the session for ever, "connected".
// Any byte from the server is progress, so a long FETCH of a large mail
// is not cut. It is disarmed while the session idles or waits to poll,
// when silence is normal.
type replyGuard struct {
	armedAt atomic.Int64 // unix nanoseconds; 0: disarmed
	stop    chan struct{}
}

func (s *session) newReplyGuard(pc *progressConn, cl *imapclient.Client) *replyGuard {
	g := &replyGuard{stop: make(chan struct{})}
	timeout := s.net.replyTimeout
	go func() {
		t := time.NewTicker(max(timeout/8, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-g.stop:
				return
			case <-cl.Closed():
				return
			case <-t.C:
			}
			at := g.armedAt.Load()
			if at == 0 {
				continue
			}
			if last := max(at, pc.last.Load()); time.Since(time.Unix(0, last)) > timeout {
				s.log.Warn("email: the IMAP server sent nothing while a command waited for its reply; reconnecting", "silent_for", timeout)
				cl.Close()
				return
			}
		}
	}()
	g.arm()
	return g
}

func (g *replyGuard) arm()    { g.armedAt.Store(time.Now().UnixNano()) }
func (g *replyGuard) disarm() { g.armedAt.Store(0) }
func (g *replyGuard) close()  { close(g.stop) }

// dialIMAP connects and logs in. newMail, if set, is signalled when the
// server reports a new message count. The progressConn under the client
// is returned for the session's replyGuard.
func (n *Network) dialIMAP(ctx context.Context, c *config, newMail chan<- struct{}) (*imapclient.Client, *progressConn, error) {
	opts := &imapclient.Options{}
	if newMail != nil {
		opts.UnilateralDataHandler = &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					select {
					case newMail <- struct{}{}:
					default:
					}
				}
			},
		}
	}
	d := net.Dialer{Timeout: n.dialTimeout}
	raw, err := d.DialContext(ctx, "tcp", c.imapAddr)
	if err != nil {
		return nil, nil, reason(fmt.Sprintf("cannot reach the IMAP server %s (%s)", c.imapAddr, netReason(err)),
			fmt.Errorf("email: IMAP server %s unreachable: %v: %w", c.imapAddr, err, legacy.ErrUnavailable))
	}
	// Greeting, TLS and login within dialTimeout: a server that accepts
	// and then says nothing must not hold the session.
	raw.SetDeadline(time.Now().Add(n.dialTimeout))
	pc := &progressConn{Conn: raw}
	var conn net.Conn = pc
	var cl *imapclient.Client
	switch c.imapSec {
	case SecurityTLS:
		cl = imapclient.New(tls.Client(conn, n.tlsFor(c.imapHost)), opts)
	case SecurityStartTLS:
		opts.TLSConfig = n.tlsFor(c.imapHost)
		cl, err = imapclient.NewStartTLS(conn, opts)
		if err != nil {
			conn.Close()
			return nil, nil, reason(fmt.Sprintf("cannot start TLS with the IMAP server %s (%s)", c.imapAddr, netReason(err)),
				fmt.Errorf("email: IMAP STARTTLS with %s: %v: %w", c.imapAddr, err, legacy.ErrUnavailable))
		}
	default:
		cl = imapclient.New(conn, opts)
	}
	stop := context.AfterFunc(ctx, func() { cl.Close() })
	defer stop()
	if err := cl.WaitGreeting(); err != nil {
		cl.Close()
		return nil, nil, reason(fmt.Sprintf("the IMAP server %s did not answer as an IMAP server (%s)", c.imapAddr, netReason(err)),
			fmt.Errorf("email: IMAP server %s: %v: %w", c.imapAddr, err, legacy.ErrUnavailable))
	}
	if cl.State() == imap.ConnStateAuthenticated {
		raw.SetDeadline(time.Time{})
		return cl, pc, nil // PREAUTH greeting (a local server started for this user)
	}
	var login error
	if c.xoauth2 {
		login = cl.Authenticate(&xoauth2{user: c.username, token: c.password})
	} else {
		login = cl.Login(c.username, c.password).Wait()
	}
	if err := login; err != nil {
		cl.Close()
		var ie *imap.Error
		if errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeNo {
			switch ie.Code {
			case imap.ResponseCodeUnavailable, imap.ResponseCodeServerBug, imap.ResponseCodeLimit:
				return nil, nil, reason("the IMAP server cannot log you in now ("+ie.Text+"); retrying",
					fmt.Errorf("email: IMAP login: %v: %w", err, legacy.ErrUnavailable))
			}
			return nil, nil, authError(err)
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, reason("the IMAP login failed ("+netReason(err)+"); retrying",
			fmt.Errorf("email: IMAP login: %v: %w", err, legacy.ErrUnavailable))
	}
	raw.SetDeadline(time.Time{})
	return cl, pc, nil
}

// Run implements legacy.Session: it watches INBOX, reconnecting with
// backoff, until ctx ends or the credentials are rejected.
func (s *session) Run(ctx context.Context) error {
	backoff := s.net.minBackoff
	for {
		connected, err := s.runOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		// The user reads a short reason (statusText); the log gets the
		// chain.
		if errors.Is(err, legacy.ErrUnauthorized) {
			s.status(ctx, legacy.StatusUnauthorized, statusText(err, connected))
			return err
		}
		if connected {
			backoff = s.net.minBackoff
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		s.log.Warn("email: IMAP connection ended; reconnecting", "err", err, "in", wait)
		s.status(ctx, legacy.StatusDisconnected, statusText(err, connected))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, s.net.maxBackoff)
	}
}

func (s *session) status(ctx context.Context, st legacy.Status, text string) {
	_ = s.sink.Emit(ctx, legacy.StatusEvent{Status: st, Text: text})
}

// runOnce connects, imports and waits for new mail until an error. It
// reports whether it got as far as selecting the mailbox.
func (s *session) runOnce(ctx context.Context) (connected bool, err error) {
	s.status(ctx, legacy.StatusConnecting, "")
	newMail := make(chan struct{}, 1)
	cl, pc, err := s.net.dialIMAP(ctx, s.cfg, newMail)
	if err != nil {
		return false, err
	}
	defer cl.Close()
	stop := context.AfterFunc(ctx, func() { cl.Close() })
	defer stop()
	guard := s.newReplyGuard(pc, cl)
	defer guard.close()

	sel, err := cl.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return false, reason("the IMAP server cannot open your INBOX; retrying", fmt.Errorf("email: EXAMINE INBOX: %w", err))
	}
	if err := s.sync(ctx, cl, sel); err != nil {
		return false, err
	}
	s.status(ctx, legacy.StatusConnected, "")
	idle := cl.Caps().Has(imap.CapIdle) && !s.net.noIdle
	for {
		if err := s.ingest(ctx, cl); err != nil {
			return true, err
		}
		if idle {
			cmd, err := cl.Idle()
			if err != nil {
				return true, fmt.Errorf("email: IDLE: %w", err)
			}
			// Mail that lands between the last UID FETCH and the moment
			// the server starts IDLE is reported at once by servers that
			// send pending updates when IDLE begins (Dovecot), but not by
			// all: go-imap's imapmemserver only reports changes made after
			// its IDLE registered, and holds that EXISTS until the next
			// change. Nothing on this connection can see it without
			// ending IDLE, so look again every idleRefresh regardless: the
			// bound on that delay (option idle_refresh). This was the
			// "polling" flake of the first end-to-end test: go-imap's
			// server advertises IDLE with IMAP4rev1 whatever Options.Caps
			// says, so that session was idling, not polling, and waited
			// for the 10-minute refresh. Option idle=false really polls.
			guard.disarm()
			t := time.NewTimer(s.net.idleRefresh)
			select {
			case <-newMail:
			case <-s.wake:
			case <-t.C:
			case <-ctx.Done():
			case <-cl.Closed():
			}
			t.Stop()
			guard.arm() // DONE must be answered
			cmd.Close()
			if err := cmd.Wait(); err != nil {
				return true, fmt.Errorf("email: IDLE: %w", err)
			}
		} else {
			guard.disarm()
			t := time.NewTimer(s.net.pollInterval)
			select {
			case <-t.C:
			case <-s.wake:
				t.Stop()
			case <-ctx.Done():
				t.Stop()
			}
			guard.arm()
			if err := cl.Noop().Wait(); err != nil {
				return true, fmt.Errorf("email: NOOP: %w", err)
			}
		}
		if ctx.Err() != nil {
			return true, ctx.Err()
		}
	}
}

// sync reconciles the saved watermark with the selected mailbox.
func (s *session) sync(ctx context.Context, cl *imapclient.Client, sel *imap.SelectData) error {
	s.mu.Lock()
	st := s.state
	s.mu.Unlock()
	if st.UIDValidity == sel.UIDValidity && st.UIDValidity != 0 {
		return nil
	}
	if st.UIDValidity == 0 {
		// First run: start at the end of the mailbox as it was when the
		// session was opened, not at the first EXAMINE: the first
		// connection may come much later (a slow server, a failed first
		// attempt and its backoff), and mail delivered meanwhile would
		// otherwise be skipped.
		last, err := lastUID(cl, sel)
		if err != nil {
			return err
		}
		if last, err = s.sinceOpened(cl, sel, last); err != nil {
			return err
		}
		return s.save(ctx, func(st *state) {
			st.UIDValidity, st.LastUID, st.LastDate = sel.UIDValidity, last, time.Now().UTC()
		})
	}
	// UIDVALIDITY changed: every UID is void. Walk the new mailbox from
	// the start but deliver, of what is in it now, only mail not older
	// than the last import (the same second included: a mail imported
	// before comes again under its Message-ID, which the gateway drops).
	until, err := lastUID(cl, sel)
	if err != nil {
		return err
	}
	return s.save(ctx, func(st *state) {
		st.UIDValidity, st.LastUID, st.Floor, st.FloorUntil = sel.UIDValidity, 0, st.LastDate, until
		if until == 0 {
			st.Floor = time.Time{} // an empty mailbox: all that comes is new
		}
	})
}

// lookBack is how many of the newest messages the first run examines for
// mail delivered after the session was opened.
const lookBack = 50

// sinceOpened lowers the first run's watermark last so that it imports
// the mail whose INTERNALDATE is not before the moment the session was
// opened, among the newest lookBack messages: from the oldest such mail
// on, everything is imported. INTERNALDATE has whole seconds, so mail of
// the very second of Open is left out (as before): the gap this closes is
// a first connection that comes seconds or minutes after Open.
func (s *session) sinceOpened(cl *imapclient.Client, sel *imap.SelectData, last uint32) (uint32, error) {
	if s.opened.IsZero() || sel.NumMessages == 0 {
		return last, nil
	}
	from := uint32(1)
	if sel.NumMessages > lookBack {
		from = sel.NumMessages - lookBack + 1
	}
	var set imap.SeqSet
	set.AddRange(from, sel.NumMessages)
	msgs, err := cl.Fetch(set, &imap.FetchOptions{UID: true, InternalDate: true}).Collect()
	if err != nil {
		return 0, fmt.Errorf("email: FETCH the newest messages: %w", err)
	}
	since := s.opened
	floor := last
	for _, m := range msgs {
		if uid := uint32(m.UID); uid != 0 && uid <= last && !m.InternalDate.Before(since) {
			floor = min(floor, uid-1)
		}
	}
	return floor, nil
}

// lastUID is UIDNEXT-1, or the UID of the last message where the server
// does not send UIDNEXT.
func lastUID(cl *imapclient.Client, sel *imap.SelectData) (uint32, error) {
	if sel.UIDNext > 0 {
		return uint32(sel.UIDNext) - 1, nil
	}
	if sel.NumMessages == 0 {
		return 0, nil
	}
	msgs, err := cl.Fetch(imap.SeqSetNum(sel.NumMessages), &imap.FetchOptions{UID: true}).Collect()
	if err != nil {
		return 0, fmt.Errorf("email: FETCH last UID: %w", err)
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	return uint32(msgs[0].UID), nil
}

// save changes the state and asks the core to store it.
func (s *session) save(ctx context.Context, f func(*state)) error {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.mu.Lock()
	f(&s.state)
	b, err := json.Marshal(&s.state)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if err := s.sink.Emit(ctx, legacy.SaveState{State: b}); err != nil {
		return reason("the gateway could not save its progress; retrying", fmt.Errorf("email: saving the watermark: %w", err))
	}
	return nil
}

// ingest imports every mail above the watermark, in UID order.
func (s *session) ingest(ctx context.Context, cl *imapclient.Client) error {
	if s.holding() {
		return nil // delivery "hold": the mail waits on the server
	}
	s.mu.Lock()
	from := s.state.LastUID
	s.mu.Unlock()
	var set imap.UIDSet
	set.AddRange(imap.UID(from+1), 0) // from+1:*
	msgs, err := cl.Fetch(set, &imap.FetchOptions{UID: true, InternalDate: true, RFC822Size: true}).Collect()
	if err != nil {
		return fmt.Errorf("email: UID FETCH: %w", err)
	}
	// "n:*" always includes the highest UID, even below n: filter.
	var todo []*imapclient.FetchMessageBuffer
	for _, m := range msgs {
		if uint32(m.UID) > from {
			todo = append(todo, m)
		}
	}
	sort.Slice(todo, func(i, j int) bool { return todo[i].UID < todo[j].UID })
	for _, m := range todo {
		if err := s.importOne(ctx, cl, m); err != nil {
			return err
		}
	}
	return nil
}

// importOne fetches, converts and emits one mail, then advances the
// watermark past it.
func (s *session) importOne(ctx context.Context, cl *imapclient.Client, m *imapclient.FetchMessageBuffer) error {
	s.mu.Lock()
	floor, until := s.state.Floor, s.state.FloorUntil
	s.mu.Unlock()
	uid := uint32(m.UID)
	if !floor.IsZero() && uid > until {
		// Past the mailbox as it was at the UIDVALIDITY change: the
		// floor has done its work.
		if err := s.save(ctx, func(st *state) { st.Floor, st.FloorUntil = time.Time{}, 0 }); err != nil {
			return err
		}
		floor = time.Time{}
	}
	if !floor.IsZero() && m.InternalDate.Before(floor) {
		// Re-sync after a UIDVALIDITY change: already seen (or too old).
		return s.save(ctx, func(st *state) { st.LastUID = max(st.LastUID, uid) })
	}
	section := &imap.FetchItemBodySection{Peek: true}
	if m.RFC822Size > s.net.maxMessageSize {
		section = &imap.FetchItemBodySection{Peek: true, Specifier: imap.PartSpecifierHeader}
	}
	bufs, err := cl.Fetch(imap.UIDSetNum(m.UID), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		return fmt.Errorf("email: UID FETCH %d: %w", uid, err)
	}
	var raw []byte
	for _, b := range bufs {
		if b.UID == m.UID {
			raw = b.FindBodySection(section)
		}
	}
	if raw == nil {
		// No body in the answer: the mail was expunged meanwhile, or its
		// answer went elsewhere (imapclient gives a UID FETCH command the
		// first FETCH response for each UID, so an unsolicited FLAGS update
		// of that message arriving first — another client marking it read
		// — takes its place and the body is dropped). Skip it only once
		// the server confirms it is gone; otherwise fail, reconnect and
		// fetch it again.
		gone, err := expunged(cl, m.UID)
		if err != nil {
			return err
		}
		if !gone {
			return fmt.Errorf("email: UID FETCH %d gave no body: %w", uid, legacy.ErrUnavailable)
		}
		return s.save(ctx, func(st *state) { st.LastUID = max(st.LastUID, uid) })
	}
	s.mu.Lock()
	validity := s.state.UIDValidity
	s.mu.Unlock()
	p := parse(raw, s.net.maxFileSize)
	if m.RFC822Size > s.net.maxMessageSize {
		p.text = fmt.Sprintf("[This mail is too large to import (%d bytes); read it in your mail client.]", m.RFC822Size)
		p.attachments = nil
	}
	if p.id == "" {
		p.id = fmt.Sprintf("imap:%d:%d", validity, uid)
	}
	if p.date.IsZero() {
		p.date = m.InternalDate
	}
	if p.from == s.cfg.address && ownMessageID.MatchString(p.messageID) {
		// A mail this gateway sent, seen again (sent to oneself, Bcc,
		// provider copy): not a new message.
		return s.save(ctx, func(st *state) { st.LastUID = max(st.LastUID, uid) })
	}
	if err := s.deliver(ctx, p); err != nil {
		return err
	}
	return s.save(ctx, func(st *state) {
		st.LastUID = max(st.LastUID, uid)
		if m.InternalDate.After(st.LastDate) {
			st.LastDate = m.InternalDate.UTC()
		}
		if p.from != unknownSender && p.bounce == nil && p.messageID != "" {
			rememberThread(st, p)
		}
	})
}

// unknownSender is the contact a mail without a sender comes from: no
// address, so no other contact's id, and Send refuses it.
const unknownSender = "unknown-sender"

// expunged reports whether the message uid no longer exists.
func expunged(cl *imapclient.Client, uid imap.UID) (bool, error) {
	msgs, err := cl.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true}).Collect()
	if err != nil {
		return false, fmt.Errorf("email: UID FETCH %d: %w", uid, err)
	}
	for _, m := range msgs {
		if m.UID == uid {
			return false, nil
		}
	}
	return true, nil
}

// rememberThread records what a reply in p's thread needs.
func rememberThread(st *state, p *parsed) {
	if st.Threads == nil {
		st.Threads = map[string]*thread{}
	}
	refs := append(append([]string(nil), p.references...), p.messageID)
	if len(refs) > 20 {
		refs = append(refs[:1], refs[len(refs)-19:]...)
	}
	st.Threads[p.thread] = &thread{Subject: p.subject, Last: p.messageID, Refs: refs, Seen: time.Now().UTC(), With: p.from, ReplyTo: p.replyTo}
	trimThreads(st)
}

// trimThreads forgets the threads seen longest ago beyond maxThreads.
func trimThreads(st *state) {
	for len(st.Threads) > maxThreads {
		var oldest string
		var t time.Time
		for k, v := range st.Threads {
			if oldest == "" || v.Seen.Before(t) {
				oldest, t = k, v.Seen
			}
		}
		delete(st.Threads, oldest)
	}
}

// replyContext finds the remembered mail id, for an explicit reply to it:
// the thread it is in and the References a reply to it carries (its own
// References and its Message-ID). A thread remembers its last mail
// exactly; an earlier mail of it is found in the thread's References,
// and a reply to it references the chain up to that mail. Threads with
// the reply's recipient, then the most recent, are preferred. Nil when
// the mail is not remembered. Call with s.mu held.
func (st *state) replyContext(id, with string) (*thread, []string) {
	var best *thread
	var bestRefs []string
	rank := func(t *thread, last bool) int {
		r := 0
		if last {
			r += 2
		}
		if t.With == with {
			r++
		}
		return r
	}
	bestRank := -1
	for _, t := range st.Threads {
		k := -1
		for i := len(t.Refs) - 1; i >= 0; i-- {
			if t.Refs[i] == id {
				k = i
				break
			}
		}
		if k < 0 {
			continue
		}
		r := rank(t, t.Last == id)
		if r > bestRank || r == bestRank && t.Seen.After(best.Seen) {
			best, bestRank = t, r
			bestRefs = append([]string(nil), t.Refs[:k+1]...)
		}
	}
	return best, bestRefs
}

// deliver emits the events of one parsed mail.
func (s *session) deliver(ctx context.Context, p *parsed) error {
	if p.noFrom {
		if p.from == "" || p.from == s.cfg.address {
			// Nothing says who sent it: a contact standing for no one,
			// not the user (who would be a contact of their own).
			p.from, p.fromName = unknownSender, "Unknown sender"
		}
		p.text = "[Mail without a valid From address]\n" + p.text
	}
	if p.automated != "" && p.bounce == nil {
		if s.automated == "skip" {
			return nil
		}
		p.text = "[" + p.automated + "] " + p.text
	}
	if s.contacts == nil {
		s.contacts = map[string]bool{}
	}
	if !s.contacts[p.from] {
		if err := s.sink.Emit(ctx, legacy.Contact{Chat: legacy.ChatID(p.from), Name: p.fromName}); err != nil {
			return fmt.Errorf("email: emit contact: %w", err)
		}
		s.contacts[p.from] = true
	}
	in := legacy.Incoming{
		ID:          legacy.MessageID(p.id),
		Chat:        legacy.ChatID(p.from),
		Text:        p.text,
		Subject:     p.subject,
		Thread:      p.thread,
		ReplyTo:     legacy.MessageID(p.inReplyTo),
		Time:        p.date,
		Attachments: p.attachments,
	}
	if s.delivery == "headers" && p.bounce == nil {
		// Headers only: the subject and sender travel; the body and files
		// stay in the mailbox.
		n := len(p.attachments)
		in.Text = "[New mail — open it in your mail client]"
		if n > 0 {
			in.Text = fmt.Sprintf("[New mail with %d attachment(s) — open it in your mail client]", n)
		}
		in.Attachments = nil
	}
	if p.replyToText != "" {
		// Answers in this chat go to the Reply-To addresses (Send): say
		// so, so that the destination is no surprise.
		in.Text = strings.TrimRight(in.Text, "\n") + "\n\n[Reply-To: " + p.replyToText + " — your answers to this mail go there]"
	}
	if p.bounce != nil {
		in.ReplyTo = legacy.MessageID(p.bounce.original)
		in.Thread = ""
		// A failed delivery of a mail the user sent: the core turns it into
		// an error on the original message (Send returned its Message-ID).
		if p.bounce.action == "failed" && p.bounce.original != "" {
			if err := s.sink.Emit(ctx, legacy.Undelivered{ID: legacy.MessageID(p.bounce.original), Chat: legacy.ChatID(p.from),
				Err: p.bounce.err()}); err != nil {
				return fmt.Errorf("email: emit bounce of %s: %w", p.bounce.original, err)
			}
		}
	}
	if err := s.sink.Emit(ctx, in); err != nil {
		return reason("the gateway cannot take new mail now; retrying", fmt.Errorf("email: emit mail %s: %w", p.id, err))
	}
	return nil
}
