package media

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newStore(t *testing.T, mod func(*Options)) (*Store, *clock) {
	t.Helper()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	o := Options{Dir: filepath.Join(t.TempDir(), "media"), BaseURL: "https://gw.example.org/", Key: []byte("0123456789abcdef0123"),
		TTL: time.Hour, MaxSize: 1000, Now: c.now}
	if mod != nil {
		mod(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

// get serves raw (an absolute URL of the store) through the handler.
func get(t *testing.T, s *Store, raw string) *http.Response {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", u.RequestURI(), nil))
	return rec.Result()
}

func TestPutServeHeaders(t *testing.T) {
	s, _ := newStore(t, nil)
	data := []byte("\x89PNG fake image")
	u, err := s.Put("../../etc/pass wd.png", "image/png", data)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u, "https://gw.example.org/media/") || !strings.Contains(u, "/pass%20wd.png?exp=") || !strings.Contains(u, "&sig=") {
		t.Fatalf("url = %s", u)
	}
	resp := get(t, s, u)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("GET = %d %q", resp.StatusCode, body)
	}
	for k, want := range map[string]string{
		"Content-Type":           "image/png",
		"Content-Length":         "15",
		"X-Content-Type-Options": "nosniff",
		"Content-Disposition":    `inline; filename="pass wd.png"`,
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	// Only the random id names files on disk.
	ents, _ := os.ReadDir(s.opts.Dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), "pass") || strings.Contains(e.Name(), "..") {
			t.Errorf("file on disk named from the sender: %s", e.Name())
		}
	}
	// HTML is never rendered inline.
	u, _ = s.Put("x.html", "text/html", []byte("<script>alert(1)</script>"))
	resp = get(t, s, u)
	if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment") || resp.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("html served with %v", resp.Header)
	}
}

func TestSignatureAndExpiry(t *testing.T) {
	s, c := newStore(t, nil)
	u, err := s.Put("a.txt", "text/plain", []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	pu, _ := url.Parse(u)
	q := pu.Query()
	tamper := func(f func(p *url.URL, q url.Values)) string {
		p := *pu
		qq := url.Values{"exp": {q.Get("exp")}, "sig": {q.Get("sig")}}
		f(&p, qq)
		p.RawQuery = qq.Encode()
		return p.String()
	}
	other, _ := newStore(t, func(o *Options) { o.Key = []byte("another key of 16+ bytes") })
	for name, raw := range map[string]string{
		"no sig":        tamper(func(p *url.URL, q url.Values) { q.Del("sig") }),
		"bad sig":       tamper(func(p *url.URL, q url.Values) { q.Set("sig", "AAAA") }),
		"longer exp":    tamper(func(p *url.URL, q url.Values) { q.Set("exp", "9999999999") }),
		"renamed":       tamper(func(p *url.URL, q url.Values) { p.Path = strings.Replace(p.Path, "a.txt", "b.txt", 1); p.RawPath = "" }),
		"other key sig": other.URL(strings.Split(pu.Path, "/")[2], "a.txt", 1_800_000_000+3600),
	} {
		if resp := get(t, s, raw); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %s → %d, want 403", name, raw, resp.StatusCode)
		}
	}
	// Unknown ids and traversal attempts are 404, whatever the signature.
	for _, p := range []string{"/media/../media.go", "/media/0123/a.txt", "/media/" + strings.Repeat("0", 32) + "/a.txt", "/media/" + strings.Repeat("0", 32) + "/../../x"} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "http://gw.example.org/", nil)
		req.URL.Path = p
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != 404 && rec.Code != 403 {
			t.Errorf("%s → %d", p, rec.Code)
		}
	}
	if resp := get(t, s, u); resp.StatusCode != 200 {
		t.Fatalf("valid URL → %d", resp.StatusCode)
	}
	c.add(time.Hour)
	if resp := get(t, s, u); resp.StatusCode != http.StatusForbidden {
		t.Errorf("expired URL → %d, want 403", resp.StatusCode)
	}
	// POST is not allowed.
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("POST", pu.RequestURI(), nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST → %d", rec.Code)
	}
}

func TestCleanup(t *testing.T) {
	s, c := newStore(t, nil)
	old, _ := s.Put("old.txt", "", []byte("old"))
	c.add(30 * time.Minute)
	fresh, _ := s.Put("new.txt", "", []byte("new"))
	// A leftover temporary file from a crash.
	tmp := filepath.Join(s.opts.Dir, ".tmp-123")
	if err := os.WriteFile(tmp, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = os.Chtimes(tmp, c.now().Add(-2*time.Hour), c.now().Add(-2*time.Hour))
	c.add(45 * time.Minute) // old expired, fresh not
	n, err := s.Cleanup()
	if err != nil || n != 3 {
		t.Fatalf("cleanup removed %d (%v), want 3 (old file, its metadata, the leftover)", n, err)
	}
	if resp := get(t, s, fresh); resp.StatusCode != 200 {
		t.Errorf("fresh file gone: %d", resp.StatusCode)
	}
	ents, _ := os.ReadDir(s.opts.Dir)
	if len(ents) != 2 {
		t.Errorf("left on disk: %v", ents)
	}
	_ = old
	// Cleanup of a store that never stored anything.
	empty, _ := newStore(t, nil)
	if n, err := empty.Cleanup(); n != 0 || err != nil {
		t.Errorf("empty cleanup = %d %v", n, err)
	}
}

func TestSanitizeName(t *testing.T) {
	for in, want := range map[string]string{
		"":                   "file",
		"../../etc/passwd":   "passwd",
		`..\..\win.ini`:      "win.ini",
		".hidden":            "hidden",
		"a\x00b\nc.txt":      "a_b_c.txt",
		"ok name.jpg":        "ok name.jpg",
		"q?x#y%z\".png":      "q_x_y_z_.png",
		"/":                  "file",
		"..":                 "file",
		"évian\u202egpj.exe": "évian_gpj.exe",
	} {
		if got := SanitizeName(in); got != want {
			t.Errorf("SanitizeName(%q) = %q, want %q", in, got, want)
		}
	}
	if got := SanitizeName(strings.Repeat("a", 300)); len(got) != 100 {
		t.Errorf("long name kept %d runes", len(got))
	}
}

func TestPutLimits(t *testing.T) {
	s, _ := newStore(t, nil)
	var tl *TooLargeError
	if _, err := s.Put("big", "", make([]byte, 1001)); !errors.As(err, &tl) || tl.Size != 1001 || tl.Limit != 1000 {
		t.Errorf("too large = %v", err)
	}
	d, _ := newStore(t, func(o *Options) { o.BaseURL = "" })
	if _, err := d.Put("a", "", []byte("x")); !errors.Is(err, ErrDisabled) || d.Enabled() {
		t.Errorf("disabled store: %v", err)
	}
	if _, err := New(Options{Dir: "x", Key: []byte("short")}); err == nil {
		t.Error("short key accepted")
	}
	if _, err := New(Options{Dir: "x", Key: []byte("0123456789abcdef"), BaseURL: "ftp://x"}); err == nil {
		t.Error("ftp base URL accepted")
	}
}

func TestFetch(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok/photo.jpg":
			w.Header().Set("Content-Type", "image/jpeg")
			w.Write([]byte("jpegdata"))
		case "/big":
			w.Write(bytes.Repeat([]byte("x"), 2000))
		case "/chunked-big":
			w.(http.Flusher).Flush() // no Content-Length
			for range 20 {
				w.Write(bytes.Repeat([]byte("x"), 100))
			}
		case "/missing":
			http.NotFound(w, r)
		case "/broken":
			http.Error(w, "oops", 500)
		case "/to-file":
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
		case "/to-ok":
			http.Redirect(w, r, "/ok/photo.jpg", http.StatusFound)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	s, _ := newStore(t, func(o *Options) { o.AllowPrivate = true })

	f, err := s.Fetch(ctx, srv.URL+"/ok/photo.jpg", 0)
	if err != nil || string(f.Data) != "jpegdata" || f.Name != "photo.jpg" || f.Type != "image/jpeg" {
		t.Fatalf("fetch = %+v %v", f, err)
	}
	if f, err := s.Fetch(ctx, srv.URL+"/to-ok", 0); err != nil || string(f.Data) != "jpegdata" {
		t.Errorf("redirect = %+v %v", f, err)
	}
	var tl *TooLargeError
	if _, err := s.Fetch(ctx, srv.URL+"/big", 0); !errors.As(err, &tl) || !tl.Known || tl.Size != 2000 || tl.Limit != 1000 {
		t.Errorf("big = %v", err)
	}
	if _, err := s.Fetch(ctx, srv.URL+"/ok/photo.jpg", 5); !errors.As(err, &tl) || tl.Limit != 5 {
		t.Errorf("limit 5 = %v", err)
	}
	if _, err := s.Fetch(ctx, srv.URL+"/chunked-big", 0); !errors.As(err, &tl) || tl.Known {
		t.Errorf("chunked big = %v", err)
	}
	var fe *FetchError
	if _, err := s.Fetch(ctx, srv.URL+"/missing", 0); !errors.As(err, &fe) || fe.Status != 404 {
		t.Errorf("missing = %v", err)
	}
	if _, err := s.Fetch(ctx, srv.URL+"/broken", 0); err == nil || errors.As(err, &fe) {
		t.Errorf("500 must be transient: %v", err)
	}
	if _, err := s.Fetch(ctx, srv.URL+"/to-file", 0); !errors.As(err, &fe) || !fe.Forbidden {
		t.Errorf("redirect to file: = %v", err)
	}
	for _, bad := range []string{"file:///etc/passwd", "gopher://x/", "http://", "not a url", "http://user:pw@example.org/"} {
		if _, err := s.Fetch(ctx, bad, 0); !errors.As(err, &fe) || !fe.Forbidden {
			t.Errorf("%s: %v", bad, err)
		}
	}

	// Without AllowPrivate, loopback is refused, also after a redirect.
	strict, _ := newStore(t, nil)
	if _, err := strict.Fetch(ctx, srv.URL+"/ok/photo.jpg", 0); !errors.As(err, &fe) || !fe.Forbidden || !strings.Contains(fe.Reason, "private") {
		t.Errorf("loopback fetched: %v", err)
	}
	if _, err := strict.Fetch(ctx, "http://localhost:1/x", 0); !errors.As(err, &fe) || !fe.Forbidden {
		t.Errorf("localhost fetched: %v", err)
	}
}

func TestPublic(t *testing.T) {
	for a, want := range map[string]bool{
		"127.0.0.1": false, "10.1.2.3": false, "192.168.1.1": false, "172.16.0.1": false, "169.254.169.254": false,
		"100.64.0.1": false, "0.0.0.0": false, "::1": false, "fe80::1": false, "fc00::1": false, "::ffff:127.0.0.1": false,
		"224.0.0.1": false, "64:ff9b::a00:1": false,
		"93.184.216.34": true, "2606:2800:220:1::1": true, "1.1.1.1": true,
	} {
		if got := Public(netip.MustParseAddr(a)); got != want {
			t.Errorf("Public(%s) = %v", a, got)
		}
	}
}
