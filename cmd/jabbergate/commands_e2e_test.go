package main

// End-to-end tests of the ad-hoc commands (XEP-0050) and the chat
// commands, through real Prosody and ejabberd servers with a real client.

import (
	"bytes"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/xmppo/go-xmpp"

	"github.com/jabbergate/jabbergate/component/servertest"
)

func TestCommandsEndToEnd(t *testing.T) {
	for _, kind := range []string{"prosody", "ejabberd"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := servertest.Start(t, kind, servertest.Options{
				Components: map[string]string{gwDomain: gwSecret},
				Users:      map[string]string{"carol": "carolpw", "dave": "davepw"},
			})
			gw := startGateway(t, srv, fmt.Sprintf("store:\n  backend: bolt\n  path: %s\n", filepath.Join(t.TempDir(), "jg.db")))
			_ = gw
			commandsEndToEnd(t, srv)
		})
	}
}

var sessionIDRe = regexp.MustCompile(`sessionid=['"]([^'"]+)['"]`)

func commandsEndToEnd(t *testing.T, srv *servertest.Server) {
	const nsCmd = "http://jabber.org/protocol/commands"
	carol := dialClient(t, srv, "carol", "carolpw", "e2e")

	// The command list for an unregistered user offers registration.
	carol.send(`<iq type='get' id='ci1' to='%s'><query xmlns='http://jabber.org/protocol/disco#items' node='%s'/></iq>`, gwDomain, nsCmd)
	if r := carol.waitIQ("ci1"); r.Type != "result" || !bytes.Contains(r.Query, []byte("jabber:iq:register")) || bytes.Contains(r.Query, []byte("admin-")) {
		t.Fatalf("command list = %+v %s", r, r.Query)
	}

	// Register with the jabber:iq:register command: execute, then complete.
	carol.send(`<iq type='set' id='cr1' to='%s'><command xmlns='%s' node='jabber:iq:register' action='execute'/></iq>`, gwDomain, nsCmd)
	r := carol.waitIQ("cr1")
	m := sessionIDRe.FindSubmatch(r.Query)
	if r.Type != "result" || m == nil || !bytes.Contains(r.Query, []byte("executing")) || !bytes.Contains(r.Query, []byte("FORM_TYPE")) {
		t.Fatalf("register execute = %+v %s", r, r.Query)
	}
	carol.send(`<iq type='set' id='cr2' to='%s'><command xmlns='%s' node='jabber:iq:register' action='complete' sessionid='%s'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>jabber:iq:register</value></field></x></command></iq>`, gwDomain, nsCmd, m[1])
	r = carol.waitIQ("cr2")
	if r.Type != "result" || !bytes.Contains(r.Query, []byte("completed")) || !bytes.Contains(r.Query, []byte("type='info'")) && !bytes.Contains(r.Query, []byte(`type="info"`)) {
		t.Fatalf("register complete = %+v %s", r, r.Query)
	}
	carol.waitPresence("subscribe from the gateway", gwDomain, "subscribe")

	// Status: registered, with the session state.
	carol.send(`<iq type='set' id='cs1' to='%s'><command xmlns='%s' node='status' action='execute'/></iq>`, gwDomain, nsCmd)
	r = carol.waitIQ("cs1")
	if r.Type != "result" || !bytes.Contains(r.Query, []byte("completed")) || !bytes.Contains(r.Query, []byte("Echo session:")) {
		t.Fatalf("status = %+v %s", r, r.Query)
	}

	// A non-admin gets forbidden on an admin command.
	carol.send(`<iq type='set' id='ca1' to='%s'><command xmlns='%s' node='admin-stats' action='execute'/></iq>`, gwDomain, nsCmd)
	if r := carol.waitIQ("ca1"); r.Type != "error" || !strings.Contains(fmt.Sprintf("%+v%s", r.Error, r.Query), "forbidden") {
		t.Errorf("admin command by a non-admin = %+v %s", r, r.Query)
	}

	// Another user registers by chat command only.
	dave := dialClient(t, srv, "dave", "davepw", "e2e")
	fromGateway := func(m xmpp.Chat) bool { return bare(m.Remote) == gwDomain && m.Type != "error" && m.Text != "" }
	dave.send(`<message type='chat' id='dh' to='%s'><body>help</body></message>`, gwDomain)
	if m := dave.waitChat("help", fromGateway); !strings.Contains(m.Text, "register") {
		t.Errorf("help = %q", m.Text)
	}
	dave.send(`<message type='chat' id='dr' to='%s'><body>register</body></message>`, gwDomain)
	if m := dave.waitChat("registered", fromGateway); !strings.Contains(m.Text, "You are registered") {
		t.Fatalf("chat register = %q", m.Text)
	}
	dave.waitPresence("subscribe from the gateway", gwDomain, "subscribe")
	dave.send(`<message type='chat' id='ds' to='%s'><body>status</body></message>`, gwDomain)
	if m := dave.waitChat("status", fromGateway); !strings.Contains(m.Text, "Registered") {
		t.Errorf("chat status = %q", m.Text)
	}
	// Dave adds a contact by chat and can talk to it.
	dave.send(`<message type='chat' id='da' to='%s'><body>add Robot</body></message>`, gwDomain)
	if m := dave.waitChat("added", fromGateway); !strings.Contains(m.Text, "robot@"+gwDomain) {
		t.Errorf("chat add = %q", m.Text)
	}
	dave.send(`<message type='chat' id='dm' to='robot@%s'><body>ping?</body></message>`, gwDomain)
	dave.waitChat("echo", func(m xmpp.Chat) bool { return bare(m.Remote) == "robot@"+gwDomain && m.Text == "ping?" })
}
