// Package deploy_test checks the deployment files in deploy/ against the
// code: the Dockerfile builds the real command, the compose, systemd and
// Kubernetes files are well-formed and use a config that config.Parse
// accepts, and the Prometheus rules and the Grafana dashboard refer only to
// metrics the binary exports.
package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/jabbergate/jabbergate/bridges"
	"github.com/jabbergate/jabbergate/bridges/config"
	"github.com/jabbergate/jabbergate/bridges/metrics"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/bolt"
	"github.com/jabbergate/jabbergate/component"
	_ "github.com/jabbergate/jabbergate/legacy/all"
)

const root = ".." // the repository root, from deploy/

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// servedPaths are the paths the binary's HTTP handler serves
// (cmd/jabbergate/run.go, gateway.handler), read from the source.
func servedPaths(t *testing.T) map[string]bool {
	t.Helper()
	src := string(read(t, filepath.Join(root, "cmd/jabbergate/run.go")))
	got := map[string]bool{}
	for _, m := range regexp.MustCompile(`mux\.Handle(?:Func)?\("(/[a-z]+)"`).FindAllStringSubmatch(src, -1) {
		got[m[1]] = true
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if !got[p] {
			t.Fatalf("cmd/jabbergate/run.go no longer serves %s (found %v)", p, got)
		}
	}
	return got
}

// ---------------------------------------------------------------- Docker

func TestDockerfile(t *testing.T) {
	df := string(read(t, "docker/Dockerfile"))
	var froms, copies, runs []string
	var user, expose, volume, entry string
	// Join continuation lines.
	df = strings.ReplaceAll(df, "\\\n", " ")
	for line := range strings.SplitSeq(df, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr, rest, _ := strings.Cut(line, " ")
		switch strings.ToUpper(instr) {
		case "FROM":
			froms = append(froms, rest)
		case "COPY":
			copies = append(copies, rest)
		case "RUN":
			runs = append(runs, rest)
		case "USER":
			user = rest
		case "EXPOSE":
			expose = rest
		case "VOLUME":
			volume = rest
		case "ENTRYPOINT":
			entry = rest
		}
	}
	if len(froms) < 2 || !strings.Contains(froms[0], "golang:") || !strings.Contains(froms[0], " AS build") {
		t.Errorf("not a multi-stage build from golang: %q", froms)
	}
	// The Go image must be able to build the module's go version.
	gomod := string(read(t, filepath.Join(root, "go.mod")))
	goVer := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(gomod)
	if !strings.Contains(df, "ARG GO_VERSION="+goVer[1]) {
		t.Errorf("Dockerfile GO_VERSION does not match go.mod's go %s", goVer[1])
	}
	// Every COPY from the build context names something that exists.
	for _, c := range copies {
		if strings.Contains(c, "--from=") {
			continue
		}
		f := strings.Fields(c)
		for _, src := range f[:len(f)-1] {
			if strings.HasPrefix(src, "--") {
				continue
			}
			if _, err := os.Stat(filepath.Join(root, src)); err != nil {
				t.Errorf("COPY %s: %v", src, err)
			}
		}
	}
	var build string
	for _, r := range runs {
		if strings.Contains(r, "go build") {
			build = r
		}
	}
	re := regexp.MustCompile(`CGO_ENABLED=0 .*go build -trimpath .*-o (\S+) (\./cmd/jabbergate)\b`)
	m := re.FindStringSubmatch(build)
	if m == nil {
		t.Fatalf("build command %q does not match `CGO_ENABLED=0 … go build -trimpath … ./cmd/jabbergate`", build)
	}
	if fi, err := os.Stat(filepath.Join(root, m[2], "main.go")); err != nil || fi.IsDir() {
		t.Errorf("%s/main.go: %v", m[2], err)
	}
	if !strings.Contains(build, "main.version=") {
		t.Error("the build does not set main.version")
	}
	if _, err := os.Stat(filepath.Join(root, "cmd/jabbergate/main.go")); err != nil {
		t.Error(err)
	}
	if !strings.Contains(string(read(t, filepath.Join(root, "cmd/jabbergate/main.go"))), "var version = ") {
		t.Error("cmd/jabbergate has no main.version variable for -ldflags -X")
	}
	if user == "" || user == "root" || strings.HasPrefix(user, "0") {
		t.Errorf("USER %q: must be non-root", user)
	}
	if expose != "9470" || port(t, config.DefaultHTTPListen) != 9470 {
		t.Errorf("EXPOSE %q, default http.listen %s", expose, config.DefaultHTTPListen)
	}
	if !strings.Contains(volume, "/data") {
		t.Errorf("VOLUME %q", volume)
	}
	if !strings.Contains(entry, "/usr/local/bin/jabbergate") || !strings.Contains(df, "/out/jabbergate /usr/local/bin/jabbergate") {
		t.Errorf("ENTRYPOINT %q does not run the copied binary", entry)
	}
	if _, err := os.Stat("docker/Dockerfile.dockerignore"); err != nil {
		t.Error(err)
	}
}

func port(t *testing.T, hostport string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("%q: %v", hostport, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// ---------------------------------------------------------------- compose

func TestCompose(t *testing.T) {
	var c struct {
		Services map[string]struct {
			Image   string
			Build   struct{ Context, Dockerfile string }
			Volumes []string
			Ports   []string
			Command []string
		}
	}
	if err := yaml.Unmarshal(read(t, "compose.yaml"), &c); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"prosody", "redis", "jabbergate"} {
		if _, ok := c.Services[s]; !ok {
			t.Fatalf("compose.yaml: no %s service", s)
		}
	}
	for name, s := range c.Services {
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("service %s mounts %s: %v", name, src, err)
				}
			}
		}
	}
	jg := c.Services["jabbergate"]
	if _, err := os.Stat(filepath.Join(jg.Build.Context, jg.Build.Dockerfile)); err != nil {
		t.Errorf("jabbergate build: %v", err)
	}
	t.Setenv("JG_ECHO_SECRET", "compose-test-secret")
	cfg, err := config.Parse("compose/jabbergate.yaml", read(t, "compose/jabbergate.yaml"))
	if err != nil {
		t.Fatalf("compose/jabbergate.yaml: %v", err)
	}
	if cfg.XMPP.Server != "prosody:5347" || cfg.Store.Backend != "redis" || !strings.Contains(cfg.Store.Redis.URL, "//redis:6379") {
		t.Errorf("gateway config does not point at the compose services: %s", cfg.Redacted())
	}
	if port(t, cfg.HTTP.Listen) != 9470 || !slices.Contains(jg.Ports, "127.0.0.1:9470:9470") {
		t.Errorf("http.listen %s, ports %v", cfg.HTTP.Listen, jg.Ports)
	}
	lua := string(read(t, "compose/prosody.cfg.lua"))
	if !strings.Contains(lua, "component_ports = { 5347 }") {
		t.Error("prosody.cfg.lua: no component listener on 5347")
	}
	for _, b := range cfg.Bridges {
		if b.Network != "echo" {
			t.Errorf("compose bridge %s uses %s, want echo", b.Domain, b.Network)
		}
		if !strings.Contains(lua, fmt.Sprintf("Component %q\n  -- The same secret", b.Domain)) && !strings.Contains(lua, fmt.Sprintf("Component %q", b.Domain)) {
			t.Errorf("prosody.cfg.lua has no Component %q", b.Domain)
		}
	}
	if !strings.Contains(lua, "component_secret = ENV_JG_ECHO_SECRET") {
		t.Error("prosody.cfg.lua does not take the secret from JG_ECHO_SECRET")
	}
	// Prosody's own checker, when installed (it reads the config only).
	if pc, err := exec.LookPath("luac"); err == nil {
		if out, err := exec.Command(pc, "-p", "compose/prosody.cfg.lua").CombinedOutput(); err != nil {
			t.Errorf("luac -p prosody.cfg.lua: %v\n%s", err, out)
		}
	}
}

// ---------------------------------------------------------------- systemd

func TestSystemdUnit(t *testing.T) {
	unit := read(t, "systemd/jabbergate.service")
	dirs := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			section = line
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("bad line %q", line)
		}
		dirs[section+k] = append(dirs[section+k], v)
	}
	want := map[string]string{
		"Type": "notify", "WatchdogSec": "30", "Restart": "on-failure",
		"DynamicUser": "yes", "StateDirectory": "jabbergate", "ProtectSystem": "strict",
		"ProtectHome": "yes", "NoNewPrivileges": "yes", "PrivateTmp": "yes",
		"RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6", "SystemCallFilter": "@system-service",
		"CapabilityBoundingSet": "", "RestartPreventExitStatus": "78",
	}
	for k, v := range want {
		if !slices.Contains(dirs["[Service]"+k], v) {
			t.Errorf("[Service] %s=%s missing (have %q)", k, v, dirs["[Service]"+k])
		}
	}
	if r := dirs["[Service]ExecReload"]; len(r) != 1 || r[0] != "/bin/kill -HUP $MAINPID" {
		t.Errorf("ExecReload %q, want /bin/kill -HUP $MAINPID (cmd/jabbergate/reload.go)", r)
	}
	exec0 := dirs["[Service]ExecStart"]
	if len(exec0) != 1 || !strings.HasSuffix(exec0[0], " run -config /etc/jabbergate/jabbergate.yaml") {
		t.Errorf("ExecStart %q", exec0)
	}
	// systemd's own verifier, when present (the binary path is replaced by
	// one that exists on this machine).
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: unit not verified by systemd")
		return
	}
	tmp := filepath.Join(t.TempDir(), "jabbergate.service")
	if err := os.WriteFile(tmp, bytes.ReplaceAll(unit, []byte("/usr/local/bin/jabbergate"), []byte("/bin/true")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", tmp).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("jabbergate.service:")) {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// ---------------------------------------------------------------- Kubernetes

type object map[string]any

func (o object) get(path ...any) any {
	var v any = map[string]any(o)
	for _, p := range path {
		switch k := p.(type) {
		case string:
			switch m := v.(type) {
			case map[string]any:
				v = m[k]
			case object:
				v = m[k]
			default:
				return nil
			}
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func (o object) str(path ...any) string { s, _ := o.get(path...).(string); return s }

func loadManifests(t *testing.T) map[string]object {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatal("no manifests", err)
	}
	apiVersions := map[string]string{
		"Deployment": "apps/v1", "Service": "v1", "ConfigMap": "v1", "Secret": "v1",
		"PodDisruptionBudget": "policy/v1", "Kustomization": "kustomize.config.k8s.io/v1beta1",
	}
	byKind := map[string]object{}
	for _, f := range files {
		dec := yaml.NewDecoder(bytes.NewReader(read(t, f)))
		for {
			var o object
			if err := dec.Decode(&o); err != nil {
				if err.Error() == "EOF" {
					break
				}
				t.Fatalf("%s: %v", f, err)
			}
			kind := o.str("kind")
			want, ok := apiVersions[kind]
			if !ok {
				t.Errorf("%s: unexpected kind %q", f, kind)
				continue
			}
			if o.str("apiVersion") != want {
				t.Errorf("%s: %s apiVersion %q, want %q", f, kind, o.str("apiVersion"), want)
			}
			if kind != "Kustomization" && o.str("metadata", "name") != "jabbergate" {
				t.Errorf("%s: metadata.name %q", f, o.str("metadata", "name"))
			}
			if _, dup := byKind[kind]; dup {
				t.Errorf("%s: second %s", f, kind)
			}
			byKind[kind] = o
		}
	}
	for kind := range apiVersions {
		if byKind[kind] == nil {
			t.Errorf("no %s manifest", kind)
		}
	}
	return byKind
}

func TestKubernetesManifests(t *testing.T) {
	k := loadManifests(t)
	if t.Failed() {
		return
	}
	// Kustomization lists every file.
	files, _ := filepath.Glob("kubernetes/*.yaml")
	var listed []string
	for _, r := range k["Kustomization"].get("resources").([]any) {
		listed = append(listed, "kubernetes/"+r.(string))
	}
	for _, f := range files {
		if f != "kubernetes/kustomization.yaml" && !slices.Contains(listed, f) {
			t.Errorf("kustomization.yaml does not list %s", f)
		}
	}

	d := k["Deployment"]
	labels := asMap(d.get("spec", "template", "metadata", "labels"))
	matches := func(sel any) bool {
		m := asMap(sel)
		if len(m) == 0 {
			return false
		}
		for key, v := range m {
			if labels[key] != v {
				return false
			}
		}
		return true
	}
	if !matches(d.get("spec", "selector", "matchLabels")) {
		t.Error("Deployment selector does not match its pod labels")
	}
	if !matches(k["Service"].get("spec", "selector")) {
		t.Error("Service selector does not match the pods")
	}
	if !matches(k["PodDisruptionBudget"].get("spec", "selector", "matchLabels")) {
		t.Error("PodDisruptionBudget selector does not match the pods")
	}
	if d.get("spec", "replicas") != 1 || d.str("spec", "strategy", "type") != "Recreate" {
		t.Error("one replica with strategy Recreate: a component domain takes one link")
	}
	pod := object(asMap(d.get("spec", "template", "spec")))
	if pod.get("securityContext", "runAsNonRoot") != true {
		t.Error("pod securityContext.runAsNonRoot is not true")
	}
	c := object(asMap(pod.get("containers", 0)))
	for path, want := range map[string]any{
		"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false, "runAsNonRoot": true,
	} {
		if c.get("securityContext", path) != want {
			t.Errorf("container securityContext.%s != %v", path, want)
		}
	}
	if c.get("securityContext", "capabilities", "drop", 0) != "ALL" {
		t.Error("container does not drop all capabilities")
	}
	ports := map[string]int{}
	for _, p := range c.get("ports").([]any) {
		pm := asMap(p)
		ports[pm["name"].(string)] = pm["containerPort"].(int)
	}
	served := servedPaths(t)
	for _, probe := range []string{"livenessProbe", "readinessProbe", "startupProbe"} {
		path := c.str(probe, "httpGet", "path")
		if !served[path] {
			t.Errorf("%s path %q is not served by the binary", probe, path)
		}
		if _, ok := ports[c.str(probe, "httpGet", "port")]; !ok {
			t.Errorf("%s port %v is not a container port", probe, c.get(probe, "httpGet", "port"))
		}
	}
	if c.str("livenessProbe", "httpGet", "path") != "/healthz" || c.str("readinessProbe", "httpGet", "path") != "/readyz" {
		t.Error("liveness must probe /healthz and readiness /readyz")
	}
	svcPort := object(asMap(k["Service"].get("spec", "ports", 0)))
	if _, ok := ports[svcPort.str("targetPort")]; !ok {
		t.Errorf("Service targetPort %v is not a container port", svcPort.get("targetPort"))
	}

	// The ConfigMap's config parses, with the environment the Deployment
	// gives it from the Secret.
	secret := asMap(k["Secret"].get("stringData"))
	for _, e := range c.get("env").([]any) {
		em := object(asMap(e))
		if em.str("name") == "GOMEMLIMIT" {
			// From the container's own limit, not the Secret.
			if em.str("valueFrom", "resourceFieldRef", "resource") != "limits.memory" {
				t.Errorf("env GOMEMLIMIT must come from resourceFieldRef limits.memory")
			}
			continue
		}
		ref := em.str("valueFrom", "secretKeyRef", "key")
		if em.str("valueFrom", "secretKeyRef", "name") != "jabbergate" || secret[ref] == nil {
			t.Errorf("env %s: secret key %q not in the example Secret", em.str("name"), ref)
		}
		val := "k8s-test-value"
		switch em.str("name") {
		case "JG_VAULT_KEY":
			val = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
		case "JG_REDIS_URL":
			val = "redis://redis:6379/0"
		}
		t.Setenv(em.str("name"), val)
	}
	data := asMap(k["ConfigMap"].get("data"))
	text, _ := data["jabbergate.yaml"].(string)
	cfg, err := config.Parse("configmap jabbergate.yaml", []byte(text))
	if err != nil {
		t.Fatalf("ConfigMap config: %v", err)
	}
	if port(t, cfg.HTTP.Listen) != ports["http"] {
		t.Errorf("config http.listen %s does not serve container port %d", cfg.HTTP.Listen, ports["http"])
	}
	if !strings.HasPrefix(cfg.HTTP.Listen, "0.0.0.0:") {
		t.Errorf("http.listen %s is not reachable by the kubelet's probes", cfg.HTTP.Listen)
	}
	mountedConfig := false
	for _, m := range c.get("volumeMounts").([]any) {
		if asMap(m)["mountPath"] == "/etc/jabbergate" {
			mountedConfig = true
		}
	}
	if !mountedConfig || !slices.Contains(anyStrings(c.get("args")), "/etc/jabbergate/jabbergate.yaml") {
		t.Error("the ConfigMap is not mounted where the container reads its config")
	}
}

func asMap(v any) map[string]any {
	switch m := v.(type) {
	case map[string]any:
		return m
	case object:
		return m
	}
	return nil
}

func anyStrings(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// ---------------------------------------------------------------- metrics

// exported gathers the registry of metrics.New after one bridge observed
// one of everything, so every vec has children: metric name → type. Series
// names of histograms (_bucket, _sum, _count) are included.
func exported(t *testing.T) map[string]dto.MetricType {
	t.Helper()
	m := metrics.New("test")
	bm := m.Bridge("echo.test")
	bm.LinkUp(true)
	bm.Reconnected()
	bm.Stanza(component.In, "message")
	bm.StreamError("conflict")
	bm.QueueDepth(store.Outbox, 1)
	bm.Delivered("out", false)
	bm.Sessions(1)
	bm.InitNetwork("echo")
	bm.SessionFailed("echo", "unauthorized")
	bm.OutboxOldest("user-key", time.Now().Add(-time.Minute))
	st, err := bolt.Open(filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	ts := m.Store(st)
	if err := ts.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if ts.Ping(context.Background()) == nil { // a failure, for jabbergate_store_errors_total
		t.Fatal("ping of a closed store succeeded")
	}
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]dto.MetricType{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf.GetType()
		if mf.GetType() == dto.MetricType_HISTOGRAM || mf.GetType() == dto.MetricType_SUMMARY {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				out[mf.GetName()+s] = mf.GetType()
			}
		}
	}
	return out
}

var (
	reString  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	reBraces  = regexp.MustCompile(`\{[^}]*\}`)
	reRange   = regexp.MustCompile(`\[[^\]]*\]`)
	reGroup   = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	reIdent   = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*\s*\(?`)
	keywords  = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true}
	allowedUp = map[string]bool{"up": true} // Prometheus' own per-target series
)

// metricNames returns the metric names a PromQL expression reads.
func metricNames(expr string) []string {
	e := reString.ReplaceAllString(expr, `""`)
	e = reBraces.ReplaceAllString(e, " ")
	e = reRange.ReplaceAllString(e, " ")
	e = reGroup.ReplaceAllString(e, " ")
	var names []string
	for _, m := range reIdent.FindAllString(e, -1) {
		if strings.HasSuffix(m, "(") { // a function
			continue
		}
		m = strings.TrimSpace(m)
		if keywords[strings.ToLower(m)] {
			continue
		}
		names = append(names, m)
	}
	return names
}

func TestMetricNames(t *testing.T) {
	got := metricNames(`sum by (instance, bridge) (rate(jabbergate_messages_total{result="failed", x=~"a{b}"}[10m])) / on (x) up > 0.1 and histogram_quantile(0.99, foo_bucket)`)
	want := []string{"jabbergate_messages_total", "up", "foo_bucket"}
	if !slices.Equal(got, want) {
		t.Fatalf("metricNames = %q, want %q", got, want)
	}
}

func checkExprs(t *testing.T, where string, exprs []string, have map[string]dto.MetricType) map[string]bool {
	t.Helper()
	used := map[string]bool{}
	for _, e := range exprs {
		names := metricNames(e)
		if len(names) == 0 {
			t.Errorf("%s: expression reads no metric: %s", where, e)
		}
		for _, n := range names {
			used[n] = true
			if _, ok := have[n]; !ok && !allowedUp[n] {
				t.Errorf("%s: %s is not exported by the binary (expr %s)", where, n, e)
			}
		}
	}
	return used
}

func TestAlertRules(t *testing.T) {
	var rules struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert, Expr, For string
				Labels           map[string]string
				Annotations      map[string]string
			}
		}
	}
	if err := yaml.Unmarshal(read(t, "prometheus/alerts.yaml"), &rules); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %+v: alert, expr, severity and summary are required", r)
			}
			exprs = append(exprs, r.Expr)
		}
	}
	used := checkExprs(t, "alerts.yaml", exprs, exported(t))
	for _, need := range []string{"jabbergate_link_up", "jabbergate_queue_depth", "jabbergate_messages_total", "jabbergate_legacy_sessions", "jabbergate_store_errors_total",
		"jabbergate_outbox_oldest_age_seconds", "jabbergate_legacy_session_failures_total"} {
		if !used[need] {
			t.Errorf("no alert on %s", need)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed (Debian package prometheus): rules not checked by promtool")
		return
	}
	out, err := exec.Command(promtool, "check", "rules", "prometheus/alerts.yaml").CombinedOutput()
	if err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
	// The outbox age and session failure alerts fire when they should
	// (and not before): rule unit tests.
	out, err = exec.Command(promtool, "test", "rules", "prometheus/alerts_test.yaml").CombinedOutput()
	if err != nil {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}
}

func TestGrafanaDashboard(t *testing.T) {
	var d struct {
		Title  string
		UID    string
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(read(t, "grafana/jabbergate.json"), &d); err != nil {
		t.Fatal(err)
	}
	if d.UID == "" || len(d.Panels) == 0 {
		t.Fatal("dashboard without uid or panels")
	}
	var exprs []string
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	used := checkExprs(t, "jabbergate.json", exprs, exported(t))
	for _, need := range []string{"jabbergate_link_up", "jabbergate_stanzas_total", "jabbergate_messages_total", "jabbergate_queue_depth", "jabbergate_legacy_sessions", "jabbergate_store_operation_duration_seconds_bucket", "go_memstats_heap_inuse_bytes",
		"jabbergate_outbox_oldest_age_seconds", "jabbergate_legacy_session_failures_total"} {
		if !used[need] {
			t.Errorf("no panel reads %s", need)
		}
	}
}

// TestMetricNaming checks the exported jabbergate_ metrics against the
// Prometheus naming guide: counters end in _total, nothing else does,
// durations are in seconds, and labels are bounded (no JIDs or numbers).
func TestMetricNaming(t *testing.T) {
	bounded := map[string]bool{"bridge": true, "kind": true, "direction": true, "queue": true, "result": true, "operation": true, "condition": true, "version": true,
		"network": true, "reason": true}
	m := metrics.New("test")
	bm := m.Bridge("echo.test")
	bm.InitNetwork("echo")
	bm.OutboxOldest("alice@example.org", time.Now())
	bm.Stanza(component.Out, "iq")
	bm.StreamError("conflict")
	bm.Delivered("in", true)
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.HasPrefix(name, "jabbergate_") {
			continue
		}
		names = append(names, name)
		isCounter := mf.GetType() == dto.MetricType_COUNTER
		if isCounter != strings.HasSuffix(name, "_total") {
			t.Errorf("%s (%v): only counters end in _total", name, mf.GetType())
		}
		if strings.Contains(name, "duration") && !strings.HasSuffix(name, "_seconds") {
			t.Errorf("%s: durations are in seconds", name)
		}
		if mf.GetHelp() == "" {
			t.Errorf("%s has no help", name)
		}
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if !bounded[l.GetName()] {
					t.Errorf("%s: label %q is not one of the bounded labels", name, l.GetName())
				}
			}
		}
	}
	sort.Strings(names)
	t.Logf("exported: %s", strings.Join(names, ", "))
	var all strings.Builder
	for _, mf := range mfs {
		all.WriteString(mf.String())
	}
	if strings.Contains(all.String(), "alice") {
		t.Error("a JID reached the metrics")
	}
	// The engine and the metrics agree on the session failure reasons
	// (the metrics package keeps its own copy to stay free of bridges).
	if !slices.Equal(metrics.SessionFailureReasons, bridges.SessionFailureReasons) {
		t.Errorf("session failure reasons: metrics %q, bridges %q", metrics.SessionFailureReasons, bridges.SessionFailureReasons)
	}
}
