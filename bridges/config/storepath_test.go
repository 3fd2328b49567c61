package config

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestCheckStorePath: a store.path that bolt or pebble cannot open as the
// file system is now (which Load leaves alone, so a path may be created
// before the gateway starts) is an *Error on store.path with its line.
func TestCheckStorePath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "jabbergate.db")
	if err := os.WriteFile(file, []byte("bolt"), 0o600); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "state")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, "c.yaml")
	cases := []struct {
		store string
		want  string // "" for no problem
	}{
		{"", ""}, // bolt, jabbergate.db next to the config (a file here)
		{"store: {path: jabbergate.db}", ""},
		{"store: {path: new.db}", ""},
		{"store:\n  backend: bolt\n  path: state",
			fmt.Sprintf(`%s:11: store.path: %q is a directory, but the bolt backend keeps its data in one file (a pebble store? bolt and pebble do not share data): give a file name`, name, sub)},
		{"store:\n  path: nope/jg.db",
			fmt.Sprintf(`%s:10: store.path: directory %q does not exist: create it or give another path (the bolt store's file "jg.db" is created on first start, the directory holding it is not)`, name, filepath.Join(dir, "nope"))},
		{"store:\n  path: nope/deeper/jg.db",
			fmt.Sprintf(`%s:10: store.path: directory %q does not exist: create it or give another path (the bolt store's file "jg.db" is created on first start, the directory holding it is not)`, name, filepath.Join(dir, "nope/deeper"))},
		{"store:\n  path: jabbergate.db/jg.db",
			fmt.Sprintf(`%s:10: store.path: %q is not a directory, so the bolt store %q cannot be created in it: give another path`, name, file, filepath.Join(file, "jg.db"))},
		{"store: {backend: pebble}", ""},
		{"store: {backend: pebble, path: state}", ""},
		{"store: {backend: pebble, path: state/new}", ""},
		{"store:\n  backend: pebble\n  path: nope/state",
			fmt.Sprintf(`%s:11: store.path: directory %q does not exist: create it or give another path (the pebble store's directory "state" is created on first start, the directory holding it is not)`, name, filepath.Join(dir, "nope"))},
		{"store:\n  backend: redis\n  path: nope/jg.db\n  redis: {url: 'redis://localhost'}\nvault: {key: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=}", ""},
	}
	for _, c := range cases {
		cfg, err := Parse(name, []byte(valid+c.store+"\n"))
		if err != nil {
			t.Errorf("%q: Parse: %v", c.store, err)
			continue
		}
		got := ""
		if err := cfg.CheckStorePath(name); err != nil {
			if len(Errors(err)) != 1 {
				t.Errorf("%q: not one *Error: %#v", c.store, err)
			}
			got = err.Error()
		}
		if got != c.want {
			t.Errorf("%q:\n got: %s\nwant: %s", c.store, got, c.want)
		}
	}
	// A pebble path that became a file after Load.
	cfg, err := Parse(name, []byte(valid+"store:\n  backend: pebble\n  path: later\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "later"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cfg.CheckStorePath(name); err == nil || Errors(err)[0].Line != 11 {
		t.Errorf("pebble on a file: %v", err)
	}
}
