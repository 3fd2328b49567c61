package caps_test

import (
	"math/rand/v2"
	"strings"
	"testing"
	"testing/quick"

	"github.com/jabbergate/jabbergate/bridges/caps"
)

// simple is the example of XEP-0115 §5.2.
var simple = caps.Info{
	Identities: []caps.Identity{{Category: "client", Type: "pc", Name: "Exodus 0.9.1"}},
	Features: []string{
		"http://jabber.org/protocol/caps",
		"http://jabber.org/protocol/disco#info",
		"http://jabber.org/protocol/disco#items",
		"http://jabber.org/protocol/muc",
	},
}

// complex is the example of XEP-0115 §5.3, with an extended form.
var complex = caps.Info{
	Identities: []caps.Identity{
		{Category: "client", Type: "pc", Lang: "en", Name: "Psi 0.11"},
		{Category: "client", Type: "pc", Lang: "el", Name: "Ψ 0.11"},
	},
	Features: []string{
		"http://jabber.org/protocol/caps",
		"http://jabber.org/protocol/disco#info",
		"http://jabber.org/protocol/disco#items",
		"http://jabber.org/protocol/muc",
	},
	Forms: []caps.Form{{Fields: []caps.Field{
		{Var: "FORM_TYPE", Values: []string{"urn:xmpp:dataforms:softwareinfo"}},
		{Var: "ip_version", Values: []string{"ipv4", "ipv6"}},
		{Var: "os", Values: []string{"Mac"}},
		{Var: "os_version", Values: []string{"10.5.1"}},
		{Var: "software", Values: []string{"Psi"}},
		{Var: "software_version", Values: []string{"0.11"}},
	}}},
}

func TestSpecVectors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   caps.Info
		s    string
		ver  string
	}{
		{"simple", simple,
			"client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<",
			"QgayPKawpkPSDYmwT/WM94uAlu0="},
		{"complex", complex,
			"client/pc/el/Ψ 0.11<client/pc/en/Psi 0.11<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<urn:xmpp:dataforms:softwareinfo<ip_version<ipv4<ipv6<os<Mac<os_version<10.5.1<software<Psi<software_version<0.11<",
			"q07IKJEyjvHSyhy//CH0CxmKi8w="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s := tc.in.String(); s != tc.s {
				t.Errorf("S =\n%s\nwant\n%s", s, tc.s)
			}
			ver, err := tc.in.Ver()
			if err != nil || ver != tc.ver {
				t.Errorf("ver = %q, %v; want %q", ver, err, tc.ver)
			}
		})
	}
}

// shuffled returns in with every list (identities, features, forms,
// fields, values) in a random order.
func shuffled(r *rand.Rand, in caps.Info) caps.Info {
	out := caps.Info{
		Identities: append([]caps.Identity(nil), in.Identities...),
		Features:   append([]string(nil), in.Features...),
	}
	r.Shuffle(len(out.Identities), func(i, j int) { out.Identities[i], out.Identities[j] = out.Identities[j], out.Identities[i] })
	r.Shuffle(len(out.Features), func(i, j int) { out.Features[i], out.Features[j] = out.Features[j], out.Features[i] })
	for _, f := range in.Forms {
		var nf caps.Form
		for _, fl := range f.Fields {
			vals := append([]string(nil), fl.Values...)
			r.Shuffle(len(vals), func(i, j int) { vals[i], vals[j] = vals[j], vals[i] })
			nf.Fields = append(nf.Fields, caps.Field{Var: fl.Var, Values: vals})
		}
		r.Shuffle(len(nf.Fields), func(i, j int) { nf.Fields[i], nf.Fields[j] = nf.Fields[j], nf.Fields[i] })
		out.Forms = append(out.Forms, nf)
	}
	r.Shuffle(len(out.Forms), func(i, j int) { out.Forms[i], out.Forms[j] = out.Forms[j], out.Forms[i] })
	return out
}

// TestShuffleKeepsVer: the order in which identities, features, forms,
// fields and values are given never changes ver.
func TestShuffleKeepsVer(t *testing.T) {
	second := complex
	second.Forms = append(append([]caps.Form(nil), complex.Forms...), caps.Form{Fields: []caps.Field{
		{Var: "FORM_TYPE", Values: []string{"urn:xmpp:reactions:0:restrictions"}},
		{Var: "max_reactions_per_user", Values: []string{"1"}},
		{Var: "allowlist", Values: []string{"👍", "❤", "😂"}},
	}})
	for _, base := range []caps.Info{simple, complex, second} {
		want, err := base.Ver()
		if err != nil {
			t.Fatal(err)
		}
		prop := func(seed1, seed2 uint64) bool {
			got, err := shuffled(rand.New(rand.NewPCG(seed1, seed2)), base).Ver()
			return err == nil && got == want
		}
		if err := quick.Check(prop, &quick.Config{MaxCount: 500}); err != nil {
			t.Error(err)
		}
	}
}

// TestDifferentSetsDifferentVer: adding a feature or changing an identity
// changes ver.
func TestDifferentSetsDifferentVer(t *testing.T) {
	base, _ := simple.Ver()
	more := simple
	more.Features = append(append([]string(nil), simple.Features...), "urn:xmpp:ping")
	other := simple
	other.Identities = []caps.Identity{{Category: "client", Type: "phone", Name: "Exodus 0.9.1"}}
	for _, in := range []caps.Info{more, other} {
		if v, err := in.Ver(); err != nil || v == base {
			t.Errorf("ver %q, %v: want a different ver than %q", v, err, base)
		}
	}
}

func TestInvalidRejected(t *testing.T) {
	feats := []string{"a", "b"}
	id := caps.Identity{Category: "client", Type: "pc"}
	ft := func(v ...string) caps.Field { return caps.Field{Var: "FORM_TYPE", Values: v} }
	for name, in := range map[string]caps.Info{
		"no identity":        {Features: feats},
		"identity no type":   {Identities: []caps.Identity{{Category: "client"}}, Features: feats},
		"duplicate identity": {Identities: []caps.Identity{id, {Category: "gateway", Type: "sms"}, id}, Features: feats},
		"duplicate feature":  {Identities: []caps.Identity{id}, Features: []string{"a", "b", "a"}},
		"empty feature":      {Identities: []caps.Identity{id}, Features: []string{""}},
		"duplicate form": {Identities: []caps.Identity{id}, Forms: []caps.Form{
			{Fields: []caps.Field{ft("urn:x")}}, {Fields: []caps.Field{ft("urn:x")}},
		}},
		"two FORM_TYPE values": {Identities: []caps.Identity{id}, Forms: []caps.Form{{Fields: []caps.Field{ft("urn:x", "urn:y")}}}},
		"duplicate field": {Identities: []caps.Identity{id}, Forms: []caps.Form{{Fields: []caps.Field{
			ft("urn:x"), {Var: "f", Values: []string{"1"}}, {Var: "f", Values: []string{"2"}},
		}}}},
	} {
		if v, err := in.Ver(); err == nil {
			t.Errorf("%s: ver %q, want an error", name, v)
		} else if !strings.HasPrefix(err.Error(), "caps: ") {
			t.Errorf("%s: error %q lacks the package prefix", name, err)
		}
	}
	// Same category/type with different languages is not a duplicate.
	if _, err := complex.Ver(); err != nil {
		t.Errorf("two languages rejected: %v", err)
	}
}

// TestFormWithoutFormTypeIgnored: XEP-0115 §5.4 — a form without
// FORM_TYPE does not take part in the hash.
func TestFormWithoutFormTypeIgnored(t *testing.T) {
	in := simple
	in.Forms = []caps.Form{{Fields: []caps.Field{{Var: "x", Values: []string{"y"}}}}}
	got, err := in.Ver()
	if err != nil || got != "QgayPKawpkPSDYmwT/WM94uAlu0=" {
		t.Errorf("ver = %q, %v", got, err)
	}
}
