package xep0106

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// XEP-0106 §5 examples (localparts only) and the protocol checklist's.
var examples = []struct{ in, esc string }{
	// §5.1 table.
	{`space cadet`, `space\20cadet`},
	{`call me "ishmael"`, `call\20me\20\22ishmael\22`},
	{`at&t guy`, `at\26t\20guy`},
	{`d'artagnan`, `d\27artagnan`},
	{`/.fanboy`, `\2f.fanboy`},
	{`::foo::`, `\3a\3afoo\3a\3a`},
	{`<foo>`, `\3cfoo\3e`},
	{`user@host`, `user\40host`},
	// Examples 9-11: the spec's table shows \5c for these backslashes, but
	// its business rules escape a backslash only where it begins an escape
	// sequence; we follow the rules (see the package doc and
	// TestUnescapeSpecTableForms).
	{`c:\net`, `c\3a\net`},
	{`c:\\net`, `c\3a\\net`},
	{`c:\cool stuff`, `c\3a\cool\20stuff`},
	{`c:\5commas`, `c\3a\5c5commas`},
	// §5.2 email.
	{`here's_a_wild_&_/cr%zy/_address`, `here\27s_a_wild_\26_\2fcr%zy\2f_address`},
	// §5.5 IMPS.
	{`here's_a_wild_&_/cr%zy/_address_for:<wv>("IMPS")`, `here\27s_a_wild_\26_\2fcr%zy\2f_address_for\3a\3cwv\3e(\22IMPS\22)`},
	{`\3and\2is\5cool`, `\5c3and\2is\5c5cool`},
	// §5.6 LDAP (RFC 2253 UTF-8 representation, \E9 is not an escape).
	{`CN=D'Artagnan Saint-Andr\E9,O=Example & Company, Inc.,DC=example,DC=com`,
		`CN=D\27Artagnan\20Saint-Andr\E9,O=Example\20\26\20Company,\20Inc.,DC=example,DC=com`},
	// §5.7 IRC.
	{`somenick!user"&'/:<>\3address`, `somenick!user\22\26\27\2f\3a\3c\3e\5c3address`},
	// §4.3 exceptions: not modified.
	{`\2plus\2is\4`, `\2plus\2is\4`},
	{`foo\bar`, `foo\bar`},
	{`foob\41r`, `foob\41r`},
	// Others.
	{``, ``},
	{`+15551234567`, `+15551234567`},
	{`alice@gmail.com`, `alice\40gmail.com`},
	{`\5c`, `\5c5c`},
	{`\`, `\`},
	{`a\`, `a\`},
	{`\5`, `\5`},
	{`\5C`, `\5C`},
	{`ünïcødé & co`, `ünïcødé\20\26\20co`},
}

func TestEscape(t *testing.T) {
	for _, tc := range examples {
		if got := Escape(tc.in); got != tc.esc {
			t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.esc)
		}
	}
}

func TestUnescape(t *testing.T) {
	for _, tc := range examples {
		if got := Unescape(tc.esc); got != tc.in {
			t.Errorf("Unescape(%q) = %q, want %q", tc.esc, got, tc.in)
		}
	}
}

// The escaped forms printed in the spec's table for examples 9 to 11 read
// back to the same user input.
func TestUnescapeSpecTableForms(t *testing.T) {
	for esc, want := range map[string]string{
		`c\3a\5cnet`:                    `c:\net`,
		`c\3a\5c\5cnet`:                 `c:\\net`,
		`c\3a\5ccool\20stuff`:           `c:\cool stuff`,
		`treville\40musketeers.lit`:     `treville@musketeers.lit`,
		`d\27artagnan\20\3cd\40a.fr\3e`: `d'artagnan <d@a.fr>`, // panics mellium's jid.Unescape
	} {
		if got := Unescape(esc); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", esc, got, want)
		}
	}
}

func TestUnescapeLeavesOthers(t *testing.T) {
	for _, s := range []string{`\`, `\2`, `\2F`, `\3A`, `\41`, `\zz`, `\\`, `abc\`, `\5C5c`, `\ 20`} {
		if got := Unescape(s); got != s {
			t.Errorf("Unescape(%q) = %q, want unchanged", s, got)
		}
	}
}

func TestEscapeTrimsSpaces(t *testing.T) {
	for in, want := range map[string]string{
		" bob":      "bob",
		"bob ":      "bob",
		"  b o b  ": `b\20o\20b`,
		"   ":       "",
		"\tbob\t":   "\tbob\t", // only U+0020 is trimmed
	} {
		got := Escape(in)
		if got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
		if strings.HasPrefix(got, `\20`) || strings.HasSuffix(got, `\20`) {
			t.Errorf("Escape(%q) = %q starts or ends with \\20", in, got)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, s := range []string{
		`a\20b`, `\\20`, `\\\20`, `\20\`, `x\5c5cy`, `\2\40`, `"&'/:<>@\`, `\"`, `a b\`,
		`\5c\5c\5c`, `\3a\3A\3a`, `@@@`, `日本語 テキスト`,
	} {
		if got := Unescape(Escape(s)); got != s {
			t.Errorf("Unescape(Escape(%q)) = %q (escaped %q)", s, got, Escape(s))
		}
	}
}

// checkEscaped verifies that e holds no disallowed character and no \20 at
// either end.
func checkEscaped(t *testing.T, in, e string) {
	t.Helper()
	if strings.ContainsAny(e, ` "&'/:<>@`) {
		t.Fatalf("Escape(%q) = %q contains a disallowed character", in, e)
	}
	if strings.HasPrefix(e, `\20`) || strings.HasSuffix(e, `\20`) {
		t.Fatalf("Escape(%q) = %q starts or ends with \\20", in, e)
	}
}

func FuzzUnescape(f *testing.F) {
	for _, tc := range examples {
		f.Add(tc.esc)
	}
	f.Add(`d\27artagnan\20\3cd\40a.fr\3e`)
	f.Add(`\`)
	f.Add(`\5`)
	f.Fuzz(func(t *testing.T, s string) {
		u := Unescape(s) // must not panic
		if len(u) > len(s) {
			t.Fatalf("Unescape(%q) = %q is longer than its input", s, u)
		}
		if !strings.Contains(s, `\`) && u != s {
			t.Fatalf("Unescape(%q) = %q changed a string without backslash", s, u)
		}
		if utf8.ValidString(s) && !utf8.ValidString(u) {
			t.Fatalf("Unescape(%q) = %q is not valid UTF-8", s, u)
		}
	})
}

func FuzzRoundTrip(f *testing.F) {
	for _, tc := range examples {
		f.Add(tc.in)
	}
	f.Add(`\\20`)
	f.Add(` lead and trail `)
	f.Fuzz(func(t *testing.T, s string) {
		e := Escape(s)
		checkEscaped(t, s, e)
		if Escape(strings.Trim(s, " ")) != e {
			t.Fatalf("Escape(%q) depends on leading/trailing spaces", s)
		}
		if strings.HasPrefix(s, " ") || strings.HasSuffix(s, " ") {
			return
		}
		if got := Unescape(e); got != s {
			t.Fatalf("Unescape(Escape(%q)) = %q (escaped %q)", s, got, e)
		}
	})
}
