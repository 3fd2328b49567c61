package main

import (
	"os"
	"strconv"
	"strings"
	"testing"
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
		{"rotate-key", "-h"}, {"export-user", "-h"}, {"delete-user", "--help"},
	} {
		code, out, errs := runCLI(args...)
		if code != 0 || !strings.Contains(out, "usage") || !strings.Contains(out, "-config") {
			t.Errorf("jabbergate %q: exit %d, stdout:\n%s\nstderr:\n%s\nwant exit 0 and the usage on stdout", args, code, out, errs)
		}
	}
}
