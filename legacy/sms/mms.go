package sms

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/sms/twilio"
)

// Outgoing MMS.
//
// Twilio's Messages API takes media only as URLs it fetches itself
// (MediaUrl). The core hands Send each file the user sent with its bytes
// and, in legacy.Attachment.URL, the URL it fetched them from: the user's
// HTTP upload (XEP-0363), which the user's server serves publicly for as
// long as it keeps uploads. That URL is what Twilio is given (mediaURL),
// so nothing is kept by the gateway and nothing is lost on a restart.
//
// Only a file without a URL (or every file, with host_files: for upload
// services Twilio cannot reach) is hosted by the adapter for a while under
// its own webhook tree — public_url + "/media/<random token>/<name>", 128
// random bits, GET only — and that URL given instead. Routes without MMS
// (Kannel, SMPP) send the same link at the end of the text.
//
// Which files go as MMS media on a Twilio route, within Twilio's limits
// (10 media, 5 MB in total): JPEG, PNG and GIF images up to 5 MB (Twilio
// resizes them for the carrier), other types up to 500 KB; any other file
// goes as a link in the text. The sizes are those of the bytes the core
// fetched. Hosted files live in memory for media_ttl (default 24h) and at
// most maxHosted bytes in all (the oldest go first), so they do not
// survive a restart: a link in an SMS expires with them.

// maxHosted bounds the memory of hosted files.
const maxHosted = 128 << 20

// DefaultMediaTTL is how long a hosted file stays fetchable.
const DefaultMediaTTL = 24 * time.Hour

// hosted is one file served under /media/.
type hosted struct {
	token, name, ctype string
	data               []byte
	expires            time.Time
}

// mediaHost keeps files for providers (and SMS recipients) to fetch.
type mediaHost struct {
	ttl time.Duration
	now func() time.Time
	// secret derives the tokens of messages with an idempotency key, so
	// that a retried message reuses its URLs instead of hosting copies.
	secret [32]byte

	mu    sync.Mutex
	files []*hosted // oldest first
	size  int
}

// mediaURL is the URL a, the i-th file of the message with idempotency
// key key, is sent under: its own URL (Attachment.URL) when it has an
// http(s) one and the operator did not ask to host every file, else the
// URL of a copy hosted under public_url. Without public_url such a file
// cannot be sent (ErrUnsupported).
func (n *Network) mediaURL(a legacy.Attachment, key string, i int) (string, error) {
	if !n.hostFiles && sharedURL(a.URL) {
		return strings.TrimSpace(a.URL), nil
	}
	if n.publicURL == "" {
		return "", fmt.Errorf("sms: this file has no URL the provider can fetch, and the operator set no public_url to host it: %w", legacy.ErrUnsupported)
	}
	return n.media.put(n.publicURL, a, key, i), nil
}

// sharedURL reports whether raw is an absolute http(s) URL with a host
// and no credentials, fit to give to a provider as MediaUrl or to a
// recipient as a link.
func sharedURL(raw string) bool {
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.User == nil &&
		!strings.ContainsAny(raw, " \t\r\n")
}

// put hosts a, the i-th file of the message with idempotency key key, and
// returns its public URL under base (public_url).
func (h *mediaHost) put(base string, a legacy.Attachment, key string, i int) string {
	var b [16]byte
	if key != "" {
		m := hmac.New(sha256.New, h.secret[:])
		fmt.Fprintf(m, "%d\x00%s", i, key)
		copy(b[:], m.Sum(nil))
	} else {
		rand.Read(b[:])
	}
	name := safeName(a.Name, a.Type)
	f := &hosted{token: hex.EncodeToString(b[:]), name: name, ctype: mediaType(a), data: a.Data, expires: h.now().Add(h.ttl)}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.expireLocked()
	for j, x := range h.files {
		if x.token == f.token { // a retry: host it anew (fresh expiry)
			h.size -= len(x.data)
			h.files = append(h.files[:j], h.files[j+1:]...)
			break
		}
	}
	h.files = append(h.files, f)
	h.size += len(f.data)
	for h.size > maxHosted && len(h.files) > 1 {
		h.size -= len(h.files[0].data)
		h.files = h.files[1:]
	}
	return base + "/media/" + f.token + "/" + url.PathEscape(name)
}

func (h *mediaHost) expireLocked() {
	now := h.now()
	for len(h.files) > 0 && !now.Before(h.files[0].expires) {
		h.size -= len(h.files[0].data)
		h.files = h.files[1:]
	}
}

// serve answers GET /media/{token}/{name}.
func (h *mediaHost) serve(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	h.mu.Lock()
	h.expireLocked()
	var f *hosted
	for _, x := range h.files {
		if x.token == token {
			f = x
		}
	}
	h.mu.Unlock()
	if f == nil || len(token) != 32 {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", f.ctype)
	w.Header().Set("Content-Length", strconv.Itoa(len(f.data)))
	w.Header().Set("Cache-Control", "private, max-age=3600")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// Users' files on the gateway's origin: never as a page.
	w.Header().Set("Content-Security-Policy", "sandbox")
	if !strings.HasPrefix(f.ctype, "image/") && !strings.HasPrefix(f.ctype, "audio/") && !strings.HasPrefix(f.ctype, "video/") {
		w.Header().Set("Content-Disposition", "attachment; filename*=UTF-8''"+url.PathEscape(f.name))
	}
	if r.Method == http.MethodHead {
		return
	}
	w.Write(f.data)
}

// mediaType is a's MIME type, sniffed when the core gave none.
func mediaType(a legacy.Attachment) string {
	if t := strings.TrimSpace(a.Type); t != "" {
		return t
	}
	return http.DetectContentType(a.Data)
}

// safeName is a file name fit for a URL path segment.
func safeName(name, ctype string) string {
	name = path.Base(strings.ReplaceAll(name, "\\", "/"))
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '/' || r == '?' || r == '#' {
			return -1
		}
		return r
	}, name)
	if name == "" || name == "." || name == "/" {
		name = "file"
		switch ctype {
		case "image/jpeg":
			name += ".jpg"
		case "image/png":
			name += ".png"
		case "image/gif":
			name += ".gif"
		}
	}
	if len(name) > 100 {
		name = name[len(name)-100:]
	}
	return name
}

// mmsAble reports whether a goes as MMS media on a Twilio route.
func mmsAble(a legacy.Attachment) bool {
	switch mediaType(a) {
	case "image/jpeg", "image/png", "image/gif":
		return len(a.Data) <= twilio.MaxMediaSize
	}
	return len(a.Data) <= twilio.MaxOtherMediaSize
}

// withLinks appends links to text, one a line.
func withLinks(text string, links []string) string {
	if len(links) == 0 {
		return text
	}
	l := strings.Join(links, "\n")
	if strings.TrimSpace(text) == "" {
		return l
	}
	return text + "\n" + l
}
