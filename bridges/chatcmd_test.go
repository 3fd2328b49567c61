package bridges_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
)

// chat sends body to the gateway JID as user and waits for the gateway's
// next answer, which must contain want.
func (h *harness) gwChat(user, body, want string) string {
	h.t.Helper()
	seen := h.markSeen()
	id := h.id()
	m := stanza.New(stanza.NSComponent, "message", "type", "chat", "id", id, "from", user+"/chat", "to", domain)
	m.TextChild(stanza.NSComponent, "body", body)
	if err := h.srv.Inject(m); err != nil {
		h.t.Fatal(err)
	}
	r := h.expectNew(seen, "answer to "+body, func(e *stanza.Element) bool {
		return e.Local == "message" && e.From() == domain && e.To() == user+"/chat"
	})
	if r.ID() == "" {
		h.t.Errorf("answer to %q has no id: %s", body, r)
	}
	text := r.ChildText("", "body")
	if !strings.Contains(text, want) {
		h.t.Fatalf("answer to %q = %q, want it to contain %q", body, text, want)
	}
	return text
}

func TestChatCommandsEcho(t *testing.T) {
	h := newHarness(t, nil)
	help := h.gwChat(alice, "help", "register")
	for _, c := range []string{"status", "unregister", "contacts", "add ADDRESS"} {
		if !strings.Contains(help, c) {
			t.Errorf("help lacks %s: %s", c, help)
		}
	}
	if strings.Contains(help, "announce") {
		t.Errorf("non-rootJID help shows rootJID commands: %s", help)
	}
	h.gwChat(alice, "what is this", "Commands:")
	h.gwChat(alice, "status", "not registered")
	h.gwChat(alice, "contacts", "not registered")
	h.gwChat(alice, "register", "You are registered")
	h.expect("subscribe", func(e *stanza.Element) bool {
		return e.Local == "presence" && e.Type() == "subscribe" && e.From() == domain
	})
	h.gwChat(alice, "contacts", "no contacts")
	seen := h.markSeen()
	h.gwChat(alice, "add Robot", "Added robot@"+domain)
	h.expectNew(seen, "subscribe from robot", func(e *stanza.Element) bool {
		return e.Local == "presence" && e.Type() == "subscribe" && e.From() == "robot@"+domain
	})
	h.gwChat(alice, "add two words", "not a valid Echo address")
	// A contact's JID as the gateway shows it is its address.
	h.gwChat(alice, "add Robot@"+strings.ToUpper(domain), "Added robot@"+domain+" ")
	if got := h.gwChat(alice, "add", `Send "add" followed by the contact's address.`); !strings.Contains(got, "Enter any word") {
		t.Errorf("add without an address = %q", got)
	}
	h.gwChat(alice, "add robot@"+domain+"/phone", "Added robot@"+domain+" ")
	h.gwChat(alice, "contacts", "robot@"+domain)
	h.gwChat(alice, "settings", "no settings")
	h.gwChat(alice, "stats", "Only administrators")
	h.gwChat(alice, "announce hi", "Only administrators")
	h.gwChat(alice, "unregister", "unregister yes")
	if _, err := h.st.GetAccount(context.Background(), domain, alice); err != nil {
		t.Fatalf("unregister without confirmation removed the account: %v", err)
	}
	h.gwChat(alice, "unregister yes", "You are unregistered")
	if _, err := h.st.GetAccount(context.Background(), domain, alice); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("account kept: %v", err)
	}
	h.gwChat("mallory@evil.example", "register", "may not register")
}

func TestChatRegisterConversation(t *testing.T) {
	p := newPhoneNet()
	h := newHarness(t, p)
	h.gwChat(alice, "register", "Phone number?")
	h.gwChat(alice, "cancel", "canceled")
	h.gwChat(alice, "status", "not registered") // no conversation any more
	h.gwChat(alice, "register", "Phone number?")
	h.gwChat(alice, "555", "must start with +") // the adapter refuses: the flow ends
	h.gwChat(alice, "register", "Phone number?")
	h.gwChat(alice, "+15551234567", "Enter the code we sent to +15551234567")
	h.gwChat(alice, "999", "Registration failed")
	h.gwChat(alice, "register", "Phone number?")
	q := h.gwChat(alice, "+15551234567", "Code?")
	if !strings.Contains(q, "not repeated") {
		t.Errorf("secret question does not say it is not repeated: %q", q)
	}
	h.gwChat(alice, "424242", "You are registered")
	for _, m := range h.srv.Received() {
		if m.Local == "message" && strings.Contains(m.ChildText("", "body"), "424242") {
			t.Errorf("the code was echoed: %s", m)
		}
	}
	a, err := h.st.GetAccount(context.Background(), domain, alice)
	if err != nil || a.LegacyID != "+15551234567" || string(a.State) != "token:+15551234567" {
		t.Fatalf("account = %+v %v", a, err)
	}
	h.gwChat(alice, "status", "Phone session")
	// Settings by chat.
	h.gwChat(alice, "settings", "lang = en")
	h.gwChat(alice, "set lang fr", "Saved lang")
	h.gwChat(alice, "set lang de", "Not saved")
	h.gwChat(alice, "set nope 1", "No setting")
	h.gwChat(alice, "set notify yes", "Saved notify")
	h.gwChat(alice, "settings", "lang = fr")
	if acct, _ := p.lastOpened(); acct.Settings["lang"] != "fr" || acct.Settings["notify"] != "1" {
		t.Errorf("session settings = %+v", acct.Settings)
	}
}

func TestChatAdminCommands(t *testing.T) {
	h := newAdminHarness(t, nil, rootJID)
	h.register(alice)
	h.register(bobJID)
	help := h.gwChat(rootJID, "help", "announce")
	if !strings.Contains(help, "stats") {
		t.Errorf("admin help = %q", help)
	}
	users := h.gwChat(rootJID, "users", "2 registered users")
	if !strings.Contains(users, alice) || !strings.Contains(users, bobJID) {
		t.Errorf("users = %q", users)
	}
	h.gwChat(rootJID, "stats", "2 users")
	h.gwChat(rootJID, "info "+bobJID, "account \"echo\"")
	h.gwChat(rootJID, "info nobody@localhost", "not registered")
	seen := h.markSeen()
	h.gwChat(rootJID, "announce back soon", "Sent to 2 users")
	for _, u := range []string{alice, bobJID} {
		h.expectNew(seen, "announcement to "+u, func(e *stanza.Element) bool {
			return e.Local == "message" && e.To() == u && e.ChildText("", "body") == "back soon"
		})
	}
	h.gwChat(rootJID, "delete "+bobJID, "yes")
	h.gwChat(rootJID, "delete "+bobJID+" yes", "was deleted")
	if _, err := h.st.GetAccount(context.Background(), domain, bobJID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bobJID kept: %v", err)
	}
	h.gwChat(rootJID, "stats", "1 users")
}

// The text of a connected session (an SMS number, an account name) is no
// error; the text of a disconnected one is.
func TestStatusShowsOnlyErrorsAsErrors(t *testing.T) {
	n := newContactsNetwork()
	h := newHarness(t, n)
	h.register(alice)
	n.emit(t, legacy.StatusEvent{Status: legacy.StatusConnected, Text: "+15550001111"})
	if text := h.gwChat(alice, "status", "session: connected"); strings.Contains(text, "error") {
		t.Errorf("connected status = %q", text)
	}
	n.emit(t, legacy.StatusEvent{Status: legacy.StatusDisconnected, Text: "provider unreachable"})
	h.gwChat(alice, "status", "session: disconnected — last error: provider unreachable")
}

// segmentsNet is echo with a numeric list setting.
type segmentsNet struct{ *contactsNetwork }

func (n segmentsNet) Info() legacy.Info {
	i := n.contactsNetwork.Info()
	i.Settings = []legacy.Field{{Var: "max_segments", Label: "Segments", Type: legacy.ListSingle, Default: "1",
		Options: []legacy.Option{{Label: "one", Value: "1"}, {Label: "two", Value: "2"}, {Label: "ten", Value: "10"}}}}
	return i
}

// A setting's options are listed in the network's order, not as text.
func TestSettingsOptionsInDeclaredOrder(t *testing.T) {
	h := newHarness(t, segmentsNet{newContactsNetwork()})
	h.register(alice)
	h.gwChat(alice, "settings", "1, 2, 10")
}
