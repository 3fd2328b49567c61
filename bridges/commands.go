package bridges

// Ad-hoc commands (XEP-0050) on the gateway JID.
//
// Every command is a small state machine driven by exec: the first execute
// has no submitted values; a command that needs input returns a data form
// (status executing, the session is kept), otherwise it completes (status
// completed) with a note and, sometimes, a result form. Application
// failures (credentials refused) complete with <note type='error'>; input
// the requester can correct (an admin command's JID that is invalid or not
// registered) shows the form again, with <note type='error'> and the typed
// value, in the same session (status executing); protocol faults (unknown
// node, bad session id, a non-admin running an admin command) are IQ
// errors.
//
// Sessions live in memory only, bound to the requester's full JID, expire
// after commandTimeout and are bounded in number (maxCommandSessions, and
// maxUserCommandSessions per user): the oldest is dropped first.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/jabbergate/jabbergate/bridges/jidmap"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
)

const (
	nsCommands = "http://jabber.org/protocol/commands"

	nodeRegister    = nsRegister
	nodeUnregister  = "unregister"
	nodeSettings    = "settings"
	nodeStatus      = "status"
	nodeContacts    = "contacts"
	nodeAdminUsers  = "admin-users"
	nodeAdminInfo   = "admin-user-info"
	nodeAdminDelete = "admin-delete-user"
	nodeAdminStats  = "admin-stats"
	nodeAdminNotice = "admin-announce"

	maxCommandSessions     = 1024
	maxUserCommandSessions = 8
	maxListedContacts      = 500
)

// commandTimeoutNanos is how long a command session (or a chat
// conversation) may wait for the user's next answer.
var commandTimeoutNanos atomic.Int64

func init() { commandTimeoutNanos.Store(int64(10 * time.Minute)) }

func commandTimeout() time.Duration { return time.Duration(commandTimeoutNanos.Load()) }

// cmdSession is one running ad-hoc command.
type cmdSession struct {
	id, node, owner, bare string
	stage                 int
	vals                  map[string]string // values carried between stages
	state                 []byte            // StepRegistrar state
	form                  *legacy.Form      // current StepRegistrar form
	offered               string            // the action the last stage offered: next or complete (XEP-0050 <actions/>)
	expires               time.Time
	created               time.Time
}

// cmdState is the per-bridge memory of command sessions and chat
// conversations.
type cmdState struct {
	mu       sync.Mutex
	sessions map[string]*cmdSession
	chats    map[string]*chatFlow // by bare JID
}

func newCmdState() *cmdState {
	return &cmdState{sessions: map[string]*cmdSession{}, chats: map[string]*chatFlow{}}
}

func (b *Bridge) commands() *cmdState { return b.cmds }

// newSession stores a new session, evicting expired ones, then the oldest
// when a bound is reached.
func (cs *cmdState) newSession(node, owner, bare string) *cmdSession {
	var k [12]byte
	_, _ = rand.Read(k[:])
	now := time.Now()
	s := &cmdSession{id: hex.EncodeToString(k[:]), node: node, owner: owner, bare: bare, vals: map[string]string{}, created: now, expires: now.Add(commandTimeout())}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var mine []*cmdSession
	for id, o := range cs.sessions {
		if now.After(o.expires) {
			delete(cs.sessions, id)
		} else if o.bare == bare {
			mine = append(mine, o)
		}
	}
	oldest := func(list []*cmdSession) *cmdSession {
		var old *cmdSession
		for _, o := range list {
			if old == nil || o.created.Before(old.created) {
				old = o
			}
		}
		return old
	}
	if len(mine) >= maxUserCommandSessions {
		delete(cs.sessions, oldest(mine).id)
	}
	if len(cs.sessions) >= maxCommandSessions {
		all := make([]*cmdSession, 0, len(cs.sessions))
		for _, o := range cs.sessions {
			all = append(all, o)
		}
		delete(cs.sessions, oldest(all).id)
	}
	cs.sessions[s.id] = s
	return s
}

// session returns a live session; expired reports a session that timed out.
func (cs *cmdState) session(id string) (s *cmdSession, expired bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	s = cs.sessions[id]
	if s == nil {
		return nil, false
	}
	if time.Now().After(s.expires) {
		delete(cs.sessions, id)
		return nil, true
	}
	s.expires = time.Now().Add(commandTimeout())
	return s, false
}

func (cs *cmdState) drop(id string) {
	cs.mu.Lock()
	delete(cs.sessions, id)
	cs.mu.Unlock()
}

// cmdReq is one execution step of a command.
type cmdReq struct {
	from  jid.JID
	bare  string
	u     *user // nil when not registered
	admin bool
	s     *cmdSession
	vals  map[string]string // submitted form values; nil on the first execute
}

// cmdOut is what a step produces. form != nil keeps the session going.
type cmdOut struct {
	form     *stanza.Element
	next     bool // the form's action is "next" (more steps may follow) rather than "complete"
	result   *stanza.Element
	note     string
	noteType string            // info, warn, error
	after    []*stanza.Element // sent after the IQ result
}

func done(note string) *cmdOut   { return &cmdOut{note: note, noteType: "info"} }
func failed(note string) *cmdOut { return &cmdOut{note: note, noteType: "error"} }

// command is one ad-hoc command.
type command struct {
	node, name string
	admin      bool
	// visible reports whether the command is listed for this requester.
	visible func(b *Bridge, r *cmdReq) bool
	// denied returns the error for a requester who may not run it.
	denied func(b *Bridge, r *cmdReq) *stanza.Error
	exec   func(b *Bridge, ctx context.Context, r *cmdReq) *cmdOut
}

func registered(b *Bridge, r *cmdReq) bool { return r.u != nil }

func needRegistered(b *Bridge, r *cmdReq) *stanza.Error {
	if r.u == nil {
		return stanza.NewError(stanza.RegistrationRequired, "register with "+b.domain+" first")
	}
	return nil
}

var commandList []*command

func init() {
	always := func(*Bridge, *cmdReq) bool { return true }
	commandList = []*command{
		{node: nodeRegister, name: "Register", exec: (*Bridge).cmdRegister,
			visible: func(b *Bridge, r *cmdReq) bool { return b.allowed(r.from.Domainpart()) },
			denied: func(b *Bridge, r *cmdReq) *stanza.Error {
				if !b.allowed(r.from.Domainpart()) {
					return stanza.NewError(stanza.Forbidden, "users of "+r.from.Domainpart()+" may not register with this gateway")
				}
				return nil
			}},
		{node: nodeStatus, name: "Status", exec: (*Bridge).cmdStatus, visible: always},
		{node: nodeContacts, name: "Contacts", exec: (*Bridge).cmdContacts, visible: registered, denied: needRegistered},
		{node: nodeSettings, name: "Settings", exec: (*Bridge).cmdSettings,
			visible: func(b *Bridge, r *cmdReq) bool { return r.u != nil && len(b.info.Settings) > 0 },
			denied: func(b *Bridge, r *cmdReq) *stanza.Error {
				if len(b.info.Settings) == 0 {
					return stanza.NewError(stanza.ItemNotFound, b.info.DisplayName+" has no settings")
				}
				return needRegistered(b, r)
			}},
		{node: nodeUnregister, name: "Unregister", exec: (*Bridge).cmdUnregister, visible: registered, denied: needRegistered},
		{node: nodeAdminUsers, name: "List users", admin: true, exec: (*Bridge).cmdAdminUsers},
		{node: nodeAdminInfo, name: "User info", admin: true, exec: (*Bridge).cmdAdminInfo},
		{node: nodeAdminDelete, name: "Delete a user", admin: true, exec: (*Bridge).cmdAdminDelete},
		{node: nodeAdminStats, name: "Statistics", admin: true, exec: (*Bridge).cmdAdminStats},
		{node: nodeAdminNotice, name: "Announce", admin: true, exec: (*Bridge).cmdAdminAnnounce},
	}
}

func findCommand(node string) *command {
	for _, c := range commandList {
		if c.node == node {
			return c
		}
	}
	return nil
}

// isAdmin reports whether bare is in Options.Admins.
func (b *Bridge) isAdmin(bare string) bool {
	b.accessMu.RLock() // SetAccess
	defer b.accessMu.RUnlock()
	for _, a := range b.opts.Admins {
		if strings.EqualFold(strings.TrimSpace(a), bare) {
			return true
		}
	}
	return false
}

func (b *Bridge) newCmdReq(from jid.JID) *cmdReq {
	bare := from.Bare().String()
	return &cmdReq{from: from, bare: bare, u: b.getUser(bare), admin: b.isAdmin(bare)}
}

// canSee reports whether the requester may see (and run) c.
func (c *command) canSee(b *Bridge, r *cmdReq) bool {
	if c.admin {
		return r.admin
	}
	return c.visible == nil || c.visible(b, r)
}

// commandItems answers disco#items on the commands node: the commands this
// requester may run.
func (b *Bridge) commandItems(iq *stanza.Element, from jid.JID) *stanza.Element {
	r := b.newCmdReq(from)
	q := stanza.New(nsDiscoItems, "query", "node", nsCommands)
	for _, c := range commandList {
		if c.canSee(b, r) {
			q.Add(stanza.New(nsDiscoItems, "item", "jid", b.domain, "node", c.node, "name", c.name))
		}
	}
	return stanza.Result(iq, q)
}

// isCommandNode reports whether a disco#info node names a command this
// requester may see.
func (b *Bridge) isCommandNode(node string, from jid.JID) bool {
	c := findCommand(node)
	return c != nil && c.canSee(b, b.newCmdReq(from))
}

// commandListInfo answers disco#info on the commands node itself
// (XEP-0050 §2.2): a command list.
func (b *Bridge) commandListInfo(iq *stanza.Element) *stanza.Element {
	q := stanza.New(nsDiscoInfo, "query", "node", nsCommands)
	q.Add(stanza.New(nsDiscoInfo, "identity", "category", "automation", "type", "command-list", "name", b.info.DisplayName+" commands"))
	q.Add(stanza.New(nsDiscoInfo, "feature", "var", nsCommands))
	return stanza.Result(iq, q)
}

// commandInfo answers disco#info on a command node (XEP-0050 §2.3).
func (b *Bridge) commandInfo(iq *stanza.Element, node string) *stanza.Element {
	c := findCommand(node)
	q := stanza.New(nsDiscoInfo, "query", "node", node)
	q.Add(stanza.New(nsDiscoInfo, "identity", "category", "automation", "type", "command-node", "name", c.name))
	q.Add(stanza.New(nsDiscoInfo, "feature", "var", nsCommands))
	q.Add(stanza.New(nsDiscoInfo, "feature", "var", nsData))
	return stanza.Result(iq, q)
}

func cmdError(c stanza.Condition, app, text string) *stanza.Error {
	e := stanza.NewError(c, text)
	if app != "" {
		e.App = stanza.New(nsCommands, app)
	}
	return e
}

// handleCommand answers an XEP-0050 <command/> IQ. It replies itself and
// returns nothing.
func (b *Bridge) handleCommand(ctx context.Context, iq, cmd *stanza.Element, from jid.JID) {
	res, after, serr := b.runCommand(ctx, iq, cmd, from)
	if serr != nil {
		b.reply(ctx, stanza.ErrorReply(iq, serr))
		return
	}
	b.reply(ctx, res)
	for _, st := range after {
		b.reply(ctx, st)
	}
}

func (b *Bridge) runCommand(ctx context.Context, iq, cmd *stanza.Element, from jid.JID) (*stanza.Element, []*stanza.Element, *stanza.Error) {
	if iq.Type() != "set" {
		return nil, nil, cmdError(stanza.BadRequest, "bad-payload", "ad-hoc commands are executed with an IQ set")
	}
	node := cmd.Attr("node")
	c := findCommand(node)
	if c == nil {
		return nil, nil, stanza.NewError(stanza.ItemNotFound, "no command "+strconv.Quote(node)+" on "+b.domain)
	}
	r := b.newCmdReq(from)
	if c.admin && !r.admin {
		return nil, nil, stanza.NewError(stanza.Forbidden, "the command "+c.name+" is for administrators of "+b.domain)
	}
	if c.denied != nil {
		if serr := c.denied(b, r); serr != nil {
			return nil, nil, serr
		}
	}
	action := cmd.Attr("action")
	switch action {
	case "", "execute", "next", "complete", "cancel":
	case "prev":
		return nil, nil, cmdError(stanza.BadRequest, "bad-action", "this command has no previous stage")
	default:
		return nil, nil, cmdError(stanza.BadRequest, "bad-action", "unknown action "+strconv.Quote(action))
	}
	cs := b.commands()
	sid := cmd.Attr("sessionid")
	if sid == "" {
		if action != "" && action != "execute" {
			return nil, nil, cmdError(stanza.BadRequest, "bad-sessionid", "the action "+action+" needs a sessionid")
		}
		r.s = cs.newSession(node, from.String(), r.bare)
	} else {
		s, expired := cs.session(sid)
		if expired {
			return nil, nil, cmdError(stanza.NotAllowed, "session-expired", "this command session timed out; start the command again")
		}
		if s == nil || s.node != node || s.owner != from.String() {
			return nil, nil, cmdError(stanza.BadRequest, "bad-sessionid", "no such command session")
		}
		r.s = s
		if action == "next" && s.offered != "next" {
			// XEP-0050 §4.4: the last stage offers complete only; next
			// would run it as if it were not the last. (complete at a
			// stage that offers next goes on to the next stage, as
			// clients that always send complete expect.)
			return nil, nil, cmdError(stanza.BadRequest, "bad-action", "this is the last stage: complete or cancel it")
		}
		x := cmd.Child(nsData, "x")
		if action == "cancel" || (x != nil && x.Attr("type") == "cancel") {
			cs.drop(sid)
			return stanza.Result(iq, stanza.New(nsCommands, "command", "node", node, "sessionid", sid, "status", "canceled")), nil, nil
		}
		if x == nil {
			return nil, nil, cmdError(stanza.BadRequest, "bad-payload", "submit the form (jabber:x:data, type submit)")
		}
		if t := x.Attr("type"); t != "submit" && t != "" {
			return nil, nil, cmdError(stanza.BadRequest, "bad-payload", "the form must be of type submit")
		}
		r.vals = formValues(x)
	}
	if action == "cancel" { // cancel without a session: nothing to cancel
		cs.drop(r.s.id)
		return stanza.Result(iq, stanza.New(nsCommands, "command", "node", node, "sessionid", r.s.id, "status", "canceled")), nil, nil
	}
	out := c.exec(b, ctx, r)
	res := stanza.New(nsCommands, "command", "node", node, "sessionid", r.s.id)
	if out.form != nil {
		res.SetAttr("status", "executing")
		act := "complete"
		if out.next {
			act = "next"
		}
		r.s.offered = act
		res.Add(stanza.New(nsCommands, "actions", "execute", act).Add(stanza.New(nsCommands, act)))
	} else {
		res.SetAttr("status", "completed")
		cs.drop(r.s.id)
	}
	if out.note != "" {
		res.Add(stanza.New(nsCommands, "note", "type", out.noteType).AddText(out.note))
	}
	if out.form != nil {
		res.Add(out.form)
	} else if out.result != nil {
		res.Add(out.result)
	}
	return stanza.Result(iq, res), out.after, nil
}

// formValues reads a submitted data form; multiple values are joined by
// newlines.
func formValues(x *stanza.Element) map[string]string {
	vals := map[string]string{}
	for _, f := range x.Children() {
		if f.Local != "field" || f.Space != nsData || f.Attr("var") == "" {
			continue
		}
		var vs []string
		for _, v := range f.Children() {
			if v.Local == "value" {
				vs = append(vs, v.Text())
			}
		}
		vals[f.Attr("var")] = strings.Join(vs, "\n")
	}
	return vals
}

// newForm starts a data form of type form (or result).
func newForm(typ, title, instructions, formType string) *stanza.Element {
	x := stanza.New(nsData, "x", "type", typ)
	if title != "" {
		x.TextChild(nsData, "title", title)
	}
	if instructions != "" {
		x.TextChild(nsData, "instructions", instructions)
	}
	if formType != "" {
		h := stanza.New(nsData, "field", "type", "hidden", "var", "FORM_TYPE")
		h.TextChild(nsData, "value", formType)
		x.Add(h)
	}
	return x
}

// formField renders a legacy field; secrets never carry a value.
func formField(f legacy.Field, value string) *stanza.Element {
	typ := string(f.Type)
	if typ == "" {
		typ = string(legacy.TextSingle)
	}
	fe := stanza.New(nsData, "field", "type", typ, "var", f.Var)
	if f.Label != "" {
		fe.SetAttr("label", f.Label)
	}
	if f.Desc != "" {
		fe.TextChild(nsData, "desc", f.Desc)
	}
	if f.Required {
		fe.Add(stanza.New(nsData, "required"))
	}
	if value != "" && !f.Secret && f.Type != legacy.TextPrivate {
		fe.TextChild(nsData, "value", value)
	}
	for _, o := range f.Options {
		opt := stanza.New(nsData, "option", "label", o.Label)
		opt.TextChild(nsData, "value", o.Value)
		fe.Add(opt)
	}
	return fe
}

// simpleField is a field with a type, var, label and values.
func simpleField(typ, v, label string, values ...string) *stanza.Element {
	fe := stanza.New(nsData, "field")
	if typ != "" {
		fe.SetAttr("type", typ)
	}
	if v != "" {
		fe.SetAttr("var", v)
	}
	if label != "" {
		fe.SetAttr("label", label)
	}
	for _, val := range values {
		fe.TextChild(nsData, "value", val)
	}
	return fe
}

func boolValue(v bool) string {
	if v {
		return "1"
	}
	return "0"
}

// ---- user commands ----

// cmdRegister is the jabber:iq:register command: the registration form,
// then as many steps as a StepRegistrar asks for.
func (b *Bridge) cmdRegister(ctx context.Context, r *cmdReq) *cmdOut {
	s := r.s
	instr := b.info.Instructions
	if instr == "" {
		instr = "Fill in the form to register with " + b.info.DisplayName + "."
	}
	sr, multi := b.opts.Network.(legacy.StepRegistrar)
	firstForm := func(note string) *cmdOut {
		var stored map[string]string
		if r.u != nil {
			r.u.mu.Lock()
			stored = r.u.acct.Fields
			r.u.mu.Unlock()
		}
		x := newForm("form", b.info.DisplayName+" registration", instr, nsRegister)
		for _, f := range b.info.Fields {
			v, ok := stored[f.Var]
			if !ok {
				v = f.Default
			}
			x.Add(formField(f, v))
		}
		out := &cmdOut{form: x, next: multi}
		if note != "" {
			out.note, out.noteType = note, "error"
		}
		return out
	}
	stepForm := func(note string) *cmdOut {
		x := newForm("form", s.form.Title, s.form.Instructions, "")
		for _, f := range s.form.Fields {
			x.Add(formField(f, f.Default))
		}
		out := &cmdOut{form: x, next: true}
		if note != "" {
			out.note, out.noteType = note, "error"
		}
		return out
	}
	finish := func(id legacy.AccountID, state []byte) *cmdOut {
		subscribe, serr := b.storeRegistration(ctx, r.bare, s.vals, id, state)
		if serr != nil {
			return failed("Registration failed: " + serr.Text)
		}
		out := done("You are registered with " + b.info.DisplayName + ". Add contacts as address@" + b.domain + ".")
		if subscribe {
			if p := b.askGateway(r.bare); p != nil {
				out.after = append(out.after, p)
			}
		}
		return out
	}
	if r.vals == nil {
		return firstForm("")
	}
	if s.stage == 0 {
		clean, serr := b.cleanFields(r.bare, r.vals)
		if serr != nil {
			return firstForm(serr.Text)
		}
		s.vals = clean
		if !multi {
			id, serr := b.checkRegistration(ctx, clean)
			if serr != nil {
				return failed("Registration failed: " + serr.Text)
			}
			return finish(id, nil)
		}
	} else {
		for _, f := range s.form.Fields {
			if serr := checkField(f, strings.TrimSpace(r.vals[f.Var])); serr != nil {
				return stepForm(serr.Text)
			}
		}
	}
	stepVals := s.vals
	if s.stage > 0 {
		stepVals = map[string]string{}
		for _, f := range s.form.Fields {
			v := r.vals[f.Var]
			if !f.Secret && f.Type != legacy.TextPrivate {
				v = strings.TrimSpace(v)
			}
			stepVals[f.Var] = v
		}
	}
	next, id, state, serr := b.registerStep(ctx, sr, s.stage, stepVals, s.state)
	if serr != nil {
		return failed("Registration failed: " + serr.Text)
	}
	if next != nil {
		s.stage++
		s.form, s.state = next, state
		return stepForm("")
	}
	return finish(id, state)
}

// sessionStatus describes the user's legacy session: its state, the
// last error (the text of a state other than connected: a connected
// session's text, which the gateway's presence shows, is no error) and
// the legacy account id.
func (b *Bridge) sessionStatus(u *user) (legacy.Status, string, string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.status == legacy.StatusConnected {
		return u.status, "", u.acct.LegacyID
	}
	return u.status, u.lastErr, u.acct.LegacyID
}

func (b *Bridge) cmdStatus(ctx context.Context, r *cmdReq) *cmdOut {
	x := newForm("result", b.info.DisplayName+" status", "", "")
	if r.u == nil {
		x.Add(simpleField("boolean", "registered", "Registered", "0"))
		out := done("You are not registered with " + b.domain + ".")
		out.result = x
		return out
	}
	status, lastErr, legacyID := b.sessionStatus(r.u)
	x.Add(simpleField("boolean", "registered", "Registered", "1"))
	x.Add(simpleField("text-single", "legacy-id", b.info.DisplayName+" account", legacyID))
	x.Add(simpleField("text-single", "state", "Session", string(status)))
	x.Add(simpleField("text-single", "last-error", "Last error", lastErr))
	note := b.info.DisplayName + " session: " + string(status)
	if lastErr != "" {
		note += " (" + lastErr + ")"
	}
	out := done(note)
	out.result = x
	return out
}

// contactLines lists a user's stored contacts as "JID (name)".
func (b *Bridge) contactLines(ctx context.Context, u *user) ([]string, error) {
	cs, err := b.st.ListContacts(ctx, b.domain, u.jid)
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, c := range cs {
		line := c.Localpart + "@" + b.domain
		if c.Name != "" {
			line += " (" + c.Name + ")"
		}
		lines = append(lines, line)
	}
	return lines, nil
}

// addContact resolves what the user typed and stores the contact. It
// returns the contact's JID.
func (b *Bridge) addContact(ctx context.Context, u *user, address string) (string, error) {
	address = strings.TrimSpace(address)
	if address == "" {
		return "", fmt.Errorf("empty address: %w", legacy.ErrInvalidAddress)
	}
	// A contact's JID, as the gateway shows them (pasted back from
	// "contacts" or the roster): its legacy address is the localpart.
	if i := strings.IndexByte(address, '@'); i > 0 {
		host, _, _ := strings.Cut(address[i+1:], "/") // a full JID too
		if strings.EqualFold(host, b.domain) {
			address = string(jidmap.ChatFromLocalpart(address[:i]))
		}
	}
	chat := legacy.ChatID(address)
	if b.resolve != nil {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		c, err := b.resolve.Resolve(rctx, address)
		cancel()
		if err != nil {
			return "", err
		}
		chat = c
	}
	j, err := jidmap.ContactJID(chat, b.domain)
	if err != nil {
		return "", fmt.Errorf("%v: %w", err, legacy.ErrInvalidAddress)
	}
	c, err := b.st.GetContact(ctx, b.domain, u.jid, j.Localpart())
	if errors.Is(err, store.ErrNotFound) {
		c = &store.Contact{Localpart: j.Localpart()}
	} else if err != nil {
		return "", err
	}
	c.LegacyID = string(chat)
	if err := b.st.PutContact(ctx, b.domain, u.jid, c); err != nil {
		return "", err
	}
	// Into the user's roster by the best method the server allows
	// (privileged roster set, roster item exchange, or a subscribe).
	b.rosterContact(u, j.Localpart(), legacy.Contact{Chat: chat, Name: address})
	return j.String(), nil
}

// addressReason is the adapter's explanation of an invalid address for
// the user: without the sentinel's own "legacy: invalid address" at its
// end, nor the adapter's package prefix ("echo: ") at its start.
func (b *Bridge) addressReason(err error) string {
	if r := userReason(err); r != "" {
		return r
	}
	reason := strings.TrimSuffix(err.Error(), ": "+legacy.ErrInvalidAddress.Error())
	return strings.TrimPrefix(reason, b.info.Name+": ")
}

// addressError explains why an address was not added.
func (b *Bridge) addressError(err error) string {
	switch {
	case errors.Is(err, legacy.ErrInvalidAddress):
		return "not a valid " + b.info.DisplayName + " address: " + b.addressReason(err)
	case errors.Is(err, legacy.ErrNotFound):
		return "no such " + b.info.DisplayName + " contact"
	}
	return "could not add the contact now: " + errText(err)
}

func (b *Bridge) cmdContacts(ctx context.Context, r *cmdReq) *cmdOut {
	if r.vals == nil {
		lines, err := b.contactLines(ctx, r.u)
		if err != nil {
			return failed("Could not read your contacts now; try again.")
		}
		x := newForm("form", b.info.DisplayName+" contacts", fmt.Sprintf("You have %d contacts. Fill in an address to add one, or leave it empty.", len(lines)), "")
		if len(lines) > maxListedContacts {
			lines = append(lines[:maxListedContacts], fmt.Sprintf("… and %d more", len(lines)-maxListedContacts))
		}
		// One fixed field per contact (XEP-0004 §3.3: a fixed field's
		// lines are separate fields), the first labelled.
		for i, line := range lines {
			label := ""
			if i == 0 {
				label = "Contacts"
			}
			x.Add(simpleField("fixed", "", label, line))
		}
		prompt := b.info.Prompt
		if prompt == "" {
			prompt = "Address"
		}
		f := simpleField("text-single", "address", "Add a contact: "+prompt)
		if b.info.PromptDesc != "" {
			f.TextChild(nsData, "desc", b.info.PromptDesc)
		}
		x.Add(f)
		return &cmdOut{form: x}
	}
	addr := strings.TrimSpace(r.vals["address"])
	if addr == "" {
		return done("No contact added.")
	}
	j, err := b.addContact(ctx, r.u, addr)
	if err != nil {
		return failed("Could not add " + addr + ": " + b.addressError(err))
	}
	out := done("Added " + j + " to your contacts.")
	x := newForm("result", "", "", "")
	x.Add(simpleField("jid-single", "jid", "Contact", j))
	out.result = x
	return out
}

// settingsValues returns the user's current value for every declared
// setting.
func (b *Bridge) settingsValues(u *user) map[string]string {
	u.mu.Lock()
	cur := u.acct.Settings
	u.mu.Unlock()
	out := map[string]string{}
	for _, f := range b.info.Settings {
		v, ok := cur[f.Var]
		if !ok {
			v = f.Default
		}
		out[f.Var] = v
	}
	return out
}

// saveSettings checks and stores changed settings and restarts the
// session with them. Only declared settings are kept.
func (b *Bridge) saveSettings(ctx context.Context, u *user, changes map[string]string) *stanza.Error {
	u.mu.Lock()
	a := *u.acct
	u.mu.Unlock()
	settings := map[string]string{}
	for k, v := range a.Settings {
		settings[k] = v
	}
	for _, f := range b.info.Settings {
		v, ok := changes[f.Var]
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if f.Type == legacy.Boolean && v != "" {
			bv, ok := parseBool(v)
			if !ok {
				return checkField(f, v)
			}
			v = boolValue(bv)
		}
		if serr := checkField(f, v); serr != nil {
			return serr
		}
		if v == "" {
			delete(settings, f.Var)
		} else {
			settings[f.Var] = v
		}
	}
	a.Settings = settings
	if err := b.restartUser(ctx, u, &a); err != nil {
		b.log.Error("store settings", "user", u.owner, "err", err)
		return &stanza.Error{Condition: stanza.InternalServerError, Type: stanza.ErrWait, Text: "could not store your settings now; try again"}
	}
	b.log.Info("settings changed; session restarted", "user", u.owner)
	return nil
}

func (b *Bridge) cmdSettings(ctx context.Context, r *cmdReq) *cmdOut {
	if r.vals == nil {
		cur := b.settingsValues(r.u)
		x := newForm("form", b.info.DisplayName+" settings", "Change your preferences; the "+b.info.DisplayName+" session restarts with them.", "")
		for _, f := range b.info.Settings {
			x.Add(formField(f, cur[f.Var]))
		}
		return &cmdOut{form: x}
	}
	changes := map[string]string{}
	for _, f := range b.info.Settings {
		if v, ok := r.vals[f.Var]; ok {
			changes[f.Var] = v
		}
	}
	if serr := b.saveSettings(ctx, r.u, changes); serr != nil {
		return failed("Settings not saved: " + serr.Text)
	}
	return done("Settings saved; your " + b.info.DisplayName + " session was restarted.")
}

// unregisterPresences are what the user gets from the gateway once
// unregistered.
func (b *Bridge) unregisterPresences(bare string) []*stanza.Element {
	var out []*stanza.Element
	for _, t := range []string{"unsubscribe", "unsubscribed", "unavailable"} {
		out = append(out, presence(t, b.domain, bare))
	}
	return out
}

func (b *Bridge) cmdUnregister(ctx context.Context, r *cmdReq) *cmdOut {
	if r.vals == nil {
		x := newForm("form", "Unregister from "+b.info.DisplayName, "This deletes your registration and everything "+b.domain+" stores for you.", "")
		f := simpleField("boolean", "confirm", "Yes, delete my registration", "0")
		f.Add(stanza.New(nsData, "required"))
		x.Add(f)
		return &cmdOut{form: x}
	}
	if ok, _ := parseBool(r.vals["confirm"]); !ok {
		return failed("Not confirmed: your registration is kept.")
	}
	if err := b.unregister(ctx, r.u); err != nil {
		b.log.Error("unregister", "user", r.u.owner, "err", err)
		return failed("Could not remove your registration now; try again.")
	}
	out := done("You are unregistered; your data on " + b.domain + " was deleted.")
	out.after = b.unregisterPresences(r.bare)
	return out
}

// ---- admin commands ----

// sortedUsers returns the registered users by JID.
func (b *Bridge) sortedUsers() []*user {
	b.mu.Lock()
	us := b.snapshotUsers()
	b.mu.Unlock()
	sort.Slice(us, func(i, j int) bool { return us[i].jid < us[j].jid })
	return us
}

func (b *Bridge) cmdAdminUsers(ctx context.Context, r *cmdReq) *cmdOut {
	us := b.sortedUsers()
	x := newForm("result", "Users of "+b.domain, "", "")
	rep := stanza.New(nsData, "reported")
	rep.Add(stanza.New(nsData, "field", "var", "jid", "label", "User", "type", "jid-single"))
	rep.Add(stanza.New(nsData, "field", "var", "legacy-id", "label", b.info.DisplayName+" account"))
	rep.Add(stanza.New(nsData, "field", "var", "state", "label", "Session"))
	x.Add(rep)
	for _, u := range us {
		status, _, legacyID := b.sessionStatus(u)
		it := stanza.New(nsData, "item")
		it.Add(simpleField("", "jid", "", u.jid), simpleField("", "legacy-id", "", legacyID), simpleField("", "state", "", string(status)))
		x.Add(it)
	}
	out := done(fmt.Sprintf("%d registered users.", len(us)))
	out.result = x
	return out
}

// userInfo is what an admin learns about one user.
type userInfo struct {
	jid, legacyID, state, lastErr string
	created                       time.Time
	inbox, outbox, contacts       int
}

func (b *Bridge) userInfo(ctx context.Context, bare string) (*userInfo, error) {
	a, err := b.st.GetAccount(ctx, b.domain, bare)
	if err != nil {
		return nil, err
	}
	ui := &userInfo{jid: bare, legacyID: a.LegacyID, created: a.Created, state: "not running"}
	if u := b.getUser(bare); u != nil {
		s, e, _ := b.sessionStatus(u)
		ui.state, ui.lastErr = string(s), e
	}
	ui.inbox, _ = b.st.Len(ctx, store.Queue{Bridge: b.domain, JID: bare, Kind: store.Inbox})
	ui.outbox, _ = b.st.Len(ctx, store.Queue{Bridge: b.domain, JID: bare, Kind: store.Outbox})
	if cs, err := b.st.ListContacts(ctx, b.domain, bare); err == nil {
		ui.contacts = len(cs)
	}
	return ui, nil
}

// targetJID reads and normalises the jid field an admin typed.
func targetJID(v string) (string, error) {
	j, err := jid.Parse(strings.TrimSpace(v))
	if err != nil {
		return "", err
	}
	return j.Bare().String(), nil
}

// jidForm is the form of an admin command about one user; typed is the
// jid field's value (what the admin typed, when the form is shown again).
func jidForm(title string, confirm bool, typed string) *cmdOut {
	x := newForm("form", title, "", "")
	f := simpleField("jid-single", "jid", "User")
	if typed != "" {
		f.TextChild(nsData, "value", typed)
	}
	f.Add(stanza.New(nsData, "required"))
	x.Add(f)
	if confirm {
		c := simpleField("boolean", "confirm", "Yes, delete this user and their data", "0")
		c.Add(stanza.New(nsData, "required"))
		x.Add(c)
	}
	return &cmdOut{form: x}
}

// badJID is the form again, with an error note, for a missing or invalid
// JID: the admin corrects it in the same session instead of starting over.
// The form must carry what the admin typed (jidForm's typed).
func badJID(form *cmdOut, given string) *cmdOut {
	form.note, form.noteType = "Not a valid JID: "+given, "error"
	if given == "" {
		form.note = "Give the user's JID."
	}
	return form
}

// notRegistered is the form again, with an error note, for a well-formed
// JID that is not registered: like badJID, the admin tries another in the
// same session. The form must carry what the admin typed.
func (b *Bridge) notRegistered(form *cmdOut, bare string) *cmdOut {
	form.note, form.noteType = bare+" is not registered with "+b.domain+".", "error"
	return form
}

func (b *Bridge) cmdAdminInfo(ctx context.Context, r *cmdReq) *cmdOut {
	if r.vals == nil {
		return jidForm("User info", false, "")
	}
	bare, err := targetJID(r.vals["jid"])
	if err != nil {
		return badJID(jidForm("User info", false, r.vals["jid"]), r.vals["jid"])
	}
	ui, err := b.userInfo(ctx, bare)
	if errors.Is(err, store.ErrNotFound) {
		return b.notRegistered(jidForm("User info", false, r.vals["jid"]), bare)
	} else if err != nil {
		return failed("Could not read the store: " + err.Error())
	}
	x := newForm("result", "User "+bare, "", "")
	x.Add(simpleField("jid-single", "jid", "User", ui.jid))
	x.Add(simpleField("text-single", "registered", "Registered", ui.created.UTC().Format(time.RFC3339)))
	x.Add(simpleField("text-single", "legacy-id", b.info.DisplayName+" account", ui.legacyID))
	x.Add(simpleField("text-single", "state", "Session", ui.state))
	x.Add(simpleField("text-single", "last-error", "Last error", ui.lastErr))
	x.Add(simpleField("text-single", "contacts", "Contacts", strconv.Itoa(ui.contacts)))
	x.Add(simpleField("text-single", "inbox", "Inbox queue", strconv.Itoa(ui.inbox)))
	x.Add(simpleField("text-single", "outbox", "Outbox queue", strconv.Itoa(ui.outbox)))
	out := done(ui.summary(b))
	out.result = x
	return out
}

func (ui *userInfo) summary(b *Bridge) string {
	s := fmt.Sprintf("%s: registered %s, %s account %q, session %s, %d contacts, inbox %d, outbox %d",
		ui.jid, ui.created.UTC().Format(time.RFC3339), b.info.DisplayName, ui.legacyID, ui.state, ui.contacts, ui.inbox, ui.outbox)
	if ui.lastErr != "" {
		s += ", last error: " + ui.lastErr
	}
	return s
}

// deleteUser unregisters another user (admin).
func (b *Bridge) deleteUser(ctx context.Context, bare string) ([]*stanza.Element, error) {
	u := b.getUser(bare)
	if u == nil {
		if _, err := b.st.GetAccount(ctx, b.domain, bare); err != nil {
			return nil, err
		}
		return b.unregisterPresences(bare), b.st.DeleteAccount(ctx, b.domain, bare)
	}
	if err := b.unregister(ctx, u); err != nil {
		return nil, err
	}
	return b.unregisterPresences(bare), nil
}

func (b *Bridge) cmdAdminDelete(ctx context.Context, r *cmdReq) *cmdOut {
	if r.vals == nil {
		return jidForm("Delete a user", true, "")
	}
	bare, err := targetJID(r.vals["jid"])
	if err != nil {
		return badJID(jidForm("Delete a user", true, r.vals["jid"]), r.vals["jid"])
	}
	if ok, _ := parseBool(r.vals["confirm"]); !ok {
		return failed("Not confirmed: " + bare + " was not deleted.")
	}
	after, err := b.deleteUser(ctx, bare)
	if errors.Is(err, store.ErrNotFound) {
		// The confirmation was for this JID: another needs its own.
		return b.notRegistered(jidForm("Delete a user", true, r.vals["jid"]), bare)
	} else if err != nil {
		return failed("Could not delete " + bare + ": " + err.Error())
	}
	b.log.Info("user deleted by an admin", "admin", jidmap.OwnerKey(b.domain, r.bare), "user", jidmap.OwnerKey(b.domain, bare))
	out := done(bare + " was deleted.")
	out.after = after
	return out
}

// stats are the gateway-wide numbers.
type stats struct {
	users, connected, inbox, outbox int
}

func (b *Bridge) stats(ctx context.Context) stats {
	var s stats
	for _, u := range b.sortedUsers() {
		s.users++
		if st, _, _ := b.sessionStatus(u); st == legacy.StatusConnected {
			s.connected++
		}
		n, _ := b.st.Len(ctx, store.Queue{Bridge: b.domain, JID: u.jid, Kind: store.Inbox})
		s.inbox += n
		n, _ = b.st.Len(ctx, store.Queue{Bridge: b.domain, JID: u.jid, Kind: store.Outbox})
		s.outbox += n
	}
	return s
}

func (s stats) String() string {
	return fmt.Sprintf("%d users, %d sessions connected, %d messages waiting for XMPP (inbox), %d waiting for the legacy network (outbox)",
		s.users, s.connected, s.inbox, s.outbox)
}

func (b *Bridge) cmdAdminStats(ctx context.Context, r *cmdReq) *cmdOut {
	s := b.stats(ctx)
	x := newForm("result", "Statistics of "+b.domain, "", "")
	x.Add(simpleField("text-single", "users", "Registered users", strconv.Itoa(s.users)))
	x.Add(simpleField("text-single", "sessions", "Connected sessions", strconv.Itoa(s.connected)))
	x.Add(simpleField("text-single", "inbox", "Inbox queue depth", strconv.Itoa(s.inbox)))
	x.Add(simpleField("text-single", "outbox", "Outbox queue depth", strconv.Itoa(s.outbox)))
	out := done(s.String())
	out.result = x
	return out
}

// announce sends text from the gateway JID to every registered user and
// returns how many.
func (b *Bridge) announce(ctx context.Context, text string) int {
	us := b.sortedUsers()
	for _, u := range us {
		b.reply(ctx, gatewayMessage(b.domain, u.jid, text))
	}
	return len(us)
}

// gatewayMessage is a chat message from the gateway (a command's answer,
// an announcement), with an id of its own as every stanza the gateway
// writes, so clients can tell messages apart and refer to them.
func gatewayMessage(from, to, text string) *stanza.Element {
	m := stanza.New(stanza.NSComponent, "message", "type", "chat", "id", "gw-"+newKey(), "from", from, "to", to)
	m.TextChild(stanza.NSComponent, "body", text)
	return m
}

func (b *Bridge) cmdAdminAnnounce(ctx context.Context, r *cmdReq) *cmdOut {
	if r.vals == nil {
		x := newForm("form", "Announce", "A message from "+b.domain+" to every registered user.", "")
		f := simpleField("text-multi", "body", "Message")
		f.Add(stanza.New(nsData, "required"))
		x.Add(f)
		return &cmdOut{form: x}
	}
	text := strings.TrimSpace(r.vals["body"])
	if text == "" {
		return failed("Nothing to announce: the message is empty.")
	}
	n := b.announce(ctx, text)
	return done(fmt.Sprintf("Sent to %d users.", n))
}
