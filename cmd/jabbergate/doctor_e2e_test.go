package main

// jabbergate doctor against a real Prosody and a real ejabberd, with and
// without XEP-0356 privileges.

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/config"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/bolt"
	"github.com/jabbergate/jabbergate/bridges/store/redistest"
	"github.com/jabbergate/jabbergate/bridges/vault"
	"github.com/jabbergate/jabbergate/component"
	"github.com/jabbergate/jabbergate/component/servertest"
)

const httpOff = "http:\n  listen: \"off\"\n"

// doctorServerConfig is a config for one echo bridge on s with secret.
func doctorServerConfig(t *testing.T, s *servertest.Server, secret, extra string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	p := writeConfig(t, fmt.Sprintf(`xmpp:
  server: %s
bridges:
  - network: echo
    domain: %s
    secret: %s
access:
  allowed_domains: [localhost]
store:
  path: %s
vault:
  key_file: %s
`, s.ComponentAddr, gwDomain, secret, filepath.Join(dir, "jg.db"), filepath.Join(dir, "vault.key"))+extra)
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestDoctorRealServers(t *testing.T) {
	for _, kind := range servertest.Kinds {
		for _, priv := range []bool{true, false} {
			name := kind + "-unprivileged"
			if priv {
				name = kind + "-privileged"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				srv := servertest.Start(t, kind, servertest.Options{
					Components: map[string]string{gwDomain: gwSecret},
					Users:      map[string]string{"alice": "alicepw"},
					Privileged: priv,
				})
				ctx := context.Background()
				cfg := doctorServerConfig(t, srv, gwSecret, httpOff)
				// A registered user, whose roster the privilege check reads.
				st, err := bolt.Open(cfg.Store.Path)
				if err != nil {
					t.Fatal(err)
				}
				if err := st.PutAccount(ctx, &store.Account{Bridge: gwDomain, JID: srv.JID("alice"), LegacyID: "echo", Fields: map[string]string{}, Created: time.Now().UTC()}); err != nil {
					t.Fatal(err)
				}
				st.Close()
				// Its credentials' key: without it doctor FAILs the vault
				// check, as run refuses to start.
				if _, err := vault.CreateKey(cfg.Vault.KeyFile); err != nil {
					t.Fatal(err)
				}

				// The privilege advertisement comes right after the
				// handshake; the long wait only bounds a broken server.
				wait := 2 * time.Second
				if priv {
					wait = e2eWait
				}
				checks := runDoctor(ctx, cfg, doctorOptions{PrivilegeWait: wait, Timeout: e2eDoctorTimeout})
				t.Log("\n" + report(checks))
				if c := one(t, checks, "link"); c.Status != statusOK {
					t.Fatalf("link = %+v\n%s", c, srv.Log())
				}
				if c := one(t, checks, "ping"); c.Status != statusOK || !strings.Contains(c.Message, "ping to localhost answered") {
					t.Errorf("ping = %+v", c)
				}
				if c := one(t, checks, "upload"); c.Status != statusOK && c.Status != statusWarn {
					t.Errorf("upload = %+v", c)
				}
				c := one(t, checks, "privileges")
				switch {
				case priv:
					// servertest: Prosody's mod_privilege speaks v2,
					// ejabberd 23.01 v1; both grant roster both and
					// message outgoing.
					ns := "urn:xmpp:privilege:2 (v2)"
					if kind == "ejabberd" {
						ns = "urn:xmpp:privilege:1 (v1)"
					}
					if !strings.Contains(c.Message, ns) || !strings.Contains(c.Message, "roster=both") || !strings.Contains(c.Message, "message=outgoing") {
						t.Errorf("privileges = %+v", c)
					}
					// The registered user's roster was read: Prosody
					// answers; ejabberd 23.01 advertises roster access and
					// fails the request (later versions answer).
					answered := c.Status == statusOK && strings.Contains(c.Message, "a privileged roster request was answered (a registered user's)")
					broken := c.Status == statusWarn && strings.Contains(c.Message, "failed a privileged roster request") && strings.Contains(c.Fix["ejabberd"], "23.10 or later")
					if kind == "prosody" && !answered || kind == "ejabberd" && !answered && !broken {
						t.Errorf("privileges = %+v", c)
					}
				default:
					if c.Status != statusWarn || !strings.Contains(c.Message, "no XEP-0356 privilege advertisement") ||
						!strings.Contains(c.Fix["ejabberd"], "mod_privilege") || !strings.Contains(c.Fix["prosody"], "privileged_entities") {
						t.Errorf("privileges = %+v", c)
					}
				}
				for _, c := range checks {
					if c.Status == statusFail {
						t.Errorf("FAIL: %+v", c)
					}
				}

				// A wrong secret is a FAIL that names the fix.
				checks = runDoctor(ctx, doctorServerConfig(t, srv, "not-the-secret", httpOff), doctorOptions{PrivilegeWait: wait, Timeout: e2eDoctorTimeout})
				t.Log("wrong secret:\n" + report(checks))
				c = one(t, checks, "link")
				if c.Status != statusFail || !strings.Contains(c.Message, "rejected the secret") || !strings.Contains(c.Message, "bridges[0].secret") ||
					!strings.Contains(c.Fix["prosody"], `component_secret = "<the secret of bridges[0].secret>"`) ||
					!strings.Contains(c.Fix["ejabberd"], "password:") {
					t.Errorf("wrong secret: link = %+v\n%s", c, report(checks))
				}
				if strings.Contains(report(checks), "not-the-secret") {
					t.Error("report prints the secret")
				}
			})
		}
	}
}

// TestDoctorBesideRunningLink: doctor -force-link while a component link
// for the domain is up. Prosody refuses doctor's second link (WARN, not
// FAIL); ejabberd accepts it and may route the answers to doctor's
// requests to the other link (ping/upload WARN, never FAIL). Either way
// the running link stays up.
func TestDoctorBesideRunningLink(t *testing.T) {
	for _, kind := range servertest.Kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := servertest.Start(t, kind, servertest.Options{Components: map[string]string{gwDomain: gwSecret}})
			ctx, cancel := context.WithCancel(context.Background())
			l, err := component.New(component.Config{Addr: srv.ComponentAddr, Domain: gwDomain, Secret: gwSecret}, nil)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { defer close(done); _ = l.Run(ctx) }()
			defer func() { cancel(); <-done }()
			wctx, wcancel := context.WithTimeout(ctx, e2eWait)
			conn, err := l.WaitUp(wctx)
			wcancel()
			if err != nil {
				t.Fatalf("running link: %v\n%s", err, srv.Log())
			}

			// The gateway's HTTP listener answers; -force-link makes
			// doctor connect anyway.
			checks := runDoctor(ctx, doctorServerConfig(t, srv, gwSecret, fakeGatewayHTTP(t, 200, "ready")), doctorOptions{PrivilegeWait: time.Second, ForceLink: true, Timeout: e2eDoctorTimeout})
			t.Log("\n" + report(checks))
			c := find(checks, "link")[0]
			switch kind {
			case "prosody":
				if c.Status != statusWarn || !strings.Contains(c.Message, "conflict") {
					t.Errorf("link = %+v", c)
				}
			default:
				if c.Status != statusOK {
					t.Errorf("link = %+v", c)
				}
			}
			for _, c := range checks {
				if c.Status == statusFail {
					t.Errorf("FAIL: %+v", c)
				}
			}
			// The running link is the same connection and still answers.
			select {
			case <-conn.Done():
				t.Fatal("doctor ended the running link")
			default:
			}
			bctx, bcancel := context.WithTimeout(ctx, e2eWait)
			defer bcancel()
			if err := conn.Barrier(bctx); err != nil {
				t.Errorf("running link after doctor: %v", err)
			}
		})
	}
}

// e2eDoctorTimeout is the doctor's per-step timeout against the real test
// servers: a loaded CI machine can take more than the default 5 s before
// ejabberd answers a stream header, which is not what these tests check.
const e2eDoctorTimeout = 20 * time.Second

// TestDoctorBesideClusterInstance: the active instance gw2 of a cluster
// runs on Redis with its HTTP listener elsewhere than the config doctor
// reads (gw1's, as on another host). doctor finds gw2's link lease and
// opens no link: on Prosody with component_conflict_resolve = "kick_old"
// a link of doctor's would have replaced gw2's.
func TestDoctorBesideClusterInstance(t *testing.T) {
	srv := servertest.Start(t, "prosody", servertest.Options{Components: map[string]string{gwDomain: gwSecret}})
	url := redistest.Start(t)
	bin := buildBinary(t)
	h2 := freeAddr(t)
	gw2 := startBinary(t, bin, clusterConfig(t, srv, url, "gw2", h2, false), h2)
	gw2.waitReady()

	cfg, err := config.Load(clusterConfig(t, srv, url, "gw1", freeAddr(t), false))
	if err != nil {
		t.Fatal(err)
	}
	checks := runDoctor(context.Background(), cfg, doctorOptions{PrivilegeWait: time.Second, Timeout: e2eDoctorTimeout})
	t.Log("\n" + report(checks))
	c := one(t, checks, "link")
	if c.Status != statusOK || !strings.Contains(c.Message, "held by instance gw2, which is alive") || !strings.Contains(c.Message, "-force-link") {
		t.Errorf("link = %+v", c)
	}
	for _, c := range checks {
		if c.Status == statusFail {
			t.Errorf("FAIL: %+v", c)
		}
	}
	// gw2's link was never disturbed: still ready, no stream error logged.
	if code, body := gw2.get("/readyz"); code != http.StatusOK {
		t.Errorf("gw2 /readyz after doctor: %d %s", code, body)
	}
	if log := gw2.log.String(); strings.Contains(log, "stream error") || strings.Contains(log, "lease lost") {
		t.Errorf("gw2's link was disturbed:\n%s", log)
	}
}
