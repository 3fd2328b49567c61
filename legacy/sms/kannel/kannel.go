// Package kannel is the Kannel route of the SMS adapter: Kannel's smsbox
// HTTP interface as documented in the Kannel 1.4 User's Guide
// (https://www.kannel.org/userguide.shtml):
//
//   - MT: GET /cgi-bin/sendsms with username, password, from, to, text,
//     charset=UTF-8, coding (0 GSM-7, 2 UCS-2), and dlr-mask/dlr-url for
//     delivery reports; 202 "0: Accepted for delivery" or "3: Queued for
//     later delivery" on success;
//   - MO: an sms-service whose get-url points at the gateway's /kannel/mo
//     webhook (ParseMO documents the parameters);
//   - DLR: the dlr-url Send passes points at /kannel/dlr (ParseDLR).
//
// Kannel's MO and DLR requests carry no signature, so they are
// authenticated by a shared secret (CheckSecret): either a "secret" query
// parameter in the URL configured in Kannel, or HTTP basic auth whose
// password is the secret (user name ignored). Serve the webhooks over TLS
// or on a private network.
package kannel

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/jabbergate/jabbergate/legacy"
)

// Coding values of sendsms.
const (
	Coding7Bit = 0
	CodingUCS2 = 2
)

// DLR types (dlr-mask bits, and the %d escape of a dlr-url).
const (
	DLRDelivered = 1
	DLRFailed    = 2
	DLRBuffered  = 4
	DLRAccepted  = 8
	DLRRejected  = 16
)

// Client sends through one smsbox. Safe for concurrent use.
type Client struct {
	// SendURL is the sendsms URL, e.g. http://127.0.0.1:13013/cgi-bin/sendsms.
	SendURL string
	// Username and Password are a sendsms-user of the smsbox.
	Username, Password string
	// SMSC, when set, routes through that smsc-id.
	SMSC string
	// HTTP is the client used (http.DefaultClient when nil).
	HTTP *http.Client
}

// Send submits text. coding is Coding7Bit or CodingUCS2; dlrURL, when set,
// asks for delivery reports (delivered and failed) at that URL. Kannel
// answers no message id; correlate DLRs through dlrURL. Errors wrap legacy
// sentinels: 5xx and connection failures ErrUnavailable; 401/403 (the
// operator's sendsms-user refused) ErrUnavailable too; other 4xx
// ErrRejected, or ErrInvalidAddress when Kannel names the receiver.
func (c *Client) Send(ctx context.Context, from, to, text string, coding int, dlrURL string) error {
	q := url.Values{
		"username": {c.Username}, "password": {c.Password},
		"to": {to}, "text": {text}, "charset": {"UTF-8"}, "coding": {strconv.Itoa(coding)},
	}
	if from != "" {
		q.Set("from", from)
	}
	if c.SMSC != "" {
		q.Set("smsc", c.SMSC)
	}
	if dlrURL != "" {
		q.Set("dlr-mask", strconv.Itoa(DLRDelivered|DLRFailed|DLRRejected))
		q.Set("dlr-url", dlrURL)
	}
	u, err := url.Parse(c.SendURL)
	if err != nil {
		return fmt.Errorf("kannel: send_url: %w", err)
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("kannel: %w", err)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		// Never print the URL: it carries the password.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("kannel: sendsms: %w", errors.Join(legacy.ErrUnavailable, err))
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	body := strings.TrimSpace(string(b))
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode >= 500:
		return fmt.Errorf("kannel: sendsms: %w", &legacy.CodeError{Code: strconv.Itoa(resp.StatusCode), Text: body, Err: legacy.ErrUnavailable})
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("kannel: sendsms refused the gateway's credentials; tell the operator: %w",
			&legacy.CodeError{Code: strconv.Itoa(resp.StatusCode), Text: body, Err: legacy.ErrUnavailable})
	case strings.Contains(strings.ToLower(body), "receiver"):
		return fmt.Errorf("kannel: sendsms: %w", &legacy.CodeError{Code: strconv.Itoa(resp.StatusCode), Text: body, Err: legacy.ErrInvalidAddress})
	default:
		return fmt.Errorf("kannel: sendsms: %w", &legacy.CodeError{Code: strconv.Itoa(resp.StatusCode), Text: body, Err: legacy.ErrRejected})
	}
}

// ErrBadSecret is returned by CheckSecret.
var ErrBadSecret = errors.New("kannel: missing or wrong webhook secret")

// CheckSecret authenticates an MO or DLR request: its "secret" query
// parameter, or the password of its basic auth, must equal secret (compared
// in constant time). An empty configured secret refuses everything.
func CheckSecret(secret string, r *http.Request) error {
	if secret == "" {
		return ErrBadSecret
	}
	got := r.URL.Query().Get("secret")
	if _, pw, ok := r.BasicAuth(); ok && got == "" {
		got = pw
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(secret)) != 1 {
		return ErrBadSecret
	}
	return nil
}

// MO is a mobile-originated message.
type MO struct {
	// ID is Kannel's message id (%I); may be empty.
	ID       string
	From, To string
	Text     string
	// Time is Kannel's %T (Unix seconds), empty when not configured.
	Time string
}

// ParseMO reads an MO request from an sms-service configured as
//
//	get-url = "https://gw.example/webhooks/sms.example/kannel/mo?secret=S&id=%I&from=%p&to=%P&ts=%T&text=%a"
//
// (with mo-recode = true so text arrives in UTF-8, and max-messages = 0 so
// the empty answer is not sent back as an SMS). POST with the same
// parameters as a form works too.
func ParseMO(r *http.Request) (*MO, error) {
	if err := r.ParseForm(); err != nil {
		return nil, fmt.Errorf("kannel: %w", err)
	}
	f := r.Form
	mo := &MO{ID: f.Get("id"), From: f.Get("from"), To: f.Get("to"), Text: f.Get("text"), Time: f.Get("ts")}
	if mo.From == "" || mo.To == "" {
		return nil, errors.New("kannel: MO request without from or to")
	}
	return mo, nil
}

// DLR is a delivery report.
type DLR struct {
	// ID is the gateway's own message id, which Send's caller put into the
	// dlr-url.
	ID   string
	To   string
	Type int
	// Reply is the SMSC's answer (%A), if configured.
	Reply string
}

// ParseDLR reads a DLR request whose dlr-url was built with the
// parameters id, to (set by the gateway) and type=%d (and optionally
// reply=%A).
func ParseDLR(r *http.Request) (*DLR, error) {
	if err := r.ParseForm(); err != nil {
		return nil, fmt.Errorf("kannel: %w", err)
	}
	t, err := strconv.Atoi(r.Form.Get("type"))
	d := &DLR{ID: r.Form.Get("id"), To: r.Form.Get("to"), Type: t, Reply: r.Form.Get("reply")}
	if err != nil || d.ID == "" {
		return nil, errors.New("kannel: DLR without id or type")
	}
	return d, nil
}
