package stanza

// Condition is an RFC 6120 §8.3.3 defined stanza error condition.
type Condition string

// The defined conditions of RFC 6120 §8.3.3.
const (
	BadRequest            Condition = "bad-request"
	Conflict              Condition = "conflict"
	FeatureNotImplemented Condition = "feature-not-implemented"
	Forbidden             Condition = "forbidden"
	Gone                  Condition = "gone"
	InternalServerError   Condition = "internal-server-error"
	ItemNotFound          Condition = "item-not-found"
	JIDMalformed          Condition = "jid-malformed"
	NotAcceptable         Condition = "not-acceptable"
	NotAllowed            Condition = "not-allowed"
	NotAuthorized         Condition = "not-authorized"
	PolicyViolation       Condition = "policy-violation"
	RecipientUnavailable  Condition = "recipient-unavailable"
	Redirect              Condition = "redirect"
	RegistrationRequired  Condition = "registration-required"
	RemoteServerNotFound  Condition = "remote-server-not-found"
	RemoteServerTimeout   Condition = "remote-server-timeout"
	ResourceConstraint    Condition = "resource-constraint"
	ServiceUnavailable    Condition = "service-unavailable"
	SubscriptionRequired  Condition = "subscription-required"
	UndefinedCondition    Condition = "undefined-condition"
	UnexpectedRequest     Condition = "unexpected-request"
)

// Error types of RFC 6120 §8.3.2.
const (
	ErrAuth     = "auth"
	ErrCancel   = "cancel"
	ErrContinue = "continue"
	ErrModify   = "modify"
	ErrWait     = "wait"
)

// defaultType is the error type RFC 6120 §8.3.3 gives in its examples for
// each condition.
var defaultType = map[Condition]string{
	BadRequest:            ErrModify,
	Conflict:              ErrCancel,
	FeatureNotImplemented: ErrCancel,
	Forbidden:             ErrAuth,
	Gone:                  ErrCancel,
	InternalServerError:   ErrCancel,
	ItemNotFound:          ErrCancel,
	JIDMalformed:          ErrModify,
	NotAcceptable:         ErrModify,
	NotAllowed:            ErrCancel,
	NotAuthorized:         ErrAuth,
	PolicyViolation:       ErrModify,
	RecipientUnavailable:  ErrWait,
	Redirect:              ErrModify,
	RegistrationRequired:  ErrAuth,
	RemoteServerNotFound:  ErrCancel,
	RemoteServerTimeout:   ErrWait,
	ResourceConstraint:    ErrWait,
	ServiceUnavailable:    ErrCancel,
	SubscriptionRequired:  ErrAuth,
	UndefinedCondition:    ErrCancel,
	UnexpectedRequest:     ErrWait,
}

// legacyCode is the XEP-0086 code attribute, which XEP-0077 requires
// services to keep sending for old clients.
var legacyCode = map[Condition]string{
	BadRequest:            "400",
	Conflict:              "409",
	FeatureNotImplemented: "501",
	Forbidden:             "403",
	Gone:                  "302",
	InternalServerError:   "500",
	ItemNotFound:          "404",
	JIDMalformed:          "400",
	NotAcceptable:         "406",
	NotAllowed:            "405",
	NotAuthorized:         "401",
	RecipientUnavailable:  "404",
	Redirect:              "302",
	RegistrationRequired:  "407",
	RemoteServerNotFound:  "404",
	RemoteServerTimeout:   "504",
	ResourceConstraint:    "500",
	ServiceUnavailable:    "503",
	SubscriptionRequired:  "407",
	UndefinedCondition:    "500",
	UnexpectedRequest:     "400",
}

// Error is a stanza error: a condition, its type, a human-readable text and
// an optional application-specific child (for example the legacy network's
// own error code).
type Error struct {
	Type      string // auth, cancel, continue, modify or wait; "" = the condition's default
	Condition Condition
	Text      string
	App       *Element
}

// NewError returns an Error of the condition's default type.
func NewError(c Condition, text string) *Error {
	return &Error{Condition: c, Text: text}
}

// Error implements error.
func (e *Error) Error() string {
	if e.Text != "" {
		return string(e.Condition) + ": " + e.Text
	}
	return string(e.Condition)
}

// Element returns the <error/> element.
func (e *Error) Element() *Element {
	typ := e.Type
	if typ == "" {
		typ = defaultType[e.Condition]
		if typ == "" {
			typ = ErrCancel
		}
	}
	el := New(NSComponent, "error", "type", typ, "code", legacyCode[e.Condition])
	el.Add(New(NSStanzas, string(e.Condition)))
	if e.Text != "" {
		t := New(NSStanzas, "text")
		t.Attrs = append(t.Attrs, Attr{Space: NSXML, Local: "lang", Value: "en"})
		el.Add(t.AddText(e.Text))
	}
	el.Add(e.App)
	return el
}

// ParseError reads the <error/> child of an error stanza. It returns nil when
// st carries none.
func ParseError(st *Element) *Error {
	el := st.Child("", "error")
	if el == nil {
		return nil
	}
	e := &Error{Type: el.Attr("type")}
	for _, c := range el.Children() {
		if c.Space != NSStanzas {
			if e.App == nil {
				e.App = c
			}
			continue
		}
		if c.Local == "text" {
			e.Text = c.Text()
		} else if e.Condition == "" {
			e.Condition = Condition(c.Local)
		}
	}
	return e
}

// ErrorReply builds the error answer to st: same name and id, to and from
// swapped, type='error'. It returns nil when st is itself an error, because
// an error must never be answered with an error (RFC 6120 §8.3.1).
func ErrorReply(st *Element, e *Error) *Element {
	if st.Type() == "error" {
		return nil
	}
	r := New(NSComponent, st.Local, "type", "error", "id", st.ID(), "from", st.To(), "to", st.From())
	r.Add(e.Element())
	return r
}

// Result builds the type='result' answer to an IQ, with optional payload.
func Result(iq *Element, payload *Element) *Element {
	// One allocation: the iq, its attributes and the payload's node.
	x := &struct {
		e Element
		a [4]Attr
		n [1]Node
	}{}
	r := &x.e
	r.Space, r.Local, r.Attrs = NSComponent, "iq", x.a[:0]
	r.SetAttr("type", "result").SetAttr("id", iq.ID()).SetAttr("from", iq.To()).SetAttr("to", iq.From())
	if payload != nil {
		x.n[0].El = payload
		r.Nodes = x.n[:1:1]
	}
	return r
}
