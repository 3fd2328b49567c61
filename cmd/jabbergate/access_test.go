package main

import (
	"encoding/base64"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestUnwritablePathsAreConfigErrors: a store.path or vault.key_file the
// user running the gateway may not write is refused at its line with exit
// status 78 (exitConfig) by check-config and run, instead of run failing with status 1
// (systemd restarting it forever). As root the binary runs as nobody, for
// whom a root-owned directory is not writable; otherwise the directory is
// made read-only.
func TestUnwritablePathsAreConfigErrors(t *testing.T) {
	dir, err := os.MkdirTemp("", "jg-access-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(dir, "ro"), 0o755); os.RemoveAll(dir) })
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ro, "jg.db"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	asRoot := os.Geteuid() == 0
	if !asRoot {
		if err := os.Chmod(ro, 0o555); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(ro, "jg.db"), 0o444)
	}
	var bin string
	if asRoot {
		data, err := os.ReadFile(buildBinary(t)) // t.TempDir is not nobody's to enter
		if err != nil {
			t.Fatal(err)
		}
		bin = filepath.Join(dir, "jabbergate")
		if err := os.WriteFile(bin, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	check := func(name, body, want string) {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".yaml")
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, sub := range []string{"check-config", "run"} {
				var code int
				var errs string
				if asRoot {
					cmd := exec.Command(bin, sub, "-config", p)
					cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
					out, err := cmd.CombinedOutput()
					errs = string(out)
					if ee, ok := err.(*exec.ExitError); ok {
						code = ee.ExitCode()
					} else if err != nil {
						t.Fatal(err)
					}
				} else {
					code, _, errs = runCLI(sub, "-config", p)
				}
				if code != exitConfig || !strings.Contains(errs, p+want) {
					t.Errorf("%s: exit %d, output:\n%s\nwant exit 78 and %q", sub, code, errs, p+want)
				}
			}
		})
	}
	store := func(backend, path string) string {
		return goodConfig + "store:\n  backend: " + backend + "\n  path: " + path + "\n" // store.path on line 11
	}
	check("bolt file not writable", store("bolt", filepath.Join(ro, "jg.db")),
		`:11: store.path: the bolt store: user `)
	check("bolt in a directory not writable", store("bolt", filepath.Join(ro, "new.db")),
		`:11: store.path: the bolt store is created in its directory: user `)
	check("pebble in a directory not writable", store("pebble", filepath.Join(ro, "new.pebble")),
		`:11: store.path: the pebble store is created in its directory: user `)
	check("vault key file in a directory not writable",
		goodConfig+"store:\n  backend: redis\n  redis: {url: 'redis://127.0.0.1:1'}\nvault:\n  key_file: "+filepath.Join(ro, "vault.key")+"\n",
		`:13: vault.key_file: the missing key file is created in its directory: user `)
	redisStore := goodConfig + "store:\n  backend: redis\n  redis: {url: 'redis://127.0.0.1:1'}\nvault:\n  key: " + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n"
	check("media dir not writable", redisStore+"media:\n  base_url: https://gw.example.org\n  dir: "+filepath.Join(ro, "media")+"\n",
		`:16: media.dir: the media directory is created in `+strconv.Quote(ro)+`: user `)
	if err := os.Mkdir(filepath.Join(dir, "media"), 0o755); err != nil {
		t.Fatal(err)
	}
	if !asRoot {
		os.Chmod(filepath.Join(dir, "media"), 0o555)
		t.Cleanup(func() { os.Chmod(filepath.Join(dir, "media"), 0o755) })
	}
	check("media dir existing, not writable", redisStore+"media:\n  base_url: https://gw.example.org\n  dir: "+filepath.Join(dir, "media", "sub")+"\n",
		`:16: media.dir: the media directory is created in `+strconv.Quote(filepath.Join(dir, "media"))+`: user `)
	check("media dir itself not writable", redisStore+"media:\n  base_url: https://gw.example.org\n  dir: "+ro+"\n",
		`:16: media.dir: the media directory: user `)
}

// An http.listen address in use is a configuration error at its line
// (exit 78), saying what to do; a stray argument is named as such.
func TestListenInUseAndStrayArgument(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	body := goodConfig + "store:\n  path: " + filepath.Join(dir, "jg.db") + "\nhttp:\n  listen: " + ln.Addr().String() + "\n" // http.listen on line 12
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCLI("run", "-config", p)
	if want := p + ":12: http.listen: cannot listen on " + ln.Addr().String(); code != exitConfig || !strings.Contains(errs, want) || !strings.Contains(errs, "another process has this port") {
		t.Errorf("run with http.listen in use: exit %d, stderr:\n%s\nwant exit 78 and %q", code, errs, want)
	}
	for _, cmd := range []string{"check-config", "run", "doctor", "export-user"} {
		code, _, errs := runCLI(cmd, "-config", p, "extra")
		if code != exitConfig || !strings.Contains(errs, `unexpected argument "extra"`) {
			t.Errorf("%s with a stray argument: exit %d, stderr:\n%s", cmd, code, errs)
		}
	}
}
