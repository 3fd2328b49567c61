package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/config"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/bolt"
)

// A vault.key_file in a directory that does not exist is refused by
// check-config and run at its line, and the directory is not created: a
// typo in the path must not make a new key.
func TestVaultKeyFileDirectoryMissing(t *testing.T) {
	runFor(t, 10*time.Second)
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	body := goodConfig + "store:\n  path: jg.db\nvault:\n  key_file: typo/jg.key\n" // vault.key_file on line 12
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	wantConfigError(t, p, fmt.Sprintf("\n%s:12: vault.key_file: directory %q does not exist", p, filepath.Join(dir, "typo")))
	if _, err := os.Stat(filepath.Join(dir, "typo")); err == nil {
		t.Error("the key file's directory was created")
	}
}

// A missing vault.key_file is created, and logged with its path, only
// while the store holds no registered account; with accounts, whose
// credentials a new key would not open, run and the admin commands refuse
// at the key's line and create nothing.
func TestVaultKeyCreatedOnlyForAnEmptyStore(t *testing.T) {
	runFor(t, 10*time.Second)
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	body := goodConfig + "store:\n  path: jg.db\nvault:\n  key_file: jg.key\n" // vault.key_file on line 12
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	kf := filepath.Join(dir, "jg.key")
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := bolt.Open(cfg.Store.Path)
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	if err := ensureVaultKey(ctx, p, cfg, st, slog.New(slog.NewTextHandler(&log, nil))); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(kf); err != nil {
		t.Fatalf("key file not created for an empty store: %v", err)
	}
	if l := log.String(); !strings.Contains(l, "level=INFO") || !strings.Contains(l, "path="+kf) {
		t.Errorf("creating the key logged %q, want an info line with its path", l)
	}
	if err := os.Remove(kf); err != nil {
		t.Fatal(err)
	}
	if err := st.PutAccount(ctx, &store.Account{Bridge: "echo.localhost", JID: "bob@localhost", LegacyID: "echo", Created: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	want := fmt.Sprintf("%s:12: vault.key_file: key file %q does not exist, but the store holds 1 registered account", p, kf)
	for _, args := range [][]string{
		{"run", "-config", p},
		{"export-user", "-config", p, "-jid", "bob@localhost"},
		{"rotate-key", "-config", p, "-new-key-file", filepath.Join(dir, "new.key")},
	} {
		code, _, errs := runCLI(args...)
		if code != exitConfig || !strings.Contains(errs, want) {
			t.Errorf("%s with accounts and no key file: exit %d, stderr:\n%s\nwant exit %d and %q", args[0], code, errs, exitConfig, want)
		}
		if _, err := os.Stat(kf); err == nil {
			t.Fatalf("%s created a new key for a store with accounts", args[0])
		}
	}
}

// runFor makes `jabbergate run` in runCLI stop after d, so that a run
// the test expects to fail at once ends even when it does not.
func runFor(t *testing.T, d time.Duration) {
	t.Helper()
	runContext = func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		t.Cleanup(cancel)
		return ctx
	}
	t.Cleanup(func() { runContext = context.Background })
}

// A missing vault.key_file directory and a media.dir that cannot be made
// are reported with every other problem of the file, in line order, not
// hidden by one (xmpp.max_stanza_size: 0) that Load finds itself.
func TestVaultAndMediaErrorsBesideOtherProblems(t *testing.T) {
	runFor(t, 10*time.Second)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "afile"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "c.yaml")
	body := strings.Replace(goodConfig, "  server: 127.0.0.1:5347\n", "  server: 127.0.0.1:5347\n  max_stanza_size: 0\n", 1) + // line 3
		"store:\n  path: jg.db\n" + // line 11
		"vault:\n  key_file: typo/jg.key\n" + // line 13
		"media:\n  base_url: https://gw.example.org\n  dir: afile\n" // line 16
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"check-config", "run"} {
		code, _, errs := runCLI(cmd, "-config", p)
		at := []int{
			strings.Index(errs, p+":3: xmpp.max_stanza_size: "),
			strings.Index(errs, fmt.Sprintf("%s:13: vault.key_file: directory %q does not exist", p, filepath.Join(dir, "typo"))),
			strings.Index(errs, fmt.Sprintf("%s:16: media.dir: %q is not a directory", p, filepath.Join(dir, "afile"))),
		}
		if code != exitConfig || at[0] < 0 || at[1] < at[0] || at[2] < at[1] {
			t.Errorf("%s: exit %d, stderr:\n%s\nwant exit 78 and the max_stanza_size, vault.key_file and media.dir lines in that order", cmd, code, errs)
		}
	}
}

// check-config, run's ExecStartPre, refuses a missing vault.key_file while
// the store holds registered accounts, as run does, with the key set or at
// its default place next to the store (bolt and pebble). It reads the
// store only: a store that does not exist holds no account and is not
// created, nor is the key; a store a running gateway holds is not read,
// which is a note, not an error.
func TestCheckConfigMissingKeyWithAccounts(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, backend, vault string
		line                 int // of vault.key_file
	}{
		{"bolt", "bolt", "vault:\n  key_file: jg.key\n", 13},
		{"bolt default key", "bolt", "", 0},
		{"pebble", "pebble", "vault:\n  key_file: jg.key\n", 13},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "c.yaml")
			body := goodConfig + "store:\n  backend: " + tc.backend + "\n  path: state\n" + tc.vault
			if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			kf := filepath.Join(dir, "jg.key")
			if tc.vault == "" {
				kf = filepath.Join(dir, config.DefaultKeyFileName)
			}
			sp := filepath.Join(dir, "state")
			noKey := func(when string) {
				t.Helper()
				if _, err := os.Stat(kf); err == nil {
					t.Fatalf("%s: check-config created the key file", when)
				}
			}

			// No store yet: no account, nothing created.
			if code, out, errs := runCLI("check-config", "-config", p); code != 0 || !strings.Contains(out, "OK") {
				t.Errorf("no store: exit %d\n%s%s", code, out, errs)
			}
			if _, err := os.Stat(sp); err == nil {
				t.Error("check-config created the store")
			}
			noKey("no store")

			st, err := openStore(ctx, config.Store{Backend: tc.backend, Path: sp})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.PutAccount(ctx, &store.Account{Bridge: "echo.localhost", JID: "bob@localhost", LegacyID: "echo", Created: time.Now().UTC()}); err != nil {
				t.Fatal(err)
			}
			// Held by a "running gateway": not read, said so, no error.
			code, out, errs := runCLI("check-config", "-config", p)
			if code != 0 || !strings.Contains(out, "OK") || !strings.Contains(errs, "note: ") || !strings.Contains(errs, "was not checked") || !strings.Contains(errs, "in use by a running gateway") {
				t.Errorf("store in use: exit %d\n%s%s", code, out, errs)
			}
			noKey("store in use")
			st.Close()

			want := fmt.Sprintf("%s: vault.key_file: key file %q does not exist, but the store holds 1 registered account", p, kf)
			if tc.line > 0 {
				want = fmt.Sprintf("%s:%d: vault.key_file: key file %q does not exist, but the store holds 1 registered account", p, tc.line, kf)
			}
			code, _, errs = runCLI("check-config", "-config", p)
			if code != exitConfig || !strings.Contains(errs, "configuration error:\n"+want) {
				t.Errorf("accounts, no key: exit %d, stderr:\n%s\nwant exit 78 and %q", code, errs, want)
			}
			noKey("accounts")
		})
	}
}
