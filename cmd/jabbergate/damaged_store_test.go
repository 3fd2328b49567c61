package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/config"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/bolt"
	"github.com/jabbergate/jabbergate/bridges/vault"
	"github.com/jabbergate/jabbergate/component/componenttest"
)

// damagedBoltStore writes a bolt store with an account at path and cuts
// the file to half its size.
func damagedBoltStore(t *testing.T, path string) {
	t.Helper()
	st, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"romeo@localhost", "juliet@localhost"} {
		a := &store.Account{Bridge: "echo.localhost", JID: u, LegacyID: strings.Repeat("x", 5000)}
		if err := st.PutAccount(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
}

// TestRunDamagedStore: a damaged store file stops run with exitConfig
// (systemd does not restart it) and an error naming the file and the
// problem, not a crash (exit 2); an empty one is not taken for a new store.
func TestRunDamagedStore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "jg.db")
	damagedBoltStore(t, path)
	p := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(p, []byte(goodConfig+"store:\n  path: "+path+"\nhttp:\n  listen: \"off\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCLI("run", "-config", p)
	if code != exitConfig || !strings.Contains(errs, "store file "+path+" is damaged: the file is ") || !strings.Contains(errs, "truncated?") {
		t.Errorf("run on a truncated store: exit %d, stderr:\n%s\nwant exit %d and the file named", code, errs, exitConfig)
	}

	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runCLI("run", "-config", p)
	if code != exitConfig || !strings.Contains(errs, "store file "+path+" is damaged: the file is empty (0 bytes)") {
		t.Errorf("run on an empty store file: exit %d, stderr:\n%s", code, errs)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
		t.Errorf("the empty store file was written to: %v %v", fi, err)
	}
	code, _, errs = runCLI("export-user", "-config", p, "-jid", "romeo@localhost")
	if code != exitConfig || !strings.Contains(errs, "is damaged") {
		t.Errorf("export-user on a damaged store: exit %d, stderr:\n%s", code, errs)
	}
}

// TestDoctorDamagedStore: doctor reports a damaged store as a failed
// check with a fix, instead of crashing.
func TestDoctorDamagedStore(t *testing.T) {
	srv := componenttest.NewServer(t, "echo.localhost", doctorSecret)
	path := filepath.Join(t.TempDir(), "jg.db")
	damagedBoltStore(t, path)
	cfg, _ := doctorConfig(t, srv.Addr(), "store:\n  path: "+path+"\n")
	checks := runDoctor(context.Background(), cfg, doctorOptions{PrivilegeWait: 50 * time.Millisecond, CheckAccounts: true})
	c := one(t, checks, "store")
	if c.Status != statusFail || !strings.Contains(c.Message, "store file "+path+" is damaged") || c.Fix["jabbergate"] == "" {
		t.Errorf("store = %+v", c)
	}
}

// TestWarnNewStoreBesideOldKey: the gateway creating a store while the
// vault key file made with an earlier store exists says so.
func TestWarnNewStoreBesideOldKey(t *testing.T) {
	dir := t.TempDir()
	kf := filepath.Join(dir, "vault.key")
	if _, err := vault.CreateKey(kf); err != nil {
		t.Fatal(err)
	}
	cfgText := goodConfig + "store:\n  path: " + filepath.Join(dir, "jg.db") + "\nvault:\n  key_file: " + kf + "\n"
	cfg, err := config.Parse(filepath.Join(dir, "c.yaml"), []byte(cfgText))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var st *bolt.Store
	warnNewStoreOldKey(cfg, newLogger(cfg.Log, &logs))
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "the store does not exist and is created empty") {
		t.Errorf("logs:\n%s\nwant a warning", logs.String())
	}

	// An existing store, or no key yet: nothing to say.
	st, err = bolt.Open(cfg.Store.Path)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	logs.Reset()
	warnNewStoreOldKey(cfg, newLogger(cfg.Log, &logs))
	os.Remove(cfg.Store.Path)
	os.Remove(kf)
	warnNewStoreOldKey(cfg, newLogger(cfg.Log, &logs))
	if logs.Len() != 0 {
		t.Errorf("logs:\n%s\nwant none", logs.String())
	}
}
