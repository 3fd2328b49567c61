package main

// End-to-end test of attachments on the echo network, against real Prosody
// and ejabberd with a go-xmpp user: the user sends a file as Conversations
// does (an upload URL in the body and in jabber:x:oob, served here by an
// httptest server on 127.0.0.1), the gateway downloads it and hands it to
// the echo contact, which sends it back; the user receives the echoed file
// as a message whose body is the gateway's /media/ URL plus the same URL
// in jabber:x:oob, downloads it from the gateway's HTTP listener and gets
// the same bytes. A file over media.max_size is refused with not-acceptable.

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xmppo/go-xmpp"

	"github.com/jabbergate/jabbergate/bridges/config"
	"github.com/jabbergate/jabbergate/component/servertest"
)

// startFilesGateway is startGateway with media enabled: files served by
// the gateway's own listener, downloads from loopback allowed.
func startFilesGateway(t *testing.T, s *servertest.Server) *gatewayProc {
	t.Helper()
	g := &gatewayProc{t: t, log: &lockedBuffer{}, http: freeAddr(t)}
	dir := t.TempDir()
	yaml := fmt.Sprintf(`
xmpp:
  server: %s
  ping_interval: 5s
bridges:
  - network: echo
    domain: %s
    secret: %s
store:
  backend: bolt
  path: %s
http:
  listen: %s
media:
  base_url: http://%s
  dir: %s
  max_size: 64KiB
  ttl: 1h
  allow_private_fetch: true
  fetch_timeout: 10s
access:
  allowed_domains: [localhost]
log:
  level: debug
`, s.ComponentAddr, gwDomain, gwSecret, filepath.Join(dir, "jg.db"), g.http, g.http, filepath.Join(dir, "media"))
	cfg, err := config.Parse(filepath.Join(dir, "files.yaml"), []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	g.cfg = cfg
	g.start()
	t.Cleanup(func() {
		g.stop()
		if t.Failed() {
			t.Logf("gateway log:\n%s", g.log.String())
		}
	})
	return g
}

func TestFilesEndToEnd(t *testing.T) {
	for _, kind := range []string{"prosody", "ejabberd"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := servertest.Start(t, kind, servertest.Options{
				Components: map[string]string{gwDomain: gwSecret},
				Users:      map[string]string{"alice": "alicepw"},
			})
			gw := startFilesGateway(t, srv)
			filesEndToEnd(t, srv, gw)
		})
	}
}

func filesEndToEnd(t *testing.T, srv *servertest.Server, gw *gatewayProc) {
	// The user's upload service stand-in.
	photo := bytes.Repeat([]byte("\x89PNG\r\n\x1a\n-e2e-"), 1000) // 14 KB
	big := bytes.Repeat([]byte("x"), 100*1024)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/upload/1/photo.png":
			w.Header().Set("Content-Type", "image/png")
			w.Write(photo)
		case "/upload/2/big.bin":
			w.Write(big)
		default:
			http.NotFound(w, r)
		}
	}))
	defer up.Close()

	alice := dialClient(t, srv, "alice", "alicepw", "files")
	hello := "hello@" + gwDomain
	alice.send(`<iq type='set' id='r1' to='%s'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>jabber:iq:register</value></field></x></query></iq>`, gwDomain)
	if r := alice.waitIQ("r1"); r.Type != "result" {
		t.Fatalf("register = %+v", r)
	}
	alice.send(`<presence type='subscribe' to='%s'/>`, hello)
	alice.waitPresence("contact presence", hello, "")

	// A file as Conversations sends it: body = URL = oob.
	src := up.URL + "/upload/1/photo.png"
	alice.send(`<message type='chat' id='file1' to='%s'><body>%s</body><x xmlns='jabber:x:oob'><url>%s</url></x></message>`, hello, src, src)
	m := alice.waitChat("echoed file", func(m xmpp.Chat) bool { return bare(m.Remote) == hello && m.Oob.Url != "" })
	base := "http://" + gw.http + "/media/"
	if m.Text != m.Oob.Url || !strings.HasPrefix(m.Oob.Url, base) || !strings.Contains(m.Oob.Url, "/photo.png?") || m.Type != "chat" {
		t.Fatalf("echoed file = %+v: want body = oob URL under %s", m, base)
	}
	client := &http.Client{Timeout: e2eWait}
	resp, err := client.Get(m.Oob.Url)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, photo) || resp.Header.Get("Content-Type") != "image/png" ||
		resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("download = %d %v, %d bytes (want %d)", resp.StatusCode, resp.Header, len(got), len(photo))
	}
	// A tampered link is refused.
	if resp, err := client.Get(strings.Replace(m.Oob.Url, "sig=", "sig=x", 1)); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("tampered link = %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// A caption: it comes back first, then the file.
	alice.send(`<message type='chat' id='file2' to='%s'><body>a photo</body><x xmlns='jabber:x:oob'><url>%s</url></x></message>`, hello, src)
	c := alice.waitChat("echoed caption", func(m xmpp.Chat) bool { return bare(m.Remote) == hello && m.Text == "a photo" })
	f := alice.waitChat("echoed file after caption", func(m xmpp.Chat) bool {
		return bare(m.Remote) == hello && m.Oob.Url != "" && m.ID == c.ID+"-f0"
	})
	if f.Text != f.Oob.Url || c.Oob.Url != "" {
		t.Errorf("caption %+v, file %+v", c, f)
	}

	// Over media.max_size: not-acceptable, bound to the message id.
	bigURL := up.URL + "/upload/2/big.bin"
	alice.send(`<message type='chat' id='file3' to='%s'><body>%s</body><x xmlns='jabber:x:oob'><url>%s</url></x></message>`, hello, bigURL, bigURL)
	e := alice.waitChat("error for the big file", func(m xmpp.Chat) bool { return m.ID == "file3" && m.Type == "error" })
	if errorCondition(e) != "not-acceptable" {
		t.Errorf("big file = %+v", e)
	}
}
