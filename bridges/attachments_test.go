package bridges_test

// Stanza-level tests of attachments (protocol.md §15, row 25, §18): files
// from the legacy side as a caption message and URL + jabber:x:oob
// messages; files from XMPP users fetched from an HTTP server on loopback
// and handed to the adapter (the echo network sends them back).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges"
	"github.com/jabbergate/jabbergate/bridges/media"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/echo"
)

const mediaBase = "https://gw.example.org"

// newMediaHarness is newHarness with a media store (nil: none).
func newMediaHarness(t *testing.T, network legacy.Network, mod func(*media.Options)) (*harness, *media.Store) {
	t.Helper()
	var ms *media.Store
	if mod != nil {
		o := media.Options{Dir: filepath.Join(t.TempDir(), "media"), BaseURL: mediaBase, Key: []byte("test signing key 0123456789"),
			AllowPrivate: true, FetchTimeout: wait}
		mod(&o)
		var err error
		if ms, err = media.New(o); err != nil {
			t.Fatal(err)
		}
	}
	h := newTunedHarness(t, network, func(o *bridges.Options) { o.Media = ms })
	return h, ms
}

// download gets a media URL through the store's handler.
func download(t *testing.T, ms *media.Store, raw string) (*http.Response, []byte) {
	t.Helper()
	if !strings.HasPrefix(raw, mediaBase+"/media/") {
		t.Fatalf("not a media URL: %s", raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	ms.Handler().ServeHTTP(rec, httptest.NewRequest("GET", u.RequestURI(), nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Result(), body
}

// fileMessage reports whether e is a file message: body = OOB URL.
func fileMessage(e *stanza.Element) bool {
	x := e.Child("jabber:x:oob", "x")
	return e.Local == "message" && x != nil && x.ChildText("", "url") != "" && e.ChildText("", "body") == x.ChildText("", "url")
}

func indexOf(h *harness, e *stanza.Element) int {
	for i, r := range h.srv.Received() {
		if r == e {
			return i
		}
	}
	return -1
}

// The message of a file after a caption has an id of its own (…-f0),
// which names the same legacy message: a reply to it is a reply to that
// message (as are reactions and markers, resolved the same way).
func TestFileMessageIDResolves(t *testing.T) {
	net := &scripted{caps: legacy.Caps{Files: true, Replies: true}}
	h, _ := newMediaHarness(t, net, func(o *media.Options) {})
	h.register(alice)
	net.waitSink(t)
	if err := net.emit(context.Background(), legacy.Incoming{ID: "in7", Chat: "hello", Text: "look at this",
		Attachments: []legacy.Attachment{{Name: "cat.png", Type: "image/png", Data: []byte("PNG")}}}); err != nil {
		t.Fatal(err)
	}
	file := h.expect("file message", fileMessage)
	h.msg("r1", `<body>nice pic</body><reply xmlns='urn:xmpp:reply:0' to='`+contact+`' id='`+file.ID()+`'/>`)
	deadline := time.Now().Add(wait)
	for {
		if sent := net.sentMessages(); len(sent) == 1 {
			if sent[0].ReplyTo != "in7" || sent[0].Text != "nice pic" {
				t.Errorf("reply to the file sent as %+v; want a reply to in7", sent[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("reply not sent")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestInboundFiles(t *testing.T) {
	net := &scripted{caps: legacy.Caps{Files: true, Markers: true}}
	dir := filepath.Join(t.TempDir(), "files")
	h, ms := newMediaHarness(t, net, func(o *media.Options) { o.Dir = dir })
	h.register(alice)
	net.waitSink(t)
	ctx := context.Background()
	img := bytes.Repeat([]byte{0x89, 'P', 'N', 'G'}, 100)

	// A caption and a file: the caption first, then body = URL + oob.
	if err := net.emit(ctx, legacy.Incoming{ID: "in1", Chat: "hello", Text: "look at this",
		Attachments: []legacy.Attachment{{Name: "../../secret/cat.png", Type: "image/png", Data: img}}}); err != nil {
		t.Fatal(err)
	}
	// Durable once Emit returned: the file and its metadata are on disk.
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("after Emit the media dir holds %v, want the file and its metadata", ents)
	}
	caption := h.expect("caption", func(e *stanza.Element) bool { return e.ChildText("", "body") == "look at this" })
	file := h.expect("file message", fileMessage)
	u := file.ChildText("", "body")
	golden(t, "caption", caption, fmt.Sprintf(`<message xmlns='jabber:component:accept' type='chat' id='%s' from='%s' to='%s'><body>look at this</body><markable xmlns='urn:xmpp:chat-markers:0'/><origin-id xmlns='urn:xmpp:sid:0' id='%[1]s'/></message>`,
		caption.ID(), contact, alice))
	if indexOf(h, caption) > indexOf(h, file) {
		t.Errorf("file before its caption")
	}
	if !strings.HasPrefix(u, mediaBase+"/media/") || !strings.Contains(u, "/cat.png?exp=") || strings.Contains(u, "secret") {
		t.Errorf("file URL = %s", u)
	}
	golden(t, "file message", file, fmt.Sprintf(`<message xmlns='jabber:component:accept' type='chat' id='%s-f0' from='%s' to='%s'><body>%s</body><x xmlns='jabber:x:oob'><url>%[4]s</url></x><origin-id xmlns='urn:xmpp:sid:0' id='%[1]s-f0'/></message>`,
		caption.ID(), contact, alice, escapeXML(u)))
	resp, body := download(t, ms, u)
	if resp.StatusCode != 200 || !bytes.Equal(body, img) || resp.Header.Get("Content-Type") != "image/png" {
		t.Errorf("download = %d %s, %d bytes", resp.StatusCode, resp.Header, len(body))
	}

	// Two files without a caption: the first is the message itself
	// (markable, the message's id), the second follows.
	if err := net.emit(ctx, legacy.Incoming{ID: "in2", Chat: "hello", Attachments: []legacy.Attachment{
		{Name: "a.txt", Data: []byte("first")}, {Name: "b.bin", Data: []byte("second")}}}); err != nil {
		t.Fatal(err)
	}
	first := h.expect("first file", func(e *stanza.Element) bool {
		return fileMessage(e) && strings.Contains(e.ChildText("", "body"), "/a.txt?")
	})
	second := h.expect("second file", func(e *stanza.Element) bool {
		return fileMessage(e) && strings.Contains(e.ChildText("", "body"), "/b.bin?")
	})
	if first.Child("urn:xmpp:chat-markers:0", "markable") == nil || second.ID() != first.ID()+"-f1" || indexOf(h, first) > indexOf(h, second) {
		t.Errorf("files without caption:\n%s\n%s", first, second)
	}
	if _, b := download(t, ms, second.ChildText("", "body")); string(b) != "second" {
		t.Errorf("second file = %q", b)
	}
	// Over the limit: a note, no URL.
	big := make([]byte, media.DefaultMaxSize+1)
	if err := net.emit(ctx, legacy.Incoming{ID: "in3", Chat: "hello", Text: "huge", Attachments: []legacy.Attachment{{Name: "big.iso", Data: big}}}); err != nil {
		t.Fatal(err)
	}
	note := h.expect("too-large note", func(e *stanza.Element) bool { return strings.HasPrefix(e.ChildText("", "body"), "huge\n[file big.iso") })
	if note.Child("jabber:x:oob", "x") != nil || !strings.Contains(note.ChildText("", "body"), "larger than") {
		t.Errorf("note = %s", note)
	}
}

func escapeXML(s string) string {
	var b bytes.Buffer
	stanza.New("", "x").AddText(s).AppendXML(&b, "")
	out := strings.TrimPrefix(b.String(), "<x>")
	return strings.TrimSuffix(out, "</x>")
}

func TestInboundFileWithoutMedia(t *testing.T) {
	net := &scripted{caps: legacy.Caps{Files: true}}
	h, _ := newMediaHarness(t, net, nil)
	h.register(alice)
	net.waitSink(t)
	if err := net.emit(context.Background(), legacy.Incoming{ID: "in1", Chat: "hello",
		Attachments: []legacy.Attachment{{Name: "cat.jpg", Data: []byte("jpeg")}}}); err != nil {
		t.Fatal(err)
	}
	m := h.expect("note", func(e *stanza.Element) bool { return e.Local == "message" && e.ChildText("", "body") != "" })
	if m.ChildText("", "body") != "[file cat.jpg, 4 bytes: not shown, this gateway has no media storage (media.base_url)]" || m.Child("jabber:x:oob", "x") != nil {
		t.Errorf("note = %s", m)
	}
}

// uploadServer is an XEP-0363 upload service stand-in on loopback.
func uploadServer(t *testing.T, files map[string][]byte) *httptest.Server {
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		data, ok := files[r.URL.Path]
		mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Write(data)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestOutboundFileEchoed(t *testing.T) {
	img := bytes.Repeat([]byte("PNGDATA"), 50)
	up := uploadServer(t, map[string][]byte{"/upload/abc/photo.png": img})
	h, ms := newMediaHarness(t, nil, func(o *media.Options) {})
	h.register(alice)
	src := up.URL + "/upload/abc/photo.png"

	// A Conversations upload: body = URL = oob. The echo sends the file
	// back as a file of its own, no caption.
	h.msg("f1", `<body>`+src+`</body><x xmlns='jabber:x:oob'><url>`+src+`</url></x><origin-id xmlns='urn:xmpp:sid:0' id='f1'/>`)
	e := h.expect("echoed file", func(e *stanza.Element) bool { return fileMessage(e) && e.From() == contact })
	u := e.ChildText("", "body")
	if !strings.Contains(u, "/photo.png?") || e.Child("urn:xmpp:chat-markers:0", "markable") == nil {
		t.Errorf("echoed file = %s", e)
	}
	resp, body := download(t, ms, u)
	if resp.StatusCode != 200 || !bytes.Equal(body, img) || resp.Header.Get("Content-Type") != "image/png" {
		t.Errorf("download = %d %v, %d bytes", resp.StatusCode, resp.Header, len(body))
	}

	// A caption in the body: the caption comes back first, then the file.
	h.msg("f2", `<body>my cat</body><x xmlns='jabber:x:oob'><url>`+src+`</url></x>`)
	c := h.expect("echoed caption", func(e *stanza.Element) bool { return e.ChildText("", "body") == "my cat" })
	f := h.expect("echoed file after caption", func(e *stanza.Element) bool { return fileMessage(e) && e.ID() == c.ID()+"-f0" })
	if indexOf(h, c) > indexOf(h, f) {
		t.Error("file before caption")
	}

	// An OOB element alone (no body) is a file too.
	h.msg("f3", `<x xmlns='jabber:x:oob'><url>`+src+`</url></x>`)
	h.expect("echo of a bodyless file", func(e *stanza.Element) bool {
		return fileMessage(e) && e.ID() != f.ID() && e.ID() != c.ID() && e.ChildText("", "body") != u
	})

	// A file the upload server does not have: item-not-found.
	h.msg("f4", `<body>`+up.URL+`/gone.png</body><x xmlns='jabber:x:oob'><url>`+up.URL+`/gone.png</url></x>`)
	h.expectError("f4", stanza.ItemNotFound)
}

func TestOutboundFileTooLarge(t *testing.T) {
	up := uploadServer(t, map[string][]byte{"/big.png": bytes.Repeat([]byte("x"), 2048)})
	h, _ := newMediaHarness(t, nil, func(o *media.Options) { o.MaxSize = 1024 })
	h.register(alice)
	src := up.URL + "/big.png"
	h.msg("big", `<body>`+src+`</body><x xmlns='jabber:x:oob'><url>`+src+`</url></x>`)
	r := h.expectError("big", stanza.NotAcceptable)
	text := stanza.ParseError(r).Text
	if !strings.Contains(text, "2048 bytes") || !strings.Contains(text, "1024 bytes") {
		t.Errorf("text must name the size and the limit: %q", text)
	}
}

// smallFiles is echo with a network file limit below the media limit.
type smallFiles struct{ *echo.Network }

func (n smallFiles) Info() legacy.Info {
	i := n.Network.Info()
	i.MaxFileSize = 100
	return i
}

func TestOutboundFileNetworkLimitAndPrivate(t *testing.T) {
	up := uploadServer(t, map[string][]byte{"/f.png": bytes.Repeat([]byte("x"), 200)})
	e, _ := echo.New(nil)
	h, _ := newMediaHarness(t, smallFiles{e}, func(o *media.Options) {})
	h.register(alice)
	src := up.URL + "/f.png"
	h.msg("n1", `<body>`+src+`</body><x xmlns='jabber:x:oob'><url>`+src+`</url></x>`)
	if text := stanza.ParseError(h.expectError("n1", stanza.NotAcceptable)).Text; !strings.Contains(text, "100 bytes") {
		t.Errorf("network limit not named: %q", text)
	}

	// Without allow_private_fetch, loopback URLs are refused.
	strict, _ := newMediaHarness(t, nil, func(o *media.Options) { o.AllowPrivate = false })
	strict.register(alice)
	strict.msg("p1", `<body>`+src+`</body><x xmlns='jabber:x:oob'><url>`+src+`</url></x>`)
	if text := stanza.ParseError(strict.expectError("p1", stanza.NotAllowed)).Text; !strings.Contains(text, "private") {
		t.Errorf("private refusal text: %q", text)
	}
}

func TestOutboundFileWithoutFilesCapIsText(t *testing.T) {
	up := uploadServer(t, map[string][]byte{"/f.png": []byte("x")})
	h := newCapsHarness(t, legacy.Caps{}, 0) // echo without Files
	h.register(alice)
	src := up.URL + "/f.png"
	h.msg("t1", `<body>`+src+`</body><x xmlns='jabber:x:oob'><url>`+src+`</url></x>`)
	// The URL travels as text: the echo is the URL, without oob.
	e := h.expect("echo of the URL", func(e *stanza.Element) bool { return e.From() == contact && e.ChildText("", "body") == src })
	if e.Child("jabber:x:oob", "x") != nil {
		t.Errorf("echo = %s", e)
	}
}

func TestInboundFileNotStoredIsNotTaken(t *testing.T) {
	net := &scripted{caps: legacy.Caps{Files: true}}
	notDir := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h, _ := newMediaHarness(t, net, func(o *media.Options) { o.Dir = notDir })
	h.register(alice)
	net.waitSink(t)
	err := net.emit(context.Background(), legacy.Incoming{ID: "in1", Chat: "hello", Text: "x",
		Attachments: []legacy.Attachment{{Name: "a.txt", Data: []byte("a")}}})
	if err == nil {
		t.Fatal("Emit took a message whose file could not be stored")
	}
	var re *legacy.ReasonError
	if !errors.Is(err, legacy.ErrUnavailable) || !errors.As(err, &re) || !strings.Contains(re.Reason, "cannot store an attached file") {
		t.Errorf("Emit error %v: want a retryable error whose reason names the gateway's disk, not the network", err)
	}
	if n, _ := h.st.Len(context.Background(), store.Queue{Bridge: domain, JID: alice, Kind: store.Inbox}); n != 0 {
		t.Errorf("inbox holds %d entries", n)
	}
}

// urlNet is echo that also records the attachments Send is given.
type urlNet struct {
	*echo.Network
	got chan legacy.Attachment
}

func (n urlNet) Open(ctx context.Context, a legacy.Account, s legacy.Sink) (legacy.Session, error) {
	inner, err := n.Network.Open(ctx, a, s)
	return &urlSession{Session: inner, got: n.got}, err
}

type urlSession struct {
	legacy.Session
	got chan legacy.Attachment
}

func (s *urlSession) Send(ctx context.Context, m *legacy.Message) (legacy.MessageID, error) {
	for _, a := range m.Attachments {
		select {
		case s.got <- a:
		default:
		}
	}
	return s.Session.Send(ctx, m)
}

// TestOutboundFileURL: the attachment handed to the adapter carries the
// URL the file was fetched from, next to its bytes, so that a network that
// fetches files itself (Twilio's MediaUrl) can be given the user's URL.
func TestOutboundFileURL(t *testing.T) {
	img := bytes.Repeat([]byte("PNGDATA"), 20)
	up := uploadServer(t, map[string][]byte{"/upload/xyz/cat.png": img})
	e, _ := echo.New(nil)
	net := urlNet{Network: e, got: make(chan legacy.Attachment, 4)}
	h, _ := newMediaHarness(t, net, func(o *media.Options) {})
	h.register(alice)
	src := up.URL + "/upload/xyz/cat.png"
	h.msg("u1", `<body>`+src+`</body><x xmlns='jabber:x:oob'><url> `+src+` </url></x>`)
	select {
	case a := <-net.got:
		if a.URL != src || !bytes.Equal(a.Data, img) || a.Name != "cat.png" || a.Type != "image/png" {
			t.Errorf("attachment = %q %q %q, %d bytes", a.URL, a.Name, a.Type, len(a.Data))
		}
	case <-time.After(wait):
		t.Fatal("the adapter was not given the file")
	}
}
