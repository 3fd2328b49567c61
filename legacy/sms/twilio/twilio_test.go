package twilio_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/sms/twilio"
	"github.com/jabbergate/jabbergate/legacy/sms/twilio/twiliotest"
)

// The worked example of Twilio's "Webhooks security" guide
// (https://www.twilio.com/docs/usage/webhooks/webhooks-security).
var (
	docURL    = "https://mycompany.com/myapp.php?foo=1&bar=2"
	docParams = url.Values{
		"CallSid": {"CA1234567890ABCDE"}, "Caller": {"+12349013030"}, "Digits": {"1234"},
		"From": {"+12349013030"}, "To": {"+18005551212"},
	}
	docSig = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
)

func TestSignaturePublishedVector(t *testing.T) {
	if got := twilio.Signature("12345", docURL, docParams); got != docSig {
		t.Fatalf("Signature = %q, want Twilio's published %q", got, docSig)
	}
}

func signedRequest(sig string, params url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/myapp.php?foo=1&bar=2", strings.NewReader(params.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if sig != "" {
		r.Header.Set("X-Twilio-Signature", sig)
	}
	r.ParseForm()
	return r
}

func TestVerify(t *testing.T) {
	if err := twilio.Verify("12345", docURL, signedRequest(docSig, docParams)); err != nil {
		t.Errorf("published vector refused: %v", err)
	}
	tampered := url.Values{}
	for k, v := range docParams {
		tampered[k] = v
	}
	tampered.Set("Digits", "9999")
	for name, c := range map[string]struct {
		token, url, sig string
		params          url.Values
	}{
		"tampered param": {"12345", docURL, docSig, tampered},
		"other URL":      {"12345", "https://mycompany.com/myapp.php?foo=1&bar=3", docSig, docParams},
		"other token":    {"54321", docURL, docSig, docParams},
		"no signature":   {"12345", docURL, "", docParams},
		"no token":       {"", docURL, docSig, docParams},
		"truncated":      {"12345", docURL, docSig[:len(docSig)-1], docParams},
	} {
		if err := twilio.Verify(c.token, c.url, signedRequest(c.sig, c.params)); !errors.Is(err, twilio.ErrBadSignature) {
			t.Errorf("%s: Verify = %v, want ErrBadSignature", name, err)
		}
	}
}

func TestSendAgainstFake(t *testing.T) {
	f := twiliotest.New("AC123", "tok")
	defer f.Close()
	c := &twilio.Client{BaseURL: f.URL, AccountSID: "AC123", AuthToken: "tok", HTTP: f.Client()}
	sent, err := c.Send(context.Background(), "+15550001111", "+15551234567", "hello", "https://gw.example/status")
	if err != nil {
		t.Fatal(err)
	}
	got := f.Sent()
	if len(got) != 1 || got[0].SID != sent.SID || got[0].Body != "hello" || got[0].StatusCallback != "https://gw.example/status" {
		t.Errorf("fake got %+v, client got %+v", got, sent)
	}
	if err := c.Check(context.Background()); err != nil {
		t.Errorf("Check with good credentials: %v", err)
	}
}

func TestSendErrors(t *testing.T) {
	f := twiliotest.New("AC123", "tok")
	defer f.Close()
	f.OptOut("+15557654321")
	hc := &http.Client{Timeout: 2 * time.Second}
	op := &twilio.Client{BaseURL: f.URL, AccountSID: "AC123", AuthToken: "tok", HTTP: hc}
	own := &twilio.Client{BaseURL: f.URL, AccountSID: "AC123", AuthToken: "tok", HTTP: hc, OwnCredentials: true}
	cases := []struct {
		name   string
		c      *twilio.Client
		fault  twiliotest.Fault
		to     string
		body   string
		want   error
		code   string
		inText string
	}{
		{name: "21211 invalid To", to: "12", want: legacy.ErrInvalidAddress, code: "21211"},
		{name: "21610 opted out", to: "+15557654321", want: legacy.ErrForbidden, code: "21610", inText: "START"},
		{name: "21408 region", fault: twiliotest.Fault21408, want: legacy.ErrForbidden, code: "21408"},
		{name: "21612 unreachable", fault: twiliotest.Fault21612, want: legacy.ErrRejected, code: "21612"},
		{name: "21617 too long", body: strings.Repeat("a", 1601), want: legacy.ErrTooLarge, code: "21617"},
		{name: "21602 empty body", body: " ", want: legacy.ErrRejected, code: "21602"},
		{name: "429", fault: twiliotest.Fault429, want: legacy.ErrRateLimited},
		{name: "500", fault: twiliotest.Fault500, want: legacy.ErrUnavailable},
		{name: "503 HTML", fault: twiliotest.Fault503HTML, want: legacy.ErrUnavailable, inText: "instead of JSON"},
		{name: "timeout", fault: twiliotest.FaultHang, want: legacy.ErrUnavailable},
		{name: "401 operator", fault: twiliotest.Fault20003, want: legacy.ErrUnavailable, code: "20003", inText: "operator"},
		{name: "401 own", c: own, fault: twiliotest.Fault20003, want: legacy.ErrUnauthorized, code: "20003"},
		{name: "wrong token own", c: &twilio.Client{BaseURL: f.URL, AccountSID: "AC123", AuthToken: "bad", HTTP: hc, OwnCredentials: true},
			want: legacy.ErrUnauthorized, code: "20003"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			if c == nil {
				c = op
			}
			if tc.fault != "" {
				f.Fail(tc.fault)
			}
			to, body := tc.to, tc.body
			if to == "" {
				to = "+15551234567"
			}
			if body == "" {
				body = "hi"
			}
			_, err := c.Send(context.Background(), "+15550001111", to, body, "")
			if !errors.Is(err, tc.want) {
				t.Fatalf("Send = %v, want %v", err, tc.want)
			}
			if tc.code != "" {
				var ce *legacy.CodeError
				if !errors.As(err, &ce) || ce.Code != tc.code {
					t.Errorf("Send = %v, want a CodeError with code %s", err, tc.code)
				}
			}
			if tc.inText != "" && !strings.Contains(err.Error(), tc.inText) {
				t.Errorf("Send = %v, want it to mention %q", err, tc.inText)
			}
			if tc.want == legacy.ErrRateLimited {
				var rl *legacy.RateLimitError
				if !errors.As(err, &rl) || rl.RetryAfter != 7*time.Second {
					t.Errorf("Send = %v, want a RateLimitError of 7s (Retry-After)", err)
				}
			}
		})
	}
}

func TestParseWebhooks(t *testing.T) {
	in := url.Values{"MessageSid": {"SM1"}, "AccountSid": {"AC1"}, "From": {"+15551234567"}, "To": {"+15550001111"},
		"Body": {"pic"}, "NumMedia": {"2"}, "MediaUrl0": {"https://m/0"}, "MediaUrl1": {"https://m/1"}}
	m, err := twilio.ParseInbound(signedRequest("", in))
	if err != nil || m.SID != "SM1" || m.Body != "pic" || len(m.Media) != 2 || m.Media[1] != "https://m/1" {
		t.Errorf("ParseInbound = %+v, %v", m, err)
	}
	if _, err := twilio.ParseInbound(signedRequest("", url.Values{"Body": {"x"}})); err == nil {
		t.Errorf("ParseInbound accepted a message without sid")
	}
	st, err := twilio.ParseStatus(signedRequest("", url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}}))
	if err != nil || !st.Final() || st.Status != "delivered" {
		t.Errorf("ParseStatus = %+v, %v", st, err)
	}
}

// A 2xx is Twilio accepting (and billing) the message, whatever its body:
// Send succeeds with Sent.Unreadable set and no SID, and must not be
// retried. A GET (Check) answered so is retried (ErrUnavailable).
func TestAcceptedUnreadable(t *testing.T) {
	f := twiliotest.New("AC123", "tok")
	defer f.Close()
	c := &twilio.Client{BaseURL: f.URL, AccountSID: "AC123", AuthToken: "tok", HTTP: &http.Client{Timeout: 2 * time.Second}}
	for _, fault := range []twiliotest.Fault{twiliotest.FaultBadJSON, twiliotest.FaultNoAnswer, twiliotest.FaultAcceptedHTML, twiliotest.Fault200HTML} {
		f.Fail(fault)
		sent, err := c.Send(context.Background(), "+15550001111", "+15551234567", "hi", "")
		if err != nil || sent == nil || sent.SID != "" || !errors.Is(sent.Unreadable, twilio.ErrMalformedReply) ||
			errors.Is(sent.Unreadable, legacy.ErrUnavailable) {
			t.Errorf("%s: Send = %+v, %v; want no error, no SID and Unreadable wrapping only ErrMalformedReply", fault, sent, err)
		}
		if fault == twiliotest.FaultNoAnswer {
			continue // JSON: Check reads no field
		}
		f.Fail(fault)
		if err := c.Check(context.Background()); !errors.Is(err, legacy.ErrUnavailable) || !errors.Is(err, twilio.ErrMalformedReply) {
			t.Errorf("%s: Check = %v, want ErrUnavailable", fault, err)
		}
	}
	if n := len(f.Sent()); n != 3 { // the captive portal's 200 never reached the fake
		t.Errorf("the fake accepted %d messages, want 3", n)
	}
	// A 2xx whose body breaks off.
	cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{"sid": "SM`))
	}))
	defer cut.Close()
	c.BaseURL = cut.URL
	sent, err := c.Send(context.Background(), "+15550001111", "+15551234567", "hi", "")
	if err != nil || sent == nil || !errors.Is(sent.Unreadable, twilio.ErrMalformedReply) {
		t.Errorf("2xx with a body cut short: Send = %+v, %v; want accepted, Unreadable", sent, err)
	}
}

// OwnsNumber lists the account's IncomingPhoneNumbers filtered by the
// number; the filter also matches parts of numbers, so only an exact match
// counts.
func TestOwnsNumber(t *testing.T) {
	f := twiliotest.New("AC123", "tok")
	defer f.Close()
	f.AddNumbers("+15557770000")
	c := &twilio.Client{BaseURL: f.URL, AccountSID: "AC123", AuthToken: "tok", OwnCredentials: true}
	for number, want := range map[string]bool{"+15557770000": true, "+1555777000": false, "+15557779999": false} {
		if got, err := c.OwnsNumber(context.Background(), number); err != nil || got != want {
			t.Errorf("OwnsNumber(%s) = %v, %v; want %v", number, got, err, want)
		}
	}
	c.AuthToken = "wrong"
	if _, err := c.OwnsNumber(context.Background(), "+15557770000"); !errors.Is(err, legacy.ErrUnauthorized) {
		t.Errorf("OwnsNumber with a wrong token = %v, want ErrUnauthorized", err)
	}
	c.AuthToken = "tok"
	f.Fail(twiliotest.FaultNoAnswer)
	if _, err := c.OwnsNumber(context.Background(), "+15557770000"); !errors.Is(err, legacy.ErrUnavailable) {
		t.Errorf("OwnsNumber with an answer without the list = %v, want ErrUnavailable", err)
	}
}
