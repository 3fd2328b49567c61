package twilio

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzWebhookForm: any form body Twilio (or someone pretending to be
// Twilio) posts is parsed without panic; a message needs a sid, From and
// To, at most 10 media URLs are taken; a signature verifies only when it
// was computed over exactly that form with the token.
func FuzzWebhookForm(f *testing.F) {
	f.Add("MessageSid=SM1&AccountSid=AC1&From=%2B15551230000&To=%2B15559870000&Body=hi&NumMedia=1&MediaUrl0=https%3A%2F%2Fx%2Fm", "")
	f.Add("SmsSid=SM2&From=a&To=b&NumMedia=99999999999999999999", "bogus")
	f.Add("MessageSid=SM3&MessageStatus=undelivered&ErrorCode=30003&To=%2B1", "")
	f.Add("%zz=1&&=&a=%", "")
	const token, hook = "tok", "https://gw.example/webhooks/sms.example/twilio/sms?x=1"
	f.Fuzz(func(t *testing.T, body, sig string) {
		r := httptest.NewRequest(http.MethodPost, hook, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("X-Twilio-Signature", sig)
		if err := r.ParseForm(); err != nil {
			return
		}
		if in, err := ParseInbound(r); err == nil {
			if in.SID == "" || in.From == "" || in.To == "" || len(in.Media) > 10 {
				t.Fatalf("ParseInbound accepted %+v", in)
			}
		}
		if st, err := ParseStatus(r); err == nil {
			_ = st.Final()
			_ = DeliveryError(st.Status, st.ErrorCode)
		}
		want := Signature(token, hook, r.PostForm)
		if err := Verify(token, hook, r); (err == nil) != (sig == want) {
			t.Fatalf("Verify(%q) = %v; the right signature is %q", sig, err, want)
		}
		if Verify("", hook, r) == nil {
			t.Fatal("an empty auth token verified a request")
		}
		r.Header.Set("X-Twilio-Signature", want)
		if err := Verify(token, hook, r); err != nil {
			t.Fatalf("correct signature refused: %v", err)
		}
		if len(r.PostForm) > 0 && Verify(token, hook+"&y=2", r) == nil {
			t.Fatal("signature verified for another URL")
		}
	})
}
