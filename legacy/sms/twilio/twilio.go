// Package twilio is the Twilio Programmable Messaging route of the SMS
// adapter, written against Twilio's documented REST API with plain net/http
// (no SDK):
//
//   - sending: POST /2010-04-01/Accounts/{AccountSid}/Messages.json with
//     HTTP basic auth (account SID, auth token) and the form fields To, From,
//     Body, StatusCallback and, for MMS, up to 10 MediaUrl (SendMedia;
//     https://www.twilio.com/docs/sms/api/message-resource);
//   - errors: the JSON error body {"code", "message", "more_info", "status"}
//     mapped to package legacy's sentinels (Client.Send documents the table);
//   - webhooks: X-Twilio-Signature, base64(HMAC-SHA1(auth token, URL + every
//     POST parameter name and value sorted by name)), checked in constant
//     time (https://www.twilio.com/docs/usage/webhooks/webhooks-security);
//     incoming messages (MessageSid, From, To, Body, NumMedia, MediaUrlN) and
//     status callbacks (MessageSid, MessageStatus, ErrorCode);
//   - accounts: Check (GET Accounts/{sid}.json) and OwnsNumber (GET
//     Accounts/{sid}/IncomingPhoneNumbers.json?PhoneNumber=…).
//
// Any Twilio-compatible API (SignalWire's compatibility API) works by
// pointing Client.BaseURL at it. The HMAC-SHA256 "Webhook Rules" variant of
// the signature is not implemented.
package twilio

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jabbergate/jabbergate/legacy"
)

// DefaultBaseURL is Twilio's REST API.
const DefaultBaseURL = "https://api.twilio.com"

// Client sends messages through one Twilio account. Safe for concurrent
// use.
type Client struct {
	// BaseURL is the API root (DefaultBaseURL when empty).
	BaseURL string
	// AccountSID and AuthToken are the account's credentials; the token
	// also signs the webhooks.
	AccountSID, AuthToken string
	// HTTP is the client used (http.DefaultClient when nil); its Timeout
	// bounds a send.
	HTTP *http.Client
	// OwnCredentials marks credentials that belong to the user: a 401 is
	// then ErrUnauthorized (the user must register again). For the
	// operator's account it is ErrUnavailable instead, since the user can
	// do nothing about it.
	OwnCredentials bool
}

// Sent is Twilio's answer to a send: the message resource, in part.
type Sent struct {
	SID         string `json:"sid"`
	Status      string `json:"status"`
	NumSegments string `json:"num_segments"`
	// Unreadable is set when Twilio answered 2xx but the body was not the
	// message resource (a truncated or HTML body, one without a sid, or
	// one that could not be read to its end); it wraps ErrMalformedReply.
	// A 2xx means Twilio accepted the message (and bills it): it is sent,
	// only its SID, which status callbacks carry, is unknown (SID is "").
	// Never send such a message again, nor through another route.
	Unreadable error `json:"-"`
}

// apiError is Twilio's JSON error body.
type apiError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

// Send sends text from one number to another, asking for status callbacks
// at statusCallback when it is not empty. Errors wrap legacy sentinels:
//
//	21211, 21614 (invalid or non-mobile To)   ErrInvalidAddress
//	21610 (recipient replied STOP)            ErrForbidden, with a text saying so
//	21408 (region not enabled)                ErrForbidden
//	21612 (cannot route To from this From)    ErrRejected
//	21617 (body over 1600 characters)         ErrTooLarge
//	21620 (invalid media URL)                 ErrRejected
//	21623 (more than 10 media)                ErrTooLarge
//	other 4xx codes                           ErrRejected
//	401, 20003                                ErrUnauthorized (own credentials) or ErrUnavailable
//	429, 20429                                *legacy.RateLimitError (Retry-After, default 1 s)
//	5xx, timeouts, HTML or malformed bodies   ErrUnavailable
//
// A 2xx answer is never an error, whatever its body: Twilio accepted the
// message; an unreadable body is reported in Sent.Unreadable. Provider
// codes travel in a *legacy.CodeError.
func (c *Client) Send(ctx context.Context, from, to, text, statusCallback string) (*Sent, error) {
	return c.SendMedia(ctx, from, to, text, nil, statusCallback)
}

// MaxMedia is the most media one Twilio message carries; MaxMediaSize
// their total size ("up to 10 media files that have a total size of up to
// 5MB", https://www.twilio.com/docs/messaging/api/media-resource).
// Images (JPEG, PNG, GIF) are resized by Twilio for the carrier; other
// accepted types must stay within MaxOtherMediaSize each.
const (
	MaxMedia          = 10
	MaxMediaSize      = 5_000_000
	MaxOtherMediaSize = 500_000
)

// SendMedia is Send for an MMS: media are public http(s) URLs that Twilio
// fetches when it sends the message (at most MaxMedia; text may then be
// empty). URLs are checked here as Twilio checks them (21620, 21623), so
// a bad one fails before any request.
func (c *Client) SendMedia(ctx context.Context, from, to, text string, media []string, statusCallback string) (*Sent, error) {
	if len(media) > MaxMedia {
		return nil, fmt.Errorf("twilio: %w", &legacy.CodeError{Code: "21623",
			Text: fmt.Sprintf("%d media files, more than the %d a message may carry", len(media), MaxMedia), Err: legacy.ErrTooLarge})
	}
	for _, m := range media {
		if u, err := url.Parse(m); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("twilio: %w", &legacy.CodeError{Code: "21620", Text: "invalid media URL " + strconv.Quote(m), Err: legacy.ErrRejected})
		}
	}
	form := url.Values{"To": {to}, "From": {from}, "Body": {text}}
	if len(media) > 0 && text == "" {
		form.Del("Body")
	}
	for _, m := range media {
		form.Add("MediaUrl", m)
	}
	if statusCallback != "" {
		form.Set("StatusCallback", statusCallback)
	}
	base := strings.TrimRight(c.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	u := base + "/2010-04-01/Accounts/" + url.PathEscape(c.AccountSID) + "/Messages.json"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("twilio: %w", err)
	}
	req.SetBasicAuth(c.AccountSID, c.AuthToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	var sent Sent
	if err := c.do(req, &sent); errors.Is(err, ErrMalformedReply) {
		// 2xx: accepted. Sending it again would send (and bill) it twice.
		return &Sent{Unreadable: err}, nil
	} else if err != nil {
		return nil, err
	}
	if sent.SID == "" {
		sent.Unreadable = fmt.Errorf("twilio: HTTP 2xx answer without a message sid: %w", ErrMalformedReply)
	}
	return &sent, nil
}

// Check verifies the credentials (GET the account resource): nil, or an
// error wrapping ErrUnauthorized when Twilio refuses them.
func (c *Client) Check(ctx context.Context) error {
	base := strings.TrimRight(c.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/2010-04-01/Accounts/"+url.PathEscape(c.AccountSID)+".json", nil)
	if err != nil {
		return fmt.Errorf("twilio: %w", err)
	}
	req.SetBasicAuth(c.AccountSID, c.AuthToken)
	req.Header.Set("Accept", "application/json")
	var acct struct {
		SID string `json:"sid"`
	}
	return retryable(c.do(req, &acct))
}

// OwnsNumber reports whether number (E.164) is one of the account's phone
// numbers: GET /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json
// filtered with PhoneNumber (Twilio's "Read multiple IncomingPhoneNumber
// resources", https://www.twilio.com/docs/phone-numbers/api/incomingphonenumber-resource).
// The filter also matches partial numbers, so the answer is checked for
// the exact number. Errors are Check's.
func (c *Client) OwnsNumber(ctx context.Context, number string) (bool, error) {
	base := strings.TrimRight(c.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	u := base + "/2010-04-01/Accounts/" + url.PathEscape(c.AccountSID) + "/IncomingPhoneNumbers.json?" +
		url.Values{"PhoneNumber": {number}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, fmt.Errorf("twilio: %w", err)
	}
	req.SetBasicAuth(c.AccountSID, c.AuthToken)
	req.Header.Set("Accept", "application/json")
	var list struct {
		Numbers *[]struct {
			PhoneNumber string `json:"phone_number"`
		} `json:"incoming_phone_numbers"`
	}
	if err := c.do(req, &list); err != nil {
		return false, retryable(err)
	}
	if list.Numbers == nil {
		return false, retryable(fmt.Errorf("twilio: IncomingPhoneNumbers answer without incoming_phone_numbers: %w", ErrMalformedReply))
	}
	for _, n := range *list.Numbers {
		if n.PhoneNumber == number {
			return true, nil
		}
	}
	return false, nil
}

// retryable makes an unreadable 2xx answer to a request that changes
// nothing (a GET) an ErrUnavailable: asking again is harmless.
func retryable(err error) error {
	if errors.Is(err, ErrMalformedReply) {
		return fmt.Errorf("%w (%w)", err, legacy.ErrUnavailable)
	}
	return err
}

func (c *Client) do(req *http.Request, out any) error {
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		// The error names the URL, which holds the account SID but no
		// secret (basic auth is a header).
		return fmt.Errorf("twilio: %w", errors.Join(legacy.ErrUnavailable, err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode/100 == 2 {
		// Twilio did what was asked: the errors below say only that the
		// answer could not be read (ErrMalformedReply); callers decide
		// whether asking again is safe (a GET) or not (a send).
		switch {
		case err != nil:
			return fmt.Errorf("twilio: HTTP %d, answer not read to its end: %w", resp.StatusCode, errors.Join(ErrMalformedReply, err))
		case ct != "application/json" && !json.Valid(body):
			return fmt.Errorf("twilio: HTTP %d with a %q body instead of JSON (a proxy or captive portal in the way?): %w",
				resp.StatusCode, ct, ErrMalformedReply)
		}
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("twilio: HTTP %d with malformed JSON: %w", resp.StatusCode, errors.Join(ErrMalformedReply, err))
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("twilio: read answer: %w", errors.Join(legacy.ErrUnavailable, err))
	}
	isJSON := ct == "application/json" || json.Valid(body)
	var ae apiError
	if isJSON {
		_ = json.Unmarshal(body, &ae)
	}
	return c.classify(resp, ae, isJSON, ct)
}

func (c *Client) classify(resp *http.Response, ae apiError, isJSON bool, ct string) error {
	code := strconv.Itoa(ae.Code)
	msg := ae.Message
	ce := func(err error) error {
		if ae.Code == 0 {
			code = strconv.Itoa(resp.StatusCode)
		}
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return fmt.Errorf("twilio: %w", &legacy.CodeError{Code: code, Text: msg, Err: err})
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || ae.Code == 20429:
		wait := time.Second
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			wait = time.Duration(s) * time.Second
		}
		return fmt.Errorf("twilio: too many requests (%d): %w", ae.Code, &legacy.RateLimitError{RetryAfter: wait})
	case resp.StatusCode == http.StatusUnauthorized || ae.Code == 20003:
		if c.OwnCredentials {
			return ce(legacy.ErrUnauthorized)
		}
		msg = "the gateway's Twilio credentials were rejected; tell the operator (" + msg + ")"
		return ce(legacy.ErrUnavailable)
	case !isJSON:
		return fmt.Errorf("twilio: HTTP %d with a %q body instead of JSON (a proxy or load balancer in the way?): %w",
			resp.StatusCode, ct, legacy.ErrUnavailable)
	case resp.StatusCode >= 500:
		return ce(legacy.ErrUnavailable)
	}
	switch ae.Code {
	case 21211, 21614:
		return ce(legacy.ErrInvalidAddress)
	case 21610:
		msg = "the recipient has opted out of messages from this number (they replied STOP); they must text START to it to receive messages again"
		return ce(legacy.ErrForbidden)
	case 21408:
		return ce(legacy.ErrForbidden)
	case 21612:
		return ce(legacy.ErrRejected)
	case 21617, 21623:
		return ce(legacy.ErrTooLarge)
	}
	if resp.StatusCode == http.StatusNotFound && ae.Code == 20404 {
		// The account or endpoint does not exist: a configuration error.
		return ce(legacy.ErrUnavailable)
	}
	return ce(legacy.ErrRejected)
}

// Signature computes X-Twilio-Signature for a POST to fullURL (exactly as
// configured at Twilio, query string included) with the form params.
func Signature(authToken, fullURL string, params url.Values) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	mac := hmac.New(sha1.New, []byte(authToken))
	io.WriteString(mac, fullURL)
	for _, k := range keys {
		vs := append([]string(nil), params[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			io.WriteString(mac, k)
			io.WriteString(mac, v)
		}
	}
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// ErrBadSignature is returned by Verify for a missing or wrong signature.
var ErrBadSignature = errors.New("twilio: bad webhook signature")

// ErrMalformedReply marks a successful (2xx) HTTP status whose body was
// not the JSON the API documents (an HTML page from a proxy, a truncated
// body, one without a sid). Twilio did what was asked: a send is accepted
// (Sent.Unreadable, no error), a read (Check) is retried (also
// legacy.ErrUnavailable).
var ErrMalformedReply = errors.New("twilio: malformed reply")

// Verify checks the X-Twilio-Signature of a parsed POST request r against
// fullURL (the public URL Twilio was given, not the one seen behind a
// proxy). r.ParseForm must have been called.
func Verify(authToken, fullURL string, r *http.Request) error {
	got := r.Header.Get("X-Twilio-Signature")
	if got == "" || authToken == "" {
		return ErrBadSignature
	}
	want := Signature(authToken, fullURL, r.PostForm)
	if !hmac.Equal([]byte(got), []byte(want)) {
		return ErrBadSignature
	}
	return nil
}

// Inbound is an incoming message webhook.
type Inbound struct {
	SID, AccountSID, From, To, Body string
	// Media are the MMS media URLs (MediaUrl0…), in order.
	Media []string
}

// ParseInbound reads an incoming-message webhook (form already parsed).
func ParseInbound(r *http.Request) (*Inbound, error) {
	f := r.PostForm
	in := &Inbound{SID: f.Get("MessageSid"), AccountSID: f.Get("AccountSid"), From: f.Get("From"), To: f.Get("To"), Body: f.Get("Body")}
	if in.SID == "" {
		in.SID = f.Get("SmsSid")
	}
	if in.SID == "" || in.From == "" || in.To == "" {
		return nil, errors.New("twilio: incoming message without MessageSid, From or To")
	}
	n, _ := strconv.Atoi(f.Get("NumMedia"))
	for i := 0; i < n && i < 10; i++ {
		if u := f.Get("MediaUrl" + strconv.Itoa(i)); u != "" {
			in.Media = append(in.Media, u)
		}
	}
	return in, nil
}

// Status is a status callback.
type Status struct {
	SID, From, To, Status, ErrorCode string
}

// Final reports whether the status is final (delivered, undelivered,
// failed, read).
func (s *Status) Final() bool {
	switch s.Status {
	case "delivered", "undelivered", "failed", "read":
		return true
	}
	return false
}

// ParseStatus reads a status callback (form already parsed).
func ParseStatus(r *http.Request) (*Status, error) {
	f := r.PostForm
	st := &Status{SID: f.Get("MessageSid"), From: f.Get("From"), To: f.Get("To"), Status: f.Get("MessageStatus"), ErrorCode: f.Get("ErrorCode")}
	if st.SID == "" {
		st.SID = f.Get("SmsSid")
	}
	if st.Status == "" {
		st.Status = f.Get("SmsStatus")
	}
	if st.SID == "" || st.Status == "" {
		return nil, errors.New("twilio: status callback without MessageSid or MessageStatus")
	}
	return st, nil
}

// DeliveryError maps the ErrorCode of an "undelivered" or "failed" status
// callback (Twilio's 30xxx delivery errors,
// https://www.twilio.com/docs/api/errors) to a *legacy.CodeError.
func DeliveryError(status, code string) error {
	var err error
	text := "Twilio reports the message " + status
	switch code {
	case "30004":
		err, text = legacy.ErrForbidden, "the message was blocked (the recipient may have blocked this number)"
	case "21610":
		err, text = legacy.ErrForbidden, "the recipient has opted out of messages from this number (they replied STOP)"
	case "30005":
		err, text = legacy.ErrNotFound, "unknown destination handset"
	case "30006":
		err, text = legacy.ErrNotFound, "landline or unreachable carrier"
	case "30007":
		err, text = legacy.ErrPolicy, "the carrier filtered the message"
	case "30003":
		err, text = legacy.ErrUnavailable, "the destination handset is unreachable"
	default:
		err = legacy.ErrUnavailable
	}
	if code == "" {
		code = status
	}
	return &legacy.CodeError{Code: code, Text: text, Err: err}
}
