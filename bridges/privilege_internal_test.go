package bridges

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store/bolt"
	"github.com/jabbergate/jabbergate/component"
	"github.com/jabbergate/jabbergate/component/componenttest"
	"github.com/jabbergate/jabbergate/component/servertest"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy/echo"
)

const privWait = 10 * time.Second

func startPrivBridge(t *testing.T) (*Bridge, *componenttest.Server) {
	t.Helper()
	srv := componenttest.NewServer(t, "gw.localhost", "s3cret")
	st, err := bolt.Open(filepath.Join(t.TempDir(), "jg.db"))
	if err != nil {
		t.Fatal(err)
	}
	nw, _ := echo.New(nil)
	b, err := New(Options{
		Domain: "gw.localhost", Network: nw, Store: st, AllowedDomains: []string{"localhost"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Link: component.Config{Addr: srv.Addr(), Secret: "s3cret", MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
			PingInterval: time.Second, PingTimeout: 500 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(privWait):
			t.Error("bridge did not stop")
		}
		st.Close()
	})
	if err := srv.WaitHandshakes(1, privWait); err != nil {
		t.Fatal(err)
	}
	return b, srv
}

// waitGrant waits until the current connection has a grant for dom that
// satisfies ok.
func waitGrant(t *testing.T, b *Bridge, dom string, ok func(*privGrant) bool) *privGrant {
	t.Helper()
	deadline := time.After(privWait)
	for {
		if g := b.currentGrant(dom); ok(g) {
			return g
		}
		select {
		case <-deadline:
			t.Fatalf("no matching grant for %s", dom)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func inject(t *testing.T, srv *componenttest.Server, raw string) {
	t.Helper()
	if err := srv.Inject(stanza.MustParse(raw)); err != nil {
		t.Fatal(err)
	}
}

func TestPrivilegedMessageShapes(t *testing.T) {
	b, srv := startPrivBridge(t)
	inner := stanza.New(stanza.NSComponent, "message", "type", "chat", "id", "jg-abc", "from", "juliet@localhost", "to", "ann@gw.localhost")
	inner.TextChild(stanza.NSComponent, "body", "sent from my phone")
	inner.Add(stanza.New(nsSID, "origin-id", "id", "jg-abc"))
	before := inner.String()

	if m := b.privilegedMessage(inner); m != nil {
		t.Fatalf("privileged message without a grant: %s", m)
	}

	for _, tc := range []struct{ ns, want string }{
		{nsPrivilege2, `<message xmlns='jabber:component:accept' from='gw.localhost' to='localhost' id='jg-abc'><privilege xmlns='urn:xmpp:privilege:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' type='chat' id='jg-sent-jg-abc' from='juliet@localhost' to='ann@gw.localhost'><body>sent from my phone</body><origin-id xmlns='urn:xmpp:sid:0' id='jg-abc'/></message></forwarded></privilege></message>`},
		{nsPrivilege1, `<message xmlns='jabber:component:accept' from='gw.localhost' to='localhost' id='jg-abc'><privilege xmlns='urn:xmpp:privilege:1'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' type='chat' id='jg-sent-jg-abc' from='juliet@localhost' to='ann@gw.localhost'><body>sent from my phone</body><origin-id xmlns='urn:xmpp:sid:0' id='jg-abc'/></message></forwarded></privilege></message>`},
	} {
		inject(t, srv, `<message from='localhost' to='gw.localhost'><privilege xmlns='`+tc.ns+`'><perm access='roster' type='none'/><perm access='message' type='outgoing'/></privilege></message>`)
		g := waitGrant(t, b, "localhost", func(g *privGrant) bool { return g != nil && g.ns == tc.ns })
		if g.rosterSet() || g.rosterGet() || !g.messageOut() {
			t.Errorf("grant %+v", g)
		}
		m := b.privilegedMessage(inner)
		if m == nil || m.String() != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.ns, m, tc.want)
		}
		if inner.String() != before {
			t.Errorf("inner modified: %s", inner)
		}
		// The link accepts it (from is the component domain).
		if err := b.link.Send(context.Background(), m); err != nil {
			t.Errorf("send: %v", err)
		}
	}

	// Only bare JIDs of the server's users may be the sender.
	full := inner.Copy().SetAttr("from", "juliet@localhost/phone")
	if m := b.privilegedMessage(full); m != nil {
		t.Errorf("full JID sender wrapped: %s", m)
	}
	other := inner.Copy().SetAttr("from", "romeo@elsewhere.example")
	if m := b.privilegedMessage(other); m != nil {
		t.Errorf("user of another server wrapped: %s", m)
	}

	// A grant without message permission: nil.
	inject(t, srv, `<message from='localhost' to='gw.localhost'><privilege xmlns='urn:xmpp:privilege:2'><perm access='roster' type='both'/></privilege></message>`)
	waitGrant(t, b, "localhost", func(g *privGrant) bool { return g != nil && g.roster == "both" })
	if m := b.privilegedMessage(inner); m != nil {
		t.Errorf("wrapped without message permission: %s", m)
	}
}

func TestGrantBelongsToItsConnection(t *testing.T) {
	b, srv := startPrivBridge(t)
	inject(t, srv, `<message from='localhost' to='gw.localhost'><privilege xmlns='urn:xmpp:privilege:2'><perm access='roster' type='both'/><perm access='message' type='outgoing'/></privilege></message>`)
	waitGrant(t, b, "localhost", func(g *privGrant) bool { return g.rosterSet() })
	if err := srv.CloseConn(); err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitHandshakes(2, privWait); err != nil {
		t.Fatal(err)
	}
	// The new connection has no grant until the server advertises again.
	waitGrant(t, b, "localhost", func(g *privGrant) bool { return g == nil })
	inject(t, srv, `<message from='localhost' to='gw.localhost'><privilege xmlns='urn:xmpp:privilege:1'><perm access='roster' type='get'/></privilege></message>`)
	g := waitGrant(t, b, "localhost", func(g *privGrant) bool { return g != nil })
	if g.ns != nsPrivilege1 || g.rosterSet() || !g.rosterGet() || g.messageOut() {
		t.Errorf("grant after reconnect = %+v", g)
	}
}

func TestOwnPrivilegedMessageNotForwarded(t *testing.T) {
	b, srv := startPrivBridge(t)
	_ = b
	// The server routes the forwarded message to the contact, i.e. to us;
	// it must be dropped, not treated as the user's message (which would
	// answer registration-required here).
	inject(t, srv, `<message type='chat' id='jg-sent-1' from='juliet@localhost' to='ann@gw.localhost'><body>x</body></message>`)
	inject(t, srv, `<message type='chat' id='plain-1' from='juliet@localhost' to='ann@gw.localhost'><body>x</body></message>`)
	if _, err := srv.WaitFor(privWait, func(e *stanza.Element) bool { return e.ID() == "plain-1" && e.Type() == "error" }); err != nil {
		t.Fatal("an ordinary message got no answer")
	}
	// Same shard, in order: plain-1 was handled after jg-sent-1.
	for _, e := range srv.Received() {
		if e.ID() == "jg-sent-1" {
			t.Errorf("own message answered: %s", e)
		}
	}
}

type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPrivilegedMessageOnRealServers sends a message "from the user"
// through the message permission on Prosody (mod_privilege, :2) and
// ejabberd 23.01 (:1) and checks what the server does with it: it routes
// the inner message, from the user's bare JID, to the contact, i.e. back
// to the gateway, which recognises and drops it.
func TestPrivilegedMessageOnRealServers(t *testing.T) {
	for _, kind := range servertest.Kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := servertest.Start(t, kind, servertest.Options{
				Components: map[string]string{"gw.localhost": "s3cret"},
				Users:      map[string]string{"alice": "alicepw"},
				Privileged: true,
			})
			st, err := bolt.Open(filepath.Join(t.TempDir(), "jg.db"))
			if err != nil {
				t.Fatal(err)
			}
			nw, _ := echo.New(nil)
			logs := &lockedLog{}
			b, err := New(Options{
				Domain: "gw.localhost", Network: nw, Store: st, AllowedDomains: []string{"localhost"},
				Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
				Link:   component.Config{Addr: srv.ComponentAddr, Secret: "s3cret"},
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- b.Run(ctx) }()
			t.Cleanup(func() {
				cancel()
				<-done
				st.Close()
				if t.Failed() {
					t.Logf("bridge log:\n%s\nserver log:\n%s", logs.String(), srv.Log())
				}
			})
			g := waitGrant(t, b, "localhost", func(g *privGrant) bool { return g.messageOut() })
			t.Logf("%s grants %s roster=%s message=%s", kind, g.ns, g.roster, g.message)

			inner := stanza.New(stanza.NSComponent, "message", "type", "chat", "id", "jg-real", "from", "alice@localhost", "to", "ann@gw.localhost")
			inner.TextChild(stanza.NSComponent, "body", "sent from the legacy app")
			m := b.privilegedMessage(inner)
			if m == nil {
				t.Fatal("no privileged message despite the grant")
			}
			if err := b.link.Send(ctx, m); err != nil {
				t.Fatal(err)
			}
			deadline := time.After(privWait)
			for !strings.Contains(logs.String(), "own privileged message routed back") {
				select {
				case <-deadline:
					t.Fatalf("the server did not route the privileged message back to the contact")
				case <-time.After(10 * time.Millisecond):
				}
			}
		})
	}
}
