package sms_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/sms"
	"github.com/jabbergate/jabbergate/legacy/sms/twilio"
	"github.com/jabbergate/jabbergate/legacy/sms/twilio/twiliotest"
)

// mmsEnv is newEnv with the network's webhooks served on loopback under
// public_url, so the fake Twilio can fetch the hosted media.
func mmsEnv(t *testing.T, extra map[string]string) (*env, string) {
	t.Helper()
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	pub := srv.URL + "/webhooks/sms.example.org"
	opts := map[string]string{"public_url": pub}
	for k, v := range extra {
		opts[k] = v
	}
	e := newEnv(t, opts)
	h = http.StripPrefix("/webhooks/sms.example.org", e.net.Webhook())
	return e, pub
}

var pngData = append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{7}, 2000)...)

// TestMMS: files go as MMS media on the Twilio route, hosted by the
// adapter under public_url/media/, within Twilio's limits; what does not
// fit goes as a link in the text.
func TestMMS(t *testing.T) {
	e, pub := mmsEnv(t, map[string]string{"routes": "twilio,kannel"})
	info := e.net.Info()
	if !info.Caps.Files || info.MaxFileSize != 0 {
		t.Fatalf("Info: Files %v, MaxFileSize %d", info.Caps.Files, info.MaxFileSize)
	}
	s, _ := e.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	ctx := context.Background()

	// A photo with a caption: one MMS.
	if _, err := s.Send(ctx, &legacy.Message{Chat: contact, Text: "look", Key: "k1",
		Attachments: []legacy.Attachment{{Name: "cat.png", Type: "image/png", Data: pngData}}}); err != nil {
		t.Fatal(err)
	}
	sent := e.tw.Sent()
	if len(sent) != 1 || sent[0].Body != "look" || len(sent[0].Media) != 1 {
		t.Fatalf("sent = %+v", sent)
	}
	m := sent[0].Media[0]
	if !strings.HasPrefix(m.URL, pub+"/media/") || !strings.HasSuffix(m.URL, "/cat.png") || m.Err != "" ||
		m.Type != "image/png" || !bytes.Equal(m.Data, pngData) {
		t.Errorf("media = %s %q %q %d bytes", m.URL, m.Err, m.Type, len(m.Data))
	}
	// A retry of the same message (same key) reuses its URL.
	if _, err := s.Send(ctx, &legacy.Message{Chat: contact, Text: "look", Key: "k1",
		Attachments: []legacy.Attachment{{Name: "cat.png", Type: "image/png", Data: pngData}}}); err != nil {
		t.Fatal(err)
	}
	if again := e.tw.Sent()[1].Media; len(again) != 1 || again[0].URL != m.URL {
		t.Errorf("retry hosted the file at %v, want %s", again, m.URL)
	}

	// A photo without text: no Body at all; a PDF over Twilio's 500 KB for
	// non-images: a link in the text instead of a medium.
	pdf := append([]byte("%PDF-1.4\n"), bytes.Repeat([]byte("x"), 600_000)...)
	if _, err := s.Send(ctx, &legacy.Message{Chat: contact, Attachments: []legacy.Attachment{
		{Name: "a.gif", Type: "image/gif", Data: []byte("GIF89a....")},
		{Name: "report.pdf", Type: "application/pdf", Data: pdf},
	}}); err != nil {
		t.Fatal(err)
	}
	last := e.tw.Sent()[2]
	if len(last.Media) != 1 || !strings.HasSuffix(last.Media[0].URL, "/a.gif") || !strings.HasPrefix(last.Body, pub+"/media/") ||
		!strings.HasSuffix(last.Body, "/report.pdf") {
		t.Fatalf("gif + pdf: body %q media %+v", last.Body, last.Media)
	}
	resp, err := http.Get(last.Body)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pdf" || !bytes.Equal(got, pdf) {
		t.Errorf("the PDF link answers %d %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(got))
	}

	// Eleven images: ten media (Twilio's limit), the eleventh as a link.
	var many []legacy.Attachment
	for range 11 {
		many = append(many, legacy.Attachment{Type: "image/png", Data: pngData})
	}
	if _, err := s.Send(ctx, &legacy.Message{Chat: contact, Text: "album", Attachments: many}); err != nil {
		t.Fatal(err)
	}
	last = e.tw.Sent()[3]
	if len(last.Media) != 10 || strings.Count(last.Body, pub+"/media/") != 1 || !strings.HasPrefix(last.Body, "album\n") {
		t.Errorf("album: %d media, body %q", len(last.Media), last.Body)
	}
	for _, md := range last.Media {
		if md.Err != "" || !strings.HasSuffix(md.URL, "/file.png") {
			t.Errorf("album medium %s: %s", md.URL, md.Err)
		}
	}

	// An image over Twilio's 5 MB: a link, no medium.
	big := append(append([]byte(nil), pngData...), make([]byte, twilio.MaxMediaSize)...)
	if _, err := s.Send(ctx, &legacy.Message{Chat: contact, Attachments: []legacy.Attachment{{Name: "big.png", Type: "image/png", Data: big}}}); err != nil {
		t.Fatal(err)
	}
	if last = e.tw.Sent()[4]; len(last.Media) != 0 || !strings.HasSuffix(last.Body, "/big.png") {
		t.Errorf("big image: %d media, body %q", len(last.Media), last.Body)
	}

	// Twilio down: Kannel (no MMS) sends the text with the link.
	e.tw.Fail(twiliotest.Fault500)
	if _, err := s.Send(ctx, &legacy.Message{Chat: contact, Text: "via kannel",
		Attachments: []legacy.Attachment{{Name: "cat.png", Type: "image/png", Data: pngData}}}); err != nil {
		t.Fatal(err)
	}
	ks := e.kn.sent()
	if len(ks) != 1 || !strings.HasPrefix(ks[0].Get("text"), "via kannel\n"+pub+"/media/") {
		t.Fatalf("kannel got %v", ks)
	}

	// Unknown tokens are 404.
	if resp, err := http.Get(pub + "/media/00000000000000000000000000000000/x.png"); err != nil || resp.StatusCode != 404 {
		t.Errorf("unknown medium: %v %v", resp.StatusCode, err)
	}
}

// uploadServer is the user's HTTP upload service (XEP-0363 GET URLs) on
// loopback: it serves files by path and counts the fetches.
type uploadServer struct {
	*httptest.Server
	mu      sync.Mutex
	fetches map[string]int
}

func newUploadServer(t *testing.T, files map[string][]byte, ctype string) *uploadServer {
	t.Helper()
	u := &uploadServer{fetches: map[string]int{}}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := files[r.URL.Path]
		if !ok || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		u.mu.Lock()
		u.fetches[r.URL.Path]++
		u.mu.Unlock()
		w.Header().Set("Content-Type", ctype)
		w.Write(data)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *uploadServer) count(path string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.fetches[path]
}

// TestMMSSenderURL: a file with the URL the core fetched it from (the
// user's HTTP upload) goes to Twilio as that URL — Twilio fetches it from
// the user's server, nothing is hosted by the adapter —, within the same
// limits; a file without a usable URL is hosted as before, and so is every
// file with host_files.
func TestMMSSenderURL(t *testing.T) {
	pdf := append([]byte("%PDF-1.4\n"), bytes.Repeat([]byte("x"), 600_000)...)
	up := newUploadServer(t, map[string][]byte{
		"/share/a1/cat.png":    pngData,
		"/share/a2/report.pdf": pdf,
	}, "image/png")
	catURL, pdfURL := up.URL+"/share/a1/cat.png", up.URL+"/share/a2/report.pdf"
	cat := legacy.Attachment{Name: "cat.png", Type: "image/png", Data: pngData, URL: catURL}

	e, pub := mmsEnv(t, map[string]string{"routes": "twilio,kannel"})
	s, _ := e.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	ctx := context.Background()

	// A photo with its upload URL: MediaUrl is that URL, fetched by Twilio
	// from the upload server.
	if _, err := s.Send(ctx, &legacy.Message{Chat: contact, Text: "look", Key: "k1", Attachments: []legacy.Attachment{cat}}); err != nil {
		t.Fatal(err)
	}
	sent := e.tw.Sent()
	if len(sent) != 1 || sent[0].Body != "look" || len(sent[0].Media) != 1 {
		t.Fatalf("sent = %+v", sent)
	}
	if m := sent[0].Media[0]; m.URL != catURL || m.Err != "" || m.Type != "image/png" || !bytes.Equal(m.Data, pngData) {
		t.Errorf("media = %s %q %q %d bytes", m.URL, m.Err, m.Type, len(m.Data))
	}
	if n := up.count("/share/a1/cat.png"); n != 1 {
		t.Errorf("the upload server served the photo %d times, want 1 (Twilio's fetch)", n)
	}

	// The limits hold for files with URLs: a PDF over 500 KB is a link in
	// the text (its own URL), eleven images are ten media and one link.
	pdfAtt := legacy.Attachment{Name: "report.pdf", Type: "application/pdf", Data: pdf, URL: pdfURL}
	if _, err := s.Send(ctx, &legacy.Message{Chat: contact, Attachments: []legacy.Attachment{cat, pdfAtt}}); err != nil {
		t.Fatal(err)
	}
	last := e.tw.Sent()[1]
	if len(last.Media) != 1 || last.Media[0].URL != catURL || last.Body != pdfURL {
		t.Fatalf("photo + pdf: body %q media %+v", last.Body, last.Media)
	}
	var many []legacy.Attachment
	for range 11 {
		many = append(many, cat)
	}
	if _, err := s.Send(ctx, &legacy.Message{Chat: contact, Text: "album", Attachments: many}); err != nil {
		t.Fatal(err)
	}
	last = e.tw.Sent()[2]
	if len(last.Media) != 10 || last.Body != "album\n"+catURL {
		t.Errorf("album: %d media, body %q", len(last.Media), last.Body)
	}
	for _, md := range last.Media {
		if md.URL != catURL || md.Err != "" {
			t.Errorf("album medium %s: %s", md.URL, md.Err)
		}
	}

	// Mixed: a file without a URL, or with one that is not http(s), is
	// hosted under public_url; the one with a URL is not.
	noURL := legacy.Attachment{Name: "dog.png", Type: "image/png", Data: pngData}
	ftp := legacy.Attachment{Name: "fox.png", Type: "image/png", Data: pngData, URL: "ftp://files.example.org/fox.png"}
	if _, err := s.Send(ctx, &legacy.Message{Chat: contact, Attachments: []legacy.Attachment{noURL, cat, ftp}}); err != nil {
		t.Fatal(err)
	}
	last = e.tw.Sent()[3]
	if len(last.Media) != 3 || !strings.HasPrefix(last.Media[0].URL, pub+"/media/") || last.Media[1].URL != catURL ||
		!strings.HasPrefix(last.Media[2].URL, pub+"/media/") || !strings.HasSuffix(last.Media[2].URL, "/fox.png") {
		t.Fatalf("mixed: %+v", last.Media)
	}
	for _, md := range last.Media {
		if md.Err != "" || !bytes.Equal(md.Data, pngData) {
			t.Errorf("mixed medium %s: %q, %d bytes", md.URL, md.Err, len(md.Data))
		}
	}

	// Twilio down: Kannel (no MMS) sends the user's URL as the link.
	e.tw.Fail(twiliotest.Fault500)
	if _, err := s.Send(ctx, &legacy.Message{Chat: contact, Text: "via kannel", Attachments: []legacy.Attachment{cat}}); err != nil {
		t.Fatal(err)
	}
	if ks := e.kn.sent(); len(ks) != 1 || ks[0].Get("text") != "via kannel\n"+catURL {
		t.Fatalf("kannel got %v", ks)
	}

	// host_files: every file hosted, the URL it came from unused.
	h, hpub := mmsEnv(t, map[string]string{"routes": "twilio", "host_files": "true"})
	hs, _ := h.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	before := up.count("/share/a1/cat.png")
	if _, err := hs.Send(ctx, &legacy.Message{Chat: contact, Attachments: []legacy.Attachment{cat}}); err != nil {
		t.Fatal(err)
	}
	hm := h.tw.Sent()[0].Media
	if len(hm) != 1 || !strings.HasPrefix(hm[0].URL, hpub+"/media/") || hm[0].Err != "" || !bytes.Equal(hm[0].Data, pngData) {
		t.Errorf("host_files: %+v", hm)
	}
	if up.count("/share/a1/cat.png") != before {
		t.Error("host_files: the upload server was asked for the file")
	}
}

// TestMMSWithoutPublicURL: without public_url a Twilio route still takes
// files — Twilio is given the URL each file came from —, but a file
// without a URL cannot be hosted (ErrUnsupported); Kannel-only networks do
// not take files (the core then sends their URLs as text).
func TestMMSWithoutPublicURL(t *testing.T) {
	up := newUploadServer(t, map[string][]byte{"/share/cat.png": pngData}, "image/png")
	e := newEnv(t, map[string]string{"public_url": ""})
	if !e.net.Info().Caps.Files {
		t.Error("no Caps.Files with a Twilio route and without public_url")
	}
	s, _ := e.run(t, legacy.Account{ID: myNumber, Owner: "u1"})
	ctx := context.Background()
	if _, err := s.Send(ctx, &legacy.Message{Chat: contact, Text: "hi", Attachments: []legacy.Attachment{
		{Name: "cat.png", Type: "image/png", Data: pngData, URL: up.URL + "/share/cat.png"}}}); err != nil {
		t.Fatal(err)
	}
	if sent := e.tw.Sent(); len(sent) != 1 || len(sent[0].Media) != 1 || sent[0].Media[0].URL != up.URL+"/share/cat.png" ||
		sent[0].Media[0].Err != "" {
		t.Fatalf("sent = %+v", sent)
	}
	_, err := s.Send(ctx, &legacy.Message{Chat: contact, Attachments: []legacy.Attachment{{Name: "x.png", Type: "image/png", Data: pngData}}})
	if !errors.Is(err, legacy.ErrUnsupported) || !legacy.IsPermanent(err) {
		t.Errorf("a file without URL nor public_url: %v", err)
	}
	if len(e.tw.Sent()) != 1 {
		t.Error("the file without URL reached Twilio")
	}

	e = newEnv(t, map[string]string{"routes": "kannel"})
	if e.net.Info().Caps.Files {
		t.Error("Caps.Files with only Kannel")
	}
	if _, err := sms.New(map[string]string{"numbers": myNumber, "allow_own_credentials": "true", "media_ttl": "-1h"}); err == nil {
		t.Error("a negative media_ttl accepted")
	}
	if _, err := sms.New(map[string]string{"numbers": myNumber, "allow_own_credentials": "true", "host_files": "true"}); err == nil ||
		!strings.Contains(err.Error(), "public_url") {
		t.Errorf("host_files without public_url: %v", err)
	}
	if _, err := sms.New(map[string]string{"numbers": myNumber, "allow_own_credentials": "true", "host_files": "maybe"}); err == nil {
		t.Error("host_files: maybe accepted")
	}
}

// TestTwilioMediaValidation: the client refuses bad media as Twilio does
// (21620, 21623), and so does the fake.
func TestTwilioMediaValidation(t *testing.T) {
	tw := twiliotest.New(sid, token)
	defer tw.Close()
	c := &twilio.Client{BaseURL: tw.URL, AccountSID: sid, AuthToken: token}
	ctx := context.Background()
	var ce *legacy.CodeError
	if _, err := c.SendMedia(ctx, myNumber, contact, "", []string{"ftp://x/y.png"}, ""); !errors.As(err, &ce) || ce.Code != "21620" || !errors.Is(err, legacy.ErrRejected) {
		t.Errorf("ftp media = %v", err)
	}
	if _, err := c.SendMedia(ctx, myNumber, contact, "", make([]string, 11), ""); !errors.As(err, &ce) || ce.Code != "21623" || !errors.Is(err, legacy.ErrTooLarge) {
		t.Errorf("11 media = %v", err)
	}
	if len(tw.Sent()) != 0 {
		t.Fatal("refused media reached the API")
	}
	// The fake on its own.
	post := func(form url.Values) (int, string) {
		req, _ := http.NewRequest("POST", tw.URL+"/2010-04-01/Accounts/"+sid+"/Messages.json", strings.NewReader(form.Encode()))
		req.SetBasicAuth(sid, token)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	base := url.Values{"To": {contact}, "From": {myNumber}}
	f := url.Values{"MediaUrl": {"example.com/a.png"}}
	for k, v := range base {
		f[k] = v
	}
	if code, body := post(f); code != 400 || !strings.Contains(body, "21620") {
		t.Errorf("relative MediaUrl: %d %s", code, body)
	}
	f = url.Values{"MediaUrl": make([]string, 11)}
	for i := range f["MediaUrl"] {
		f["MediaUrl"][i] = "https://example.com/a.png"
	}
	for k, v := range base {
		f[k] = v
	}
	if code, body := post(f); code != 400 || !strings.Contains(body, "21623") {
		t.Errorf("11 MediaUrl: %d %s", code, body)
	}
	if code, body := post(base); code != 400 || !strings.Contains(body, "21602") {
		t.Errorf("neither Body nor MediaUrl: %d %s", code, body)
	}
}
