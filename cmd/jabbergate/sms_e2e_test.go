package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xmppo/go-xmpp"

	"github.com/jabbergate/jabbergate/component/servertest"
	"github.com/jabbergate/jabbergate/legacy/sms/twilio"
	"github.com/jabbergate/jabbergate/legacy/sms/twilio/twiliotest"
)

// TestSMSEndToEnd runs the whole path: a real XMPP client on a real
// Prosody, the gateway with the SMS adapter on a Twilio route, the fake
// Twilio API, and Twilio's signed webhook into the gateway's HTTP listener.
func TestSMSEndToEnd(t *testing.T) {
	const (
		smsDomain = "sms.localhost"
		sid       = "AC00000000000000000000000000000001"
		token     = "e2e-twilio-auth-token"
		myNumber  = "+15550001111"
	)
	api := twiliotest.New(sid, token)
	t.Cleanup(api.Close)
	srv := servertest.Start(t, "prosody", servertest.Options{
		Components: map[string]string{smsDomain: gwSecret},
		Users:      map[string]string{"alice": "alicepw"},
	})
	g := newGatewayProc(t)
	publicURL := "http://" + g.http + "/webhooks/" + smsDomain
	yaml := fmt.Sprintf(`
xmpp:
  server: %s
bridges:
  - network: sms
    domain: %s
    secret: %s
    options:
      routes: twilio
      numbers: "%s"
      default_region: US
      public_url: %s
      twilio_account_sid: %s
      twilio_auth_token: %s
      twilio_api_url: %s
store:
  backend: bolt
  path: %s
http:
  listen: %s
media:
  dir: %s
  allow_private_fetch: true
  fetch_timeout: 10s
access:
  allowed_domains: [localhost]
log:
  level: debug
`, srv.ComponentAddr, smsDomain, gwSecret, myNumber, publicURL, sid, token, api.URL, filepath.Join(t.TempDir(), "jg.db"), g.http, filepath.Join(t.TempDir(), "media"))
	runGateway(t, g, yaml)

	alice := dialClient(t, srv, "alice", "alicepw", "sms")
	alice.send(`<iq type='set' id='r1' to='%s'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'><field var='number'><value>%s</value></field></x></query></iq>`, smsDomain, myNumber)
	if r := alice.waitIQ("r1"); r.Type != "result" {
		t.Fatalf("register = %+v", r)
	}
	// The prompt turns a common notation into the E.164 contact.
	alice.send(`<iq type='set' id='g1' to='%s'><query xmlns='jabber:iq:gateway'><prompt>(555) 123-4567</prompt></query></iq>`, smsDomain)
	if r := alice.waitIQ("g1"); r.Type != "result" || !strings.Contains(string(r.Query), "+15551234567@"+smsDomain) {
		t.Errorf("iq:gateway = %+v %s", r, r.Query)
	}

	// XMPP → SMS.
	alice.send(`<message type='chat' id='o1' to='+15551234567@%s'><body>hi by SMS</body></message>`, smsDomain)
	deadline := time.Now().Add(e2eWait)
	for {
		sent := api.Sent()
		if len(sent) > 0 && sent[len(sent)-1].Body == "hi by SMS" {
			if m := sent[len(sent)-1]; m.From != myNumber || m.To != "+15551234567" {
				t.Errorf("sent = %+v", m)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Twilio never got the message; sent: %+v", sent)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A file (as Conversations sends an HTTP upload: body = URL = oob) goes
	// as MMS whose MediaUrl is the upload URL itself: Twilio fetches it
	// from the user's upload service, not from the gateway.
	photo := bytes.Repeat([]byte("\x89PNG\r\n\x1a\n-sms-"), 500)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/upload/7/photo.png" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Write(photo)
	}))
	defer up.Close()
	src := up.URL + "/upload/7/photo.png"
	alice.send(`<message type='chat' id='o2' to='+15551234567@%s'><body>%s</body><x xmlns='jabber:x:oob'><url>%s</url></x></message>`, smsDomain, src, src)
	deadline = time.Now().Add(e2eWait)
	for {
		sent := api.Sent()
		if len(sent) > 0 && len(sent[len(sent)-1].Media) > 0 {
			m := sent[len(sent)-1]
			if m.Body != "" || len(m.Media) != 1 || m.Media[0].URL != src || m.Media[0].Err != "" || !bytes.Equal(m.Media[0].Data, photo) {
				t.Errorf("MMS = body %q, media %s %q %d bytes; want no body and MediaUrl %s", m.Body, m.Media[0].URL, m.Media[0].Err, len(m.Media[0].Data), src)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Twilio never got the MMS; sent: %+v", sent)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// SMS → XMPP through Twilio's signed webhook; a forged one is refused.
	post := func(sig string, params url.Values) int {
		req, _ := http.NewRequest(http.MethodPost, publicURL+"/twilio/sms", strings.NewReader(params.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	in := url.Values{"MessageSid": {"SM-e2e-1"}, "AccountSid": {sid}, "From": {"+15551234567"}, "To": {myNumber}, "Body": {"reply by SMS ☎"}}
	if code := post("forged", in); code != http.StatusForbidden {
		t.Errorf("forged webhook: %d, want 403", code)
	}
	if code := post(twilio.Signature(token, publicURL+"/twilio/sms", in), in); code != http.StatusOK {
		t.Fatalf("signed webhook: %d", code)
	}
	if _, body := g.get("/metrics"); !strings.Contains(body, `jabbergate_webhook_requests_total{bridge="sms.localhost",code="4xx"} 1`) ||
		!strings.Contains(body, `jabbergate_webhook_requests_total{bridge="sms.localhost",code="2xx"} 1`) {
		t.Errorf("webhook metrics missing or wrong:\n%s", body)
	}
	m := alice.waitChat("SMS from the contact", func(m xmpp.Chat) bool { return m.Text != "" && bare(m.Remote) == "+15551234567@"+smsDomain })
	if m.Text != "reply by SMS ☎" {
		t.Errorf("inbound = %+v", m)
	}
}
