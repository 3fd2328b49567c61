// Package media keeps the files that legacy contacts send until the XMPP
// user's client downloads them, and downloads the files XMPP users send.
//
// Inbound (legacy → XMPP), Store.Put writes a file under Options.Dir with a
// random id as its only name on disk (never a name from the legacy side),
// synced to disk before Put returns, and returns a signed, expiring URL:
//
//	<base_url>/media/<id>/<sanitised name>?exp=<unix seconds>&sig=<HMAC-SHA256>
//
// Handler serves those URLs: a missing, malformed or tampered signature
// and an expired URL get 403, an unknown id 404. Responses carry the stored
// Content-Type, Content-Length, Content-Disposition (inline for images,
// audio and video, attachment otherwise), X-Content-Type-Options: nosniff
// and a sandboxing Content-Security-Policy, so a file can never run as a
// page of the gateway's origin. Run deletes expired files periodically.
//
// Outbound (XMPP → legacy), Store.Fetch downloads an http(s) URL with a
// size limit and a timeout, refusing redirects to other schemes and, unless
// Options.AllowPrivate, any address that is loopback, private, link-local
// or otherwise not globally routable (checked on the address actually
// dialled, so DNS rebinding does not get around it).
package media

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Defaults.
const (
	DefaultMaxSize      int64 = 20 << 20
	DefaultTTL                = 7 * 24 * time.Hour
	DefaultFetchTimeout       = time.Minute
	// Prefix is the path the handler is mounted under.
	Prefix = "/media/"
)

// Options configures a Store.
type Options struct {
	// Dir holds the files. Created (0700) on first use.
	Dir string
	// BaseURL is the public URL prefix of the HTTP listener
	// ("https://gw.example.org"); URLs are BaseURL + "/media/…". Empty
	// disables Put (inbound files), not Fetch.
	BaseURL string
	// Key signs URLs (HMAC-SHA256). Required, at least 16 bytes.
	Key []byte
	// TTL is how long a stored file and its URL live (default 7 days).
	TTL time.Duration
	// MaxSize is the largest file stored or fetched (default 20 MiB).
	MaxSize int64
	// FetchTimeout bounds one download (default 1 minute).
	FetchTimeout time.Duration
	// AllowPrivate lets Fetch download from loopback and private
	// addresses (tests, or an upload service on the local network).
	AllowPrivate bool
	// Logger, default slog.Default().
	Logger *slog.Logger
	// Now is the clock, for tests (default time.Now).
	Now func() time.Time
}

// Store is the media store. Safe for concurrent use.
type Store struct {
	opts   Options
	base   string
	log    *slog.Logger
	client *http.Client

	mkdir  sync.Once
	dirErr error
}

// meta is what is stored next to a file (<id>.json).
type meta struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Size    int64  `json:"size"`
	Expires int64  `json:"exp"` // unix seconds
}

// New checks opts and returns a store. It does no I/O.
func New(opts Options) (*Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("media: Dir is required")
	}
	if len(opts.Key) < 16 {
		return nil, errors.New("media: signing key must be at least 16 bytes")
	}
	base := strings.TrimRight(opts.BaseURL, "/")
	if base != "" {
		u, err := url.Parse(base)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("media: base URL %q is not an absolute http(s) URL without query", opts.BaseURL)
		}
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.MaxSize <= 0 {
		opts.MaxSize = DefaultMaxSize
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = DefaultFetchTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Store{opts: opts, base: base, log: opts.Logger}
	s.client = s.newClient()
	return s, nil
}

// Enabled reports whether Put works (a base URL is configured).
func (s *Store) Enabled() bool { return s.base != "" }

// MaxSize is the largest file Put stores and Fetch downloads.
func (s *Store) MaxSize() int64 { return s.opts.MaxSize }

// ErrDisabled is returned by Put without a base URL.
var ErrDisabled = errors.New("media: no base URL configured; inbound files cannot be served")

// TooLargeError is a file over the limit. Size is the file's size, or the
// number of bytes read when the size is not known (then Known is false).
type TooLargeError struct {
	Size, Limit int64
	Known       bool
}

func (e *TooLargeError) Error() string {
	if e.Known {
		return fmt.Sprintf("media: file of %d bytes exceeds the limit of %d bytes", e.Size, e.Limit)
	}
	return fmt.Sprintf("media: file larger than the limit of %d bytes", e.Limit)
}

func (s *Store) ensureDir() error {
	s.mkdir.Do(func() { s.dirErr = os.MkdirAll(s.opts.Dir, 0o700) })
	return s.dirErr
}

// Put stores data durably (written and synced before it returns) and
// returns its signed URL. name is only used, sanitised, as the last path
// segment of the URL and in Content-Disposition; ctype is checked and
// otherwise guessed from name.
func (s *Store) Put(name, ctype string, data []byte) (string, error) {
	if !s.Enabled() {
		return "", ErrDisabled
	}
	if int64(len(data)) > s.opts.MaxSize {
		return "", &TooLargeError{Size: int64(len(data)), Limit: s.opts.MaxSize, Known: true}
	}
	if err := s.ensureDir(); err != nil {
		return "", fmt.Errorf("media: %w", err)
	}
	var rnd [16]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", err
	}
	id := hex.EncodeToString(rnd[:])
	name = SanitizeName(name)
	m := meta{Name: name, Type: ContentType(ctype, name), Size: int64(len(data)),
		Expires: s.opts.Now().Add(s.opts.TTL).Unix()}
	mj, _ := json.Marshal(m)
	// The data first, then the metadata that makes it visible.
	if err := writeSynced(s.opts.Dir, id, data); err != nil {
		return "", err
	}
	if err := writeSynced(s.opts.Dir, id+".json", mj); err != nil {
		_ = os.Remove(filepath.Join(s.opts.Dir, id))
		return "", err
	}
	if d, err := os.Open(s.opts.Dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return s.URL(id, name, m.Expires), nil
}

// writeSynced writes data to dir/name atomically (temporary file, fsync,
// rename).
func writeSynced(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("media: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("media: write file: %w", err)
	}
	return nil
}

// URL returns the signed URL of a file.
func (s *Store) URL(id, name string, exp int64) string {
	q := url.Values{"exp": {strconv.FormatInt(exp, 10)}, "sig": {s.sign(id, name, exp)}}
	return s.base + Prefix + id + "/" + url.PathEscape(name) + "?" + q.Encode()
}

func (s *Store) sign(id, name string, exp int64) string {
	mac := hmac.New(sha256.New, s.opts.Key)
	fmt.Fprintf(mac, "jabbergate-media\x00%s\x00%s\x00%d", id, name, exp)
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Handler serves the signed URLs; mount it at Prefix ("/media/").
func (s *Store) Handler() http.Handler {
	return http.HandlerFunc(s.serve)
}

func (s *Store) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, Prefix)
	id, name, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || !validID(id) || name == "" || strings.Contains(name, "/") {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	exp, err := strconv.ParseInt(q.Get("exp"), 10, 64)
	sig := q.Get("sig")
	if err != nil || sig == "" || !hmac.Equal([]byte(sig), []byte(s.sign(id, name, exp))) {
		http.Error(w, "forbidden: bad signature", http.StatusForbidden)
		return
	}
	if s.opts.Now().Unix() >= exp {
		http.Error(w, "forbidden: this link has expired", http.StatusForbidden)
		return
	}
	mj, err := os.ReadFile(filepath.Join(s.opts.Dir, id+".json"))
	var m meta
	if err == nil {
		err = json.Unmarshal(mj, &m)
	}
	if err != nil {
		http.NotFound(w, r)
		return
	}
	f, err := os.Open(filepath.Join(s.opts.Dir, id))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", m.Type)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	h.Set("Cache-Control", fmt.Sprintf("private, max-age=%d", max(0, exp-s.opts.Now().Unix())))
	disp := "attachment"
	if inline(m.Type) {
		disp = "inline"
	}
	h.Set("Content-Disposition", mime.FormatMediaType(disp, map[string]string{"filename": m.Name}))
	// ServeContent sets Content-Length and handles HEAD and ranges.
	http.ServeContent(w, r, "", st.ModTime(), f)
}

func inline(ctype string) bool {
	if ctype == "image/svg+xml" {
		return false // scripts
	}
	for _, p := range []string{"image/", "audio/", "video/"} {
		if strings.HasPrefix(ctype, p) {
			return true
		}
	}
	return false
}

// SanitizeName turns an untrusted file name into a safe last URL segment
// and Content-Disposition name: the base name only, no path separators,
// control characters or leading dots, at most 100 runes; "file" when
// nothing is left.
func SanitizeName(name string) string {
	name = strings.ReplaceAll(name, "\\", "/")
	name = path.Base("/" + name)
	if name == "/" {
		return "file"
	}
	var b strings.Builder
	n := 0
	for _, r := range name {
		if n >= 100 {
			break
		}
		switch {
		case r == utf8.RuneError, unicode.IsControl(r), r == '/', r == '"', r == '%', r == '?', r == '#',
			unicode.Is(unicode.Bidi_Control, r), unicode.IsSpace(r) && r != ' ':
			b.WriteRune('_')
		default:
			b.WriteRune(r)
		}
		n++
	}
	out := strings.TrimLeft(strings.TrimSpace(b.String()), ".")
	if out == "" {
		return "file"
	}
	return out
}

// ContentType returns ctype when it is a valid MIME type (parameters
// kept), else the type of name's extension, else application/octet-stream.
func ContentType(ctype, name string) string {
	if ctype != "" {
		if mt, params, err := mime.ParseMediaType(ctype); err == nil && strings.Contains(mt, "/") {
			return mime.FormatMediaType(mt, params)
		}
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// Cleanup removes expired files and leftovers of interrupted writes; it
// returns how many files it removed.
func (s *Store) Cleanup() (int, error) {
	ents, err := os.ReadDir(s.opts.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	} else if err != nil {
		return 0, fmt.Errorf("media: %w", err)
	}
	now := s.opts.Now()
	have := map[string]bool{}
	for _, e := range ents {
		have[e.Name()] = true
	}
	n := 0
	remove := func(name string) {
		if err := os.Remove(filepath.Join(s.opts.Dir, name)); err == nil {
			n++
		} else if !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("media cleanup", "err", err)
		}
	}
	stale := func(e os.DirEntry) bool { // a leftover, not a write in progress
		info, err := e.Info()
		return err == nil && now.Sub(info.ModTime()) > time.Hour
	}
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, ".tmp-"):
			if stale(e) {
				remove(name)
			}
		case strings.HasSuffix(name, ".json") && validID(strings.TrimSuffix(name, ".json")):
			id := strings.TrimSuffix(name, ".json")
			var m meta
			data, err := os.ReadFile(filepath.Join(s.opts.Dir, name))
			if err == nil && json.Unmarshal(data, &m) == nil && now.Unix() < m.Expires {
				continue
			}
			if err == nil || errors.Is(err, os.ErrNotExist) { // expired or corrupt
				remove(id) // the data first: a file without metadata is never served
				remove(name)
			}
		case validID(name):
			if !have[name+".json"] && stale(e) {
				remove(name)
			}
		}
	}
	return n, nil
}

// Run removes expired files every interval (default: TTL/24, at most an
// hour, at least a minute) until ctx ends.
func (s *Store) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = min(max(s.opts.TTL/24, time.Minute), time.Hour)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := s.Cleanup(); err != nil {
			s.log.Warn("media cleanup failed", "err", err)
		} else if n > 0 {
			s.log.Debug("media cleanup", "removed", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
