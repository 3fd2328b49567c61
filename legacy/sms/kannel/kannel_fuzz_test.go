package kannel

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzWebhook: any MO or DLR request Kannel (or anyone) sends is parsed
// without panic; the secret check refuses everything but the secret.
func FuzzWebhook(f *testing.F) {
	f.Add("secret=S&id=1&from=%2B15551230000&to=1234&ts=1700000000&text=hello", "")
	f.Add("secret=S&id=abc&to=%2B1&type=1&reply=ACK%2F", "id=1&type=x")
	f.Add("%zz&&secret=", "text=%")
	const secret = "S"
	f.Fuzz(func(t *testing.T, query, form string) {
		r := httptest.NewRequest(http.MethodPost, "/kannel/mo", strings.NewReader(form))
		r.URL.RawQuery = query
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		err := CheckSecret(secret, r)
		if (err == nil) != (r.URL.Query().Get("secret") == secret) {
			t.Fatalf("CheckSecret(%q) = %v", query, err)
		}
		if CheckSecret("", r) == nil {
			t.Fatal("an empty configured secret accepted a request")
		}
		if mo, err := ParseMO(r); err == nil && (mo.From == "" || mo.To == "") {
			t.Fatalf("ParseMO accepted %+v", mo)
		}
		r2 := httptest.NewRequest(http.MethodPost, "/kannel/dlr", strings.NewReader(form))
		r2.URL.RawQuery = query
		r2.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if d, err := ParseDLR(r2); err == nil && d.ID == "" {
			t.Fatalf("ParseDLR accepted %+v", d)
		}
	})
}
