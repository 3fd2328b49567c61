package bridges

// Chat commands: the ad-hoc commands as plain text in a chat with the
// gateway JID, for clients without forms (Conversations, Dino, Monal).
// Registration on a network with fields is a conversation: the gateway
// asks for each field in turn and remembers the answers per user (in
// memory, for commandTimeout); secret answers are never repeated.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
)

// chatFlow is a registration conversation in progress.
type chatFlow struct {
	step    int               // StepRegistrar step (0: Info.Fields)
	fields  []legacy.Field    // the fields of the current step
	idx     int               // the field asked now
	answers map[string]string // answers to the current step
	first   map[string]string // the checked step-0 values, stored at the end
	state   []byte
	expires time.Time
}

// flow returns the user's live conversation, dropping an expired one.
func (cs *cmdState) flow(bare string) *chatFlow {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	f := cs.chats[bare]
	if f != nil && time.Now().After(f.expires) {
		delete(cs.chats, bare)
		return nil
	}
	return f
}

func (cs *cmdState) setFlow(bare string, f *chatFlow) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if f == nil {
		delete(cs.chats, bare)
		return
	}
	now := time.Now()
	if _, ok := cs.chats[bare]; !ok && len(cs.chats) >= maxCommandSessions {
		for k, o := range cs.chats {
			if now.After(o.expires) {
				delete(cs.chats, k)
			}
		}
		if len(cs.chats) >= maxCommandSessions {
			var oldest string
			for k, o := range cs.chats {
				if oldest == "" || o.expires.Before(cs.chats[oldest].expires) {
					oldest = k
				}
			}
			delete(cs.chats, oldest)
		}
	}
	f.expires = now.Add(commandTimeout())
	cs.chats[bare] = f
}

// chatReply collects what the gateway answers.
type chatReply struct {
	lines []string
	after []*stanza.Element
}

func (r *chatReply) say(format string, args ...any) {
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

// handleGatewayChat answers plain-text messages to the gateway JID, for
// clients without registration forms.
func (b *Bridge) handleGatewayChat(ctx context.Context, st *stanza.Element, from jid.JID) {
	body := strings.TrimSpace(defaultBody(st).Text())
	if body == "" {
		return
	}
	bare := from.Bare().String()
	var out chatReply
	cs := b.commands()
	if f := cs.flow(bare); f != nil {
		b.chatFlowAnswer(ctx, from, f, defaultBody(st).Text(), &out)
	} else {
		b.chatCommand(ctx, from, body, &out)
	}
	if len(out.lines) > 0 {
		b.reply(ctx, gatewayMessage(b.domain, from.String(), strings.Join(out.lines, "\n")))
	}
	for _, s := range out.after {
		b.reply(ctx, s)
	}
}

// chatHelp is the command list for this user.
func (b *Bridge) chatHelp(bare string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "Jabbergate %s gateway. Commands:\n", b.info.DisplayName)
	sb.WriteString("help — this text\n")
	sb.WriteString("register — register with " + b.info.DisplayName + "\n")
	sb.WriteString("status — your " + b.info.DisplayName + " session\n")
	sb.WriteString("contacts — list your contacts\n")
	sb.WriteString("add ADDRESS — add a contact\n")
	if len(b.info.Settings) > 0 {
		sb.WriteString("settings — show your settings; set KEY VALUE — change one\n")
	}
	sb.WriteString("unregister — delete your registration")
	if b.isAdmin(bare) {
		sb.WriteString("\nAdmin: users — list users; info JID — one user; delete JID — delete a user; stats — statistics; announce TEXT — message every user")
	}
	return sb.String()
}

func (b *Bridge) chatCommand(ctx context.Context, from jid.JID, body string, out *chatReply) {
	bare := from.Bare().String()
	u := b.getUser(bare)
	words := strings.Fields(body)
	verb := strings.ToLower(words[0])
	rest := strings.TrimSpace(body[len(words[0]):])
	notRegistered := func() bool {
		if u == nil {
			out.say("You are not registered. Send \"register\" to register.")
			return true
		}
		return false
	}
	adminOnly := func() bool {
		if !b.isAdmin(bare) {
			out.say("Only administrators of %s may use %q.", b.domain, verb)
			return true
		}
		return false
	}
	switch verb {
	case "status":
		if notRegistered() {
			return
		}
		status, lastErr, legacyID := b.sessionStatus(u)
		line := fmt.Sprintf("Registered (%s account %q). %s session: %s", b.info.DisplayName, legacyID, b.info.DisplayName, status)
		if lastErr != "" {
			line += " — last error: " + lastErr
		}
		out.say("%s", line)
	case "register":
		b.chatRegister(ctx, from, out)
	case "unregister":
		if notRegistered() {
			return
		}
		if ok, _ := parseBool(rest); !ok {
			out.say("This deletes your registration and everything %s stores for you. Send \"unregister yes\" to confirm.", b.domain)
			return
		}
		if err := b.unregister(ctx, u); err != nil {
			out.say("Could not unregister now: try again.")
			return
		}
		out.say("You are unregistered; your data on this gateway was deleted.")
		out.after = b.unregisterPresences(bare)
	case "settings":
		if notRegistered() {
			return
		}
		if len(b.info.Settings) == 0 {
			out.say("%s has no settings.", b.info.DisplayName)
			return
		}
		cur := b.settingsValues(u)
		out.say("Your settings (change one with \"set KEY VALUE\"):")
		for _, f := range b.info.Settings {
			line := fmt.Sprintf("%s = %s", f.Var, cur[f.Var])
			if f.Label != "" {
				line += " — " + f.Label
			}
			if len(f.Options) > 0 {
				line += " (" + optionList(f) + ")"
			} else if f.Type == legacy.Boolean {
				line += " (yes/no)"
			}
			out.say("%s", line)
		}
	case "set":
		if notRegistered() {
			return
		}
		key, value, _ := strings.Cut(rest, " ")
		var field *legacy.Field
		for i, f := range b.info.Settings {
			if strings.EqualFold(f.Var, key) {
				field = &b.info.Settings[i]
			}
		}
		if field == nil {
			out.say("No setting %q. Send \"settings\" to see them.", key)
			return
		}
		if serr := b.saveSettings(ctx, u, map[string]string{field.Var: value}); serr != nil {
			out.say("Not saved: %s", serr.Text)
			return
		}
		out.say("Saved %s; your %s session was restarted.", field.Var, b.info.DisplayName)
	case "contacts":
		if notRegistered() {
			return
		}
		lines, err := b.contactLines(ctx, u)
		if err != nil {
			out.say("Could not read your contacts now; try again.")
			return
		}
		if len(lines) == 0 {
			out.say("You have no contacts yet. Add one with \"add ADDRESS\".")
			return
		}
		if len(lines) > maxListedContacts {
			lines = append(lines[:maxListedContacts], fmt.Sprintf("… and %d more", len(lines)-maxListedContacts))
		}
		out.say("Your contacts:\n%s", strings.Join(lines, "\n"))
	case "add":
		if notRegistered() {
			return
		}
		if rest == "" {
			desc := strings.TrimSpace(b.info.PromptDesc)
			if desc != "" && !strings.ContainsAny(desc[len(desc)-1:], ".!?)") {
				desc += "."
			}
			out.say("Send \"add\" followed by the contact's address. %s", desc)
			return
		}
		j, err := b.addContact(ctx, u, rest)
		if err != nil {
			out.say("Could not add %s: %s", rest, b.addressError(err))
			return
		}
		out.say("Added %s to your contacts.", j)
	case "users":
		if adminOnly() {
			return
		}
		us := b.sortedUsers()
		out.say("%d registered users:", len(us))
		for _, x := range us {
			status, _, _ := b.sessionStatus(x)
			out.say("%s — %s", x.jid, status)
		}
	case "info":
		if adminOnly() {
			return
		}
		target, err := targetJID(rest)
		if err != nil {
			out.say("Send \"info JID\".")
			return
		}
		ui, err := b.userInfo(ctx, target)
		if err != nil {
			out.say("%s is not registered with %s.", target, b.domain)
			return
		}
		out.say("%s", ui.summary(b))
	case "delete":
		if adminOnly() {
			return
		}
		args := strings.Fields(rest)
		if len(args) == 0 {
			out.say("Send \"delete JID yes\".")
			return
		}
		target, err := targetJID(args[0])
		if err != nil {
			out.say("%q is not a valid JID.", args[0])
			return
		}
		if len(args) < 2 || !isYes(args[1]) {
			out.say("Send \"delete %s yes\" to delete this user and their data.", target)
			return
		}
		after, err := b.deleteUser(ctx, target)
		if errors.Is(err, store.ErrNotFound) {
			out.say("%s is not registered with %s.", target, b.domain)
			return
		} else if err != nil {
			out.say("Could not delete %s: %v", target, err)
			return
		}
		out.say("%s was deleted.", target)
		out.after = after
	case "stats":
		if adminOnly() {
			return
		}
		out.say("%s", b.stats(ctx).String())
	case "announce":
		if adminOnly() {
			return
		}
		if rest == "" {
			out.say("Send \"announce TEXT\".")
			return
		}
		out.say("Sent to %d users.", b.announce(ctx, rest))
	default:
		out.say("%s", b.chatHelp(bare))
	}
}

func isYes(s string) bool {
	v, ok := parseBool(s)
	return ok && v
}

// optionList lists a field's option values in the order the network
// declares them (1, 2, … 10 stays so; a text sort would not).
func optionList(f legacy.Field) string {
	var vs []string
	for _, o := range f.Options {
		vs = append(vs, o.Value)
	}
	return strings.Join(vs, ", ")
}

// chatRegister starts a registration by chat.
func (b *Bridge) chatRegister(ctx context.Context, from jid.JID, out *chatReply) {
	bare := from.Bare().String()
	if !b.allowed(from.Domainpart()) {
		out.say("Users of %s may not register with this gateway.", from.Domainpart())
		return
	}
	var ask []legacy.Field
	for _, f := range b.info.Fields {
		if f.Type != legacy.Fixed {
			ask = append(ask, f)
		}
	}
	_, multi := b.opts.Network.(legacy.StepRegistrar)
	if len(ask) == 0 && !multi {
		b.chatFinishFirst(ctx, from, &chatFlow{answers: map[string]string{}}, out)
		return
	}
	f := &chatFlow{fields: ask, answers: map[string]string{}}
	if b.info.Instructions != "" {
		out.say("%s", b.info.Instructions)
	}
	out.say("Registering with %s. Answer each question; send \"cancel\" to stop.", b.info.DisplayName)
	if len(ask) == 0 {
		b.chatFinishFirst(ctx, from, f, out)
		return
	}
	b.commands().setFlow(bare, f)
	out.say("%s", question(f.fields[0]))
}

// question asks for one field.
func question(f legacy.Field) string {
	q := fieldLabel(f)
	if f.Desc != "" {
		q += " (" + f.Desc + ")"
	}
	q += "?"
	switch {
	case len(f.Options) > 0:
		q += " One of: " + optionList(f) + "."
	case f.Type == legacy.Boolean:
		q += " yes or no."
	}
	if f.Secret || f.Type == legacy.TextPrivate {
		q += " (Your answer is not repeated.)"
	}
	if !f.Required {
		q += " Send \"-\" to skip."
		if f.Default != "" && !f.Secret {
			q += " Default: " + f.Default + "."
		}
	}
	return q
}

// chatFlowAnswer takes the answer to the field asked last.
func (b *Bridge) chatFlowAnswer(ctx context.Context, from jid.JID, f *chatFlow, raw string, out *chatReply) {
	bare := from.Bare().String()
	cs := b.commands()
	if strings.EqualFold(strings.TrimSpace(raw), "cancel") {
		cs.setFlow(bare, nil)
		out.say("Registration canceled.")
		return
	}
	field := f.fields[f.idx]
	v := raw
	if !field.Secret && field.Type != legacy.TextPrivate {
		v = strings.TrimSpace(raw)
	}
	if strings.TrimSpace(v) == "-" && !field.Required {
		v = field.Default
	}
	if field.Type == legacy.Boolean && v != "" {
		if bv, ok := parseBool(v); ok {
			v = boolValue(bv)
		}
	}
	if serr := checkField(field, v); serr != nil {
		out.say("%s. %s", upperFirst(serr.Text), question(field))
		cs.setFlow(bare, f)
		return
	}
	f.answers[field.Var] = v
	f.idx++
	if f.idx < len(f.fields) {
		cs.setFlow(bare, f)
		out.say("%s", question(f.fields[f.idx]))
		return
	}
	if f.step == 0 {
		b.chatFinishFirst(ctx, from, f, out)
		return
	}
	b.chatStep(ctx, from, f, f.answers, out)
}

// chatFinishFirst checks the answers to Info.Fields and registers, or goes
// on with the next step of a StepRegistrar.
func (b *Bridge) chatFinishFirst(ctx context.Context, from jid.JID, f *chatFlow, out *chatReply) {
	bare := from.Bare().String()
	clean, serr := b.cleanFields(bare, f.answers)
	if serr != nil {
		b.commands().setFlow(bare, nil)
		out.say("Registration failed: %s. Send \"register\" to try again.", serr.Text)
		return
	}
	f.first = clean
	if _, multi := b.opts.Network.(legacy.StepRegistrar); multi {
		b.chatStep(ctx, from, f, clean, out)
		return
	}
	b.commands().setFlow(bare, nil)
	id, serr := b.checkRegistration(ctx, clean)
	if serr != nil {
		out.say("Registration failed: %s. Send \"register\" to try again.", serr.Text)
		return
	}
	b.chatStored(ctx, bare, clean, id, nil, out)
}

// chatStep runs one StepRegistrar step with the answers collected.
func (b *Bridge) chatStep(ctx context.Context, from jid.JID, f *chatFlow, vals map[string]string, out *chatReply) {
	bare := from.Bare().String()
	cs := b.commands()
	sr := b.opts.Network.(legacy.StepRegistrar)
	next, id, state, serr := b.registerStep(ctx, sr, f.step, vals, f.state)
	if serr != nil {
		cs.setFlow(bare, nil)
		out.say("Registration failed: %s. Send \"register\" to try again.", serr.Text)
		return
	}
	if next == nil {
		cs.setFlow(bare, nil)
		b.chatStored(ctx, bare, f.first, id, state, out)
		return
	}
	f.step++
	f.state = state
	f.idx = 0
	f.answers = map[string]string{}
	f.fields = f.fields[:0:0]
	for _, fl := range next.Fields {
		if fl.Type != legacy.Fixed {
			f.fields = append(f.fields, fl)
		}
	}
	if next.Instructions != "" {
		out.say("%s", next.Instructions)
	}
	if len(f.fields) == 0 { // nothing to ask: go on
		b.chatStep(ctx, from, f, map[string]string{}, out)
		return
	}
	cs.setFlow(bare, f)
	out.say("%s", question(f.fields[0]))
}

func (b *Bridge) chatStored(ctx context.Context, bare string, clean map[string]string, id legacy.AccountID, state []byte, out *chatReply) {
	subscribe, serr := b.storeRegistration(ctx, bare, clean, id, state)
	if serr != nil {
		out.say("Registration failed: %s", serr.Text)
		return
	}
	out.say("You are registered. Add contacts as name@%s.", b.domain)
	if subscribe {
		if p := b.askGateway(bare); p != nil {
			out.after = append(out.after, p)
		}
	}
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
