package bridges

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/jabbergate/jabbergate/bridges/jidmap"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
)

// iqRegisterElements are the XEP-0077 child elements a field may also be
// offered as, for clients without data forms.
var iqRegisterElements = map[string]bool{
	"username": true, "nick": true, "password": true, "name": true, "first": true, "last": true,
	"email": true, "address": true, "city": true, "state": true, "zip": true, "phone": true,
	"url": true, "date": true,
}

// registerGet answers a jabber:iq:register get with the instructions, the
// plain fields (where XEP-0077 has elements for them) and an XEP-0004 form.
func (b *Bridge) registerGet(ctx context.Context, iq *stanza.Element, from jid.JID) (*stanza.Element, *stanza.Error) {
	u := b.getUser(from.Bare().String())
	var stored map[string]string
	q := stanza.New(nsRegister, "query")
	if u != nil {
		q.Add(stanza.New(nsRegister, "registered"))
		u.mu.Lock()
		stored = u.acct.Fields
		u.mu.Unlock()
	}
	instr := b.info.Instructions
	if instr == "" {
		instr = "Fill in the form to register with " + b.info.DisplayName + "."
	}
	if _, multi := b.opts.Network.(legacy.StepRegistrar); multi {
		// Cheogram's convention: the real flow is the ad-hoc command.
		instr += " Logging in to " + b.info.DisplayName + " takes more than one step: use the ad-hoc command \"Register\" (node jabber:iq:register), or send \"register\" in a chat with " + b.domain + "."
	}
	q.TextChild(nsRegister, "instructions", instr)
	plain := true
	for _, f := range b.info.Fields {
		if !iqRegisterElements[f.Var] {
			plain = false
		}
	}
	value := func(f legacy.Field) string {
		if f.Secret {
			return "" // never echo a stored secret
		}
		if v, ok := stored[f.Var]; ok {
			return v
		}
		return f.Default
	}
	if plain {
		for _, f := range b.info.Fields {
			q.TextChild(nsRegister, f.Var, value(f))
		}
	}
	form := stanza.New(nsData, "x", "type", "form")
	form.TextChild(nsData, "title", b.info.DisplayName+" registration")
	form.TextChild(nsData, "instructions", instr)
	hidden := stanza.New(nsData, "field", "type", "hidden", "var", "FORM_TYPE")
	hidden.TextChild(nsData, "value", nsRegister)
	form.Add(hidden)
	for _, f := range b.info.Fields {
		typ := string(f.Type)
		if typ == "" {
			typ = string(legacy.TextSingle)
		}
		fe := stanza.New(nsData, "field", "type", typ, "var", f.Var, "label", f.Label)
		if f.Desc != "" {
			fe.TextChild(nsData, "desc", f.Desc)
		}
		if f.Required {
			fe.Add(stanza.New(nsData, "required"))
		}
		if v := value(f); v != "" {
			fe.TextChild(nsData, "value", v)
		}
		for _, o := range f.Options {
			opt := stanza.New(nsData, "option", "label", o.Label)
			opt.TextChild(nsData, "value", o.Value)
			fe.Add(opt)
		}
		form.Add(fe)
	}
	q.Add(form)
	return stanza.Result(iq, q), nil
}

// registerSet handles registration, re-registration and <remove/>.
func (b *Bridge) registerSet(ctx context.Context, iq, q *stanza.Element, from jid.JID) (*stanza.Element, *stanza.Error) {
	bare := from.Bare().String()
	if q.Child(nsRegister, "remove") != nil {
		if len(q.Children()) != 1 {
			return nil, stanza.NewError(stanza.BadRequest, "<remove/> must be the only child")
		}
		u := b.getUser(bare)
		if u == nil {
			return nil, stanza.NewError(stanza.RegistrationRequired, "you are not registered with "+b.domain)
		}
		if err := b.unregister(ctx, u); err != nil {
			b.log.Error("unregister", "user", u.owner, "err", err)
			return nil, &stanza.Error{Condition: stanza.InternalServerError, Type: stanza.ErrWait, Text: "could not remove your registration now; try again"}
		}
		b.reply(ctx, stanza.Result(iq, nil))
		for _, t := range []string{"unsubscribe", "unsubscribed", "unavailable"} {
			b.reply(ctx, presence(t, b.domain, bare))
		}
		return nil, nil
	}
	subscribe, serr := b.register(ctx, q, from)
	if serr != nil {
		return nil, serr
	}
	b.reply(ctx, stanza.Result(iq, nil))
	if subscribe {
		// XEP-0100 §4.1.1: ask for the user's presence, once (or leave
		// it to the privileged roster write).
		if p := b.askGateway(bare); p != nil {
			b.reply(ctx, p)
		}
	}
	return nil, nil
}

// register checks and stores a registration and (re)starts the user's
// session. It reports whether the gateway should ask for the user's
// presence subscription.
func (b *Bridge) register(ctx context.Context, q *stanza.Element, from jid.JID) (bool, *stanza.Error) {
	if !b.allowed(from.Domainpart()) {
		return false, stanza.NewError(stanza.Forbidden, "users of "+from.Domainpart()+" may not register with this gateway")
	}
	fields, serr := parseRegistration(q)
	if serr != nil {
		return false, serr
	}
	bare := from.Bare().String()
	clean, serr := b.cleanFields(bare, fields)
	if serr != nil {
		return false, serr
	}
	var acctID legacy.AccountID
	var state []byte
	if sr, ok := b.opts.Network.(legacy.StepRegistrar); ok {
		next, id, st, err := b.registerStep(ctx, sr, 0, clean, nil)
		if err != nil {
			return false, err
		}
		if next != nil {
			return false, &stanza.Error{Condition: stanza.NotAcceptable, Type: stanza.ErrModify,
				Text: "logging in to " + b.info.DisplayName + " takes more than one step: use the ad-hoc command \"Register\" (node jabber:iq:register) or send \"register\" in a chat with " + b.domain}
		}
		acctID, state = id, st
	} else {
		id, serr := b.checkRegistration(ctx, clean)
		if serr != nil {
			return false, serr
		}
		acctID = id
	}
	return b.storeRegistration(ctx, bare, clean, acctID, state)
}

// cleanFields checks submitted registration values against Info.Fields:
// required fields, list options, and the stored secret kept when the user
// leaves it empty.
func (b *Bridge) cleanFields(bare string, fields map[string]string) (map[string]string, *stanza.Error) {
	var old map[string]string
	if u := b.getUser(bare); u != nil {
		u.mu.Lock()
		a := u.acct
		u.mu.Unlock()
		old, _ = b.openFields(a)
	}
	clean := map[string]string{}
	for _, f := range b.info.Fields {
		v := strings.TrimSpace(fields[f.Var])
		if f.Type == legacy.TextPrivate || f.Secret {
			v = fields[f.Var] // keep passwords exactly as typed
		}
		if v == "" && f.Secret && old[f.Var] != "" {
			v = old[f.Var] // an empty secret never wipes the stored one (XEP-0077 §3.3)
		}
		if serr := checkField(f, v); serr != nil {
			return nil, serr
		}
		if v != "" {
			clean[f.Var] = v
		}
	}
	return clean, nil
}

// checkField checks one value against its field's declaration.
func checkField(f legacy.Field, v string) *stanza.Error {
	if v == "" && f.Required {
		return &stanza.Error{Condition: stanza.NotAcceptable, Type: stanza.ErrModify, Text: "the field " + fieldLabel(f) + " (" + f.Var + ") is required"}
	}
	if f.Type == legacy.ListSingle && v != "" && !hasOption(f, v) {
		return &stanza.Error{Condition: stanza.NotAcceptable, Type: stanza.ErrModify, Text: fmt.Sprintf("%q is not an allowed value of %s", v, f.Var)}
	}
	if f.Type == legacy.Boolean && v != "" {
		if _, ok := parseBool(v); !ok {
			return &stanza.Error{Condition: stanza.NotAcceptable, Type: stanza.ErrModify, Text: fmt.Sprintf("%q is not a boolean (%s)", v, f.Var)}
		}
	}
	return nil
}

func fieldLabel(f legacy.Field) string {
	if f.Label != "" {
		return f.Label
	}
	return f.Var
}

// parseBool reads an XEP-0004 boolean ("1", "true", "0", "false"), and the
// words people type in chat.
func parseBool(v string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "y", "on":
		return true, true
	case "0", "false", "no", "n", "off":
		return false, true
	}
	return false, false
}

// registrationError turns an adapter's refusal into the error the user sees.
func (b *Bridge) registrationError(err error) *stanza.Error {
	b.log.Info("registration refused", logErr(err))
	se := stanzaError(err)
	reason := userReason(err)
	var rl *legacy.RateLimitError
	switch {
	case errors.As(err, &rl):
		text := b.info.DisplayName + " asked us to slow down while checking your registration; try again"
		if rl.RetryAfter > 0 {
			text += " in " + rl.RetryAfter.Round(time.Second).String()
		}
		se = &stanza.Error{Condition: stanza.ResourceConstraint, Type: stanza.ErrWait, Text: text}
	case errors.Is(err, legacy.ErrUnavailable) || !legacy.IsPermanent(err):
		text := "could not reach " + b.info.DisplayName + " to check your registration; try again later"
		if reason != "" {
			text += " (" + reason + ")"
		}
		se = &stanza.Error{Condition: stanza.RemoteServerTimeout, Type: stanza.ErrWait, Text: text}
	case errors.Is(err, legacy.ErrUnauthorized):
		text := b.info.DisplayName + " rejected these credentials"
		if reason != "" {
			text += ": " + reason
		}
		se = &stanza.Error{Condition: stanza.NotAuthorized, Type: stanza.ErrAuth, Text: text}
	}
	return se
}

// checkRegistration asks a one-step Registrar for the legacy account id.
func (b *Bridge) checkRegistration(ctx context.Context, clean map[string]string) (legacy.AccountID, *stanza.Error) {
	acctID := legacy.AccountID(b.info.Name)
	if r, ok := b.opts.Network.(legacy.Registrar); ok {
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		id, err := r.Register(rctx, clean)
		cancel()
		if err != nil {
			return "", b.registrationError(err)
		}
		acctID = id
	}
	return acctID, nil
}

// registerStep runs one step of a multi-step registration.
func (b *Bridge) registerStep(ctx context.Context, sr legacy.StepRegistrar, step int, fields map[string]string, state []byte) (*legacy.Form, legacy.AccountID, []byte, *stanza.Error) {
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	next, id, st, err := sr.RegisterStep(rctx, step, fields, state)
	if err != nil {
		return nil, "", nil, b.registrationError(err)
	}
	if next == nil && id == "" {
		id = legacy.AccountID(b.info.Name)
	}
	return next, id, st, nil
}

// storeRegistration stores the account (sealing secrets) and (re)starts
// the user's session. state, when not nil, replaces the adapter state.
func (b *Bridge) storeRegistration(ctx context.Context, bare string, clean map[string]string, acctID legacy.AccountID, state []byte) (bool, *stanza.Error) {
	b.regMu.Lock() // the exclusivity check and the store are one step
	defer b.regMu.Unlock()
	if serr := b.checkAccountFree(ctx, bare, acctID); serr != nil {
		return false, serr
	}
	u := b.getUser(bare)
	if u == nil {
		// A user not loaded may have a record that cannot be read
		// (skipCorrupt): it is the admin's to restore or delete, not
		// replaced by a new registration.
		if _, err := b.st.GetAccount(ctx, b.domain, bare); errors.Is(err, store.ErrCorrupt) {
			b.log.Error("registration refused: the user's stored account record cannot be read; an admin must restore or delete it (jabbergate delete-user)",
				"user", jidmap.OwnerKey(b.domain, bare), "err", err)
			return false, &stanza.Error{Condition: stanza.InternalServerError, Type: stanza.ErrCancel,
				Text: "your stored registration is damaged; ask the gateway's admin to repair or delete it, then register again"}
		}
	}
	sealed, err := b.sealFields(bare, clean)
	if err != nil {
		b.log.Error("seal credentials", "user", jidmap.OwnerKey(b.domain, bare), "err", err)
		return false, stanza.NewError(stanza.InternalServerError, "could not store your registration")
	}
	a := &store.Account{Bridge: b.domain, JID: bare, LegacyID: string(acctID), Fields: sealed, Created: time.Now().UTC()}
	if u != nil {
		u.mu.Lock()
		a.Settings, a.Subscription, a.Created = u.acct.Settings, u.acct.Subscription, u.acct.Created
		if u.acct.LegacyID == a.LegacyID {
			a.State = u.acct.State
		}
		u.mu.Unlock()
	}
	if state != nil {
		a.State = state
	}
	if err := b.st.PutAccount(ctx, a); err != nil {
		b.log.Error("store account", "user", jidmap.OwnerKey(b.domain, bare), "err", err)
		return false, &stanza.Error{Condition: stanza.InternalServerError, Type: stanza.ErrWait, Text: "could not store your registration now; try again"}
	}
	if u != nil {
		b.stopUser(u)
	}
	nu := b.newUser(a)
	if u != nil {
		nu.inheritOnline(u)
	}
	b.mu.Lock()
	b.users[bare] = nu
	b.mu.Unlock()
	b.startUser(nu)
	b.populateRoster(nu)
	b.log.Info("user registered", "user", nu.owner, "again", u != nil)
	return a.Subscription != subTo && a.Subscription != subBoth, nil
}

// restartUser stores a changed account and restarts the user's session
// with it (settings changes).
func (b *Bridge) restartUser(ctx context.Context, u *user, a *store.Account) error {
	if err := b.st.PutAccount(ctx, a); err != nil {
		return err
	}
	b.stopUser(u)
	nu := b.newUser(a)
	nu.inheritOnline(u)
	b.mu.Lock()
	current := b.users[u.jid] == u
	if current {
		b.users[u.jid] = nu
	}
	b.mu.Unlock()
	if !current {
		return errors.New("the registration changed meanwhile")
	}
	b.startUser(nu)
	return nil
}

func hasOption(f legacy.Field, v string) bool {
	for _, o := range f.Options {
		if o.Value == v {
			return true
		}
	}
	return false
}

// parseRegistration reads the submitted fields: from the data form when
// there is one (it wins, XEP-0077 §6), else from the plain elements.
func parseRegistration(q *stanza.Element) (map[string]string, *stanza.Error) {
	fields := map[string]string{}
	if x := q.Child(nsData, "x"); x != nil {
		if t := x.Attr("type"); t != "submit" && t != "" {
			return nil, stanza.NewError(stanza.BadRequest, "the registration form must be of type submit")
		}
		for _, f := range x.Children() {
			if f.Local != "field" || f.Space != nsData {
				continue
			}
			v := f.Attr("var")
			if v == "FORM_TYPE" {
				if ft := f.ChildText(nsData, "value"); ft != nsRegister {
					return nil, stanza.NewError(stanza.BadRequest, "unexpected FORM_TYPE "+ft)
				}
				continue
			}
			var vals []string
			for _, val := range f.Children() {
				if val.Local == "value" {
					vals = append(vals, val.Text())
				}
			}
			fields[v] = strings.Join(vals, "\n")
		}
		return fields, nil
	}
	for _, c := range q.Children() {
		if c.Space == nsRegister && c.Local != "instructions" && c.Local != "registered" {
			fields[c.Local] = c.Text()
		}
	}
	return fields, nil
}

// sealFields encrypts secret fields with the vault, bound to the user and
// field name.
func (b *Bridge) sealFields(bare string, fields map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(fields))
	for _, f := range b.info.Fields {
		v, ok := fields[f.Var]
		if !ok {
			continue
		}
		if f.Secret || f.Type == legacy.TextPrivate {
			if b.opts.Vault == nil {
				return nil, errors.New("no vault configured for secret fields")
			}
			s, err := b.opts.Vault.Seal(b.domain+"|"+bare+"|"+f.Var, v)
			if err != nil {
				return nil, err
			}
			v = s
		}
		out[f.Var] = v
	}
	return out, nil
}

// openFields decrypts an account's fields for the adapter.
func (b *Bridge) openFields(a *store.Account) (map[string]string, error) {
	out := make(map[string]string, len(a.Fields))
	for k, v := range a.Fields {
		out[k] = v
	}
	for _, f := range b.info.Fields {
		v, ok := a.Fields[f.Var]
		if !ok || !(f.Secret || f.Type == legacy.TextPrivate) {
			continue
		}
		if b.opts.Vault == nil {
			return nil, errors.New("no vault configured for secret fields")
		}
		pt, err := b.opts.Vault.Open(b.domain+"|"+a.JID+"|"+f.Var, v)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.Var, err)
		}
		out[f.Var] = pt
	}
	return out, nil
}

// unregister stops the user's session and deletes everything stored for
// them. Contacts the user subscribed to are told to go away.
func (b *Bridge) unregister(ctx context.Context, u *user) error {
	b.stopUser(u)
	contacts, _ := b.st.ListContacts(ctx, b.domain, u.jid)
	unsent := b.queuedOut(ctx, u)
	if err := b.st.DeleteAccount(ctx, b.domain, u.jid); err != nil {
		return err
	}
	// Messages still queued are not sent: each sender hears of it.
	gone := &stanza.Error{Type: stanza.ErrCancel, Condition: stanza.RegistrationRequired,
		Text: "you unregistered from " + b.domain + " before this message could be sent"}
	for _, e := range unsent {
		b.failOut(ctx, e, gone)
	}
	b.mu.Lock()
	if b.users[u.jid] == u {
		delete(b.users, u.jid)
	}
	b.mu.Unlock()
	// From every contact, as from the gateway (XEP-0100 §4.3): unsubscribe
	// withdraws the contact's subscription request (or subscription), which
	// the server would otherwise show the user again at every login;
	// unsubscribed ends the user's.
	for _, c := range contacts {
		if from, err := b.contactJID(legacy.ChatID(c.LegacyID)); err == nil {
			b.reply(ctx, presence("unsubscribe", from, u.jid))
			b.reply(ctx, presence("unsubscribed", from, u.jid))
			b.reply(ctx, presence("unavailable", from, u.jid))
		}
	}
	b.removeRosterItems(u, contacts)
	b.log.Info("user unregistered", "user", u.owner)
	return nil
}

// removeRosterItems takes the user's legacy contacts out of their roster
// once they unregistered, when the server grants privileged roster sets
// (XEP-0356): the gateway wrote those items, so it removes them. Without
// the privilege the presences of unregister end the subscriptions and
// the items are the client's to remove (XEP-0100 §4.3). The gateway's
// own item stays: it is how the user finds the gateway again. Best
// effort, in the background.
func (b *Bridge) removeRosterItems(u *user, contacts []*store.Contact) {
	j, err := jid.Parse(u.jid)
	if err != nil || len(contacts) == 0 {
		return
	}
	if g := b.currentGrant(j.Domainpart()); !g.rosterSet() || b.setFails(g) {
		return
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := b.link.WaitUp(ctx)
		if err != nil {
			return
		}
		for _, c := range contacts {
			item := b.rosterItemElement(rosterItem{jid: c.Localpart + "@" + b.domain, remove: true})
			if _, err := conn.Request(ctx, b.rosterIQ(u, "set", item)); err != nil {
				b.log.Info("roster items of an unregistered user not removed", "user", u.owner, "err", err)
				return
			}
		}
	}()
}

// checkAccountFree refuses a legacy account another XMPP user of this
// bridge already registered: sessions are keyed by (bare JID, network,
// legacy account), and a second user must not take over the first one's
// session (same bot token, mailbox or number). An account id equal to the
// network's name is the "no personal account" id (the default without a
// Registrar, echo's shared id) and is never exclusive. The store is asked
// as well as memory, so accounts registered through another instance
// sharing the store count too. Callers hold b.regMu.
func (b *Bridge) checkAccountFree(ctx context.Context, bare string, acctID legacy.AccountID) *stanza.Error {
	if acctID == "" || string(acctID) == b.info.Name {
		return nil
	}
	taken := stanza.Error{Condition: stanza.Conflict, Type: stanza.ErrCancel,
		Text: "this " + b.info.DisplayName + " account is already registered with " + b.domain + " by another XMPP user; it must unregister first (or an admin can delete that registration)"}
	b.mu.Lock()
	users := b.snapshotUsers()
	b.mu.Unlock()
	for _, o := range users {
		o.mu.Lock()
		same := o.jid != bare && o.acct != nil && o.acct.LegacyID == string(acctID)
		o.mu.Unlock()
		if same {
			b.log.Info("registration refused: legacy account already registered by another user")
			return &taken
		}
	}
	accts, err := b.st.ListAccounts(ctx, b.domain)
	if err != nil && !b.skipCorrupt(err) { // a corrupt record is not known to hold acctID
		b.log.Error("registration: list accounts", "err", err)
		return &stanza.Error{Condition: stanza.InternalServerError, Type: stanza.ErrWait, Text: "could not check your registration now; try again"}
	}
	for _, a := range accts {
		if a.JID != bare && a.LegacyID == string(acctID) {
			b.log.Info("registration refused: legacy account already registered by another user")
			return &taken
		}
	}
	return nil
}

// maxUnsentTold bounds the queued messages whose senders unregister tells.
const maxUnsentTold = 1000

// queuedOut returns the messages in u's outbox, oldest first (at most
// maxUnsentTold; the session is stopped, so none is being sent).
func (b *Bridge) queuedOut(ctx context.Context, u *user) []*outboxEntry {
	q := store.Queue{Bridge: b.domain, JID: u.jid, Kind: store.Outbox}
	var out []*outboxEntry
	after := ""
	for len(out) < maxUnsentTold {
		entries, err := b.st.Read(ctx, q, after, min(256, maxUnsentTold-len(out)))
		if err != nil {
			b.log.Warn("read the outbox of a user unregistering", "user", u.owner, "err", err)
			return out
		}
		for _, ent := range entries {
			var e outboxEntry
			if json.Unmarshal(ent.Payload, &e) == nil && e.From != "" {
				out = append(out, &e)
			}
		}
		if len(entries) == 0 {
			return out
		}
		after = entries[len(entries)-1].ID
	}
	return out
}
