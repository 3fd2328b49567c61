package bridges

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jabbergate/jabbergate/bridges/jidmap"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/legacy"
)

// user is one registered account and its running machinery.
type user struct {
	jid   string // bare JID
	owner string // opaque key for logs and the adapter

	mu       sync.Mutex
	acct     *store.Account
	sess     legacy.Session
	status   legacy.Status
	lastErr  string
	presence map[legacy.ChatID]legacy.Presence
	cancel   context.CancelFunc
	done     chan struct{}

	ephemeral  *ephemeral             // chat states and markers waiting to be sent
	typingSent map[legacy.ChatID]bool // last chat state sent to the user per contact
	// noChatStates: the user's last message with content carried no chat
	// state and none came since, so the gateway sends none (XEP-0085
	// §5.1, implicit discovery, rule 3) until the user's client sends one.
	noChatStates atomic.Bool
	online       map[string]bool // the user's available resources (full JIDs)

	kickIn  chan struct{} // wakes the inbox drainer
	kickOut chan struct{} // wakes the outbox worker

	inq inboxMem // in-memory tail of the inbox (inbox.go)
	// inBacklog counts the inbox entries not yet delivered (set by each
	// read of the store, +1 per Emit, -n per ack), and
	// inFull says Emit is refusing for it (logged once per episode).
	inBacklog atomic.Int64
	inFull    atomic.Bool
	outq      outboxMem // in-memory tail of the outbox (outbox.go)
	// gatewayAsk: the registration left the gateway's subscription
	// request to roster population (askGateway, roster.go), which sends
	// it unless the privileged roster write ends in a subscription that
	// already carries the user's presence.
	gatewayAsk atomic.Bool
	// emptyAtStart: the inbox ([0]) and the outbox ([1]) were empty in
	// the store when the bridge started (Bridge.run); guarded by mu.
	emptyAtStart [2]bool
	// counted is what this user adds to the queue depth metric (inbox,
	// outbox; countQueued), given back when the user stops.
	counted [2]atomic.Int64
}

func (b *Bridge) newUser(a *store.Account) *user {
	return &user{
		jid:        a.JID,
		owner:      jidmap.OwnerKey(b.domain, a.JID),
		acct:       a,
		status:     legacy.StatusConnecting,
		presence:   map[legacy.ChatID]legacy.Presence{},
		typingSent: map[legacy.ChatID]bool{},
		online:     map[string]bool{},
		ephemeral: &ephemeral{
			typing: map[legacy.ChatID]bool{}, sent: map[legacy.ChatID]bool{},
			read: map[legacy.ChatID]string{}, lastRead: map[legacy.ChatID]legacy.MessageID{},
		},
		kickIn:  make(chan struct{}, 1),
		kickOut: make(chan struct{}, 1),
	}
}

// inheritOnline gives u, which replaces old (a restart after a settings
// change, a registration again, a lease taken over), the resources old
// knew to be available: the user's server sends no presence again for a
// session restart, so without them u would think the user offline and,
// for networks that deliver by presence, hold every message. Call it
// before u starts.
func (u *user) inheritOnline(old *user) {
	old.mu.Lock()
	online := make(map[string]bool, len(old.online))
	for k, v := range old.online {
		online[k] = v
	}
	old.mu.Unlock()
	u.mu.Lock()
	u.online = online
	u.mu.Unlock()
}

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// getUser returns the registered user for a bare JID, or nil.
func (b *Bridge) getUser(bare string) *user {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.users[bare]
}

// successor returns the user that took u's place in b.users (a lease
// taken over, a registration again, a settings change restarted the
// session), nil while u is current or when the user is gone. A commit
// for u that ends after the swap must wake the successor, whose workers
// read the store when they start but may have read it before the commit.
func (b *Bridge) successor(u *user) *user {
	cur := b.getUser(u.jid)
	if cur == u {
		return nil
	}
	return cur
}

// startUser opens the legacy session and starts the user's goroutines:
// session runner, inbox drainer, outbox worker. In a cluster it does so
// only on the instance that holds (or now takes) the account's lease
// (cluster.go); elsewhere the user stays dormant.
func (b *Bridge) startUser(u *user) {
	if b.cl != nil {
		b.mu.Lock()
		parent := b.ctx
		b.mu.Unlock()
		if parent != nil && !b.cl.claim(parent, u) {
			return // another instance runs this user
		}
	}
	b.runUser(u)
}

// runUser starts the user's machinery on this instance.
func (b *Bridge) runUser(u *user) {
	b.mu.Lock()
	parent := b.ctx
	b.mu.Unlock()
	ctx, cancel := context.WithCancel(parent)
	u.mu.Lock()
	u.cancel = cancel
	u.done = make(chan struct{})
	acct := u.acct
	u.mu.Unlock()

	var sess legacy.Session // nil: runSession tells the user to register again
	fields, err := b.openFields(acct)
	if err != nil {
		// Not opened without its credentials either: one failure, counted
		// once (it was "open" too).
		b.log.Error("cannot open stored credentials; the user must register again", "user", u.owner, "err", err)
		b.sessionFailed("credentials")
	} else if sess, err = b.opts.Network.Open(ctx, legacy.Account{
		ID:       legacy.AccountID(acct.LegacyID),
		Owner:    u.owner,
		Fields:   fields,
		Settings: acct.Settings,
		State:    acct.State,
		Log:      b.log.With("user", u.owner),
	}, &sink{b: b, u: u}); err != nil {
		b.log.Error("open legacy session", "user", u.owner, logErr(err))
		b.sessionFailed("open")
		sess = nil
	}
	u.mu.Lock()
	u.sess = sess
	online := len(u.online) > 0
	u.mu.Unlock()
	if pw, ok := sess.(legacy.PresenceWatcher); ok {
		pw.UserPresence(online)
	}
	b.obs.Sessions(1)

	// The last of the three to end reports it (no waiter goroutine: one
	// goroutine less per idle user, issue 8).
	left := new(atomic.Int32)
	left.Store(3)
	b.wg.Add(1)
	end := func() {
		if left.Add(-1) == 0 {
			b.obs.Sessions(-1)
			close(u.done)
			b.wg.Done()
		}
	}
	go func() { defer end(); b.runSession(ctx, u, sess) }()
	// Queues known to be empty (Bridge.run) are not read: an idle user's
	// workers start without a store read (issue 8: 100 000 users).
	u.mu.Lock()
	emptyIn, emptyOut := u.emptyAtStart[0], u.emptyAtStart[1]
	u.emptyAtStart = [2]bool{} // the first start only
	u.mu.Unlock()
	go func() { defer end(); b.drainInbox(ctx, u, emptyIn) }()
	go func() { defer end(); b.runOutbox(ctx, u, emptyOut) }()
	if !emptyIn {
		kick(u.kickIn)
	}
	if !emptyOut {
		kick(u.kickOut)
	}
}

// stopUser stops a user's goroutines and waits for them.
func (b *Bridge) stopUser(u *user) {
	u.mu.Lock()
	cancel, done := u.cancel, u.done
	u.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	for i, k := range queueKinds {
		if n := u.counted[i].Swap(0); n != 0 {
			b.obs.QueueDepth(k, -int(n))
		}
	}
}

// queueKinds are the queue kinds in the order of user.counted.
var queueKinds = [2]store.QueueKind{store.Inbox, store.Outbox}

// countQueued adds delta entries of u's queue kind (index i of
// queueKinds) to the queue depth metric. The metric is per process: it
// counts what this process read at start, queued or emitted, for the
// users it runs; a decrease never takes a user below zero, so entries it
// did not count (queued through another instance of a cluster, present
// when an account moved here) never make it drift, they only go uncounted.
func (b *Bridge) countQueued(u *user, i int, delta int) {
	c := &u.counted[i]
	if delta >= 0 {
		c.Add(int64(delta))
		b.obs.QueueDepth(queueKinds[i], delta)
		return
	}
	for {
		v := c.Load()
		d := max(int64(delta), -v)
		if d == 0 {
			return
		}
		if c.CompareAndSwap(v, v+d) {
			b.obs.QueueDepth(queueKinds[i], int(d))
			return
		}
	}
}

// runSession runs the legacy session, restarting it with backoff after
// failures, until ctx ends or the credentials are rejected.
func (b *Bridge) runSession(ctx context.Context, u *user, sess legacy.Session) {
	if sess == nil {
		b.setStatus(ctx, u, legacy.StatusUnauthorized, "the legacy session could not be opened; register again")
		return
	}
	delay := time.Second
	for ctx.Err() == nil {
		started := time.Now()
		err := sess.Run(ctx)
		if ctx.Err() != nil {
			return
		}
		b.sessionFailed(sessionFailureReason(err))
		if errors.Is(err, legacy.ErrUnauthorized) {
			b.log.Warn("legacy credentials rejected; session stopped", "user", u.owner, logErr(err))
			b.setStatus(ctx, u, legacy.StatusUnauthorized, unauthorizedText(err))
			return
		}
		if time.Since(started) > time.Minute {
			delay = time.Second
		}
		b.log.Warn("legacy session ended; restarting", "user", u.owner, logErr(err), "in", delay)
		b.setStatus(ctx, u, legacy.StatusDisconnected, errText(err))
		if !sleep(ctx, jitter(delay)) {
			return
		}
		delay = min(delay*2, 5*time.Minute)
	}
}

// sessionFailureReason classifies why a legacy session's Run returned
// (one of SessionFailureReasons).
func sessionFailureReason(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return "ended"
	case errors.Is(err, legacy.ErrUnauthorized):
		return "unauthorized"
	case errors.Is(err, legacy.ErrRateLimited):
		return "rate_limited"
	case errors.Is(err, legacy.ErrUnavailable), errors.As(err, &ne), errors.Is(err, context.DeadlineExceeded):
		return "unavailable"
	}
	return "error"
}

// unauthorizedText is what the user reads when the legacy network
// rejected her credentials (err wraps legacy.ErrUnauthorized).
func unauthorizedText(err error) string {
	text := "the legacy network rejected your credentials; register again"
	if r := userReason(err); r != "" {
		text = r
		if !strings.Contains(r, "register again") { // adapters' reasons may say it already
			text += "; register again"
		}
	}
	return text
}

// errText is err for the user: the adapter's reason (legacy.ReasonError,
// CodeError) when it gave one, else the error's text.
func errText(err error) string {
	if err == nil {
		return "session ended"
	}
	if r := userReason(err); r != "" {
		return r
	}
	return err.Error()
}

func (b *Bridge) setStatus(ctx context.Context, u *user, s legacy.Status, text string) {
	u.mu.Lock()
	wasUnauthorized := u.status == legacy.StatusUnauthorized
	changed := u.status != s || u.lastErr != text
	u.status, u.lastErr = s, text
	u.mu.Unlock()
	if !changed {
		return
	}
	b.sendGatewayPresence(ctx, u)
	if s == legacy.StatusUnauthorized && !wasUnauthorized {
		// Presence alone is easy to miss: say it in the chat with the
		// gateway too, once per failure; waiting for the link when it is
		// not up yet (a session that fails at start), as the presence is
		// sent again when the link comes up but this message is not.
		// The reason often ends in "register again" already (the core's
		// and the adapters'): then only how to.
		tail := ". Your messages cannot be sent until you register again with new credentials (send \"register\" here, or use your client's registration form)."
		if strings.HasSuffix(text, "register again") {
			tail = ". Your messages cannot be sent until then: send \"register\" here, or use your client's registration form."
		}
		b.sendSure(ctx, gatewayMessage(b.domain, u.jid, b.info.DisplayName+" login failed: "+text+tail))
	}
}

// sleep waits d or until ctx ends; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// jitter returns a duration in [d/2, d].
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// userPresence records the availability of one of the user's resources and
// tells a PresenceWatcher session when the user as a whole comes online or
// goes away.
func (b *Bridge) userPresence(u *user, full string, available bool) {
	u.mu.Lock()
	was := len(u.online) > 0
	if available {
		u.online[strings.Clone(full)] = true // not the decoded stanza's memory
	} else {
		delete(u.online, full)
	}
	now := len(u.online) > 0
	sess := u.sess
	u.mu.Unlock()
	if was == now {
		return
	}
	if pw, ok := sess.(legacy.PresenceWatcher); ok {
		pw.UserPresence(now)
	}
}
