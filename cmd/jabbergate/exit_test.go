package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jabbergate/jabbergate/bridges/config"
	"github.com/jabbergate/jabbergate/bridges/store/bolt"
	"github.com/jabbergate/jabbergate/bridges/vault"
)

// TestExitStatusConfigIsNotTheRuntimes: a configuration or usage error
// exits with exitConfig (78, EX_CONFIG), never 2, which the Go runtime
// uses for an unrecovered panic, a fatal error and SIGABRT/SIGQUIT (the
// systemd watchdog's signal); the shipped unit prevents restarts on
// exitConfig alone, so a crashed or hung gateway is restarted.
func TestExitStatusConfigIsNotTheRuntimes(t *testing.T) {
	if exitConfig == 2 || exitConfig == 1 {
		t.Fatalf("exitConfig = %d: 1 is a runtime failure, 2 the Go runtime's crash status", exitConfig)
	}
	unit, err := os.ReadFile("../../deploy/systemd/jabbergate.service")
	if err != nil {
		t.Fatal(err)
	}
	var prevent []string
	for line := range strings.Lines(string(unit)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "RestartPreventExitStatus="); ok {
			prevent = append(prevent, strings.Fields(v)...)
		}
	}
	if len(prevent) != 1 || prevent[0] != strconv.Itoa(exitConfig) {
		t.Errorf("jabbergate.service RestartPreventExitStatus = %q, want only %d", prevent, exitConfig)
	}

	p := writeConfig(t, strings.Replace(goodConfig, "    secret:", "    secert:", 1))
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"run"},
		{"run", "-nosuchflag"},
		{"check-config", "-config", p},
		{"run", "-config", p},
		{"export-user", "-config", p, "-jid", "a@localhost"},
		{"delete-user"},
		{"rotate-key", "-config", p},
	} {
		if code, _, errs := runCLI(args...); code != exitConfig {
			t.Errorf("jabbergate %q: exit %d, want %d; stderr:\n%s", args, code, exitConfig, errs)
		}
	}
}

// TestHelpExitsZero: -h and --help print the command's usage on stdout
// and exit 0, for every command as for `jabbergate help`.
func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{
		{"help"}, {"-h"}, {"--help"},
		{"run", "-h"}, {"run", "--help"}, {"check-config", "-help"},
		{"rotate-key", "-h"}, {"export-user", "-h"}, {"delete-user", "--help"}, {"doctor", "-h"},
	} {
		code, out, errs := runCLI(args...)
		if code != 0 || !strings.Contains(out, "usage") || !strings.Contains(out, "-config") {
			t.Errorf("jabbergate %q: exit %d, stdout:\n%s\nstderr:\n%s\nwant exit 0 and the usage on stdout", args, code, out, errs)
		}
	}
}

// The CLI's smaller promises: version takes no argument; a missing
// -config is one line and a hint on every command; a key file that holds
// no key is named; a store held by a running gateway is the same
// configuration error (exitConfig) for run and the admin commands.
func TestCLIConsistency(t *testing.T) {
	if code, out, errs := runCLI("version", "extra"); code != exitConfig || out != "" || !strings.Contains(errs, `unexpected argument "extra" (version takes no arguments)`) || strings.Contains(errs, "-config") {
		t.Errorf("version extra: exit %d, stdout %q, stderr %q (version takes no config)", code, out, errs)
	}
	// doctor's exit statuses differ from the other commands' (1 is a FAIL
	// of its report): -h says them.
	if code, out, _ := runCLI("doctor", "-h"); code != 0 || !strings.Contains(out, "exit status: 0 no check FAILs, 1 one does,") || !strings.Contains(out, "78 usage or configuration error") {
		t.Errorf("doctor -h: exit %d, stdout:\n%s\nwant its exit statuses", code, out)
	}
	for _, cmd := range []string{"run", "check-config", "export-user", "delete-user", "rotate-key"} {
		code, _, errs := runCLI(cmd)
		if code != exitConfig || strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.Contains(errs, "-config FILE is required") {
			t.Errorf("%s without -config: exit %d, stderr:\n%s\nwant one line", cmd, code, errs)
		}
	}

	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(p, []byte(goodConfig+"store:\n  path: jg.db\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk.key")
	if err := os.WriteFile(junk, []byte("abcd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A store and its key: rotate-key creates neither.
	st, err := bolt.Open(filepath.Join(dir, "jg.db"))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := vault.CreateKey(filepath.Join(dir, config.DefaultKeyFileName)); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCLI("rotate-key", "-config", p, "-new-key-file", junk); code == 0 || !strings.Contains(errs, junk+": key is 3 bytes, want 32") {
		t.Errorf("rotate-key with a junk key file: exit %d, stderr:\n%s\nwant the file named", code, errs)
	}

	st, err = bolt.Open(filepath.Join(dir, "jg.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, args := range [][]string{
		{"export-user", "-config", p, "-jid", "a@localhost"},
		{"delete-user", "-config", p, "-jid", "a@localhost"},
		{"rotate-key", "-config", p, "-new-key-file", filepath.Join(dir, "new.key")},
	} {
		if code, _, errs := runCLI(args...); code != exitConfig || !strings.Contains(errs, "stop the gateway first") {
			t.Errorf("%s on a locked store: exit %d, stderr:\n%s\nwant exit %d", args[0], code, errs, exitConfig)
		}
	}
}
