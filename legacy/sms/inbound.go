package sms

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/sms/kannel"
	"github.com/jabbergate/jabbergate/legacy/sms/twilio"
)

// Webhook implements legacy.Webhooker. The core mounts it at
// /webhooks/<bridge domain>/; public_url must name that same place as the
// providers see it (https://gw.example.org/webhooks/sms.example.org).
//
//	POST /twilio/sms     Twilio incoming messages (the number's "A message comes in" webhook)
//	POST /twilio/status  Twilio status callbacks (set by Send on every message)
//	GET|POST /kannel/mo  Kannel MO (sms-service get-url or post-url)
//	GET|POST /kannel/dlr Kannel delivery reports (dlr-url set by Send)
//
// Delivery reports: "delivered" becomes a legacy.Receipt, "undelivered"
// and "failed" (Twilio) or DLR types 2 and 16 (Kannel) a
// legacy.Undelivered carrying the provider's code.
//
// Answers: 200 once every event was taken by Sink.Emit; 403 for a bad
// signature or secret; 400 for a malformed request; 503 when no session
// runs for the destination number or Emit failed, so the provider retries
// (Kannel only with http-request-retry set; Twilio only with connection
// overrides).
func (n *Network) Webhook() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /twilio/sms", n.twilioSMS)
	mux.HandleFunc("POST /twilio/status", n.twilioStatus)
	mux.HandleFunc("/kannel/mo", n.kannelMO)
	mux.HandleFunc("/kannel/dlr", n.kannelDLR)
	mux.HandleFunc("GET /media/{token}/{name}", n.media.serve)
	return http.MaxBytesHandler(mux, 256<<10)
}

// twilioAuth parses the form and checks its signature with the auth token
// of the session owning number (own credentials) or the operator's; a
// number of the operator's pool is always checked with the operator's. It
// answers the request and returns false when it fails.
func (n *Network) twilioAuth(w http.ResponseWriter, r *http.Request, numberField string) (*session, bool) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "malformed form", http.StatusBadRequest)
		return nil, false
	}
	s := n.lookup(r.PostForm.Get(numberField))
	token := n.twilioToken
	if s != nil && s.own != nil {
		if n.inPool(s.number) {
			s = nil // never the operator's number with a user's token (Run refuses such sessions)
		} else {
			token = s.own.AuthToken
		}
	}
	if n.publicURL == "" {
		n.log.Error("twilio webhook refused: public_url is not set, signatures cannot be checked")
		http.Error(w, "forbidden", http.StatusForbidden)
		return nil, false
	}
	u := n.publicURL + r.URL.Path
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	if err := twilio.Verify(token, u, r); err != nil {
		n.log.Warn("twilio webhook with a bad signature refused", "path", r.URL.Path, "remote", r.RemoteAddr)
		http.Error(w, "forbidden", http.StatusForbidden)
		return nil, false
	}
	if s == nil {
		http.Error(w, "no session for this number", http.StatusServiceUnavailable)
		return nil, false
	}
	return s, true
}

func (n *Network) twilioSMS(w http.ResponseWriter, r *http.Request) {
	s, ok := n.twilioAuth(w, r, "To")
	if !ok {
		return
	}
	in, err := twilio.ParseInbound(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// MMS media become files; a medium that cannot be fetched stays a URL
	// at the end of the body (as SGX does), so nothing is lost.
	atts, unfetched := s.fetchMMS(r.Context(), in.Media)
	text := in.Body
	for _, m := range unfetched {
		if text != "" {
			text += "\n"
		}
		text += m
	}
	if err := s.receive(r.Context(), "tw-"+in.SID, in.From, text, nil, atts...); err != nil {
		n.log.Warn("incoming SMS not taken, provider will retry", "err", err)
		http.Error(w, "try again later", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	io.WriteString(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>")
}

func (n *Network) twilioStatus(w http.ResponseWriter, r *http.Request) {
	s, ok := n.twilioAuth(w, r, "From")
	if !ok {
		return
	}
	st, err := twilio.ParseStatus(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var failure error
	switch st.Status {
	case "delivered":
	case "undelivered", "failed":
		failure = twilio.DeliveryError(st.Status, st.ErrorCode)
	default: // queued, sent, …: not final
		w.WriteHeader(http.StatusOK)
		return
	}
	// Every send sets a callback URL with a token: a callback without
	// one is ours only when a send of this session returned its SID.
	tok := r.URL.Query().Get(statusToken)
	if err := s.report(r.Context(), legacy.MessageID(st.SID), st.To, tok, failure, tok == ""); err != nil {
		http.Error(w, "try again later", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// statusToken is the query parameter of the status callback URL that
// carries the send's token (flight.go).
const statusToken = "m"

// report handles a final delivery report on id (failure: nil for
// delivered) for the recipient to, from a callback carrying token (""
// if none). A report racing its send is held for it (flight.go). With
// onlyKnown, a report on an id no send of this session returned is not
// the user's (another application's message on the same number): it is
// logged, counted and dropped. It returns an error only when the sink did
// not take the event.
func (s *session) report(ctx context.Context, id legacy.MessageID, to, token string, failure error, onlyKnown bool) error {
	if s.hold(ctx, id, s.chatOf(to), token, failure) {
		if failure != nil {
			return nil // Send returns it
		}
	} else if onlyKnown && !s.known(id) {
		s.net.counts.reportUnknown.Add(1)
		s.log.Info("sms: delivery report on a message not sent through the gateway; ignored", "id", id, "failed", failure != nil)
		return nil
	}
	return s.finalReport(ctx, id, to, failure)
}

// finalReport emits a final delivery report on id (failure: nil for
// delivered): a failure once, "delivered" never after a failure. It
// returns an error only when the sink did not take the event (the
// provider's retry reports it again).
func (s *session) finalReport(ctx context.Context, id legacy.MessageID, to string, failure error) error {
	if failure == nil {
		if s.hasFailed(id) {
			return nil // never "delivered" after a failure
		}
		return s.receipt(ctx, id, to)
	}
	if !s.markFailed(id) {
		return nil // already reported
	}
	if err := s.undelivered(ctx, id, to, failure); err != nil {
		s.mu.Lock()
		s.failedIDs.remove(id) // not taken: the provider's retry reports it
		s.mu.Unlock()
		return err
	}
	return nil
}

// chatOf returns number in E.164 when it reads as one (numberOf), else as
// it is (a short code, an alphanumeric sender).
func (s *session) chatOf(number string) string {
	e, _ := s.net.numberOf(number)
	return e
}

func (n *Network) kannelMO(w http.ResponseWriter, r *http.Request) {
	if err := kannel.CheckSecret(n.kannelKey, r); err != nil {
		n.log.Warn("kannel webhook with a bad secret refused", "remote", r.RemoteAddr)
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	mo, err := kannel.ParseMO(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s := n.lookup(mo.To)
	if s == nil {
		http.Error(w, "no session for this number", http.StatusServiceUnavailable)
		return
	}
	id := mo.ID
	if id == "" {
		sum := sha256.Sum256([]byte(mo.From + "\x00" + mo.To + "\x00" + mo.Time + "\x00" + mo.Text))
		id = "h" + hex.EncodeToString(sum[:12])
	}
	var via route
	for _, r := range n.routes {
		if r.name() == "kannel" {
			via = r
		}
	}
	if err := s.receive(r.Context(), "kn-mo-"+id, mo.From, mo.Text, via); err != nil {
		n.log.Warn("incoming SMS not taken, Kannel should retry", "err", err)
		http.Error(w, "try again later", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK) // empty body: nothing is sent back (max-messages = 0)
}

func (n *Network) kannelDLR(w http.ResponseWriter, r *http.Request) {
	if err := kannel.CheckSecret(n.kannelKey, r); err != nil {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	d, err := kannel.ParseDLR(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s := n.lookup(r.Form.Get("from"))
	if s == nil {
		http.Error(w, "no session for this number", http.StatusServiceUnavailable)
		return
	}
	var failure error
	switch {
	case d.Type&kannel.DLRDelivered != 0:
	case d.Type&(kannel.DLRFailed|kannel.DLRRejected) != 0:
		cause, text := legacy.ErrUnavailable, "not delivered to the phone"
		if d.Type&kannel.DLRRejected != 0 {
			cause, text = legacy.ErrRejected, "rejected by the SMS centre"
		}
		if d.Reply != "" {
			text += " (" + d.Reply + ")"
		}
		failure = &legacy.CodeError{Code: "DLR " + strconv.Itoa(d.Type), Text: text, Err: cause}
	default:
		w.WriteHeader(http.StatusOK)
		return
	}
	if err := s.report(r.Context(), legacy.MessageID(d.ID), d.To, "", failure, false); err != nil {
		http.Error(w, "try again later", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *session) receipt(ctx context.Context, id legacy.MessageID, to string) error {
	chat := s.chatOf(to)
	return s.sink.Emit(ctx, legacy.Receipt{ID: id, Chat: legacy.ChatID(chat)})
}

// undelivered reports a final delivery failure of a message Send accepted.
func (s *session) undelivered(ctx context.Context, id legacy.MessageID, to string, cause error) error {
	chat := s.chatOf(to)
	return s.sink.Emit(ctx, legacy.Undelivered{ID: id, Chat: legacy.ChatID(chat), Err: cause})
}

// Opt-out keywords (Twilio's list, https://support.twilio.com/hc/en-us/articles/223134027).
var (
	stopWords  = []string{"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"}
	startWords = []string{"START", "YES", "UNSTOP"}
	helpWords  = []string{"HELP", "INFO"}
)

func keyword(text string) string {
	w := strings.ToUpper(strings.TrimRight(strings.TrimSpace(text), ".!"))
	for _, set := range [][]string{stopWords, startWords, helpWords} {
		for _, k := range set {
			if w == k {
				return set[0]
			}
		}
	}
	return ""
}

// receive delivers an incoming SMS, then handles the opt-out keywords:
//
//   - STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT (one word, any case):
//     the message is delivered as it is, the contact is marked opted out in
//     the session state (SaveState), and a note from the contact tells the
//     user that further messages to them are refused until they text
//     START. Twilio blocks the pair itself (21610 on send); on Kannel
//     routes the gateway is the one that enforces it.
//   - START, YES, UNSTOP: delivered, the opt-out is cleared, the user told.
//   - HELP, INFO: delivered; when the SMS came through a route of the
//     operator that does not answer keywords itself (via: Kannel, SMPP),
//     the operator's help_text is sent back through it, and the user told.
//
// It returns nil only when every event was taken.
func (s *session) receive(ctx context.Context, id, from, text string, via route, atts ...legacy.Attachment) error {
	chat := s.chatOf(from)
	c := legacy.ChatID(chat)
	if err := s.addContact(ctx, chat); err != nil {
		return err
	}
	if err := s.sink.Emit(ctx, legacy.Incoming{ID: legacy.MessageID(id), Chat: c, Text: text, Time: time.Now().UTC(), Attachments: atts}); err != nil {
		return err
	}
	var note string
	switch keyword(text) {
	case "STOP":
		s.setOptOut(chat, true)
		note = "[SMS gateway] " + chat + " texted STOP: they have opted out, and messages to them are refused until they text START."
	case "START":
		s.setOptOut(chat, false)
		note = "[SMS gateway] " + chat + " texted START: you can message them again."
	case "HELP":
		if via == nil || s.net.helpText == "" || s.own != nil {
			return nil
		}
		// Sent in the background: an SMPP MO is handled on the bind's
		// reading goroutine, which must stay free to read the answer.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if _, err := via.send(ctx, s.number, chat, s.net.helpText, Count(s.net.helpText), id+"-help"); err != nil {
				s.log.Warn("HELP auto-reply not sent", "err", err)
			}
		}()
		note = "[SMS gateway] " + chat + " texted HELP; the gateway answers with its help text: " + s.net.helpText
	}
	if note == "" {
		return nil
	}
	if b := s.stateBlob(); b != nil {
		if err := s.sink.Emit(ctx, legacy.SaveState{State: b}); err != nil {
			return err
		}
	}
	return s.sink.Emit(ctx, legacy.Incoming{ID: legacy.MessageID(id + "-note"), Chat: c, Text: note, Time: time.Now().UTC()})
}

// mmsMaxSize bounds one fetched MMS medium (carriers cap MMS at a few MB).
const mmsMaxSize = 5 << 20

// fetchMMS downloads Twilio MMS media with the account's credentials
// (Twilio may require HTTP basic auth on media URLs), each within
// mmsMaxSize and the request's deadline. It returns the media it got as
// attachments and the URLs it could not fetch.
func (s *session) fetchMMS(ctx context.Context, urls []string) ([]legacy.Attachment, []string) {
	var atts []legacy.Attachment
	var failed []string
	var c *twilio.Client
	if s.own != nil {
		c = s.own
	} else {
		for _, r := range s.routes {
			if tr, ok := r.(*twilioRoute); ok {
				c = tr.c
			}
		}
	}
	for i, u := range urls {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			failed = append(failed, u)
			continue
		}
		if c != nil {
			req.SetBasicAuth(c.AccountSID, c.AuthToken)
		}
		resp, err := s.net.httpc.Do(req)
		if err != nil {
			s.log.Warn("sms: MMS medium not fetched; sent as a link", "err", err)
			failed = append(failed, u)
			continue
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, mmsMaxSize+1))
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || len(data) > mmsMaxSize {
			s.log.Warn("sms: MMS medium not fetched; sent as a link", "status", resp.StatusCode, "size", len(data))
			failed = append(failed, u)
			continue
		}
		typ := resp.Header.Get("Content-Type")
		if typ == "" {
			typ = http.DetectContentType(data)
		}
		name := fmt.Sprintf("mms-%d", i+1) + extension(typ)
		atts = append(atts, legacy.Attachment{Name: name, Type: typ, Data: data})
	}
	return atts, failed
}

// usualExt is the extension people expect for the types MMS carry;
// mime.ExtensionsByType sorts its answers, so its first is often a rare
// one (".jfif" for image/jpeg, ".m4v" for video/mp4).
var usualExt = map[string]string{
	"image/jpeg": ".jpg", "image/jpg": ".jpg", "image/pjpeg": ".jpg", "image/png": ".png", "image/gif": ".gif",
	"image/webp": ".webp", "image/bmp": ".bmp", "image/heic": ".heic", "image/heif": ".heif", "image/tiff": ".tif",
	"video/mp4": ".mp4", "video/3gpp": ".3gp", "video/3gpp2": ".3g2", "video/quicktime": ".mov", "video/mpeg": ".mpg",
	"video/webm": ".webm", "audio/mpeg": ".mp3", "audio/mp3": ".mp3", "audio/mp4": ".m4a", "audio/aac": ".aac",
	"audio/amr": ".amr", "audio/ogg": ".ogg", "audio/wav": ".wav", "audio/x-wav": ".wav", "audio/3gpp": ".3gp",
	"text/plain": ".txt", "text/vcard": ".vcf", "text/x-vcard": ".vcf", "text/calendar": ".ics",
	"application/pdf": ".pdf", "application/vcard": ".vcf",
}

// extension returns the file extension for a MIME type (parameters
// ignored): the usual one, else the first mime knows, else none.
func extension(typ string) string {
	mt, _, err := mime.ParseMediaType(typ)
	if err != nil {
		return ""
	}
	if e, ok := usualExt[mt]; ok {
		return e
	}
	if exts, _ := mime.ExtensionsByType(mt); len(exts) > 0 {
		return exts[0]
	}
	return ""
}
