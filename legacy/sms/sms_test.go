package sms_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/legacytest"
	"github.com/jabbergate/jabbergate/legacy/sms"
	"github.com/jabbergate/jabbergate/legacy/sms/twilio"
	"github.com/jabbergate/jabbergate/legacy/sms/twilio/twiliotest"
)

const (
	publicURL = "https://gw.example.org/webhooks/sms.example.org"
	sid       = "AC0123456789abcdef0123456789abcdef"
	token     = "operator-token"
	myNumber  = "+15550001111"
	contact   = "+15551234567"
	kSecret   = "kannel-secret"
)

// fakeKannel is a smsbox sendsms endpoint: 202 "0: Accepted for delivery",
// 403 for wrong credentials, 400 without a receiver, queued 503s.
type fakeKannel struct {
	*httptest.Server
	mu     sync.Mutex
	got    []url.Values
	fails  int
	before func(url.Values) // called with each accepted message before the answer
}

func newFakeKannel(t *testing.T) *fakeKannel {
	k := &fakeKannel{}
	k.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		k.mu.Lock()
		defer k.mu.Unlock()
		switch {
		case r.URL.Path != "/cgi-bin/sendsms":
			http.NotFound(w, r)
		case q.Get("username") != "kuser" || q.Get("password") != "kpass":
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte("Authorization failed for sendsms"))
		case q.Get("to") == "":
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte("Missing receiver number, rejected"))
		case k.fails > 0:
			k.fails--
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("Sending failed."))
		default:
			k.got = append(k.got, q)
			if k.before != nil {
				k.mu.Unlock()
				k.before(q)
				k.mu.Lock()
			}
			w.WriteHeader(http.StatusAccepted)
			w.Write([]byte("0: Accepted for delivery"))
		}
	}))
	t.Cleanup(k.Close)
	return k
}

func (k *fakeKannel) sent() []url.Values {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]url.Values(nil), k.got...)
}

type env struct {
	tw  *twiliotest.Server
	kn  *fakeKannel
	net *sms.Network
}

func newEnv(t *testing.T, extra map[string]string) *env {
	t.Helper()
	e := &env{tw: twiliotest.New(sid, token), kn: newFakeKannel(t)}
	t.Cleanup(e.tw.Close)
	opts := map[string]string{
		"twilio_account_sid": sid, "twilio_auth_token": token, "twilio_api_url": e.tw.URL,
		"kannel_send_url": e.kn.URL + "/cgi-bin/sendsms", "kannel_username": "kuser", "kannel_password": "kpass",
		"kannel_secret": kSecret,
		"numbers":       "+1 555 000 1111, (555) 000-2222", "public_url": publicURL, "timeout": "5s",
	}
	for k, v := range extra {
		if v == "" {
			delete(opts, k)
		} else {
			opts[k] = v
		}
	}
	n, err := sms.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.net = n
	return e
}

// run opens and runs a session for number and waits until it is
// registered with the network.
func (e *env) run(t *testing.T, acct legacy.Account) (legacy.Session, *legacytest.Recorder) {
	t.Helper()
	rec := &legacytest.Recorder{}
	s, err := e.net.Open(context.Background(), acct, rec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return")
		}
	})
	if rec.Wait(5*time.Second, func(ev legacy.Event) bool {
		st, ok := ev.(legacy.StatusEvent)
		return ok && st.Status == legacy.StatusConnected
	}) == nil {
		t.Fatalf("session not connected: %v", rec.Events())
	}
	return s, rec
}

func TestConformance(t *testing.T) {
	e := newEnv(t, nil)
	legacytest.Run(t, legacytest.Suite{
		Network: e.net,
		Fields:  map[string]string{sms.FieldNumber: myNumber},
		Chat:    contact,
		CheckSent: func(t *testing.T, rec *legacytest.Recorder, text string) {
			for _, m := range e.tw.Sent() {
				if m.Body == text && m.To == contact && m.From == myNumber && strings.HasPrefix(m.StatusCallback, publicURL+"/twilio/status?m=") {
					return
				}
			}
			t.Errorf("Twilio did not get %q: %+v", text, e.tw.Sent())
		},
	})
}

func TestResolve(t *testing.T) {
	e := newEnv(t, nil)
	for in, want := range map[string]legacy.ChatID{
		"(555) 123-4567":    "+15551234567",
		"+1 555 123 4567":   "+15551234567",
		"555.123.4567":      "+15551234567",
		"555-123-4567":      "+15551234567",
		"1 555 123 4567":    "+15551234567",
		"+15551234567":      "+15551234567",
		"tel:+15551234567":  "+15551234567",
		"0044 20 7946 0958": "+442079460958",
		"+44 20 7946 0958":  "+442079460958",
		"+49 30 123456":     "+4930123456",
	} {
		got, err := e.net.Resolve(context.Background(), in)
		if err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "hello", "12", "alice@example.org", "+1 555 123 4567 8901 2345", "++",
		"+1 555 123 4567 ext. 12", "+15551234567;ext=1"} {
		if got, err := e.net.Resolve(context.Background(), bad); !errors.Is(err, legacy.ErrInvalidAddress) {
			t.Errorf("Resolve(%q) = %q, %v; want ErrInvalidAddress", bad, got, err)
		}
	}
	gb := newEnv(t, map[string]string{"default_region": "gb", "numbers": "+15550001111"})
	if got, err := gb.net.Resolve(context.Background(), "020 7946 0958"); err != nil || got != "+442079460958" {
		t.Errorf("Resolve in GB = %q, %v", got, err)
	}
}

func TestOptions(t *testing.T) {
	for name, opts := range map[string]map[string]string{
		"unknown option":   {"numbers": "+15550001111", "kannel_send_url": "http://k/", "nope": "1"},
		"no route":         {"numbers": "+15550001111"},
		"sid without key":  {"numbers": "+15550001111", "twilio_account_sid": "AC1"},
		"empty pool":       {"kannel_send_url": "http://k/"},
		"bad pool number":  {"kannel_send_url": "http://k/", "numbers": "nope"},
		"bad region":       {"kannel_send_url": "http://k/", "numbers": "+15550001111", "default_region": "XX"},
		"bad max":          {"kannel_send_url": "http://k/", "numbers": "+15550001111", "max_segments": "0"},
		"unknown route":    {"kannel_send_url": "http://k/", "numbers": "+15550001111", "routes": "twilio"},
		"relative pub url": {"kannel_send_url": "http://k/", "numbers": "+15550001111", "public_url": "/hooks"},
	} {
		if _, err := sms.New(opts); err == nil {
			t.Errorf("%s: accepted %v", name, opts)
		}
	}
	// A name that is no route at all is said to be one, not "not configured".
	if _, err := sms.New(map[string]string{"kannel_send_url": "http://k/", "numbers": "+15550001111", "routes": "kannel,pigeon"}); err == nil ||
		!strings.Contains(err.Error(), `unknown route "pigeon" (routes are twilio, kannel and smpp)`) || strings.Contains(err.Error(), "not configured") {
		t.Errorf("routes kannel,pigeon: %v", err)
	}
	// Every URL option must be http(s) with a host; the error names the option.
	for opt, bad := range map[string][]string{
		"public_url":      {"ftp://gw.example.org/hooks", "https:///hooks", "gw.example.org/hooks"},
		"twilio_api_url":  {"ftp://api.twilio.example", "tcp://api.twilio.example:443", "https://", "api.twilio.com"},
		"kannel_send_url": {"tcp://127.0.0.1:13013/cgi-bin/sendsms", "ftp://k/", "http:///cgi-bin/sendsms", "/cgi-bin/sendsms"},
	} {
		for _, v := range bad {
			opts := map[string]string{"numbers": "+15550001111", "twilio_account_sid": sid, "twilio_auth_token": token,
				"kannel_send_url": "http://k/cgi-bin/sendsms", opt: v}
			if _, err := sms.New(opts); err == nil || !strings.Contains(err.Error(), opt) {
				t.Errorf("%s %q: New = %v, want an error naming %s", opt, v, err, opt)
			}
		}
	}
	if _, err := sms.New(map[string]string{"numbers": "+15550001111", "twilio_account_sid": sid, "twilio_auth_token": token,
		"twilio_api_url": "http://127.0.0.1:8080", "kannel_send_url": "https://k.example/cgi-bin/sendsms", "public_url": "http://gw/hooks"}); err != nil {
		t.Errorf("http and https URLs: %v", err)
	}
	if _, err := sms.New(map[string]string{"allow_own_credentials": "true"}); err != nil {
		t.Errorf("own credentials only: %v", err)
	}
}

// TestNewReportsEveryOption: New reports every problem at once: those of
// single options as *legacy.OptionError in the order of the options'
// names, then those between options; the same on every call (options is a
// map: its order must not leak into the error).
func TestNewReportsEveryOption(t *testing.T) {
	const known = "unknown option (known: routes, numbers, default_region, public_url, max_segments, allow_own_credentials, " +
		"help_text, timeout, rate_per_minute, daily_segments, twilio_account_sid, twilio_auth_token, twilio_api_url, " +
		"kannel_send_url, kannel_username, kannel_password, kannel_smsc, kannel_secret, " +
		"smpp_addr, smpp_system_id, smpp_password, smpp_system_type, smpp_concat_timeout, media_ttl, host_files)"
	for _, c := range []struct {
		name  string
		opts  map[string]string
		want  []string // the joined errors, in order
		typed []string // the options of those that are *legacy.OptionError
	}{
		{"single options", map[string]string{
			"timeout": "soon", "public_url": "/hooks", "nope": "1", "max_segments": "0", "numbers": myNumber + ", nope",
			"kannel_send_url": "http://k/", "routes": "kannel,twilio,kannel",
		}, []string{
			`option max_segments: max_segments "0" must be a whole number from 1 to 255 (a concatenated SMS has at most 255 parts)`,
			"option nope: " + known,
			`option numbers: "nope" is not a phone number`,
			`option public_url: public_url "/hooks" must be an absolute http:// or https:// URL with a host`,
			`option timeout: timeout "soon" must be a positive duration such as 30s`,
			`option routes: route "twilio" in routes is not configured (twilio needs twilio_account_sid and twilio_auth_token; kannel needs kannel_send_url; smpp needs smpp_addr)`,
			`option routes: route "kannel" listed twice`,
		}, []string{"max_segments", "nope", "numbers", "public_url", "timeout", "routes", "routes"}},
		// Each route's options without the one it needs: said once each,
		// not again as "no route"; the empty pool too.
		{"between options", map[string]string{
			"twilio_account_sid": sid, "kannel_username": "u", "smpp_system_id": "esme", "smpp_concat_timeout": "0s",
		}, []string{
			`option smpp_concat_timeout: smpp_concat_timeout "0s" must be a positive duration such as 30m`,
			"sms: give both twilio_account_sid and twilio_auth_token (or twilio_auth_token_file)",
			"sms: kannel_* options without kannel_send_url",
			"sms: smpp_* options without smpp_addr",
			"option numbers: numbers (the operator's number pool) is empty",
		}, []string{"smpp_concat_timeout", "numbers"}},
	} {
		var first string
		for i := range 20 {
			n, err := sms.New(c.opts)
			if n != nil || err == nil {
				t.Fatalf("%s: New(%v) = %v, %v; want an error", c.name, c.opts, n, err)
			}
			j, ok := err.(interface{ Unwrap() []error })
			if !ok {
				t.Fatalf("%s: %T %q is not an errors.Join", c.name, err, err)
			}
			var got []string
			for _, e := range j.Unwrap() {
				got = append(got, e.Error())
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("%s: got\n%s\nwant\n%s", c.name, strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
			var typed []string
			for _, oe := range legacy.OptionErrors(err) {
				typed = append(typed, oe.Option)
			}
			if !slices.Equal(typed, c.typed) {
				t.Fatalf("%s: OptionErrors name %q, want %q", c.name, typed, c.typed)
			}
			if i == 0 {
				first = err.Error()
			} else if err.Error() != first {
				t.Fatalf("%s: call %d: %q, first call: %q", c.name, i, err, first)
			}
		}
	}
}

func TestRegister(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	if id, err := e.net.Register(ctx, map[string]string{sms.FieldNumber: "(555) 000-2222"}); err != nil || id != "+15550002222" {
		t.Errorf("Register pool number = %q, %v", id, err)
	}
	var fe *legacy.FieldError
	if _, err := e.net.Register(ctx, map[string]string{sms.FieldNumber: "+15559999999"}); !errors.As(err, &fe) || fe.Var != sms.FieldNumber {
		t.Errorf("Register outside the pool = %v, want a FieldError on number", err)
	}
	if _, err := e.net.Register(ctx, map[string]string{sms.FieldNumber: myNumber, sms.FieldTwilioSID: sid, sms.FieldTwilioAuth: token}); !errors.Is(err, legacy.ErrInvalidField) {
		t.Errorf("own credentials when not allowed = %v", err)
	}
	info := e.net.Info()
	if info.Fields[0].Type != legacy.ListSingle || len(info.Fields[0].Options) != 2 {
		t.Errorf("number field = %+v, want a list of the pool", info.Fields[0])
	}

	own := newEnv(t, map[string]string{"allow_own_credentials": "true"})
	own.tw.AddNumbers("+15557770000")
	if id, err := own.net.Register(ctx, map[string]string{sms.FieldNumber: "+15557770000", sms.FieldTwilioSID: sid, sms.FieldTwilioAuth: token}); err != nil || id != "+15557770000" {
		t.Errorf("Register with own credentials = %q, %v", id, err)
	}
	if _, err := own.net.Register(ctx, map[string]string{sms.FieldNumber: "+15557770000", sms.FieldTwilioSID: sid, sms.FieldTwilioAuth: "wrong"}); !errors.Is(err, legacy.ErrUnauthorized) {
		t.Errorf("Register with a wrong token = %v, want ErrUnauthorized", err)
	}
	if _, err := own.net.Register(ctx, map[string]string{sms.FieldNumber: "+15557770000", sms.FieldTwilioSID: sid}); !errors.As(err, &fe) || fe.Var != sms.FieldTwilioAuth {
		t.Errorf("Register with a SID only = %v", err)
	}
}

func TestOwnCredentialsSession(t *testing.T) {
	e := newEnv(t, map[string]string{"allow_own_credentials": "true"})
	e.tw.AddNumbers("+15557770000")
	s, _ := e.run(t, legacy.Account{ID: "+15557770000", Owner: "u1",
		Fields: map[string]string{sms.FieldNumber: "+15557770000", sms.FieldTwilioSID: sid, sms.FieldTwilioAuth: token}})
	if _, err := s.Send(context.Background(), &legacy.Message{Chat: contact, Text: "mine"}); err != nil {
		t.Fatal(err)
	}
	e.tw.Fail(twiliotest.Fault20003)
	if _, err := s.Send(context.Background(), &legacy.Message{Chat: contact, Text: "x"}); !errors.Is(err, legacy.ErrUnauthorized) {
		t.Errorf("Send with revoked own credentials = %v, want ErrUnauthorized", err)
	}
	// Run refuses revoked credentials.
	bad, _ := e.net.Open(context.Background(), legacy.Account{ID: "+15557770001", Owner: "u2",
		Fields: map[string]string{sms.FieldTwilioSID: sid, sms.FieldTwilioAuth: "revoked"}}, &legacytest.Recorder{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bad.Run(ctx); !errors.Is(err, legacy.ErrUnauthorized) {
		t.Errorf("Run with a wrong token = %v, want ErrUnauthorized", err)
	}
}

func TestSegmentLimit(t *testing.T) {
	e := newEnv(t, nil)
	s, _ := e.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	_, err := s.Send(context.Background(), &legacy.Message{Chat: contact, Text: strings.Repeat("a", 153*10+1)})
	if !errors.Is(err, legacy.ErrRejected) || !strings.Contains(err.Error(), "11 SMS segments") || !strings.Contains(err.Error(), "limit of 10") {
		t.Errorf("11 segments = %v, want ErrRejected naming 11 and 10", err)
	}
	if _, err := s.Send(context.Background(), &legacy.Message{Chat: contact, Text: strings.Repeat("a", 153*10)}); err != nil {
		t.Errorf("10 segments: %v", err)
	}
	// The sender reads the count: the reason travels in a ReasonError,
	// which the core appends to the stanza error's text.
	e5 := newEnv(t, map[string]string{"max_segments": "5"})
	s5, _ := e5.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	_, err = s5.Send(context.Background(), &legacy.Message{Chat: contact, Text: strings.Repeat("x", 900)})
	var re *legacy.ReasonError
	if !errors.As(err, &re) || re.Err != legacy.ErrRejected ||
		re.Reason != "needs 6 SMS segments (GSM-7, 900 characters), more than the limit of 5" {
		t.Errorf("900 characters with a limit of 5 = %v, want a ReasonError with the count", err)
	}
	if len(e.tw.Sent()) != 1 {
		t.Errorf("Twilio got %d messages, want 1", len(e.tw.Sent()))
	}
	// The setting is a choice of 1 to the operator's limit, so the core
	// refuses anything else ("abc", "99") instead of saving it.
	set := e.net.Info().Settings
	if len(set) != 1 || set[0].Var != sms.SettingMaxSegs || set[0].Type != legacy.ListSingle || set[0].Default != "10" || len(set[0].Options) != 10 {
		t.Fatalf("settings = %+v, want max_segments as a list of 1 to 10", set)
	}
	for i, o := range set[0].Options {
		if o.Value != strconv.Itoa(i+1) || o.Label == "" {
			t.Errorf("option %d = %+v", i, o)
		}
	}
	if o := set[0].Options[1]; !strings.Contains(o.Label, "306 characters") || !strings.Contains(o.Label, "134 with") {
		t.Errorf("option 2 = %+v, want it to say how many characters fit", o)
	}
	if _, err := sms.New(map[string]string{"kannel_send_url": "http://k/", "numbers": myNumber, "max_segments": "256"}); err == nil {
		t.Errorf("max_segments 256 accepted; a concatenated SMS has at most 255 parts")
	}
	// The user's own, lower limit.
	e2 := newEnv(t, nil)
	s2, _ := e2.run(t, legacy.Account{ID: myNumber, Owner: "u1", Settings: map[string]string{sms.SettingMaxSegs: "1"}})
	if _, err := s2.Send(context.Background(), &legacy.Message{Chat: contact, Text: strings.Repeat("я", 71)}); !errors.Is(err, legacy.ErrRejected) || !strings.Contains(err.Error(), "2 SMS segments") {
		t.Errorf("71 UCS-2 characters with a limit of 1 = %v", err)
	}
	if _, err := s2.Send(context.Background(), &legacy.Message{Chat: "not a number", Text: "x"}); !errors.Is(err, legacy.ErrInvalidAddress) {
		t.Errorf("Send to a non-number = %v", err)
	}
}

func TestFailover(t *testing.T) {
	e := newEnv(t, nil)
	s, _ := e.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	ctx := context.Background()

	// Twilio down: Kannel takes the message, GSM-7 coding.
	e.tw.Fail(twiliotest.Fault500)
	id, err := s.Send(ctx, &legacy.Message{Chat: contact, Text: "via kannel", Key: "k1"})
	if err != nil || !strings.HasPrefix(string(id), "kn-") {
		t.Fatalf("Send with Twilio down = %q, %v", id, err)
	}
	got := e.kn.sent()
	if len(got) != 1 || got[0].Get("text") != "via kannel" || got[0].Get("coding") != "0" || got[0].Get("to") != contact || got[0].Get("from") != myNumber {
		t.Fatalf("kannel got %v", got)
	}
	dlr := got[0].Get("dlr-url")
	if !strings.HasPrefix(dlr, publicURL+"/kannel/dlr?") || !strings.HasSuffix(dlr, "&type=%d") || !strings.Contains(dlr, "id="+string(id)) {
		t.Errorf("dlr-url = %q", dlr)
	}
	// Rate limited and HTML: also transient, Kannel again (UCS-2 now).
	e.tw.Fail(twiliotest.Fault429)
	if _, err := s.Send(ctx, &legacy.Message{Chat: contact, Text: "ünïcödé ✓"}); err != nil {
		t.Fatal(err)
	}
	if got := e.kn.sent(); len(got) != 2 || got[1].Get("coding") != "2" {
		t.Errorf("kannel got %v", got)
	}
	// A permanent error on Twilio is not retried on Kannel.
	e.tw.OptOut("+15557654321")
	if _, err := s.Send(ctx, &legacy.Message{Chat: "+15557654321", Text: "x"}); !errors.Is(err, legacy.ErrForbidden) {
		t.Errorf("opted-out recipient = %v, want ErrForbidden", err)
	}
	if len(e.kn.sent()) != 2 {
		t.Errorf("a permanent Twilio error went to Kannel")
	}
	// Both down: a transient error that keeps the rate-limit delay.
	e.tw.Fail(twiliotest.Fault429)
	e.kn.mu.Lock()
	e.kn.fails = 1
	e.kn.mu.Unlock()
	_, err = s.Send(ctx, &legacy.Message{Chat: contact, Text: "x"})
	var rl *legacy.RateLimitError
	if err == nil || legacy.IsPermanent(err) || !errors.As(err, &rl) || !errors.Is(err, legacy.ErrUnavailable) {
		t.Errorf("both routes down = %v, want a transient error carrying both causes", err)
	}
	// Twilio back: used first again.
	if id, err := s.Send(ctx, &legacy.Message{Chat: contact, Text: "back"}); err != nil || !strings.HasPrefix(string(id), "SM") {
		t.Errorf("Send with Twilio back = %q, %v", id, err)
	}
}

func TestNumberTakenByAnotherAccount(t *testing.T) {
	e := newEnv(t, nil)
	e.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	rec := &legacytest.Recorder{}
	s, _ := e.net.Open(context.Background(), legacy.Account{ID: myNumber, Owner: "u2"}, rec)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Run(ctx); !errors.Is(err, legacy.ErrUnauthorized) || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("second account on the same number: Run = %v", err)
	}
}

// twilioPost sends a webhook as Twilio would: a form POST signed with
// token over the public URL.
func twilioPost(t *testing.T, n *sms.Network, path, tok string, params url.Values) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(params.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("X-Twilio-Signature", twilio.Signature(tok, publicURL+path, params))
	w := httptest.NewRecorder()
	n.Webhook().ServeHTTP(w, r)
	return w
}

func TestTwilioWebhooks(t *testing.T) {
	e := newEnv(t, nil)
	s, rec := e.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	in := url.Values{"MessageSid": {"SM0001"}, "AccountSid": {sid}, "From": {contact}, "To": {myNumber}, "Body": {"hi there"},
		"NumMedia": {"1"}, "MediaUrl0": {e.tw.URL + "/media/ME1"}} // the fake has no media: it stays a link

	if w := twilioPost(t, e.net, "/twilio/sms", "forged", in); w.Code != http.StatusForbidden {
		t.Errorf("forged signature: %d, want 403", w.Code)
	}
	if len(rec.Events()) != 1 { // the StatusEvent only
		t.Fatalf("forged webhook produced events: %v", rec.Events())
	}

	rec.SetFail(errors.New("store down"))
	if w := twilioPost(t, e.net, "/twilio/sms", token, in); w.Code != http.StatusServiceUnavailable {
		t.Errorf("Emit failing: %d, want 503", w.Code)
	}
	rec.SetFail(nil)
	w := twilioPost(t, e.net, "/twilio/sms", token, in)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "<Response>") {
		t.Fatalf("good webhook: %d %q", w.Code, w.Body)
	}
	ev := rec.Wait(time.Second, func(ev legacy.Event) bool { _, ok := ev.(legacy.Incoming); return ok })
	if m, _ := ev.(legacy.Incoming); m.ID != "tw-SM0001" || m.Chat != contact || m.Text != "hi there\n"+e.tw.URL+"/media/ME1" {
		t.Errorf("incoming = %+v", ev)
	}

	// Not our number: 503 (no running session), after the signature check.
	other := url.Values{"MessageSid": {"SM0002"}, "From": {contact}, "To": {"+15550002222"}, "Body": {"x"}}
	if w := twilioPost(t, e.net, "/twilio/sms", token, other); w.Code != http.StatusServiceUnavailable {
		t.Errorf("number without session: %d, want 503", w.Code)
	}

	// Status callbacks: delivered → Receipt on the id Send returned.
	id, err := s.Send(context.Background(), &legacy.Message{Chat: contact, Text: "ping"})
	if err != nil {
		t.Fatal(err)
	}
	st := url.Values{"MessageSid": {string(id)}, "MessageStatus": {"sent"}, "From": {myNumber}, "To": {contact}, "AccountSid": {sid}}
	if w := twilioPost(t, e.net, "/twilio/status", token, st); w.Code != http.StatusOK {
		t.Errorf("sent status: %d", w.Code)
	}
	st.Set("MessageStatus", "delivered")
	if w := twilioPost(t, e.net, "/twilio/status", "forged", st); w.Code != http.StatusForbidden {
		t.Errorf("forged status: %d", w.Code)
	}
	rec.SetFail(errors.New("store down"))
	if w := twilioPost(t, e.net, "/twilio/status", token, st); w.Code != http.StatusServiceUnavailable {
		t.Errorf("status with Emit failing: %d, want 503", w.Code)
	}
	rec.SetFail(nil)
	if w := twilioPost(t, e.net, "/twilio/status", token, st); w.Code != http.StatusOK {
		t.Errorf("delivered status: %d", w.Code)
	}
	var receipts []legacy.Receipt
	for _, ev := range rec.Events() {
		if r, ok := ev.(legacy.Receipt); ok {
			receipts = append(receipts, r)
		}
	}
	if len(receipts) != 1 || receipts[0].ID != id || receipts[0].Chat != contact {
		t.Errorf("receipts = %+v, want one for %s", receipts, id)
	}
	// Final failures → legacy.Undelivered with Twilio's code; 503 while
	// the sink refuses it.
	st.Set("MessageStatus", "undelivered")
	st.Set("ErrorCode", "30007")
	rec.SetFail(errors.New("store down"))
	if w := twilioPost(t, e.net, "/twilio/status", token, st); w.Code != http.StatusServiceUnavailable {
		t.Errorf("undelivered status with Emit failing: %d", w.Code)
	}
	rec.SetFail(nil)
	if w := twilioPost(t, e.net, "/twilio/status", token, st); w.Code != http.StatusOK {
		t.Errorf("undelivered status: %d", w.Code)
	}
	ev = rec.Wait(time.Second, func(ev legacy.Event) bool { _, ok := ev.(legacy.Undelivered); return ok })
	var ce *legacy.CodeError
	if u, ok := ev.(legacy.Undelivered); !ok || u.ID != id || u.Chat != contact || !errors.Is(u.Err, legacy.ErrPolicy) ||
		!errors.As(u.Err, &ce) || ce.Code != "30007" {
		t.Errorf("undelivered event = %+v", ev)
	}

	// Without public_url nothing can be verified: everything is refused.
	np := newEnv(t, map[string]string{"public_url": ""})
	np.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	if w := twilioPost(t, np.net, "/twilio/sms", token, in); w.Code != http.StatusForbidden {
		t.Errorf("no public_url: %d, want 403", w.Code)
	}
}

func kannelGet(n *sms.Network, target string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	n.Webhook().ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
	return w
}

func TestKannelWebhooksAndKeywords(t *testing.T) {
	e := newEnv(t, map[string]string{"routes": "kannel", "help_text": "Reply STOP to stop."})
	s, rec := e.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	mo := func(id, text, secret string) *httptest.ResponseRecorder {
		q := url.Values{"id": {id}, "from": {"15551234567"}, "to": {"15550001111"}, "text": {text}, "ts": {"1700000000"}}
		if secret != "" {
			q.Set("secret", secret)
		}
		return kannelGet(e.net, "/kannel/mo?"+q.Encode())
	}
	if w := mo("1", "hello", "wrong"); w.Code != http.StatusForbidden {
		t.Errorf("wrong secret: %d", w.Code)
	}
	if w := mo("1", "hello", ""); w.Code != http.StatusForbidden {
		t.Errorf("no secret: %d", w.Code)
	}
	rec.SetFail(errors.New("store down"))
	if w := mo("1", "hello", kSecret); w.Code != http.StatusServiceUnavailable {
		t.Errorf("Emit failing: %d", w.Code)
	}
	rec.SetFail(nil)
	if w := mo("1", "hello", kSecret); w.Code != http.StatusOK || w.Body.Len() != 0 {
		t.Errorf("MO: %d %q, want 200 and an empty body", w.Code, w.Body)
	}
	if ev := rec.Wait(time.Second, func(ev legacy.Event) bool {
		m, ok := ev.(legacy.Incoming)
		return ok && m.ID == "kn-mo-1" && m.Chat == contact && m.Text == "hello"
	}); ev == nil {
		t.Errorf("no incoming message: %v", rec.Events())
	}

	// STOP: delivered, state saved, the user told, sends refused.
	if w := mo("2", " stop ", kSecret); w.Code != http.StatusOK {
		t.Fatalf("STOP: %d", w.Code)
	}
	var saved []byte
	var note string
	for _, ev := range rec.Events() {
		switch ev := ev.(type) {
		case legacy.SaveState:
			saved = ev.State
		case legacy.Incoming:
			if ev.ID == "kn-mo-2-note" {
				note = ev.Text
			}
		}
	}
	if !strings.Contains(string(saved), contact) || !strings.Contains(note, "STOP") || !strings.Contains(note, "START") {
		t.Errorf("after STOP: state %q, note %q", saved, note)
	}
	_, err := s.Send(context.Background(), &legacy.Message{Chat: contact, Text: "are you there?"})
	var ce *legacy.CodeError
	if !errors.Is(err, legacy.ErrForbidden) || !errors.As(err, &ce) || !strings.Contains(ce.Text, "START") {
		t.Errorf("Send after STOP = %v, want ErrForbidden explaining START", err)
	}
	// The opt-out survives a restart through the saved state.
	s2, _ := e.net.Open(context.Background(), legacy.Account{ID: myNumber, Owner: "u1", State: saved}, &legacytest.Recorder{})
	if _, err := s2.Send(context.Background(), &legacy.Message{Chat: contact, Text: "x"}); !errors.Is(err, legacy.ErrForbidden) {
		t.Errorf("Send after STOP and restart = %v", err)
	}
	// START clears it.
	if w := mo("3", "Start", kSecret); w.Code != http.StatusOK {
		t.Fatalf("START: %d", w.Code)
	}
	id, err := s.Send(context.Background(), &legacy.Message{Chat: contact, Text: "welcome back", Key: "wb"})
	if err != nil {
		t.Fatalf("Send after START: %v", err)
	}
	// HELP: the operator's help text goes back through Kannel.
	if w := mo("4", "HELP", kSecret); w.Code != http.StatusOK {
		t.Fatalf("HELP: %d", w.Code)
	}
	if !waitFor(10*time.Second, func() bool {
		got := e.kn.sent()
		last := got[len(got)-1]
		return last.Get("text") == "Reply STOP to stop." && last.Get("to") == contact
	}) {
		t.Errorf("no HELP reply: %v", e.kn.sent())
	}

	// DLR: delivered → Receipt for the id Send returned.
	dlr := url.Values{"secret": {kSecret}, "id": {string(id)}, "from": {myNumber}, "to": {contact}, "type": {"1"}}
	if w := kannelGet(e.net, "/kannel/dlr?"+dlr.Encode()); w.Code != http.StatusOK {
		t.Errorf("DLR: %d", w.Code)
	}
	if ev := rec.Wait(time.Second, func(ev legacy.Event) bool {
		r, ok := ev.(legacy.Receipt)
		return ok && r.ID == id && r.Chat == contact
	}); ev == nil {
		t.Errorf("no receipt for %s: %v", id, rec.Events())
	}
	dlr.Set("type", "16")
	if w := kannelGet(e.net, "/kannel/dlr?"+dlr.Encode()); w.Code != http.StatusOK {
		t.Errorf("failed DLR: %d", w.Code)
	}
	if ev := rec.Wait(time.Second, func(ev legacy.Event) bool {
		u, ok := ev.(legacy.Undelivered)
		return ok && u.ID == id && u.Chat == contact && errors.Is(u.Err, legacy.ErrRejected)
	}); ev == nil {
		t.Errorf("no Undelivered for a rejected DLR: %v", rec.Events())
	}
	dlr.Set("secret", "wrong")
	if w := kannelGet(e.net, "/kannel/dlr?"+dlr.Encode()); w.Code != http.StatusForbidden {
		t.Errorf("DLR with a wrong secret: %d", w.Code)
	}
}

func TestFortySegments(t *testing.T) {
	e := newEnv(t, nil)
	s, _ := e.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	text := strings.Repeat("x", 153*40)
	if max := e.net.Info().MaxTextLength; len(text) > max {
		t.Fatalf("the core would refuse %d bytes (MaxTextLength %d) before the segment check", len(text), max)
	}
	_, err := s.Send(context.Background(), &legacy.Message{Chat: contact, Text: text})
	if !errors.Is(err, legacy.ErrRejected) || !legacy.IsPermanent(err) || !strings.Contains(err.Error(), "40 SMS segments") {
		t.Errorf("40 segments = %v", err)
	}
	if len(e.tw.Sent()) != 0 {
		t.Errorf("a 40-segment message reached Twilio")
	}
}

func TestRatePerMinute(t *testing.T) {
	// Two segments a minute, bursts of up to max_segments (2): the third
	// segment within the same minute waits.
	e := newEnv(t, map[string]string{"rate_per_minute": "2", "max_segments": "2"})
	s, _ := e.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	ctx := context.Background()
	if _, err := s.Send(ctx, &legacy.Message{Chat: contact, Text: strings.Repeat("a", 200)}); err != nil { // 2 segments
		t.Fatal(err)
	}
	_, err := s.Send(ctx, &legacy.Message{Chat: contact, Text: "one too many"})
	var rl *legacy.RateLimitError
	if !errors.As(err, &rl) || rl.RetryAfter <= 0 || legacy.IsPermanent(err) {
		t.Errorf("third segment = %v, want a RateLimitError", err)
	}
	if n := len(e.tw.Sent()); n != 1 {
		t.Errorf("Twilio got %d messages, want 1", n)
	}
}

func TestConformanceKannel(t *testing.T) {
	e := newEnv(t, map[string]string{"routes": "kannel"})
	legacytest.Run(t, legacytest.Suite{
		Network: e.net,
		Fields:  map[string]string{sms.FieldNumber: myNumber},
		Chat:    contact,
		CheckSent: func(t *testing.T, rec *legacytest.Recorder, text string) {
			for _, q := range e.kn.sent() {
				if q.Get("text") == text && q.Get("to") == contact && q.Get("from") == myNumber && q.Get("coding") == "2" {
					return
				}
			}
			t.Errorf("Kannel did not get %q: %v", text, e.kn.sent())
		},
	})
}

func TestDailySegmentCap(t *testing.T) {
	// A cap of 3 segments a day: a 2-segment message and a 1-segment one
	// go; the next waits for the next UTC day; the count survives a
	// restart through the saved state.
	e := newEnv(t, map[string]string{"daily_segments": "3"})
	s, rec := e.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	ctx := context.Background()
	for _, text := range []string{strings.Repeat("b", 200), "c"} {
		if _, err := s.Send(ctx, &legacy.Message{Chat: contact, Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.Send(ctx, &legacy.Message{Chat: contact, Text: "over the cap"})
	var rl *legacy.RateLimitError
	if !errors.As(err, &rl) || rl.RetryAfter <= 0 || rl.RetryAfter > 24*time.Hour || !strings.Contains(err.Error(), "daily limit of 3") {
		t.Errorf("over the cap = %v, want a RateLimitError until midnight UTC", err)
	}
	if n := len(e.tw.Sent()); n != 2 {
		t.Errorf("Twilio got %d messages, want 2", n)
	}
	var saved []byte
	for _, ev := range rec.Events() {
		if ss, ok := ev.(legacy.SaveState); ok {
			saved = ss.State
		}
	}
	s2, _ := e.run(t, legacy.Account{ID: "+15550002222", Owner: "u2", State: saved})
	if _, err := s2.Send(ctx, &legacy.Message{Chat: contact, Text: "x"}); !errors.As(err, &rl) {
		t.Errorf("after a restart with the saved count = %v, want the cap to hold", err)
	}
	if _, err := sms.New(map[string]string{"daily_segments": "-1"}); err == nil {
		t.Errorf("a negative cap was accepted")
	}
}

func TestMMSMediaBecomeFiles(t *testing.T) {
	e := newEnv(t, nil)
	_, rec := e.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	png := []byte("\x89PNG\r\n\x1a\n fake image")
	var auth string
	media := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		auth = u + ":" + p
		w.Header().Set("Content-Type", "image/png")
		w.Write(png)
	}))
	defer media.Close()
	in := url.Values{"MessageSid": {"SM-mms"}, "AccountSid": {sid}, "From": {contact}, "To": {myNumber}, "Body": {"look"},
		"NumMedia": {"1"}, "MediaUrl0": {media.URL + "/ME1"}}
	if w := twilioPost(t, e.net, "/twilio/sms", token, in); w.Code != http.StatusOK {
		t.Fatalf("webhook: %d %s", w.Code, w.Body)
	}
	ev := rec.Wait(5*time.Second, func(ev legacy.Event) bool { m, ok := ev.(legacy.Incoming); return ok && m.ID == "tw-SM-mms" })
	m, _ := ev.(legacy.Incoming)
	if m.Text != "look" || len(m.Attachments) != 1 || string(m.Attachments[0].Data) != string(png) ||
		m.Attachments[0].Type != "image/png" || !strings.HasSuffix(m.Attachments[0].Name, ".png") {
		t.Errorf("MMS = %+v", m)
	}
	if auth != sid+":"+token {
		t.Errorf("media fetched without the account's credentials: %q", auth)
	}
}

// Media get the extension people expect for their type, not the first
// mime.ExtensionsByType knows (".jfif" for a JPEG).
func TestMMSFileNames(t *testing.T) {
	e := newEnv(t, nil)
	_, rec := e.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	types := []string{"image/jpeg", "image/png", "image/gif", "video/mp4", "audio/mpeg", "text/vcard", "image/jpeg; charset=binary", "application/x-unknown-thing"}
	want := []string{"mms-1.jpg", "mms-2.png", "mms-3.gif", "mms-4.mp4", "mms-5.mp3", "mms-6.vcf", "mms-7.jpg", "mms-8"}
	media := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var i int
		fmt.Sscanf(r.URL.Path, "/ME%d", &i)
		w.Header().Set("Content-Type", types[i])
		w.Write([]byte("data"))
	}))
	defer media.Close()
	in := url.Values{"MessageSid": {"SM-names"}, "AccountSid": {sid}, "From": {contact}, "To": {myNumber}, "NumMedia": {strconv.Itoa(len(types))}}
	for i := range types {
		in.Set("MediaUrl"+strconv.Itoa(i), media.URL+"/ME"+strconv.Itoa(i))
	}
	if w := twilioPost(t, e.net, "/twilio/sms", token, in); w.Code != http.StatusOK {
		t.Fatalf("webhook: %d %s", w.Code, w.Body)
	}
	ev := rec.Wait(5*time.Second, func(ev legacy.Event) bool { m, ok := ev.(legacy.Incoming); return ok && m.ID == "tw-SM-names" })
	m, _ := ev.(legacy.Incoming)
	var got []string
	for _, a := range m.Attachments {
		got = append(got, a.Name)
	}
	if !slices.Equal(got, want) {
		t.Errorf("file names = %q, want %q", got, want)
	}
}

// A 2xx from Twilio is a message accepted and billed, whatever its body: it
// is taken as sent (no retry, no failover to Kannel), under an id of its
// own since the SID is unknown.
func TestTwilioAcceptedUnreadableIsSent(t *testing.T) {
	for _, routes := range []string{"twilio", "twilio,kannel"} {
		for _, fault := range []twiliotest.Fault{twiliotest.FaultBadJSON, twiliotest.FaultAcceptedHTML, twiliotest.FaultNoAnswer} {
			e := newEnv(t, map[string]string{"routes": routes})
			s, _ := e.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
			before := e.net.EventCounts()["provider_reply_malformed"]
			e.tw.Fail(fault)
			id, err := s.Send(context.Background(), &legacy.Message{Chat: contact, Text: "once", Key: "k1"})
			if err != nil || !strings.HasPrefix(string(id), "tw-nosid-") {
				t.Errorf("%s, %s: Send = %q, %v; want sent under a tw-nosid- id", routes, fault, id, err)
			}
			if n, k := len(e.tw.Sent()), len(e.kn.sent()); n != 1 || k != 0 {
				t.Errorf("%s, %s: Twilio got %d messages and Kannel %d, want 1 and 0", routes, fault, n, k)
			}
			if got := e.net.EventCounts()["provider_reply_malformed"] - before; got != 1 {
				t.Errorf("%s, %s: provider_reply_malformed +%d, want +1", routes, fault, got)
			}
			// The same message (a replay after a crash) has the same id.
			e.tw.Fail(fault)
			if id2, _ := s.Send(context.Background(), &legacy.Message{Chat: contact, Text: "once", Key: "k1"}); id2 != id {
				t.Errorf("%s, %s: ids %q and %q for the same key", routes, fault, id, id2)
			}
		}
	}
}

// With own credentials, a user cannot take a number of the operator's pool
// (whose webhooks the operator's token signs), nor a number their Twilio
// account does not hold.
func TestOwnCredentialsNumber(t *testing.T) {
	e := newEnv(t, map[string]string{"allow_own_credentials": "true"})
	e.tw.AddNumbers("+15557770000")
	ctx := context.Background()
	var fe *legacy.FieldError
	_, err := e.net.Register(ctx, map[string]string{sms.FieldNumber: "+15550002222", sms.FieldTwilioSID: sid, sms.FieldTwilioAuth: token})
	if !errors.As(err, &fe) || fe.Var != sms.FieldNumber || !strings.Contains(fe.Reason, "gateway's own numbers") {
		t.Errorf("Register a pool number with own credentials = %v, want a FieldError on number", err)
	}
	_, err = e.net.Register(ctx, map[string]string{sms.FieldNumber: "+15557779999", sms.FieldTwilioSID: sid, sms.FieldTwilioAuth: token})
	if !errors.As(err, &fe) || fe.Var != sms.FieldNumber || !strings.Contains(fe.Reason, "not a phone number of the Twilio account") {
		t.Errorf("Register a number the account does not hold = %v, want a FieldError on number", err)
	}
	if id, err := e.net.Register(ctx, map[string]string{sms.FieldNumber: "(555) 777-0000", sms.FieldTwilioSID: sid, sms.FieldTwilioAuth: token}); err != nil || id != "+15557770000" {
		t.Errorf("Register the account's number = %q, %v", id, err)
	}

	// An account registered before these checks: its session is refused
	// (unauthorized: register again) and never takes the pool number, whose
	// webhooks keep being checked with the operator's token.
	pool := "+15550002222"
	rec := &legacytest.Recorder{}
	u3, _ := e.net.Open(ctx, legacy.Account{ID: legacy.AccountID(pool), Owner: "u3",
		Fields: map[string]string{sms.FieldNumber: pool, sms.FieldTwilioSID: sid, sms.FieldTwilioAuth: token}}, rec)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u3ctx, u3stop := context.WithCancel(rctx)
	done := make(chan error, 1)
	go func() { done <- u3.Run(u3ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, legacy.ErrUnauthorized) {
			t.Errorf("Run with own credentials on a pool number = %v, want ErrUnauthorized", err)
		}
	case <-time.After(3 * time.Second):
		t.Errorf("Run with own credentials on a pool number runs (it took the number)")
		u3stop()
		<-done
	}
	u3stop()
	if ev := rec.Wait(time.Second, func(ev legacy.Event) bool {
		st, ok := ev.(legacy.StatusEvent)
		return ok && st.Status == legacy.StatusUnauthorized && strings.Contains(st.Text, "own numbers")
	}); ev == nil {
		t.Errorf("no unauthorized status saying why: %v", rec.Events())
	}
	in := url.Values{"MessageSid": {"SM-pool"}, "AccountSid": {sid}, "From": {contact}, "To": {pool}, "Body": {"for the pool user"}}
	_, poolRec := e.run(t, legacy.Account{ID: legacy.AccountID(pool), Owner: "u1"})
	if w := twilioPost(t, e.net, "/twilio/sms", token, in); w.Code != http.StatusOK {
		t.Errorf("pool number webhook signed by the operator: %d %s, want 200", w.Code, w.Body)
	}
	if poolRec.Wait(5*time.Second, func(ev legacy.Event) bool { m, ok := ev.(legacy.Incoming); return ok && m.ID == "tw-SM-pool" }) == nil {
		t.Errorf("the pool user did not get the SMS: %v", poolRec.Events())
	}
	// A number the account does not hold: refused when the session starts.
	bad, _ := e.net.Open(ctx, legacy.Account{ID: "+15557779999", Owner: "u4",
		Fields: map[string]string{sms.FieldNumber: "+15557779999", sms.FieldTwilioSID: sid, sms.FieldTwilioAuth: token}}, &legacytest.Recorder{})
	if err := bad.Run(rctx); !errors.Is(err, legacy.ErrUnauthorized) || !strings.Contains(err.Error(), "not a phone number of the Twilio account") {
		t.Errorf("Run on a number the account does not hold = %v, want ErrUnauthorized saying so", err)
	}
}
