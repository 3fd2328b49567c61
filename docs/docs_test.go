// Package docs_test keeps the documentation in docs/ in step with the code:
// every key of configs/jabbergate.example.yaml is in configuration.md, every
// chat command of bridges/chatcmd.go is in user-guide.md, and every sentinel
// error and optional interface of package legacy is in adapters.md.
package docs_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const root = ".."

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// exampleKeys returns every key path of the example config, including
// the commented-out optional keys ("# secret_file: …"), as
// "bridges[].secret_file".
func exampleKeys(text string) []string {
	re := regexp.MustCompile(`^( *)(# )?(- +)?([a-z_]+):(?: |$)`)
	type level struct {
		indent int
		path   string
	}
	var stack []level
	var keys []string
	for line := range strings.SplitSeq(text, "\n") {
		m := re.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		indent := len(m[1])
		if m[3] != "" { // a sequence item: its keys are below "parent[]"
			for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
				stack = stack[:len(stack)-1]
			}
			parent := ""
			if len(stack) > 0 {
				parent = stack[len(stack)-1].path
			}
			stack = append(stack, level{indent, parent + "[]"})
			indent += len(m[3])
		}
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		path := m[4]
		if len(stack) > 0 {
			path = stack[len(stack)-1].path + "." + m[4]
		}
		stack = append(stack, level{indent, path})
		keys = append(keys, path)
	}
	return keys
}

func TestExampleKeys(t *testing.T) {
	got := exampleKeys("a:\n  b: 1\n  # c: 2\nl:\n  - x: 1\n    # y: 2\n    o:\n      p: \"\"\nz: 1\n")
	want := "a a.b a.c l l[].x l[].y l[].o l[].o.p z"
	if strings.Join(got, " ") != want {
		t.Fatalf("exampleKeys = %q, want %q", strings.Join(got, " "), want)
	}
}

func TestConfigurationReferenceCoversExample(t *testing.T) {
	keys := exampleKeys(read(t, filepath.Join(root, "configs/jabbergate.example.yaml")))
	if len(keys) < 30 {
		t.Fatalf("only %d keys found in the example: %q", len(keys), keys)
	}
	doc := read(t, "configuration.md")
	for _, k := range keys {
		if !strings.Contains(doc, "`"+k+"`") {
			t.Errorf("docs/configuration.md does not document `%s`", k)
		}
	}
}

func TestUserGuideListsChatCommands(t *testing.T) {
	src := read(t, filepath.Join(root, "bridges/chatcmd.go"))
	start := strings.Index(src, "func (b *Bridge) chatCommand(")
	if start < 0 {
		t.Fatal("chatCommand not found in bridges/chatcmd.go")
	}
	body := src[start:]
	if end := strings.Index(body, "\n}\n"); end > 0 {
		body = body[:end]
	}
	cmds := regexp.MustCompile(`case "([a-z]+)"`).FindAllStringSubmatch(body, -1)
	if len(cmds) < 5 {
		t.Fatalf("only %d commands found", len(cmds))
	}
	doc := read(t, "user-guide.md")
	for _, c := range append(cmds, []string{"", "help"}) {
		if !regexp.MustCompile("\\| `" + c[1] + "[ `]").MatchString(doc) {
			t.Errorf("docs/user-guide.md has no table row for the chat command %q", c[1])
		}
	}
	for _, client := range []string{"Conversations", "Gajim", "Dino", "Monal", "jabber:iq:gateway"} {
		if !strings.Contains(doc, client) {
			t.Errorf("docs/user-guide.md does not mention %s", client)
		}
	}
}

func TestAdapterGuideCoversContract(t *testing.T) {
	doc := read(t, "adapters.md")
	var src strings.Builder
	files, _ := filepath.Glob(filepath.Join(root, "legacy", "*.go"))
	for _, f := range files {
		if !strings.HasSuffix(f, "_test.go") {
			src.WriteString(read(t, f))
		}
	}
	s := src.String()
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\t(Err[A-Za-z]+) += errors\.New`).FindAllStringSubmatch(s, -1) {
		names = append(names, m[1])
	}
	for _, m := range regexp.MustCompile(`(?m)^type ([A-Z][A-Za-z]*) interface`).FindAllStringSubmatch(s, -1) {
		names = append(names, m[1])
	}
	for _, m := range regexp.MustCompile(`(?m)^func \(([A-Z][A-Za-z]*)\) event\(\)`).FindAllStringSubmatch(s, -1) {
		names = append(names, m[1])
	}
	if len(names) < 30 {
		t.Fatalf("only %d contract names found: %q", len(names), names)
	}
	for _, n := range names {
		if !strings.Contains(doc, "`"+n+"`") {
			t.Errorf("docs/adapters.md does not mention `%s`", n)
		}
	}
	for _, must := range []string{"legacytest.Run", "legacy/all", "SaveState", "legacy.Register"} {
		if !strings.Contains(doc, must) {
			t.Errorf("docs/adapters.md does not mention %s", must)
		}
	}
}

func TestAdminGuides(t *testing.T) {
	for file, musts := range map[string][]string{
		"admin-prosody.md":  {"component_ports", "component_secret", "privileged_entities", "http_file_share_access", "mod_privilege"},
		"admin-ejabberd.md": {"ejabberd_service", "global_routes: false", "mod_privilege", "mod_http_upload", "domain_balancing"},
		"admin-openfire.md": {"5275", "xmpp.component.permission", "subdomain", "XEP-0356"},
	} {
		doc := read(t, file)
		for _, m := range musts {
			if !strings.Contains(doc, m) {
				t.Errorf("docs/%s does not mention %s", file, m)
			}
		}
	}
}
