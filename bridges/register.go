package bridges

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
		// XEP-0100 §4.1.1: ask for the user's presence, once.
		b.reply(ctx, presence("subscribe", b.domain, bare))
	}
	return nil, nil
}

// register checks and stores a registration and (re)starts the user's
// session. It reports whether the gateway should ask for the user's
// presence subscription.
func (b *Bridge) register(ctx context.Context, q *stanza.Element, from jid.JID) (bool, *stanza.Error) {
	bare := from.Bare().String()
	if !b.allowed(from.Domainpart()) {
		return false, stanza.NewError(stanza.Forbidden, "users of "+from.Domainpart()+" may not register with this gateway")
	}
	fields, serr := parseRegistration(q)
	if serr != nil {
		return false, serr
	}
	u := b.getUser(bare)
	var old map[string]string
	if u != nil {
		if old, _ = b.openFields(u.acct); old == nil {
			old = map[string]string{}
		}
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
		if v == "" && f.Required {
			label := f.Label
			if label == "" {
				label = f.Var
			}
			return false, &stanza.Error{Condition: stanza.NotAcceptable, Type: stanza.ErrModify, Text: "the field " + label + " (" + f.Var + ") is required"}
		}
		if f.Type == legacy.ListSingle && v != "" && !hasOption(f, v) {
			return false, &stanza.Error{Condition: stanza.NotAcceptable, Type: stanza.ErrModify, Text: fmt.Sprintf("%q is not an allowed value of %s", v, f.Var)}
		}
		if v != "" {
			clean[f.Var] = v
		}
	}
	acctID := legacy.AccountID(b.info.Name)
	if r, ok := b.opts.Network.(legacy.Registrar); ok {
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		id, err := r.Register(rctx, clean)
		cancel()
		if err != nil {
			b.log.Info("registration refused", "err", err)
			se := stanzaError(err)
			if errors.Is(err, legacy.ErrUnavailable) || !legacy.IsPermanent(err) {
				se = &stanza.Error{Condition: stanza.RemoteServerTimeout, Type: stanza.ErrWait, Text: "could not reach " + b.info.DisplayName + " to check your registration: " + err.Error()}
			} else if errors.Is(err, legacy.ErrUnauthorized) {
				se = &stanza.Error{Condition: stanza.NotAuthorized, Type: stanza.ErrAuth, Text: b.info.DisplayName + " rejected these credentials"}
			}
			return false, se
		}
		acctID = id
	}
	sealed, err := b.sealFields(bare, clean)
	if err != nil {
		b.log.Error("seal credentials", "err", err)
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
	if err := b.st.PutAccount(ctx, a); err != nil {
		b.log.Error("store account", "err", err)
		return false, &stanza.Error{Condition: stanza.InternalServerError, Type: stanza.ErrWait, Text: "could not store your registration now; try again"}
	}
	if u != nil {
		b.stopUser(u)
	}
	nu := b.newUser(a)
	b.mu.Lock()
	b.users[bare] = nu
	b.mu.Unlock()
	b.startUser(nu)
	b.log.Info("user registered", "user", nu.owner, "again", u != nil)
	return a.Subscription != subTo && a.Subscription != subBoth, nil
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
	if err := b.st.DeleteAccount(ctx, b.domain, u.jid); err != nil {
		return err
	}
	b.mu.Lock()
	if b.users[u.jid] == u {
		delete(b.users, u.jid)
	}
	b.mu.Unlock()
	for _, c := range contacts {
		if from, err := b.contactJID(legacy.ChatID(c.LegacyID)); err == nil {
			b.reply(ctx, presence("unsubscribed", from, u.jid))
			b.reply(ctx, presence("unavailable", from, u.jid))
		}
	}
	b.log.Info("user unregistered", "user", u.owner)
	return nil
}

// handleGatewayChat answers plain-text messages to the gateway JID, for
// clients without registration forms.
func (b *Bridge) handleGatewayChat(ctx context.Context, st *stanza.Element, from jid.JID) {
	body := strings.TrimSpace(st.ChildText("", "body"))
	if body == "" {
		return
	}
	bare := from.Bare().String()
	u := b.getUser(bare)
	var answer string
	switch strings.ToLower(strings.Fields(body)[0]) {
	case "status":
		if u == nil {
			answer = "You are not registered. Send \"register\" to register."
		} else {
			u.mu.Lock()
			answer = fmt.Sprintf("Registered. %s session: %s %s", b.info.DisplayName, u.status, u.lastErr)
			u.mu.Unlock()
		}
	case "register":
		if len(b.info.Fields) > 0 {
			answer = "Registering with " + b.info.DisplayName + " needs a form: use your client's service discovery on " + b.domain + " (XEP-0077)."
			break
		}
		if !b.allowed(from.Domainpart()) {
			answer = "Users of " + from.Domainpart() + " may not register with this gateway."
			break
		}
		subscribe, serr := b.register(ctx, stanza.New(nsRegister, "query"), from)
		if serr != nil {
			answer = "Registration failed: " + serr.Text
			break
		}
		answer = "You are registered. Add contacts as name@" + b.domain + "."
		if subscribe {
			defer b.reply(ctx, presence("subscribe", b.domain, bare))
		}
	case "unregister":
		if u == nil {
			answer = "You are not registered."
		} else if err := b.unregister(ctx, u); err != nil {
			answer = "Could not unregister now: try again."
		} else {
			answer = "You are unregistered; your data on this gateway was deleted."
		}
	default:
		answer = "Jabbergate " + b.info.DisplayName + " gateway. Commands: help, register, status, unregister."
	}
	m := stanza.New(stanza.NSComponent, "message", "type", "chat", "from", b.domain, "to", from.String())
	m.TextChild(stanza.NSComponent, "body", answer)
	b.reply(ctx, m)
}
