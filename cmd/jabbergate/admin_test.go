package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges"
	"github.com/jabbergate/jabbergate/bridges/config"
	"github.com/jabbergate/jabbergate/bridges/metrics"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/bolt"
	"github.com/jabbergate/jabbergate/bridges/store/redistest"
	"github.com/jabbergate/jabbergate/bridges/vault"
)

const (
	adminToken = "123456:SECRET-BOT-TOKEN-xyz"
	tgDomain   = "tg.localhost"
	adminUser  = "alice@localhost"
)

// adminConfig writes a config with an echo and a telegram bridge on the
// given store section and returns its path and the vault key file.
func adminConfig(t *testing.T, dir, storeYAML, vaultYAML string) string {
	t.Helper()
	p := filepath.Join(dir, "jabbergate.yaml")
	body := `xmpp:
  server: 127.0.0.1:5347
bridges:
  - network: echo
    domain: echo.localhost
    secret: s1
  - network: telegram
    domain: ` + tgDomain + `
    secret: s2
access:
  allowed_domains: [localhost]
http:
  listen: "off"
` + storeYAML + vaultYAML
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// seed stores alice on the telegram bridge (sealed token, a contact, a
// queued message) and bob on echo, sealed with the key in keyFile.
func seed(t *testing.T, st store.Store, keyFile string) {
	t.Helper()
	ctx := context.Background()
	k, err := vault.LoadOrCreateKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := vault.NewKeys(k)
	sealed, _ := v.Seal(tgDomain+"|"+adminUser+"|token", adminToken)
	if err := st.PutAccount(ctx, &store.Account{Bridge: tgDomain, JID: adminUser, LegacyID: "123456",
		Fields: map[string]string{"token": sealed}, Settings: map[string]string{"lang": "en"}, State: []byte("cursor"), Created: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutContact(ctx, tgDomain, adminUser, &store.Contact{Localpart: "42", LegacyID: "42", Name: "Bob", Subscription: "both"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, store.Queue{Bridge: tgDomain, JID: adminUser, Kind: store.Outbox}, []byte("queued")); err != nil {
		t.Fatal(err)
	}
	if err := st.PutAccount(ctx, &store.Account{Bridge: "echo.localhost", JID: "bob@localhost", LegacyID: "echo", Created: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
}

// adminCase runs every admin command against one store. open opens the
// store the config names (closed again before each command).
func adminCase(t *testing.T, dir, storeYAML string, open func() store.Store) {
	oldKey := filepath.Join(dir, "old.key")
	newKey := filepath.Join(dir, "new.key")
	cfg := adminConfig(t, dir, storeYAML, "vault:\n  key_file: old.key\n")
	st := open()
	seed(t, st, oldKey)
	sealedOld, err := st.GetAccount(context.Background(), tgDomain, adminUser)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	// On bolt the commands rewrite the file, so that neither the value
	// sealed with the retired key nor a deleted user's stays in its free
	// pages.
	inBoltFile := func(v string) bool {
		if !strings.Contains(storeYAML, "backend: bolt") {
			return false
		}
		data, err := os.ReadFile(filepath.Join(dir, "jabbergate.db"))
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Contains(data, []byte(v))
	}
	// The service's user owns the store and the key; the commands run as
	// root and leave what they write to that user.
	isBolt := strings.Contains(storeYAML, "backend: bolt")
	asRoot := os.Geteuid() == 0 && isBolt
	if asRoot {
		for _, p := range []string{filepath.Join(dir, "jabbergate.db"), oldKey} {
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}
	}
	ownedByService := func(what string, paths ...string) {
		t.Helper()
		if !asRoot {
			return
		}
		for _, p := range paths {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65534 || st.Gid != 65534 {
				t.Errorf("after %s, %s is owned by %d:%d, want the service's 65534:65534", what, p, st.Uid, st.Gid)
			}
		}
	}
	ok, _ := vault.LoadOrCreateKey(oldKey)
	noSecrets := func(what, s string) {
		t.Helper()
		for _, secret := range []string{adminToken, "SECRET-BOT", vault.EncodeKey(ok)} {
			if strings.Contains(s, secret) {
				t.Errorf("%s shows a secret:\n%s", what, s)
			}
		}
	}

	// export-user: JSON, secrets redacted.
	code, out, errs := runCLI("export-user", "-config", cfg, "-jid", "Alice@localhost/phone")
	if code != 0 {
		t.Fatalf("export-user = %d %q", code, errs)
	}
	noSecrets("export-user", out+errs)
	var ex userExport
	if err := json.Unmarshal([]byte(out), &ex); err != nil {
		t.Fatalf("export is not JSON: %v\n%s", err, out)
	}
	if ex.JID != adminUser || len(ex.Registrations) != 1 {
		t.Fatalf("export = %+v", ex)
	}
	r := ex.Registrations[0]
	if r.Bridge != tgDomain || r.LegacyID != "123456" || r.Fields["token"] != redactedValue || r.Settings["lang"] != "en" ||
		len(r.Contacts) != 1 || r.Contacts[0].JID != "42@"+tgDomain || r.Contacts[0].Name != "Bob" || r.Pending["to_legacy"] != 1 || r.StateBytes != 6 {
		t.Errorf("export registration = %+v", r)
	}
	if strings.Contains(out, "k"+vault.KeyID(ok)) {
		t.Errorf("export shows the sealed value:\n%s", out)
	}
	if code, _, errs := runCLI("export-user", "-config", cfg, "-jid", "nobody@localhost"); code != 1 || !strings.Contains(errs, "not registered") {
		t.Errorf("export of an unknown user = %d %q", code, errs)
	}
	if code, _, errs := runCLI("export-user", "-config", cfg); code != exitConfig || !strings.Contains(errs, "-jid J is required") {
		t.Errorf("export without -jid = %d %q", code, errs)
	}

	// rotate-key: every sealed value moves to the new key.
	code, out, errs = runCLI("rotate-key", "-config", cfg, "-new-key-file", newKey)
	if code != 0 || !strings.Contains(out, "re-sealed 1 values in 1 accounts") {
		t.Fatalf("rotate-key = %d %q %q", code, out, errs)
	}
	nk, err := vault.LoadOrCreateKey(newKey)
	if err != nil {
		t.Fatal(err)
	}
	noSecrets("rotate-key", out+errs)
	if strings.Contains(out+errs, vault.EncodeKey(nk)) || !strings.Contains(out, vault.KeyID(nk)) {
		t.Errorf("rotate-key output must name key ids, never keys:\n%s", out)
	}
	st = open()
	a, err := st.GetAccount(context.Background(), tgDomain, adminUser)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	onlyNew, _ := vault.NewKeys(nk)
	if pt, err := onlyNew.Open(tgDomain+"|"+adminUser+"|token", a.Fields["token"]); err != nil || pt != adminToken {
		t.Errorf("re-sealed token does not open with the new key alone: %v", err)
	}
	if a.Settings["lang"] != "en" || string(a.State) != "cursor" || a.LegacyID != "123456" {
		t.Errorf("rotation changed other data: %+v", a)
	}
	if inBoltFile(sealedOld.Fields["token"]) {
		t.Error("the value sealed with the old key is still in the bolt file after rotate-key")
	}
	ownedByService("rotate-key", filepath.Join(dir, "jabbergate.db"), newKey)
	// Idempotent, also once the config names the new key (old one kept).
	if code, out, _ := runCLI("rotate-key", "-config", cfg, "-new-key-file", newKey); code != 0 || !strings.Contains(out, "re-sealed 0 values") {
		t.Errorf("second rotate-key = %d %q", code, out)
	}
	cfg = adminConfig(t, dir, storeYAML, "vault:\n  key_file: new.key\n  old_key_files: [old.key]\n")
	if code, out, errs := runCLI("rotate-key", "-config", cfg, "-new-key-file", newKey); code != 0 || !strings.Contains(out, "re-sealed 0 values") {
		t.Errorf("rotate-key after switching the config = %d %q %q", code, out, errs)
	}
	// The gateway's own vault (config with the new key only) opens it too.
	cfgNew := adminConfig(t, dir, storeYAML, "vault:\n  key_file: new.key\n")
	c, good := loadConfig(cfgNew, io.Discard)
	if !good {
		t.Fatal("config with the new key does not load")
	}
	gv, err := openVault(c.Vault)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := gv.Open(tgDomain+"|"+adminUser+"|token", a.Fields["token"]); err != nil || pt != adminToken {
		t.Errorf("gateway vault after rotation: %v", err)
	}

	// delete-user: everything about alice goes, bob stays.
	code, out, errs = runCLI("delete-user", "-config", cfg, "-jid", adminUser)
	if code != 0 || !strings.Contains(out, "deleted "+adminUser+" from "+tgDomain) || !strings.Contains(out, "1 contacts") {
		t.Fatalf("delete-user = %d %q %q", code, out, errs)
	}
	st = open()
	ctx := context.Background()
	if _, err := st.GetAccount(ctx, tgDomain, adminUser); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("account after delete-user: %v", err)
	}
	if cs, _ := st.ListContacts(ctx, tgDomain, adminUser); len(cs) != 0 {
		t.Errorf("contacts after delete-user: %v", cs)
	}
	if n, _ := st.Len(ctx, store.Queue{Bridge: tgDomain, JID: adminUser, Kind: store.Outbox}); n != 0 {
		t.Errorf("queued messages after delete-user: %d", n)
	}
	if _, err := st.GetAccount(ctx, "echo.localhost", "bob@localhost"); err != nil {
		t.Errorf("another user was deleted: %v", err)
	}
	st.Close()
	if inBoltFile(a.Fields["token"]) {
		t.Error("the deleted user's sealed token is still in the bolt file after delete-user")
	}
	ownedByService("delete-user", filepath.Join(dir, "jabbergate.db"))
	code, out, errs = runCLI("delete-user", "-config", cfg, "-jid", adminUser)
	if code != 1 || !strings.Contains(errs, "not registered") {
		t.Errorf("second delete-user = %d %q", code, errs)
	}
	// It rewrites the file all the same (after a deletion by the live
	// admin command, whose values are in the free pages).
	if isBolt && !strings.Contains(out, "without the old values") {
		t.Errorf("second delete-user did not rewrite the file: %q", out)
	}
}

func TestAdminCommandsBolt(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "jabbergate.db")
	adminCase(t, dir, "store:\n  backend: bolt\n  path: jabbergate.db\n", func() store.Store {
		st, err := openStore(context.Background(), storeConfig(t, dir, "bolt", ""))
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
	// A running gateway holds the bolt file: the commands say so.
	st, err := openStore(context.Background(), storeConfig(t, dir, "bolt", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := adminConfig(t, dir, "store:\n  backend: bolt\n  path: jabbergate.db\n", "")
	if code, _, errs := runCLI("export-user", "-config", cfg, "-jid", "bob@localhost"); code != exitConfig || !strings.Contains(errs, "stop the gateway first") {
		t.Errorf("export-user while the store is held = %d %q (%s)", code, errs, path)
	}
}

func TestAdminCommandsPebble(t *testing.T) {
	dir := t.TempDir()
	adminCase(t, dir, "store:\n  backend: pebble\n  path: jabbergate.pebble\n", func() store.Store {
		st, err := openStore(context.Background(), storeConfig(t, dir, "pebble", ""))
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
	// A running gateway holds the pebble directory: the commands say so.
	st, err := openStore(context.Background(), storeConfig(t, dir, "pebble", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := adminConfig(t, dir, "store:\n  backend: pebble\n  path: jabbergate.pebble\n", "")
	if code, _, errs := runCLI("export-user", "-config", cfg, "-jid", "bob@localhost"); code != exitConfig || !strings.Contains(errs, "stop the gateway first") {
		t.Errorf("export-user while the store is held = %d %q", code, errs)
	}
}

func TestAdminCommandsRedis(t *testing.T) {
	url := redistest.Start(t)
	dir := t.TempDir()
	prefix := fmt.Sprintf("admin%d", time.Now().UnixNano())
	adminCase(t, dir, "store:\n  backend: redis\n  redis:\n    url: "+url+"\n    prefix: "+prefix+"\n", func() store.Store {
		st, err := openStore(context.Background(), storeConfig(t, dir, "redis", url, prefix))
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
}

// storeConfig loads the store section the way the commands do.
func storeConfig(t *testing.T, dir, backend, url string, prefix ...string) config.Store {
	t.Helper()
	y := "store:\n  backend: bolt\n  path: jabbergate.db\n"
	switch backend {
	case "redis":
		y = "store:\n  backend: redis\n  redis:\n    url: " + url + "\n    prefix: " + prefix[0] + "\n"
	case "pebble":
		y = "store:\n  backend: pebble\n  path: jabbergate.pebble\n"
	}
	p := adminConfig(t, t.TempDir(), y, "vault:\n  key_file: "+filepath.Join(dir, "old.key")+"\n")
	c, ok := loadConfig(p, io.Discard)
	if !ok {
		t.Fatal("store config does not load")
	}
	switch backend {
	case "bolt":
		c.Store.Path = filepath.Join(dir, "jabbergate.db")
	case "pebble":
		c.Store.Path = filepath.Join(dir, "jabbergate.pebble")
	}
	return c.Store
}

func TestWebhookBodyLimit(t *testing.T) {
	var got []int
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, len(b))
		w.WriteHeader(http.StatusNoContent)
	})
	g := &gateway{metrics: metrics.New(bridges.Version), webhooks: map[string]http.Handler{tgDomain: h}}
	srv := httptest.NewServer(g.handler(false))
	defer srv.Close()
	url := srv.URL + "/webhooks/" + tgDomain + "/"
	post := func(body io.Reader, chunked bool) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, url, body)
		if chunked {
			req.ContentLength = -1
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := post(strings.NewReader(strings.Repeat("a", maxWebhookBody)), false); c != http.StatusNoContent {
		t.Errorf("body at the limit = %d", c)
	}
	if c := post(strings.NewReader(strings.Repeat("a", maxWebhookBody+1)), false); c != http.StatusRequestEntityTooLarge {
		t.Errorf("body over the limit (Content-Length) = %d, want 413", c)
	}
	if c := post(io.MultiReader(strings.NewReader(strings.Repeat("b", maxWebhookBody)), strings.NewReader("bb")), true); c != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked body over the limit = %d, want 413", c)
	}
	if c := post(strings.NewReader("small"), true); c != http.StatusNoContent {
		t.Errorf("small chunked body = %d", c)
	}
	if len(got) != 2 || got[0] != maxWebhookBody || got[1] != 5 {
		t.Errorf("the adapter saw bodies %v; want only the two within the limit, whole", got)
	}
}

// TestPProfOnlyWhenConfigured: /debug/pprof/ is served only with
// http.pprof: true.
func TestPProfOnlyWhenConfigured(t *testing.T) {
	for _, on := range []bool{false, true} {
		g := &gateway{metrics: metrics.New(bridges.Version)}
		srv := httptest.NewServer(g.handler(on))
		resp, err := http.Get(srv.URL + "/debug/pprof/goroutine?debug=1")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		served := resp.StatusCode == http.StatusOK && strings.Contains(string(body), "goroutine profile")
		if served != on {
			t.Errorf("pprof: %v: GET /debug/pprof/goroutine = %d (served %v)", on, resp.StatusCode, served)
		}
	}
}

// export-user, delete-user and rotate-key create neither a store nor a
// key: with no store at store.path they say so at store.path (78), with a
// store and no key file at vault.key_file (78), and a vault.key_file in a
// directory that does not exist is reported as check-config reports it,
// with no store left behind.
func TestAdminCommandsCreateNothing(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "ok.yaml")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	db, kf := filepath.Join(dir, "jabbergate.db"), filepath.Join(dir, "jabbergate.key")
	cmds := [][]string{
		{"export-user", "-config", p, "-jid", "alice@localhost"},
		{"delete-user", "-config", p, "-jid", "alice@localhost"},
		{"rotate-key", "-config", p, "-new-key-file", filepath.Join(dir, "new.key")},
	}
	created := func(args []string) {
		t.Helper()
		for _, f := range []string{db, kf} {
			if _, err := os.Stat(f); err == nil {
				t.Errorf("%s created %s", args[0], f)
				os.Remove(f)
			}
		}
	}

	write(goodConfig) // store and key at their defaults, next to the config
	for _, args := range cmds {
		code, _, errs := runCLI(args...)
		if want := fmt.Sprintf("configuration error:\n%s: store.path: no store at %q: check -config or store.path", p, db); code != exitConfig || !strings.Contains(errs, want) {
			t.Errorf("%s, no store: exit %d, stderr:\n%s\nwant 78 and %q", args[0], code, errs, want)
		}
		if strings.Contains(errs, "created a new credential sealing key") {
			t.Errorf("%s logged a new key: %s", args[0], errs)
		}
		created(args)
	}

	st, err := bolt.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	for _, args := range cmds {
		code, _, errs := runCLI(args...)
		if want := fmt.Sprintf("configuration error:\n%s: vault.key_file: key file %q does not exist", p, kf); code != exitConfig || !strings.Contains(errs, want) {
			t.Errorf("%s, a store and no key: exit %d, stderr:\n%s\nwant 78 and %q", args[0], code, errs, want)
		}
		if _, err := os.Stat(kf); err == nil {
			t.Fatalf("%s created the key", args[0])
		}
	}
	os.Remove(db)

	write(goodConfig + "vault:\n  key_file: typo/jg.key\n") // line 10
	_, _, checkErrs := runCLI("check-config", "-config", p)
	for _, args := range cmds {
		code, _, errs := runCLI(args...)
		if code != exitConfig || errs != checkErrs {
			t.Errorf("%s, key directory missing: exit %d, stderr:\n%s\nwant 78 and check-config's:\n%s", args[0], code, errs, checkErrs)
		}
		created(args)
	}
}
