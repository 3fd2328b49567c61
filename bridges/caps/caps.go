// Package caps computes XEP-0115 entity capabilities: the verification
// string ("ver") that an entity puts in the <c/> element of its presence,
// from the identities, features and extended service discovery forms
// (XEP-0128) of its disco#info answer.
//
// The algorithm is XEP-0115 §5.1 with the sha-1 hash (the one every client
// implements): the identities sorted by category, type, xml:lang and name
// as "category/type/lang/name<", then the features sorted, each followed by
// "<", then every extended form sorted by its FORM_TYPE value: the
// FORM_TYPE value and "<", then the fields sorted by var, each as "var<"
// followed by its values sorted, each followed by "<". Sorting is by plain
// bytes (i;octet). The string is hashed with SHA-1 and base64-encoded with
// padding.
//
// The package is pure: no I/O, no XML. Callers build Info from what they
// answer (or, to check a peer, from what they received).
package caps

import (
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
)

// Namespaces and the hash name of XEP-0115.
const (
	// NS is the namespace of the <c/> element and the caps feature.
	NS = "http://jabber.org/protocol/caps"
	// Hash is the hash function name put in the hash attribute.
	Hash = "sha-1"
	// FormType is the var of the hidden field naming a form's type.
	FormType = "FORM_TYPE"
)

// Identity is one disco#info identity.
type Identity struct {
	Category, Type, Lang, Name string
}

// Field is one field of an extended form: its var and values.
type Field struct {
	Var    string
	Values []string
}

// Form is one extended service discovery form (XEP-0128). Its FORM_TYPE
// field must be among Fields.
type Form struct {
	Fields []Field
}

// Info is what an entity answers to disco#info.
type Info struct {
	Identities []Identity
	Features   []string
	Forms      []Form
}

// formType returns the FORM_TYPE values of f.
func (f Form) formType() ([]string, bool) {
	for _, fl := range f.Fields {
		if fl.Var == FormType {
			return fl.Values, true
		}
	}
	return nil, false
}

func (id Identity) key() string {
	return id.Category + "/" + id.Type + "/" + id.Lang + "/" + id.Name
}

// Validate reports the problems XEP-0115 §5.4 makes fatal for a disco#info
// answer used for caps: no identity, an identity without category or type,
// duplicate identities (same category, type, lang and name), duplicate
// features, more than one form with the same FORM_TYPE, a FORM_TYPE with
// other than one value, and duplicate fields in a form. Forms without a
// FORM_TYPE are allowed (they are ignored by the hash).
func (in Info) Validate() error {
	if len(in.Identities) == 0 {
		return fmt.Errorf("caps: at least one identity is required")
	}
	seen := map[string]bool{}
	for _, id := range in.Identities {
		if id.Category == "" || id.Type == "" {
			return fmt.Errorf("caps: identity %q lacks a category or type", id.key())
		}
		if seen[id.key()] {
			return fmt.Errorf("caps: duplicate identity %q", id.key())
		}
		seen[id.key()] = true
	}
	feats := map[string]bool{}
	for _, f := range in.Features {
		if f == "" {
			return fmt.Errorf("caps: empty feature")
		}
		if feats[f] {
			return fmt.Errorf("caps: duplicate feature %q", f)
		}
		feats[f] = true
	}
	types := map[string]bool{}
	for _, form := range in.Forms {
		ft, ok := form.formType()
		if !ok {
			continue
		}
		if len(ft) != 1 {
			return fmt.Errorf("caps: a FORM_TYPE has %d values, want 1", len(ft))
		}
		if types[ft[0]] {
			return fmt.Errorf("caps: duplicate form %q", ft[0])
		}
		types[ft[0]] = true
		vars := map[string]bool{}
		for _, fl := range form.Fields {
			if vars[fl.Var] {
				return fmt.Errorf("caps: form %q: duplicate field %q", ft[0], fl.Var)
			}
			vars[fl.Var] = true
		}
	}
	return nil
}

// String returns the XEP-0115 §5.1 verification string S (before hashing).
// in must be valid (see Validate).
func (in Info) String() string {
	var b strings.Builder
	ids := slices.Clone(in.Identities)
	slices.SortFunc(ids, func(a, b Identity) int {
		for _, c := range [...][2]string{{a.Category, b.Category}, {a.Type, b.Type}, {a.Lang, b.Lang}, {a.Name, b.Name}} {
			if r := strings.Compare(c[0], c[1]); r != 0 {
				return r
			}
		}
		return 0
	})
	for _, id := range ids {
		b.WriteString(id.key())
		b.WriteByte('<')
	}
	feats := slices.Clone(in.Features)
	slices.Sort(feats)
	for _, f := range feats {
		b.WriteString(f)
		b.WriteByte('<')
	}
	type typed struct {
		ft   string
		form Form
	}
	var forms []typed
	for _, f := range in.Forms {
		if ft, ok := f.formType(); ok && len(ft) == 1 {
			forms = append(forms, typed{ft[0], f})
		}
	}
	slices.SortFunc(forms, func(a, b typed) int { return strings.Compare(a.ft, b.ft) })
	for _, f := range forms {
		b.WriteString(f.ft)
		b.WriteByte('<')
		fields := slices.Clone(f.form.Fields)
		slices.SortFunc(fields, func(a, b Field) int { return strings.Compare(a.Var, b.Var) })
		for _, fl := range fields {
			if fl.Var == FormType {
				continue
			}
			b.WriteString(fl.Var)
			b.WriteByte('<')
			vals := slices.Clone(fl.Values)
			slices.Sort(vals)
			for _, v := range vals {
				b.WriteString(v)
				b.WriteByte('<')
			}
		}
	}
	return b.String()
}

// Ver validates in and returns its sha-1 verification string, the value
// of the ver attribute.
func (in Info) Ver() (string, error) {
	if err := in.Validate(); err != nil {
		return "", err
	}
	sum := sha1.Sum([]byte(in.String()))
	return base64.StdEncoding.EncodeToString(sum[:]), nil
}
