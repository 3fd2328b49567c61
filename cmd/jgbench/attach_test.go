package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jabbergate/jabbergate/component/servertest"
)

// TestAttachC2S runs jgbench as an admin would against a server it did not
// start (-attach), with the load coming from client connections (-via
// c2s): a real Prosody with the four components and two users, the real
// gateway binary. Every request of every measurement must be answered.
func TestAttachC2S(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prosody and builds the gateway")
	}
	dir := t.TempDir()
	gw, bench := filepath.Join(dir, "jabbergate"), filepath.Join(dir, "jgbench")
	for bin, pkg := range map[string]string{gw: "../jabbergate", bench: "."} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	const secret, password = "attach-secret-0123456789", "attach-pw"
	srv := servertest.Start(t, "prosody", servertest.Options{
		Components: map[string]string{gwDomain: secret, limitDomain: secret, sameDomain: secret, loadDomain: secret},
		Users:      map[string]string{c2sUser(0): password, c2sUser(1): password},
	})
	secretFile, passwordFile := filepath.Join(dir, "secret"), filepath.Join(dir, "password")
	os.WriteFile(secretFile, []byte(secret+"\n"), 0o600)
	os.WriteFile(passwordFile, []byte(password+"\n"), 0o600)
	pids := pidsMentioning(srv.Dir)
	var pidList []string
	for _, p := range pids {
		pidList = append(pidList, strconv.Itoa(p))
	}

	args := []string{"-attach", srv.ComponentAddr, "-attach-secret-file", secretFile, "-attach-name", "my-prosody",
		"-attach-pids", strings.Join(pidList, ","), "-via", "c2s", "-attach-c2s", srv.C2SAddr, "-attach-domain", srv.Domain,
		"-attach-password-file", passwordFile, "-users", "2", "-kinds", "ping,message", "-n", "300", "-msgn", "100",
		"-warm", "50", "-warm-for", "0s", "-timeout", "30s", "-gateway", gw}
	// The real binary: it starts itself again as the limit component.
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bench, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("jgbench: %v\n%s", err, stderr.String())
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var r result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("not a result line: %q", line)
		}
		seen[r.Component+"/"+r.Kind] = true
		if r.Server != "my-prosody" || r.Via != "c2s" || r.Done != r.N || r.Errors != 0 || r.TimedOut || r.OpsPerS <= 0 {
			t.Errorf("result %s", line)
		}
		if len(pids) > 0 && r.ServerCPUs <= 0 {
			t.Errorf("no server CPU measured for the attached PIDs %v: %s", pids, line)
		}
		if r.Component == "gateway" && r.RatioToLimit <= 0 {
			t.Errorf("gateway line without its ratio to the limit: %s", line)
		}
	}
	for _, want := range []string{"limit/ping", "gateway/ping", "limit/message", "gateway/message"} {
		if !seen[want] {
			t.Errorf("no %s line in:\n%s", want, stdout.String())
		}
	}
}

// TestAttachFlags: -attach without what it needs is refused, naming the
// missing flag.
func TestAttachFlags(t *testing.T) {
	dir := t.TempDir()
	gw := filepath.Join(dir, "jabbergate")
	os.WriteFile(gw, nil, 0o700)
	secretFile := filepath.Join(dir, "secret")
	os.WriteFile(secretFile, []byte("s\n"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-attach", "127.0.0.1:1"}, "-attach needs -attach-secret-file"},
		{[]string{"-attach", "127.0.0.1:1", "-attach-secret-file", filepath.Join(dir, "none")}, "-attach-secret-file:"},
		{[]string{"-attach", "127.0.0.1:1", "-attach-secret-file", secretFile, "-attach-pids", "12,x"}, `-attach-pids: "x" is not a PID`},
		{[]string{"-attach", "127.0.0.1:1", "-attach-secret-file", secretFile, "-via", "c2s"}, "needs -attach-c2s"},
		{[]string{"-attach", "127.0.0.1:1", "-attach-secret-file", secretFile, "-via", "c2s", "-attach-c2s", "127.0.0.1:2"}, "-attach needs -attach-password-file"},
		{[]string{"-via", "s2s"}, `-via "s2s": want component or c2s`},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(append(tc.args, "-gateway", gw), &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("jgbench %v: exit %d, %q; want 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}
