package bridges_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/echo"
)

const (
	nsCmd   = "http://jabber.org/protocol/commands"
	rootJID = "root@localhost"
	bobJID  = "bob@localhost"
	nsXD    = "jabber:x:data"
)

// newAdminHarness is newHarness with Options.Admins set.
func newAdminHarness(t *testing.T, network legacy.Network, admins ...string) *harness {
	t.Helper()
	return newTunedHarness(t, network, func(o *bridges.Options) { o.Admins = admins })
}

// cmd sends an XEP-0050 command IQ and returns the reply.
func (h *harness) cmd(from, node, action, sid, form string) *stanza.Element {
	h.t.Helper()
	attrs := fmt.Sprintf(`node='%s'`, node)
	if action != "" {
		attrs += fmt.Sprintf(` action='%s'`, action)
	}
	if sid != "" {
		attrs += fmt.Sprintf(` sessionid='%s'`, sid)
	}
	return h.iq(from, domain, "set", fmt.Sprintf(`<command xmlns='%s' %s>%s</command>`, nsCmd, attrs, form))
}

// submit is a submitted data form.
func cmdSubmit(fields map[string]string) string {
	var sb strings.Builder
	sb.WriteString(`<x xmlns='jabber:x:data' type='submit'>`)
	for k, v := range fields {
		fmt.Fprintf(&sb, `<field var='%s'><value>%s</value></field>`, k, v)
	}
	sb.WriteString(`</x>`)
	return sb.String()
}

func cmdOf(t *testing.T, r *stanza.Element) *stanza.Element {
	t.Helper()
	c := r.Child(nsCmd, "command")
	if r.Type() != "result" || c == nil {
		t.Fatalf("not a command result: %s", r)
	}
	return c
}

func cmdNote(c *stanza.Element) (typ, text string) {
	n := c.Child(nsCmd, "note")
	return n.Attr("type"), n.Text()
}

// field returns the value of a form field in the command's form.
func cmdField(c *stanza.Element, v string) (string, bool) {
	x := c.Child(nsXD, "x")
	for _, f := range x.Children() {
		if f.Local == "field" && f.Attr("var") == v {
			return f.ChildText(nsXD, "value"), true
		}
	}
	return "", false
}

// appErr returns the application-specific condition of an error reply.
func cmdAppErr(r *stanza.Element) string {
	e := r.Child("", "error")
	for _, c := range e.Children() {
		if c.Space == nsCmd {
			return c.Local
		}
	}
	return ""
}

// newer matches only stanzas received after the mark.
func (h *harness) markSeen() map[*stanza.Element]bool {
	seen := map[*stanza.Element]bool{}
	for _, e := range h.srv.Received() {
		seen[e] = true
	}
	return seen
}

func (h *harness) expectNew(seen map[*stanza.Element]bool, what string, match func(*stanza.Element) bool) *stanza.Element {
	h.t.Helper()
	return h.expect(what, func(e *stanza.Element) bool { return !seen[e] && match(e) })
}

func cmdNodes(t *testing.T, h *harness, from string) []string {
	t.Helper()
	r := h.iq(from, domain, "get", `<query xmlns='http://jabber.org/protocol/disco#items' node='`+nsCmd+`'/>`)
	q := r.Child("http://jabber.org/protocol/disco#items", "query")
	if r.Type() != "result" || q == nil || q.Attr("node") != nsCmd {
		t.Fatalf("disco#items commands = %s", r)
	}
	var nodes []string
	for _, it := range q.Children() {
		if it.Attr("jid") != domain || it.Attr("name") == "" {
			t.Errorf("bad item %s", it)
		}
		nodes = append(nodes, it.Attr("node"))
	}
	return nodes
}

func TestCommandListingPerUser(t *testing.T) {
	h := newAdminHarness(t, nil, rootJID)
	if got := strings.Join(cmdNodes(t, h, alice+"/r"), " "); got != "jabber:iq:register status" {
		t.Errorf("unregistered user sees %q", got)
	}
	if got := cmdNodes(t, h, "mallory@evil.example/r"); strings.Join(got, " ") != "status" {
		t.Errorf("user of a foreign domain sees %q", got)
	}
	h.register(alice)
	if got := strings.Join(cmdNodes(t, h, alice+"/r"), " "); got != "jabber:iq:register status contacts unregister" {
		t.Errorf("registered user sees %q", got)
	}
	got := strings.Join(cmdNodes(t, h, rootJID+"/r"), " ")
	for _, n := range []string{"admin-users", "admin-user-info", "admin-delete-user", "admin-stats", "admin-announce"} {
		if !strings.Contains(got, n) {
			t.Errorf("admin does not see %s: %q", n, got)
		}
	}
	// disco#info on a command node: automation/command-node.
	r := h.iq(alice+"/r", domain, "get", `<query xmlns='http://jabber.org/protocol/disco#info' node='status'/>`)
	id := r.Child("", "query").Child("", "identity")
	if r.Type() != "result" || id.Attr("category") != "automation" || id.Attr("type") != "command-node" || r.Child("", "query").Attr("node") != "status" {
		t.Errorf("disco#info status node = %s", r)
	}
	// An rootJID node is not ours to describe to a non-rootJID.
	if r := h.iq(alice+"/r", domain, "get", `<query xmlns='http://jabber.org/protocol/disco#info' node='admin-stats'/>`); errCond(r) != stanza.ItemNotFound {
		t.Errorf("disco#info rootJID node for non-rootJID = %s", r)
	}
	if r := h.iq(rootJID+"/r", domain, "get", `<query xmlns='http://jabber.org/protocol/disco#info' node='admin-stats'/>`); r.Type() != "result" {
		t.Errorf("disco#info rootJID node for rootJID = %s", r)
	}
}

func TestCommandRegisterEchoAndStatus(t *testing.T) {
	h := newHarness(t, nil)
	// Status before registering.
	c := cmdOf(t, h.cmd(alice+"/r", "status", "", "", ""))
	if c.Attr("status") != "completed" {
		t.Fatalf("status = %s", c)
	}
	if v, _ := cmdField(c, "registered"); v != "0" {
		t.Errorf("status unregistered = %s", c)
	}
	c = cmdOf(t, h.cmd(alice+"/r", "jabber:iq:register", "execute", "", ""))
	sid := c.Attr("sessionid")
	if c.Attr("status") != "executing" || sid == "" || c.Child(nsCmd, "actions").Attr("execute") != "complete" || c.Child(nsCmd, "actions").Child(nsCmd, "complete") == nil {
		t.Fatalf("register execute = %s", c)
	}
	if v, _ := cmdField(c, "FORM_TYPE"); v != "jabber:iq:register" {
		t.Errorf("no FORM_TYPE: %s", c)
	}
	seen := h.markSeen()
	c = cmdOf(t, h.cmd(alice+"/r", "jabber:iq:register", "complete", sid, cmdSubmit(map[string]string{"FORM_TYPE": "jabber:iq:register"})))
	if typ, text := cmdNote(c); c.Attr("status") != "completed" || typ != "info" || !strings.Contains(text, "registered") {
		t.Fatalf("register complete = %s", c)
	}
	h.expectNew(seen, "subscribe after the result", func(e *stanza.Element) bool {
		return e.Local == "presence" && e.Type() == "subscribe" && e.From() == domain && e.To() == alice
	})
	if _, err := h.st.GetAccount(context.Background(), domain, alice); err != nil {
		t.Fatalf("account not stored: %v", err)
	}
	// The session comes up; status says so.
	for i := 0; ; i++ {
		c = cmdOf(t, h.cmd(alice+"/r", "status", "", "", ""))
		if v, _ := cmdField(c, "state"); v == "connected" {
			break
		}
		if i > 200 {
			t.Fatalf("session never connected: %s", c)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, text := cmdNote(c); !strings.Contains(text, "Echo session: connected") {
		t.Errorf("status note = %s", c)
	}
	if v, _ := cmdField(c, "registered"); v != "1" {
		t.Errorf("status registered = %s", c)
	}
}

func TestCommandErrors(t *testing.T) {
	h := newAdminHarness(t, nil, rootJID)
	// Unknown node.
	if r := h.cmd(alice+"/r", "nope", "", "", ""); errCond(r) != stanza.ItemNotFound {
		t.Errorf("unknown node = %s", r)
	}
	// Non-rootJID → forbidden, with a text.
	for _, n := range []string{"admin-users", "admin-user-info", "admin-delete-user", "admin-stats", "admin-announce"} {
		r := h.cmd(alice+"/r", n, "", "", "")
		if errCond(r) != stanza.Forbidden || !strings.Contains(stanza.ParseError(r).Text, "administrators") {
			t.Errorf("non-rootJID %s = %s", n, r)
		}
	}
	// Commands for registered users, by someone unregistered.
	for _, n := range []string{"unregister", "contacts"} {
		if r := h.cmd(alice+"/r", n, "", "", ""); errCond(r) != stanza.RegistrationRequired {
			t.Errorf("unregistered %s = %s", n, r)
		}
	}
	// A foreign domain may not run register.
	if r := h.cmd("mallory@evil.example/r", "jabber:iq:register", "", "", ""); errCond(r) != stanza.Forbidden {
		t.Errorf("foreign register = %s", r)
	}
	// Bad session id.
	if r := h.cmd(alice+"/r", "jabber:iq:register", "complete", "no-such-session", cmdSubmit(nil)); errCond(r) != stanza.BadRequest || cmdAppErr(r) != "bad-sessionid" {
		t.Errorf("bad session id = %s", r)
	}
	// next without a session.
	if r := h.cmd(alice+"/r", "jabber:iq:register", "next", "", ""); errCond(r) != stanza.BadRequest || cmdAppErr(r) != "bad-sessionid" {
		t.Errorf("next without session = %s", r)
	}
	// Unknown action.
	if r := h.cmd(alice+"/r", "status", "jump", "", ""); errCond(r) != stanza.BadRequest || cmdAppErr(r) != "bad-action" {
		t.Errorf("bad action = %s", r)
	}
	// A get is not how commands run.
	if r := h.iq(alice+"/r", domain, "get", `<command xmlns='`+nsCmd+`' node='status'/>`); errCond(r) != stanza.BadRequest {
		t.Errorf("get command = %s", r)
	}
	// Sessions: another resource cannot use mine; prev is refused; submit
	// without a form is bad-payload; cancel ends it.
	c := cmdOf(t, h.cmd(alice+"/r", "jabber:iq:register", "", "", ""))
	sid := c.Attr("sessionid")
	if r := h.cmd(alice+"/other", "jabber:iq:register", "complete", sid, cmdSubmit(nil)); cmdAppErr(r) != "bad-sessionid" {
		t.Errorf("session stolen by another resource = %s", r)
	}
	if r := h.cmd(alice+"/r", "status", "complete", sid, cmdSubmit(nil)); cmdAppErr(r) != "bad-sessionid" {
		t.Errorf("session used on another node = %s", r)
	}
	if r := h.cmd(alice+"/r", "jabber:iq:register", "prev", sid, ""); cmdAppErr(r) != "bad-action" {
		t.Errorf("prev = %s", r)
	}
	if r := h.cmd(alice+"/r", "jabber:iq:register", "complete", sid, ""); cmdAppErr(r) != "bad-payload" {
		t.Errorf("complete without a form = %s", r)
	}
	c = cmdOf(t, h.cmd(alice+"/r", "jabber:iq:register", "cancel", sid, ""))
	if c.Attr("status") != "canceled" || c.Attr("sessionid") != sid {
		t.Errorf("cancel = %s", c)
	}
	if r := h.cmd(alice+"/r", "jabber:iq:register", "complete", sid, cmdSubmit(nil)); cmdAppErr(r) != "bad-sessionid" {
		t.Errorf("session after cancel = %s", r)
	}
	if _, err := h.st.GetAccount(context.Background(), domain, alice); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a canceled registration registered: %v", err)
	}
	// Expired sessions.
	restore := bridges.SetCommandTimeout(time.Nanosecond)
	c = cmdOf(t, h.cmd(alice+"/r", "jabber:iq:register", "", "", ""))
	time.Sleep(time.Millisecond)
	restore()
	if r := h.cmd(alice+"/r", "jabber:iq:register", "complete", c.Attr("sessionid"), cmdSubmit(nil)); errCond(r) != stanza.NotAllowed || cmdAppErr(r) != "session-expired" {
		t.Errorf("expired session = %s", r)
	}
}

func TestCommandUnregister(t *testing.T) {
	h := newHarness(t, nil)
	h.register(alice)
	c := cmdOf(t, h.cmd(alice+"/r", "unregister", "", "", ""))
	if v, ok := cmdField(c, "confirm"); !ok || v != "0" || c.Attr("status") != "executing" {
		t.Fatalf("unregister form = %s", c)
	}
	c = cmdOf(t, h.cmd(alice+"/r", "unregister", "complete", c.Attr("sessionid"), cmdSubmit(map[string]string{"confirm": "0"})))
	if typ, _ := cmdNote(c); typ != "error" || c.Attr("status") != "completed" {
		t.Errorf("unconfirmed unregister = %s", c)
	}
	if _, err := h.st.GetAccount(context.Background(), domain, alice); err != nil {
		t.Fatalf("unconfirmed unregister removed the account: %v", err)
	}
	c = cmdOf(t, h.cmd(alice+"/r", "unregister", "", "", ""))
	// An action the stage did not offer is refused (XEP-0050 §4.4), and
	// the session goes on.
	r := h.cmd(alice+"/r", "unregister", "next", c.Attr("sessionid"), cmdSubmit(map[string]string{"confirm": "true"}))
	if errCond(r) != stanza.BadRequest || stanza.ParseError(r).App == nil || stanza.ParseError(r).App.Local != "bad-action" {
		t.Errorf("action next where only complete was offered = %s", r)
	}
	if _, err := h.st.GetAccount(context.Background(), domain, alice); err != nil {
		t.Fatalf("an action not offered unregistered: %v", err)
	}
	seen := h.markSeen()
	c = cmdOf(t, h.cmd(alice+"/r", "unregister", "complete", c.Attr("sessionid"), cmdSubmit(map[string]string{"confirm": "true"})))
	if typ, _ := cmdNote(c); typ != "info" {
		t.Errorf("unregister = %s", c)
	}
	for _, typ := range []string{"unsubscribe", "unsubscribed", "unavailable"} {
		h.expectNew(seen, typ, func(e *stanza.Element) bool { return e.Local == "presence" && e.Type() == typ && e.From() == domain })
	}
	if _, err := h.st.GetAccount(context.Background(), domain, alice); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("account kept: %v", err)
	}
}

func TestCommandContacts(t *testing.T) {
	h := newHarness(t, nil)
	h.register(alice)
	c := cmdOf(t, h.cmd(alice+"/r", "contacts", "", "", ""))
	if _, ok := cmdField(c, "address"); !ok || c.Attr("status") != "executing" {
		t.Fatalf("contacts form = %s", c)
	}
	seen := h.markSeen()
	c = cmdOf(t, h.cmd(alice+"/r", "contacts", "complete", c.Attr("sessionid"), cmdSubmit(map[string]string{"address": "Robot"})))
	if v, _ := cmdField(c, "jid"); v != "robot@"+domain {
		t.Fatalf("contact added = %s", c)
	}
	sub := h.expectNew(seen, "subscribe from the new contact", func(e *stanza.Element) bool {
		return e.Local == "presence" && e.Type() == "subscribe" && e.From() == "robot@"+domain && e.To() == alice
	})
	if sub.ChildText("http://jabber.org/protocol/nick", "nick") != "Robot" {
		t.Errorf("subscribe without nick: %s", sub)
	}
	if ct, err := h.st.GetContact(context.Background(), domain, alice, "robot"); err != nil || ct.LegacyID != "robot" {
		t.Errorf("contact not stored: %+v %v", ct, err)
	}
	c = cmdOf(t, h.cmd(alice+"/r", "contacts", "", "", ""))
	c = cmdOf(t, h.cmd(alice+"/r", "contacts", "complete", c.Attr("sessionid"), cmdSubmit(map[string]string{"address": "Second"})))
	if v, _ := cmdField(c, "jid"); v != "second@"+domain {
		t.Fatalf("second contact added = %s", c)
	}
	// Listed one per fixed field (XEP-0004 §3.3), the first labelled.
	c = cmdOf(t, h.cmd(alice+"/r", "contacts", "", "", ""))
	var listed []string
	for _, f := range c.Child("jabber:x:data", "x").Children() {
		if f.Local == "field" && f.Attr("type") == "fixed" {
			vals := 0
			for _, v := range f.Children() {
				if v.Local == "value" {
					vals++
					listed = append(listed, v.Text())
				}
			}
			if vals != 1 || (len(listed) == 1) != (f.Attr("label") == "Contacts") {
				t.Errorf("fixed field %s: want one value, only the first labelled", f)
			}
		}
	}
	if len(listed) != 2 || !strings.Contains(listed[0]+listed[1], "robot@"+domain) || !strings.Contains(listed[0]+listed[1], "second@"+domain) {
		t.Errorf("listing = %q, want both contacts", listed)
	}
	// An address the network refuses: a failed completion.
	c = cmdOf(t, h.cmd(alice+"/r", "contacts", "complete", c.Attr("sessionid"), cmdSubmit(map[string]string{"address": "two words"})))
	if typ, text := cmdNote(c); typ != "error" || !strings.Contains(text, "not a valid Echo address") {
		t.Errorf("bad address = %s", c)
	}
}

func TestAdminCommands(t *testing.T) {
	h := newAdminHarness(t, nil, rootJID)
	h.register(alice)
	h.register(bobJID)
	c := cmdOf(t, h.cmd(rootJID+"/r", "admin-users", "", "", ""))
	items := 0
	for _, it := range c.Child(nsXD, "x").Children() {
		if it.Local == "item" {
			items++
		}
	}
	if items != 2 || !strings.Contains(c.String(), alice) || !strings.Contains(c.String(), bobJID) {
		t.Errorf("users = %s", c)
	}
	c = cmdOf(t, h.cmd(rootJID+"/r", "admin-user-info", "", "", ""))
	c = cmdOf(t, h.cmd(rootJID+"/r", "admin-user-info", "complete", c.Attr("sessionid"), cmdSubmit(map[string]string{"jid": bobJID})))
	if v, _ := cmdField(c, "legacy-id"); v != "echo" {
		t.Errorf("user info = %s", c)
	}
	for _, f := range []string{"registered", "state", "inbox", "outbox"} {
		if _, ok := cmdField(c, f); !ok {
			t.Errorf("user info lacks %s: %s", f, c)
		}
	}
	c = cmdOf(t, h.cmd(rootJID+"/r", "admin-user-info", "", "", ""))
	c = cmdOf(t, h.cmd(rootJID+"/r", "admin-user-info", "complete", c.Attr("sessionid"), cmdSubmit(map[string]string{"jid": "nobody@localhost"})))
	if typ, _ := cmdNote(c); typ != "error" {
		t.Errorf("info on nobody = %s", c)
	}
	// Without the required JID: the form again, with an error note, in
	// the same session, which then completes.
	c = cmdOf(t, h.cmd(rootJID+"/r", "admin-user-info", "", "", ""))
	sid := c.Attr("sessionid")
	c = cmdOf(t, h.cmd(rootJID+"/r", "admin-user-info", "complete", sid, cmdSubmit(map[string]string{})))
	if typ, _ := cmdNote(c); typ != "error" || c.Attr("status") != "executing" || c.Child("jabber:x:data", "x") == nil {
		t.Errorf("info without a JID = %s, want the form again with an error", c)
	}
	c = cmdOf(t, h.cmd(rootJID+"/r", "admin-user-info", "complete", sid, cmdSubmit(map[string]string{"jid": bobJID})))
	if v, _ := cmdField(c, "legacy-id"); v != "echo" || c.Attr("status") != "completed" {
		t.Errorf("user info after the corrected form = %s", c)
	}
	c = cmdOf(t, h.cmd(rootJID+"/r", "admin-stats", "", "", ""))
	if v, _ := cmdField(c, "users"); v != "2" {
		t.Errorf("stats = %s", c)
	}
	for _, f := range []string{"sessions", "inbox", "outbox"} {
		if _, ok := cmdField(c, f); !ok {
			t.Errorf("stats lack %s: %s", f, c)
		}
	}
	seen := h.markSeen()
	c = cmdOf(t, h.cmd(rootJID+"/r", "admin-announce", "", "", ""))
	c = cmdOf(t, h.cmd(rootJID+"/r", "admin-announce", "complete", c.Attr("sessionid"), cmdSubmit(map[string]string{"body": "maintenance at noon"})))
	if _, text := cmdNote(c); text != "Sent to 2 users." {
		t.Errorf("announce = %s", c)
	}
	for _, u := range []string{alice, bobJID} {
		h.expectNew(seen, "announcement to "+u, func(e *stanza.Element) bool {
			return e.Local == "message" && e.From() == domain && e.To() == u && e.ChildText("", "body") == "maintenance at noon"
		})
	}
	c = cmdOf(t, h.cmd(rootJID+"/r", "admin-delete-user", "", "", ""))
	c = cmdOf(t, h.cmd(rootJID+"/r", "admin-delete-user", "complete", c.Attr("sessionid"), cmdSubmit(map[string]string{"jid": bobJID, "confirm": "1"})))
	if typ, _ := cmdNote(c); typ != "info" {
		t.Errorf("delete = %s", c)
	}
	if _, err := h.st.GetAccount(context.Background(), domain, bobJID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bobJID still registered: %v", err)
	}
	h.expect("unsubscribed to bob", func(e *stanza.Element) bool {
		return e.Local == "presence" && e.Type() == "unsubscribed" && e.To() == bobJID
	})
	c = cmdOf(t, h.cmd(rootJID+"/r", "admin-delete-user", "", "", ""))
	c = cmdOf(t, h.cmd(rootJID+"/r", "admin-delete-user", "complete", c.Attr("sessionid"), cmdSubmit(map[string]string{"jid": bobJID, "confirm": "1"})))
	if typ, _ := cmdNote(c); typ != "error" {
		t.Errorf("deleting a missing user = %s", c)
	}
}

// phoneNetwork logs in in two steps, a phone number then a code, and has
// settings. It records the accounts its sessions are opened with.
type phoneNetwork struct {
	*echo.Network
	mu     sync.Mutex
	opened []legacy.Account
}

var _ legacy.StepRegistrar = (*phoneNetwork)(nil)

func (p *phoneNetwork) Info() legacy.Info {
	i := p.Network.Info()
	i.DisplayName = "Phone"
	i.Fields = []legacy.Field{{Var: "phone", Label: "Phone number", Required: true}}
	i.Settings = []legacy.Field{
		{Var: "lang", Label: "Language", Type: legacy.ListSingle, Default: "en", Options: []legacy.Option{{Label: "English", Value: "en"}, {Label: "French", Value: "fr"}}},
		{Var: "notify", Label: "Notifications", Type: legacy.Boolean},
	}
	return i
}

func (p *phoneNetwork) RegisterStep(ctx context.Context, step int, fields map[string]string, state []byte) (*legacy.Form, legacy.AccountID, []byte, error) {
	switch step {
	case 0:
		if !strings.HasPrefix(fields["phone"], "+") {
			return nil, "", nil, &legacy.FieldError{Var: "phone", Reason: "must start with +"}
		}
		return &legacy.Form{Title: "Code", Instructions: "Enter the code we sent to " + fields["phone"],
			Fields: []legacy.Field{{Var: "code", Label: "Code", Required: true, Secret: true}}}, "", []byte(fields["phone"]), nil
	case 1:
		if fields["code"] != "424242" {
			return nil, "", nil, fmt.Errorf("wrong code: %w", legacy.ErrUnauthorized)
		}
		return nil, legacy.AccountID(state), []byte("token:" + string(state)), nil
	}
	return nil, "", nil, errors.New("no such step")
}

func (p *phoneNetwork) Open(ctx context.Context, a legacy.Account, s legacy.Sink) (legacy.Session, error) {
	p.mu.Lock()
	p.opened = append(p.opened, a)
	p.mu.Unlock()
	return p.Network.Open(ctx, a, s)
}

func (p *phoneNetwork) lastOpened() (legacy.Account, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.opened) == 0 {
		return legacy.Account{}, 0
	}
	return p.opened[len(p.opened)-1], len(p.opened)
}

func newPhoneNet() *phoneNetwork {
	e, _ := echo.New(nil)
	return &phoneNetwork{Network: e}
}

func TestCommandRegisterTwoSteps(t *testing.T) {
	p := newPhoneNet()
	h := newHarness(t, p)
	c := cmdOf(t, h.cmd(alice+"/r", "jabber:iq:register", "", "", ""))
	if _, ok := cmdField(c, "phone"); !ok || c.Child(nsCmd, "actions").Attr("execute") != "next" {
		t.Fatalf("first step = %s", c)
	}
	sid := c.Attr("sessionid")
	// A missing required field: the same form again with an error note.
	c = cmdOf(t, h.cmd(alice+"/r", "jabber:iq:register", "next", sid, cmdSubmit(nil)))
	if typ, text := cmdNote(c); c.Attr("status") != "executing" || typ != "error" || !strings.Contains(text, "phone") {
		t.Fatalf("empty phone = %s", c)
	}
	c = cmdOf(t, h.cmd(alice+"/r", "jabber:iq:register", "next", sid, cmdSubmit(map[string]string{"phone": "+15551234567"})))
	if _, ok := cmdField(c, "code"); !ok || c.Attr("status") != "executing" || !strings.Contains(c.String(), "Enter the code we sent to +15551234567") {
		t.Fatalf("second step = %s", c)
	}
	// A wrong code fails the completion with an error note.
	c = cmdOf(t, h.cmd(alice+"/r", "jabber:iq:register", "next", sid, cmdSubmit(map[string]string{"code": "999"})))
	if typ, text := cmdNote(c); c.Attr("status") != "completed" || typ != "error" || !strings.Contains(text, "rejected") {
		t.Fatalf("wrong code = %s", c)
	}
	if _, err := h.st.GetAccount(context.Background(), domain, alice); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("registered with a wrong code: %v", err)
	}
	// A malformed phone fails at step 0 with the adapter's reason.
	c = cmdOf(t, h.cmd(alice+"/r", "jabber:iq:register", "", "", ""))
	c = cmdOf(t, h.cmd(alice+"/r", "jabber:iq:register", "next", c.Attr("sessionid"), cmdSubmit(map[string]string{"phone": "555"})))
	if typ, text := cmdNote(c); typ != "error" || !strings.Contains(text, "must start with +") {
		t.Errorf("bad phone = %s", c)
	}
	// The right code registers.
	c = cmdOf(t, h.cmd(alice+"/r", "jabber:iq:register", "", "", ""))
	sid = c.Attr("sessionid")
	cmdOf(t, h.cmd(alice+"/r", "jabber:iq:register", "next", sid, cmdSubmit(map[string]string{"phone": "+15551234567"})))
	c = cmdOf(t, h.cmd(alice+"/r", "jabber:iq:register", "complete", sid, cmdSubmit(map[string]string{"code": "424242"})))
	if typ, _ := cmdNote(c); c.Attr("status") != "completed" || typ != "info" {
		t.Fatalf("right code = %s", c)
	}
	a, err := h.st.GetAccount(context.Background(), domain, alice)
	if err != nil || a.LegacyID != "+15551234567" || string(a.State) != "token:+15551234567" || a.Fields["phone"] != "+15551234567" || a.Fields["code"] != "" {
		t.Fatalf("stored account = %+v %v", a, err)
	}
	if acct, _ := p.lastOpened(); string(acct.State) != "token:+15551234567" || acct.ID != "+15551234567" {
		t.Errorf("session opened with %+v", acct)
	}
	// One-shot XEP-0077 cannot do two steps: it points at the command.
	r := h.iq(bobJID+"/r", domain, "set", `<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>jabber:iq:register</value></field><field var='phone'><value>+1555</value></field></x></query>`)
	if errCond(r) != stanza.NotAcceptable || !strings.Contains(stanza.ParseError(r).Text, "ad-hoc command") {
		t.Errorf("XEP-0077 on a two-step network = %s", r)
	}
}

func TestCommandSettings(t *testing.T) {
	p := newPhoneNet()
	h := newHarness(t, p)
	// Register through the chat flow (phone, code).
	h.gwChat(alice, "register", "Phone number?")
	h.gwChat(alice, "+15550000000", "Code?")
	h.gwChat(alice, "424242", "You are registered")
	_, before := p.lastOpened()
	c := cmdOf(t, h.cmd(alice+"/r", "settings", "", "", ""))
	if v, _ := cmdField(c, "lang"); v != "en" || c.Attr("status") != "executing" {
		t.Fatalf("settings form = %s", c)
	}
	c = cmdOf(t, h.cmd(alice+"/r", "settings", "complete", c.Attr("sessionid"), cmdSubmit(map[string]string{"lang": "fr", "notify": "true"})))
	if typ, _ := cmdNote(c); typ != "info" {
		t.Fatalf("settings = %s", c)
	}
	acct, after := p.lastOpened()
	if after != before+1 || acct.Settings["lang"] != "fr" || acct.Settings["notify"] != "1" {
		t.Errorf("session not restarted with the settings: %+v (%d→%d opens)", acct.Settings, before, after)
	}
	if a, _ := h.st.GetAccount(context.Background(), domain, alice); a.Settings["lang"] != "fr" || string(a.State) != "token:+15550000000" {
		t.Errorf("stored = %+v", a)
	}
	c = cmdOf(t, h.cmd(alice+"/r", "settings", "", "", ""))
	if v, _ := cmdField(c, "lang"); v != "fr" {
		t.Errorf("settings form after change = %s", c)
	}
	c = cmdOf(t, h.cmd(alice+"/r", "settings", "complete", c.Attr("sessionid"), cmdSubmit(map[string]string{"lang": "de"})))
	if typ, text := cmdNote(c); typ != "error" || !strings.Contains(text, `"de"`) {
		t.Errorf("bad setting = %s", c)
	}
	// A network without settings has no settings command.
	h2 := newHarness(t, nil)
	h2.register(alice)
	if r := h2.cmd(alice+"/r", "settings", "", "", ""); errCond(r) != stanza.ItemNotFound {
		t.Errorf("settings on echo = %s", r)
	}
}

func TestCommandSessionsBounded(t *testing.T) {
	h := newHarness(t, nil)
	first := cmdOf(t, h.cmd(alice+"/r", "jabber:iq:register", "", "", "")).Attr("sessionid")
	var last string
	for range 8 { // the per-user bound
		last = cmdOf(t, h.cmd(alice+"/r", "jabber:iq:register", "", "", "")).Attr("sessionid")
	}
	if r := h.cmd(alice+"/r", "jabber:iq:register", "complete", first, cmdSubmit(nil)); cmdAppErr(r) != "bad-sessionid" {
		t.Errorf("the oldest session survived the bound: %s", r)
	}
	if c := cmdOf(t, h.cmd(alice+"/r", "jabber:iq:register", "complete", last, cmdSubmit(nil))); c.Attr("status") != "completed" {
		t.Errorf("newest session = %s", c)
	}
}

func TestChatConversationTimesOut(t *testing.T) {
	h := newHarness(t, newPhoneNet())
	restore := bridges.SetCommandTimeout(time.Nanosecond)
	h.gwChat(alice, "register", "Phone number?")
	time.Sleep(time.Millisecond)
	restore()
	// The conversation is gone: "status" is a command again, not an answer.
	h.gwChat(alice, "status", "not registered")
}

// TestCommandGolden: inbound XML in, the exact outbound XML asserted
// (session ids normalised to SID).
func TestCommandGolden(t *testing.T) {
	h := newAdminHarness(t, nil, rootJID)
	sidRe := regexp.MustCompile(`sessionid='[0-9a-f]+'`)
	const head = `<iq xmlns='jabber:component:accept' type='%s' id='%s' from='echo.localhost' to='alice@localhost/r'>`
	for _, tc := range []struct{ typ, payload, wantType, want string }{
		{"get", `<query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/>`, "result",
			`<query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'><item jid='echo.localhost' node='jabber:iq:register' name='Register'/><item jid='echo.localhost' node='status' name='Status'/></query>`},
		{"get", `<query xmlns='http://jabber.org/protocol/disco#info' node='http://jabber.org/protocol/commands'/>`, "result",
			`<query xmlns='http://jabber.org/protocol/disco#info' node='http://jabber.org/protocol/commands'><identity category='automation' type='command-list' name='Echo commands'/><feature var='http://jabber.org/protocol/commands'/></query>`},
		{"get", `<query xmlns='http://jabber.org/protocol/disco#info' node='status'/>`, "result",
			`<query xmlns='http://jabber.org/protocol/disco#info' node='status'><identity category='automation' type='command-node' name='Status'/><feature var='http://jabber.org/protocol/commands'/><feature var='jabber:x:data'/></query>`},
		{"set", `<command xmlns='http://jabber.org/protocol/commands' node='admin-stats' action='execute'/>`, "error",
			`<error type='auth' code='403'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>the command Statistics is for administrators of echo.localhost</text></error>`},
		{"set", `<command xmlns='http://jabber.org/protocol/commands' node='nope'/>`, "error",
			`<error type='cancel' code='404'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>no command "nope" on echo.localhost</text></error>`},
		{"set", `<command xmlns='http://jabber.org/protocol/commands' node='status' action='complete' sessionid='bogus'/>`, "error",
			`<error type='modify' code='400'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>no such command session</text><bad-sessionid xmlns='http://jabber.org/protocol/commands'/></error>`},
		{"set", `<command xmlns='http://jabber.org/protocol/commands' node='status'/>`, "result",
			`<command xmlns='http://jabber.org/protocol/commands' node='status' sessionid='SID' status='completed'><note type='info'>You are not registered with echo.localhost.</note><x xmlns='jabber:x:data' type='result'><title>Echo status</title><field type='boolean' var='registered' label='Registered'><value>0</value></field></x></command>`},
		{"set", `<command xmlns='http://jabber.org/protocol/commands' node='jabber:iq:register'/>`, "result",
			`<command xmlns='http://jabber.org/protocol/commands' node='jabber:iq:register' sessionid='SID' status='executing'><actions execute='complete'><complete/></actions><x xmlns='jabber:x:data' type='form'><title>Echo registration</title><instructions>The echo network needs no account: submit this form to register. Then add any contact, e.g. hello@&lt;this domain&gt;, and every message you send comes back.</instructions><field type='hidden' var='FORM_TYPE'><value>jabber:iq:register</value></field></x></command>`},
	} {
		r := h.iq(alice+"/r", domain, tc.typ, tc.payload)
		want := fmt.Sprintf(head, tc.wantType, r.ID()) + tc.want + `</iq>`
		if got := sidRe.ReplaceAllString(r.String(), `sessionid='SID'`); got != want {
			t.Errorf("%s\n got %s\nwant %s", tc.payload, got, want)
		}
	}
}

// TestAdminJIDFormAgain: an admin command given a JID it cannot use (not
// a JID, or one not registered) shows its form again in the same session
// (XEP-0050 §4: status executing), with an error note saying why and the
// jid field holding what the admin typed, so it can be corrected; the
// corrected form then completes.
func TestAdminJIDFormAgain(t *testing.T) {
	h := newAdminHarness(t, nil, rootJID)
	h.register(bobJID)
	for _, tc := range []struct {
		node, typed, note string
		fields            map[string]string // submitted besides jid
	}{
		{"admin-user-info", "bob@", "Not a valid JID: bob@", nil},
		{"admin-user-info", "nobody@localhost", "nobody@localhost is not registered with " + domain, nil},
		{"admin-delete-user", "bob@", "Not a valid JID: bob@", map[string]string{"confirm": "1"}},
		{"admin-delete-user", "nobody@localhost", "nobody@localhost is not registered with " + domain, map[string]string{"confirm": "1"}},
	} {
		c := cmdOf(t, h.cmd(rootJID+"/r", tc.node, "", "", ""))
		sid := c.Attr("sessionid")
		sub := map[string]string{"jid": tc.typed}
		for k, v := range tc.fields {
			sub[k] = v
		}
		c = cmdOf(t, h.cmd(rootJID+"/r", tc.node, "complete", sid, cmdSubmit(sub)))
		typ, text := cmdNote(c)
		if c.Attr("status") != "executing" || c.Attr("sessionid") != sid || typ != "error" || !strings.Contains(text, tc.note) {
			t.Errorf("%s %q = %s, want the form again (executing, session %s) with an error note %q", tc.node, tc.typed, c, sid, tc.note)
			continue
		}
		if x := c.Child(nsXD, "x"); x == nil || x.Attr("type") != "form" {
			t.Errorf("%s %q: no form to correct: %s", tc.node, tc.typed, c)
			continue
		}
		if v, ok := cmdField(c, "jid"); !ok || v != tc.typed {
			t.Errorf("%s %q: jid field = %q, want the typed value: %s", tc.node, tc.typed, v, c)
		}
		if tc.node == "admin-delete-user" {
			// Deleting another user needs a confirmation of its own.
			if v, _ := cmdField(c, "confirm"); v != "0" {
				t.Errorf("%s %q: confirm = %q, want 0: %s", tc.node, tc.typed, v, c)
			}
		}
		// Corrected in the same session: it completes.
		sub["jid"] = bobJID
		c = cmdOf(t, h.cmd(rootJID+"/r", tc.node, "complete", sid, cmdSubmit(sub)))
		if typ, text := cmdNote(c); c.Attr("status") != "completed" || typ != "info" {
			t.Errorf("%s corrected to %s = %s (%s %q)", tc.node, bobJID, c, typ, text)
		}
		if tc.node == "admin-delete-user" {
			h.register(bobJID)
		}
	}
}
