package config

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const examplePath = "../../configs/jabbergate.example.yaml"

// TestExampleLoads checks that the shipped example is a valid config.
func TestExampleLoads(t *testing.T) {
	t.Setenv("JG_ECHO_SECRET", "example-secret")
	t.Setenv("JG_REDIS_URL", "")
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "jabbergate.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatalf("example does not load:\n%v", err)
	}
	if len(c.Bridges) != 1 || c.Bridges[0].Network != "echo" || c.Bridges[0].Domain != "echo.localhost" ||
		c.Bridges[0].Secret != "example-secret" || c.Store.Backend != "bolt" ||
		c.Store.Path != filepath.Join(dir, "jabbergate.db") || c.Vault.KeyFile != filepath.Join(dir, "jabbergate.key") {
		t.Errorf("unexpected example config:\n%s", c.Redacted())
	}
	if _, err := Load(examplePath); err != nil {
		t.Errorf("example does not load in place: %v", err)
	}
}

// TestExampleDocumentsEveryKey checks that every yaml key of Config appears
// in the example, active or commented out as "# key: value" at the key's
// indentation, so the example cannot fall behind the code.
func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	want := typePaths(reflect.TypeFor[Config](), "")

	// Uncomment "# key: ..." lines whose key is a config key.
	names := map[string]bool{}
	for _, p := range want {
		names[p[strings.LastIndex(p, ".")+1:]] = true
	}
	commented := regexp.MustCompile(`^(\s*)# ?([a-z_]+):(\s.*)?$`)
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		if m := commented.FindStringSubmatch(l); m != nil && names[m[2]] {
			lines[i] = m[1] + m[2] + ":" + m[3]
		}
	}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(strings.Join(lines, "\n")), &n); err != nil {
		t.Fatalf("example with commented keys enabled is not valid YAML (is a commented key mis-indented?): %v", err)
	}
	have := map[string]bool{}
	nodePaths(&n, "", have)
	for _, p := range want {
		if !have[p] {
			t.Errorf("configs/jabbergate.example.yaml does not document %s", p)
		}
	}
	if len(want) < 25 {
		t.Errorf("only %d keys found in Config: %v", len(want), want)
	}
}

// typePaths lists the key paths of a config type: "xmpp", "xmpp.server",
// "bridges.secret" (list items are not indexed), ….
func typePaths(t reflect.Type, prefix string) []string {
	var out []string
	for _, f := range fieldsOf(t) {
		p := joinPath(prefix, f.name)
		out = append(out, p)
		ft := t.Field(f.index).Type
		if ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != durationType {
			out = append(out, typePaths(ft, p)...)
		}
	}
	return out
}

// nodePaths collects the key paths of a YAML tree the same way.
func nodePaths(n *yaml.Node, prefix string, have map[string]bool) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			nodePaths(c, prefix, have)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := joinPath(prefix, n.Content[i].Value)
			have[p] = true
			nodePaths(n.Content[i+1], p, have)
		}
	}
}

func TestTypePaths(t *testing.T) {
	got := typePaths(reflect.TypeFor[Config](), "")
	for _, p := range []string{"xmpp.max_stanza_size", "bridges.secret_file", "bridges.options", "store.redis.url_file", "vault.key_file", "access.admins"} {
		if !slices.Contains(got, p) {
			t.Errorf("typePaths lacks %s: %v", p, got)
		}
	}
}
