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
	bbolt "go.etcd.io/bbolt"
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

// corruptBoltAccount overwrites the account record of jid on bridge in
// the (closed) bolt store at path.
func corruptBoltAccount(t *testing.T, path, bridge, jid string) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("bridges")).Bucket([]byte("b"+bridge)).Bucket([]byte("u"+jid)).Put([]byte("account"), []byte("garbage"))
	}); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptAccountRecord: doctor -check-accounts names an account
// record that cannot be read (FAIL), the vault key check counts it as an
// account, and delete-user deletes it.
func TestCorruptAccountRecord(t *testing.T) {
	srv := componenttest.NewServer(t, "echo.localhost", doctorSecret)
	dir := t.TempDir()
	path := filepath.Join(dir, "jg.db")
	st, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"romeo@localhost", "juliet@localhost"} {
		if err := st.PutAccount(context.Background(), &store.Account{Bridge: "echo.localhost", JID: u, LegacyID: u}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	corruptBoltAccount(t, path, "echo.localhost", "juliet@localhost")

	cfg, p := doctorConfig(t, srv.Addr(), "store:\n  path: "+path+"\n")
	checks := runDoctor(context.Background(), cfg, doctorOptions{PrivilegeWait: 50 * time.Millisecond, CheckAccounts: true})
	c := one(t, checks, "accounts")
	if c.Status != statusFail || !strings.Contains(c.Message, "1 registered account(s) readable, 1 not") || !strings.Contains(c.Message, "juliet@localhost") || c.Fix["jabbergate"] == "" {
		t.Errorf("accounts = %+v", c)
	}

	st, err = bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := countAccounts(context.Background(), st, cfg)
	st.Close()
	if n != 2 || err != nil {
		t.Errorf("countAccounts = %d, %v; want 2 (the corrupt record counts)", n, err)
	}

	if _, err := vault.CreateKey(cfg.Vault.KeyFile); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI("delete-user", "-config", p, "-jid", "juliet@localhost")
	if code != 0 || !strings.Contains(errs, "is corrupt") || !strings.Contains(out, "deleted juliet@localhost") {
		t.Errorf("delete-user of the corrupt record: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	checks = runDoctor(context.Background(), cfg, doctorOptions{PrivilegeWait: 50 * time.Millisecond, CheckAccounts: true})
	if c := one(t, checks, "accounts"); c.Status != statusOK || !strings.Contains(c.Message, "1 registered account(s)") {
		t.Errorf("accounts after delete-user = %+v", c)
	}
}
