package sms

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/sms/kannel"
	"github.com/jabbergate/jabbergate/legacy/sms/twilio"
)

// route is one way out: a provider account.
type route interface {
	name() string
	// send sends text from one number to another; key is the message's
	// idempotency key. It returns the legacy message id, which status
	// callbacks and DLRs carry back. Once the provider accepted the
	// message (a 2xx, ESME_ROK) it must return nil, even when the answer
	// was unreadable: an error makes Send try the next route and the core
	// send the message again, so the recipient would get (and the
	// operator pay for) it twice.
	send(ctx context.Context, from, to, text string, seg Segments, key string) (legacy.MessageID, error)
}

// mmsRoute is a route that sends media as MMS.
type mmsRoute interface {
	route
	// sendMMS sends text (may be empty) with media, public URLs the
	// provider fetches.
	sendMMS(ctx context.Context, from, to, text string, media []string, key string) (legacy.MessageID, error)
}

var _ mmsRoute = (*twilioRoute)(nil)

type twilioRoute struct {
	net *Network
	c   *twilio.Client
}

func (r *twilioRoute) name() string { return "twilio" }

func (r *twilioRoute) send(ctx context.Context, from, to, text string, seg Segments, key string) (legacy.MessageID, error) {
	return r.sendMMS(ctx, from, to, text, nil, key)
}

func (r *twilioRoute) sendMMS(ctx context.Context, from, to, text string, media []string, key string) (legacy.MessageID, error) {
	cb := ""
	if r.net.publicURL != "" {
		cb = r.net.publicURL + "/twilio/status"
		if f := flightOf(ctx); f != nil {
			// The send's token: a callback that comes before the answer
			// finds its send by it (flight.go), and one that carries it
			// is ours even after a restart.
			cb += "?" + url.Values{statusToken: {f.token}}.Encode()
		}
	}
	sent, err := r.c.SendMedia(ctx, from, to, text, media, cb)
	if err != nil {
		return "", err
	}
	if sent.Unreadable != nil {
		// Twilio answered 2xx: the message is accepted and billed. It is
		// sent, not resent and not failed over; only its SID is unknown,
		// so its status callbacks match no message (no receipt).
		r.net.counts.replyMalformed.Add(1)
		id := noSID("tw-nosid-", from, key)
		r.net.log.Warn("Twilio accepted the message but its answer was unreadable; taken as sent, its delivery receipts cannot be matched",
			"err", sent.Unreadable, "id", id)
		return id, nil
	}
	return legacy.MessageID(sent.SID), nil
}

// noSID is the message id of a message a provider accepted without an id
// we could read: stable for the same message (key), so a replay after a
// crash gets the same one.
func noSID(prefix, from, key string) legacy.MessageID {
	if key == "" {
		key = fmt.Sprintf("t%d", time.Now().UnixNano())
	}
	sum := sha256.Sum256([]byte(from + "\x00" + key))
	return legacy.MessageID(prefix + hex.EncodeToString(sum[:12]))
}

type kannelRoute struct {
	net *Network
	c   *kannel.Client
}

func (r *kannelRoute) name() string { return "kannel" }

func (r *kannelRoute) send(ctx context.Context, from, to, text string, seg Segments, key string) (legacy.MessageID, error) {
	// Kannel answers no id: the DLR URL carries this one, stable per message.
	id := string(noSID("kn-", from, key))
	coding := kannel.Coding7Bit
	if seg.Encoding == UCS2 {
		coding = kannel.CodingUCS2
	}
	dlr := ""
	if r.net.publicURL != "" && r.net.kannelKey != "" {
		q := url.Values{"secret": {r.net.kannelKey}, "id": {id}, "from": {from}, "to": {to}}
		// %d is Kannel's escape for the DLR type: appended unencoded.
		dlr = r.net.publicURL + "/kannel/dlr?" + q.Encode() + "&type=%d"
	}
	if err := r.c.Send(ctx, from, to, text, coding, dlr); err != nil {
		return "", err
	}
	return legacy.MessageID(id), nil
}

// session is one user's number.
type session struct {
	net         *Network
	log         *slog.Logger // legacy.Account.Log: bridge, network, hashed user
	owner       string
	number      string
	sink        legacy.Sink
	routes      []route
	own         *twilio.Client // the user's own Twilio account, if any
	maxSegments int
	limit       *rate.Limiter // segments per minute of this number, if rate_per_minute

	mu       sync.Mutex
	optout   map[string]bool    // contacts that texted STOP
	concat   map[string]*concat // SMPP concatenated MO being reassembled
	day      string             // UTC day of daySent (daily_segments)
	daySent  int                // segments sent that day
	dayLimit int                // daily_segments; 0: none

	contacts map[string]bool // numbers reported as contacts (legacy.Contact) in this session

	// Delivery reports racing their send (flight.go).
	flights   map[*flight]bool // route calls in progress
	early     []*early         // reports held for them
	sentIDs   idSet            // ids Send returned
	failedIDs idSet            // ids with a final failure reported
}

// state is the session's state blob.
type state struct {
	OptOut  []string           `json:"optout,omitempty"`
	Concat  map[string]*concat `json:"concat,omitempty"`
	Day     string             `json:"day,omitempty"`
	DaySent int                `json:"day_sent,omitempty"`
}

func (s *session) loadState(b []byte) error {
	s.optout, s.concat = map[string]bool{}, map[string]*concat{}
	if len(b) == 0 {
		return nil
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("sms: state: %w", err)
	}
	for _, n := range st.OptOut {
		s.optout[n] = true
	}
	for k, c := range st.Concat {
		if c != nil && c.Parts != nil && c.Total > 0 {
			s.concat[k] = c
		}
	}
	s.day, s.daySent = st.Day, st.DaySent
	return nil
}

// setOptOut records (or clears) a contact's opt-out.
func (s *session) setOptOut(contact string, out bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if out {
		s.optout[contact] = true
	} else {
		delete(s.optout, contact)
	}
}

// stateBlob returns the state to save (always, so a replayed webhook whose
// SaveState was lost saves it again).
func (s *session) stateBlob() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := state{OptOut: []string{}}
	for n := range s.optout {
		st.OptOut = append(st.OptOut, n)
	}
	slices.Sort(st.OptOut)
	if len(s.concat) > 0 {
		st.Concat = s.concat // marshalled under the lock
	}
	st.Day, st.DaySent = s.day, s.daySent
	b, _ := json.Marshal(st)
	return b
}

func (s *session) optedOut(contact string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.optout[contact]
}

// Run registers the session's number with the Network, so webhooks for it
// reach this session, and waits for ctx to end. With the user's own Twilio
// credentials it checks them first, and that the number is theirs: not
// one of the operator's pool, and one of their account's numbers (for
// accounts registered before Register checked it). A number already run
// by another account's session is refused with ErrUnauthorized.
func (s *session) Run(ctx context.Context) error {
	if s.own != nil {
		err := s.net.notPool(s.number)
		if err == nil {
			err = s.own.Check(ctx)
		}
		if err == nil {
			err = ownsNumber(ctx, s.own, s.number)
		}
		var fe *legacy.FieldError
		if errors.As(err, &fe) {
			// Permanent: the user must register again with their number.
			err = fmt.Errorf("sms: %s; register again: %w", fe.Reason, legacy.ErrUnauthorized)
			_ = s.sink.Emit(ctx, legacy.StatusEvent{Status: legacy.StatusUnauthorized, Text: fe.Reason})
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	if err := s.net.claim(s); err != nil {
		_ = s.sink.Emit(ctx, legacy.StatusEvent{Status: legacy.StatusUnauthorized, Text: err.Error()})
		return err
	}
	defer s.net.release(s)
	if sr := s.net.smpp; sr != nil && s.own == nil {
		sr.acquire()
		defer sr.release()
		go func() { // deliver concatenated SMS whose parts stopped coming
			t := time.NewTicker(min(max(s.net.concatTimeout/4, 10*time.Millisecond), time.Minute))
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					s.flushStale(ctx, s.net.concatTimeout, sr)
				}
			}
		}()
	}
	if err := s.sink.Emit(ctx, legacy.StatusEvent{Status: legacy.StatusConnected, Text: s.number}); err != nil && ctx.Err() == nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// Send sends m as SMS through the first route that takes it. The text is
// refused (ErrRejected, with the count and the limit) when it takes more
// segments than the user's limit. A transient failure of one route tries
// the next; a permanent one is returned at once. Safe for concurrent use.
func (s *session) Send(ctx context.Context, m *legacy.Message) (legacy.MessageID, error) {
	to, err := s.net.normalize(string(m.Chat))
	if err != nil {
		return "", err
	}
	if m.Text == "" && len(m.Attachments) == 0 {
		return "", fmt.Errorf("sms: empty message: %w", legacy.ErrRejected)
	}
	if s.optedOut(to) {
		return "", fmt.Errorf("sms: %w", &legacy.CodeError{Code: "STOP",
			Text: to + " has opted out of messages from this number (they texted STOP); they must text START to receive messages again",
			Err:  legacy.ErrForbidden})
	}
	out, err := s.prepare(m)
	if err != nil {
		return "", err
	}
	// The limits count the segments of what the first route sends.
	seg, text := out.smsSeg, out.smsText
	if _, ok := s.first().(mmsRoute); ok {
		seg, text = out.mmsSeg, out.mmsText
	}
	if err := s.tooLong(text, seg); err != nil {
		return "", err
	}
	if s.limit != nil {
		res := s.limit.ReserveN(time.Now(), seg.Count)
		if d := res.Delay(); d > 0 {
			res.Cancel()
			return "", fmt.Errorf("sms: this number's limit of %d segments a minute is reached: %w",
				s.net.ratePerMin, &legacy.RateLimitError{RetryAfter: d})
		}
	}
	if err := s.checkDailyCap(seg.Count); err != nil {
		return "", err
	}
	var errs []error
	for _, r := range s.routes {
		var id legacy.MessageID
		var err error
		f := s.startFlight(to)
		ctx := withFlight(ctx, f)
		if mr, ok := r.(mmsRoute); ok && len(out.media) > 0 {
			id, err = mr.sendMMS(ctx, s.number, to, out.mmsText, out.media, m.Key)
		} else if ok {
			id, err = r.send(ctx, s.number, to, out.mmsText, out.mmsSeg, m.Key)
		} else if err = s.tooLong(out.smsText, out.smsSeg); err != nil {
			// A failover route without MMS would need more segments:
			// try the others (a later attempt may find the first one up).
			err = fmt.Errorf("sms: %v: %w", err, legacy.ErrUnavailable)
		} else {
			id, err = r.send(ctx, s.number, to, out.smsText, out.smsSeg, m.Key)
		}
		if err != nil {
			id = ""
		}
		failure := s.endFlight(f, id)
		if err == nil {
			s.countSent(ctx, seg.Count)
			if failure != nil {
				// Reported failed before the provider answered: the
				// user's message fails, rather than being acknowledged.
				s.log.Info("sms: message reported failed before its send returned", "id", id, "err", failure)
				return "", failedAtOnce(failure)
			}
			if err := s.addContact(ctx, to); err != nil {
				s.log.Warn("sms: contact not reported", "err", err)
			}
			return id, nil
		}
		s.net.counts.countSendError(err)
		if legacy.IsPermanent(err) {
			return "", err
		}
		s.net.counts.routeFailed.Add(1)
		s.log.Info("sms route failed, trying the next", "route", r.name(), "err", err)
		errs = append(errs, fmt.Errorf("route %s: %w", r.name(), err))
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return "", fmt.Errorf("sms: no route configured: %w", legacy.ErrUnavailable)
	}
	return "", fmt.Errorf("sms: every route failed: %w", errors.Join(errs...))
}

// outgoing is a message as each kind of route sends it.
type outgoing struct {
	// mmsText and media are for routes with MMS: the files that fit as
	// media, the others as links in the text.
	mmsText string
	media   []string
	mmsSeg  Segments
	// smsText is for routes without MMS: every file as a link.
	smsText string
	smsSeg  Segments
}

// prepare finds a URL for each of m's files (mms.go: the URL the core
// fetched it from, else hosted by the adapter) and builds what the routes
// send.
func (s *session) prepare(m *legacy.Message) (*outgoing, error) {
	o := &outgoing{mmsText: m.Text, smsText: m.Text}
	if len(m.Attachments) > 0 {
		var total int
		var links, mmsLinks []string
		key := "" // per owner: keys of different users may collide
		if m.Key != "" {
			key = s.owner + "\x00" + m.Key
		}
		for i, a := range m.Attachments {
			u, err := s.net.mediaURL(a, key, i)
			if err != nil {
				return nil, err
			}
			links = append(links, u)
			if mmsAble(a) && len(o.media) < twilio.MaxMedia && total+len(a.Data) <= twilio.MaxMediaSize {
				o.media = append(o.media, u)
				total += len(a.Data)
			} else {
				mmsLinks = append(mmsLinks, u)
			}
		}
		o.mmsText, o.smsText = withLinks(m.Text, mmsLinks), withLinks(m.Text, links)
	}
	o.mmsSeg, o.smsSeg = Count(o.mmsText), Count(o.smsText)
	if o.mmsText == "" {
		o.mmsSeg.Count = 1 // an MMS without text still counts as one message
	}
	return o, nil
}

// first is the first route tried.
func (s *session) first() route {
	if len(s.routes) == 0 {
		return nil
	}
	return s.routes[0]
}

// tooLong refuses text over the user's segment limit with a
// legacy.ReasonError, whose reason (the count, the encoding, the length
// and the limit) the core shows the sender.
func (s *session) tooLong(text string, seg Segments) error {
	if seg.Count > s.maxSegments {
		return fmt.Errorf("sms: %w", &legacy.ReasonError{
			Reason: fmt.Sprintf("needs %d SMS segments (%s, %d characters), more than the limit of %d",
				seg.Count, seg.Encoding, utf8.RuneCountInString(text), s.maxSegments),
			Err: legacy.ErrRejected})
	}
	return nil
}

// checkDailyCap refuses a message that would take the number over its
// daily_segments cap (the operator's spend limit: segments are what
// providers bill). The refusal is a rate limit until the next UTC day, so
// the core keeps the message queued until then or until its TTL, when the
// sender gets resource-constraint.
func (s *session) checkDailyCap(segments int) error {
	if s.dayLimit <= 0 {
		return nil
	}
	now := time.Now().UTC()
	today := now.Format(time.DateOnly)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.day != today {
		s.day, s.daySent = today, 0
	}
	if s.daySent+segments <= s.dayLimit {
		return nil
	}
	midnight := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
	return fmt.Errorf("sms: this number's daily limit of %d SMS segments is reached (%d sent today, this message needs %d): %w",
		s.dayLimit, s.daySent, segments, &legacy.RateLimitError{RetryAfter: midnight.Sub(now)})
}

// countSent adds sent segments to today's count and saves it (best effort:
// a lost save undercounts, it never blocks a sent message).
func (s *session) countSent(ctx context.Context, segments int) {
	if s.dayLimit <= 0 {
		return
	}
	today := time.Now().UTC().Format(time.DateOnly)
	s.mu.Lock()
	if s.day != today {
		s.day, s.daySent = today, 0
	}
	s.daySent += segments
	s.mu.Unlock()
	if err := s.sink.Emit(ctx, legacy.SaveState{State: s.stateBlob()}); err != nil {
		s.log.Warn("sms: daily segment count not saved", "err", err)
	}
}

// addContact reports number as one of the user's contacts (legacy.Contact,
// so the core adds it to the roster and the contacts list) the first time
// the session exchanges a message with it: SMS has no contact list of its
// own. Once per number per session; the core stores contacts idempotently
// and touches the roster only for a new one.
func (s *session) addContact(ctx context.Context, number string) error {
	s.mu.Lock()
	done := s.contacts[number]
	s.mu.Unlock()
	if done {
		return nil
	}
	if err := s.sink.Emit(ctx, legacy.Contact{Chat: legacy.ChatID(number)}); err != nil {
		return err
	}
	s.mu.Lock()
	if s.contacts == nil {
		s.contacts = map[string]bool{}
	}
	s.contacts[number] = true
	s.mu.Unlock()
	return nil
}
