package kannel_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/sms/kannel"
)

func TestSendAndErrors(t *testing.T) {
	var got url.Values
	status := http.StatusAccepted
	body := "0: Accepted for delivery"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.Query()
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	defer srv.Close()
	c := &kannel.Client{SendURL: srv.URL + "/cgi-bin/sendsms", Username: "u", Password: "secretpw", SMSC: "fake"}
	err := c.Send(context.Background(), "+15550001111", "+15551234567", "héllo", kannel.CodingUCS2, "https://gw/kannel/dlr?id=x&type=%d")
	if err != nil {
		t.Fatal(err)
	}
	if got.Get("text") != "héllo" || got.Get("coding") != "2" || got.Get("charset") != "UTF-8" || got.Get("smsc") != "fake" ||
		got.Get("dlr-url") != "https://gw/kannel/dlr?id=x&type=%d" || got.Get("dlr-mask") != "19" || got.Get("password") != "secretpw" {
		t.Errorf("sendsms query = %v", got)
	}
	for _, c2 := range []struct {
		status int
		body   string
		want   error
	}{
		{503, "Sending failed.", legacy.ErrUnavailable},
		{403, "Authorization failed for sendsms", legacy.ErrUnavailable},
		{400, "Missing receiver number, rejected", legacy.ErrInvalidAddress},
		{400, "Unknown charset", legacy.ErrRejected},
		// Any 2xx is Kannel taking the message, whatever the body: an
		// error would resend it (a second SMS).
		{200, "<html>not what Kannel says</html>", nil},
		{202, "", nil},
	} {
		status, body = c2.status, c2.body
		err := c.Send(context.Background(), "", "+1", "x", 0, "")
		if !errors.Is(err, c2.want) {
			t.Errorf("HTTP %d %q: Send = %v, want %v", c2.status, c2.body, err, c2.want)
		}
	}
	srv.Close()
	err = c.Send(context.Background(), "", "+1", "x", 0, "")
	if !errors.Is(err, legacy.ErrUnavailable) || strings.Contains(err.Error(), "secretpw") {
		t.Errorf("Send to a closed server = %v, want ErrUnavailable without the password", err)
	}
}

func TestCheckSecretAndParse(t *testing.T) {
	r := httptest.NewRequest("GET", "/kannel/mo?secret=s3&id=42&from=%2B15551234567&to=15550001111&text=hi+there&ts=1700000000", nil)
	if err := kannel.CheckSecret("s3", r); err != nil {
		t.Errorf("query secret refused: %v", err)
	}
	mo, err := kannel.ParseMO(r)
	if err != nil || mo.ID != "42" || mo.From != "+15551234567" || mo.To != "15550001111" || mo.Text != "hi there" || mo.Time != "1700000000" {
		t.Errorf("ParseMO = %+v, %v", mo, err)
	}
	r = httptest.NewRequest("GET", "/kannel/mo?from=1&to=2", nil)
	r.SetBasicAuth("kannel", "s3")
	if err := kannel.CheckSecret("s3", r); err != nil {
		t.Errorf("basic-auth secret refused: %v", err)
	}
	for _, target := range []string{"/kannel/mo?secret=s4", "/kannel/mo"} {
		if err := kannel.CheckSecret("s3", httptest.NewRequest("GET", target, nil)); err == nil {
			t.Errorf("%s accepted", target)
		}
	}
	if err := kannel.CheckSecret("", httptest.NewRequest("GET", "/kannel/mo?secret=", nil)); err == nil {
		t.Errorf("empty configured secret accepted a request")
	}
	if _, err := kannel.ParseMO(httptest.NewRequest("GET", "/kannel/mo?text=x", nil)); err == nil {
		t.Errorf("MO without numbers accepted")
	}
	d, err := kannel.ParseDLR(httptest.NewRequest("GET", "/kannel/dlr?id=kn-1&to=%2B1555&type=1", nil))
	if err != nil || d.ID != "kn-1" || d.Type != kannel.DLRDelivered {
		t.Errorf("ParseDLR = %+v, %v", d, err)
	}
}
