// Command jabbergate runs the Jabbergate XMPP gateway: one XEP-0114
// component link per configured bridge, each bound to a legacy network.
//
// Usage:
//
//	jabbergate run -config FILE           run the gateway
//	jabbergate check-config -config FILE  validate a config file and print it with secrets redacted
//	jabbergate doctor -config FILE        check the server, store and URLs the config names and say what to change
//	jabbergate rotate-key -config FILE -new-key-file F  re-seal every stored credential with a new key
//	jabbergate export-user -config FILE -jid J          print a user's stored data as JSON, secrets redacted
//	jabbergate delete-user -config FILE -jid J          delete everything stored about a user
//	jabbergate version                    print the version
//
// Exit status: 0 on a clean stop (and for -h/--help), 1 on a runtime
// failure (for doctor: a check FAILs), 78 (EX_CONFIG) on a usage or
// configuration error. 2 is the Go
// runtime's own status for a panic, a fatal error or SIGABRT/SIGQUIT, so
// it means a crash, which systemd restarts.
//
// Signals to `jabbergate run`: SIGTERM or SIGINT stops gracefully; SIGHUP
// reloads the config file, restarting only the bridges whose settings
// changed (reload.go, docs/configuration.md).
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jabbergate/jabbergate/bridges"
	"github.com/jabbergate/jabbergate/bridges/config"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/bolt"
	pebblestore "github.com/jabbergate/jabbergate/bridges/store/pebble"
	redisstore "github.com/jabbergate/jabbergate/bridges/store/redis"
	"github.com/jabbergate/jabbergate/bridges/vault"
	"github.com/jabbergate/jabbergate/legacy"
	_ "github.com/jabbergate/jabbergate/legacy/all"
)

// version is set at build time with -ldflags "-X main.version=…"; otherwise
// it comes from the module's build info.
var version = ""

func main() {
	os.Exit(cli(os.Args[1:], os.Stdout, os.Stderr))
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

const usage = `usage:
  jabbergate run -config FILE           run the gateway
  jabbergate check-config -config FILE  validate a config file
  jabbergate doctor -config FILE        diagnose the XMPP server, store and URLs
                                        (-json, -check-accounts, -force-link, -timeout D)
                                        exit status: 0 no check FAILs, 1 one does,
                                        78 usage or configuration error
  jabbergate rotate-key -config FILE -new-key-file F
                                        re-seal every stored credential with the key in F
  jabbergate export-user -config FILE -jid J
                                        print a user's stored data as JSON (secrets redacted)
  jabbergate delete-user -config FILE -jid J
                                        delete everything stored about a user
  jabbergate version                    print the version
`

// runContext is the context `jabbergate run` starts from; tests give
// it a deadline, so that a run expected to fail at once cannot hang them.
var runContext = context.Background

// Exit statuses besides 0.
const (
	// exitFailure is a runtime failure: systemd restarts the gateway.
	exitFailure = 1
	// exitConfig is a usage or configuration error, which restarting
	// does not fix: EX_CONFIG of sysexits.h. The shipped systemd unit
	// sets RestartPreventExitStatus=78. It must not be 2, which the Go
	// runtime exits with on an unrecovered panic, a fatal error and
	// SIGABRT or SIGQUIT (the watchdog's signal): those are restarted.
	exitConfig = 78
)

// cli runs one command and returns the exit status.
func cli(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitConfig
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "version", "-version", "--version":
		fs := flag.NewFlagSet("version", flag.ContinueOnError)
		fs.SetOutput(stderr)
		if status, ok := parseFlags(fs, rest, stdout, stderr); !ok {
			return status
		}
		if fs.NArg() > 0 {
			fmt.Fprintf(stderr, "jabbergate version: unexpected argument %q (version takes no arguments)\n", fs.Arg(0))
			return exitConfig
		}
		fmt.Fprintf(stdout, "jabbergate %s (networks: %v)\n", buildVersion(), legacy.Names())
		return 0
	case "doctor":
		return doctorCmd(rest, stdout, stderr)
	case "rotate-key":
		return rotateKeyCmd(rest, stdout, stderr) // admin.go
	case "export-user":
		return exportUserCmd(rest, stdout, stderr) // admin.go
	case "delete-user":
		return deleteUserCmd(rest, stdout, stderr) // admin.go
	case "run", "check-config":
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "jabbergate: unknown command %q\n%s", cmd, usage)
		return exitConfig
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "path to the YAML config file")
	if status, ok := parseFlags(fs, rest, stdout, stderr); !ok {
		return status
	}
	if strayArgument(stderr, cmd, fs) {
		return exitConfig
	}
	if *path == "" {
		requiredFlag(stderr, cmd, "-config FILE")
		return exitConfig
	}
	// run opens the store: a store.path it cannot open is a configuration
	// error (exitConfig, which systemd does not restart on), so
	// check-config, run's ExecStartPre in the shipped unit, refuses it too.
	cfg, ok := loadConfig(*path, stderr, checkStorePath, checkVaultKeyFile, checkMediaDir)
	if !ok {
		return exitConfig
	}
	if cmd == "check-config" {
		fmt.Fprintf(stdout, "%s: OK\n%s", *path, cfg.Redacted())
		return 0
	}
	bridges.Version = buildVersion()
	slog.SetDefault(newLogger(cfg.Log, stderr))
	ctx, stop := signal.NotifyContext(runContext(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, stderr, *path); err != nil {
		fmt.Fprintf(stderr, "jabbergate: %v\n", err)
		var ce *configError
		if errors.As(err, &ce) {
			return exitConfig
		}
		return exitFailure
	}
	return 0
}

// parseFlags parses args into fs, whose output is stderr. With -h or
// --help it prints the command's usage and flags on stdout and returns
// status 0; a bad flag, which the flag package has printed, gets a
// one-line hint and exitConfig. ok is true when the command goes on.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (status int, ok bool) {
	fs.Usage = func() {} // the flag package's "Usage of …" is printed below, on -h only
	err := fs.Parse(args)
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(stdout, "usage:\n%s", commandUsage(fs.Name()))
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(stdout, "flags:")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			fs.SetOutput(stderr)
		}
		return 0, false
	}
	fmt.Fprintf(stderr, "jabbergate %s: see jabbergate %[1]s -h for its flags\n", fs.Name())
	return exitConfig, false
}

// requiredFlag reports a missing required flag on one line, with a hint.
func requiredFlag(stderr io.Writer, cmd, flag string) {
	fmt.Fprintf(stderr, "jabbergate %s: %s is required (jabbergate %[1]s -h lists the flags)\n", cmd, flag)
}

// commandUsage returns the lines of usage about cmd: its own line and the
// indented lines that follow it.
func commandUsage(cmd string) string {
	var b strings.Builder
	in := false
	for line := range strings.Lines(usage) {
		switch {
		case strings.HasPrefix(line, "  jabbergate "+cmd+" "):
			in = true
		case !strings.HasPrefix(line, "    "):
			in = false
		}
		if in {
			b.WriteString(line)
		}
	}
	return b.String()
}

// strayArgument reports, on stderr, an argument left after the flags
// (a flag given after it is not parsed either).
func strayArgument(stderr io.Writer, cmd string, fs *flag.FlagSet) bool {
	if fs.NArg() == 0 {
		return false
	}
	fmt.Fprintf(stderr, "jabbergate %s: unexpected argument %q (flags go before it; the config file is given with -config FILE)\n", cmd, fs.Arg(0))
	return true
}

// configError is a problem found while wiring that the admin fixes in the
// config file (exitConfig).
type configError struct{ err error }

func (e *configError) Error() string { return e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

// loadConfig loads and checks the config file the way every command does,
// then runs the command's own checks, printing every error to stderr; ok
// is false on a configuration error.
//
// The networks and the command's checks run even when Load finds other
// problems (config.LoadWith), so every problem is reported at once, in
// line order; a check sees the config as read (config.Config.Defaulted
// gives it the defaults) and leaves out what needs a value Load refused
// (config.Config.Reported).
func loadConfig(path string, stderr io.Writer, checks ...func(file string, cfg *config.Config) error) (cfg *config.Config, ok bool) {
	var notes []*checkNote
	cfg, err := config.LoadWith(path, func(cfg *config.Config) error {
		errs := []error{checkNetworks(path, cfg)}
		for _, check := range checks {
			err := check(path, cfg)
			if n, ok := err.(*checkNote); ok {
				notes = append(notes, n)
				continue
			}
			errs = append(errs, err)
		}
		return byLine(errs)
	})
	if cfg != nil {
		err = byLine([]error{err})
	}
	for _, n := range notes {
		fmt.Fprintf(stderr, "jabbergate: note: %v\n", n)
	}
	if err != nil {
		fmt.Fprintf(stderr, "jabbergate: configuration error:\n%v\n", err)
		return nil, false
	}
	return cfg, true
}

// byLine joins the configuration errors in errs ordered by line, as
// config.Load orders its own (problems without a line last); nil if none.
func byLine(errs []error) error {
	var all []*config.Error
	var other []error
	for _, err := range errs {
		if err == nil {
			continue
		}
		if ces := config.Errors(err); len(ces) > 0 {
			all = append(all, ces...)
		} else {
			other = append(other, err)
		}
	}
	slices.SortStableFunc(all, func(a, b *config.Error) int {
		switch {
		case a.Line == b.Line:
			return 0
		case a.Line == 0:
			return 1
		case b.Line == 0:
			return -1
		}
		return cmp.Compare(a.Line, b.Line)
	})
	out := make([]error, 0, len(all)+len(other))
	for _, e := range all {
		out = append(out, e)
	}
	out = append(out, other...)
	if len(out) == 1 {
		return out[0]
	}
	return errors.Join(out...)
}

// checkVaultKeyFile refuses a vault.key_file that run could not use: an
// existing one that holds no key, a missing one in a directory that does
// not exist or that the user may not write, or a missing one while the
// store holds registered accounts (storedAccounts: read only, never
// created; a store a running gateway holds is not read, which the
// returned *checkNote says). run creates a missing key file, never its
// directory, and only while the store holds no registered account
// (ensureVaultKey).
func checkVaultKeyFile(file string, cfg *config.Config) error {
	if cfg.Reported("vault") || cfg.Vault.KeyFile == "" && cfg.Reported("store") {
		return nil // reported by Load (the default key file is next to store.path)
	}
	cfg = cfg.Defaulted()
	kf := cfg.Vault.KeyFile
	if cfg.Vault.Key != "" || kf == "" {
		return nil
	}
	at := func(problem string) error {
		return &config.Error{File: file, Line: cfg.Line("vault.key_file"), Key: "vault.key_file", Problem: problem}
	}
	set := cfg.Line("vault.key_file") != 0
	_, err := vault.LoadKey(kf)
	if errors.Is(err, fs.ErrNotExist) {
		dir := filepath.Dir(kf)
		what := "the missing key file is created in its directory"
		if !set {
			what = "vault.key_file is not set, so the key is kept in " + kf + "; it is created in its directory"
		}
		fi, err := os.Stat(dir)
		switch {
		case err != nil && !set && (cfg.Store.Backend == "bolt" || cfg.Store.Backend == "pebble") && dir == filepath.Dir(cfg.Store.Path):
			return nil // next to the store: store.path's check names the directory
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
			return at(fmt.Sprintf("directory %q does not exist: create it or correct the path (a missing key file is created on first start while no account is registered; the directory holding it is not)", dir))
		case err == nil && !fi.IsDir():
			return at(fmt.Sprintf("%q is not a directory, so the key file %q cannot be created in it: give another path", dir, kf))
		}
		if prob := config.AccessProblem(dir, unix.W_OK|unix.X_OK, what); prob != "" {
			return at(prob)
		}
		// As ensureVaultKey: a new key only while no account is
		// registered. The store is only read, never created.
		n, skipped := storedAccounts(context.Background(), cfg)
		switch {
		case skipped != "":
			return &checkNote{&config.Error{File: file, Line: cfg.Line("vault.key_file"), Key: "vault.key_file",
				Problem: fmt.Sprintf("key file %q does not exist; whether the store holds registered accounts, for which run refuses to make a new key, was not checked: %s", kf, skipped)}}
		case n > 0:
			return at(missingKeyProblem(kf, n))
		}
		return nil
	}
	if err != nil {
		problem := strings.TrimPrefix(strings.TrimPrefix(err.Error(), "vault: "), "key file ")
		if !errors.Is(err, fs.ErrPermission) {
			problem += " (make one with: head -c 32 /dev/urandom | base64)"
		}
		return at(problem)
	}
	return nil
}

// missingKeyProblem is the problem of a vault.key_file that does not
// exist while the store holds n > 0 registered accounts.
func missingKeyProblem(kf string, n int) string {
	return fmt.Sprintf("key file %q does not exist, but the store holds %d registered account(s) whose credentials were sealed with a key: a new key would not open them. Correct the path, or restore the key file from a backup (a new key is made only while no account is registered)", kf, n)
}

// storedAccounts counts the registered accounts of cfg's bridges in the
// store without creating it: a bolt file or pebble directory that does
// not exist (or a directory pebble has not made a store in) holds none.
// skipped says why they could not be counted, which is no configuration
// error: a running gateway holds the store (bolt, pebble), Redis does not
// answer, the store cannot be read (run says why when it opens it).
func storedAccounts(ctx context.Context, cfg *config.Config) (n int, skipped string) {
	s := cfg.Store
	var st store.Store
	var err error
	switch s.Backend {
	case "redis":
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		redisstore.SetLogger(slog.New(slog.DiscardHandler)) // the verdict says what matters
		st, err = redisstore.Open(rctx, s.Redis.URL, redisstore.Options{Prefix: s.Redis.Prefix})
	case "pebble":
		if !pebblestore.Exists(s.Path) {
			return 0, ""
		}
		st, err = pebblestore.Open(s.Path, pebblestore.Timeout(300*time.Millisecond), pebblestore.SweepInterval(-1))
	default:
		if fi, err := os.Stat(s.Path); err != nil || !fi.Mode().IsRegular() {
			return 0, "" // missing; a problem of another kind is store.path's
		}
		st, err = bolt.Open(s.Path, bolt.Timeout(300*time.Millisecond), bolt.SweepInterval(-1))
	}
	switch {
	case errors.Is(err, store.ErrLocked):
		return 0, fmt.Sprintf("the %s store %s is in use by a running gateway", s.Backend, s.Path)
	case err != nil:
		return 0, fmt.Sprintf("cannot open the %s store: %v", s.Backend, err)
	}
	defer st.Close()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err = countAccounts(rctx, st, cfg)
	if err != nil {
		return 0, err.Error()
	}
	return n, ""
}

// countAccounts counts the registered accounts of cfg's bridges in st,
// including those whose records cannot be read (they were registered too,
// with credentials sealed with the key in use).
func countAccounts(ctx context.Context, st store.Store, cfg *config.Config) (int, error) {
	n := 0
	for _, b := range cfg.Bridges {
		accts, err := st.ListAccounts(ctx, b.Domain)
		var ce *store.CorruptAccountsError
		if errors.As(err, &ce) {
			n += len(ce.Records)
		} else if err != nil {
			return 0, fmt.Errorf("cannot list the accounts of %s: %w", b.Domain, err)
		}
		n += len(accts)
	}
	return n, nil
}

// checkNote is what a check says that is no configuration error (the
// account check of a missing vault.key_file skipped): loadConfig prints
// it as a note, doctor as a WARN line.
type checkNote struct{ err *config.Error }

func (n *checkNote) Error() string { return n.err.Error() }

// checkMediaDir refuses a media.dir the gateway could not write files
// from legacy contacts to (config.CheckMediaDir).
func checkMediaDir(file string, cfg *config.Config) error { return cfg.CheckMediaDir(file) }

// checkStorePath refuses a bolt or pebble store.path that run could not
// open (a directory for bolt, a missing parent directory).
func checkStorePath(file string, cfg *config.Config) error { return cfg.CheckStorePath(file) }

// checkNetworks builds each bridge's network once, so unknown networks and
// bad adapter options are reported as configuration errors. An option the
// network refuses is reported at its line under its full key,
// bridges[i].options.NAME (optionErrors).
func checkNetworks(file string, cfg *config.Config) error {
	var errs []error
	for i, b := range cfg.Bridges {
		if _, ok := legacy.Lookup(b.Network); !ok {
			key := fmt.Sprintf("bridges[%d].network", i)
			errs = append(errs, &config.Error{File: file, Line: cfg.Line(key), Key: key,
				Problem: fmt.Sprintf("network %q is not built into this binary (built in: %s)", b.Network, strings.Join(legacy.Names(), ", "))})
			continue
		}
		if _, err := legacy.New(b.Network, b.Options); err != nil {
			errs = append(errs, optionErrors(file, cfg, i, err)...)
		}
	}
	return errors.Join(errs...)
}

// optionErrors turns the error bridges[i]'s network factory returned into
// *config.Error values:
//
//   - every *legacy.OptionError in it (wrapped or joined) becomes
//     "file:line: bridges[i].options.NAME: problem", at the line of that
//     option's key (NAME_file when the value came from a file);
//   - an untyped error in one of the adapters' wordings, `unknown option
//     "NAME" (…)` or `option NAME: problem`, after any "network: "
//     prefixes, is reported the same way, the name taken from the text;
//   - any other error is reported as it is, under bridges[i].options at the
//     line of the options block (of the bridge when it has none).
//
// Each member of an errors.Join is treated on its own.
func optionErrors(file string, cfg *config.Config, i int, err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, m := range j.Unwrap() {
			out = append(out, optionErrors(file, cfg, i, m)...)
		}
		return out
	}
	block := fmt.Sprintf("bridges[%d].options", i)
	at := func(name, problem string) []error {
		if cfg.OptionUnread(i, name) {
			return nil // its file could not be read (reported): the value is a stand-in
		}
		key := block
		if name != "" {
			key = cfg.OptionKey(i, name)
		}
		return []error{&config.Error{File: file, Line: cfg.Line(key), Key: key, Problem: problem}}
	}
	if oes := legacy.OptionErrors(err); len(oes) > 0 {
		var out []error
		for _, oe := range oes {
			out = append(out, at(oe.Option, oe.Problem)...)
		}
		return out
	}
	if name, problem, ok := parseOptionError(err.Error()); ok {
		return at(name, problem)
	}
	if i < len(cfg.Bridges) {
		if name, problem, ok := namedOption(err.Error(), cfg.Bridges[i].Options); ok {
			return at(name, problem)
		}
	}
	return at("", err.Error())
}

// prefixRE matches the "network: " prefixes of an adapter's error.
var prefixRE = regexp.MustCompile(`^(?:[\w.-]+: )*`)

// namedOption finds the option an untyped adapter error starts with, after
// its prefixes (`sms: max_segments "abc" must be a whole number`): the
// longest name among the bridge's options followed by a space. The
// problem is the error without its prefixes.
func namedOption(msg string, options map[string]string) (name, problem string, ok bool) {
	rest := msg[len(prefixRE.FindString(msg)):]
	for k := range options {
		if len(k) > len(name) && strings.HasPrefix(rest, k+" ") {
			name = k
		}
	}
	if name == "" {
		return "", "", false
	}
	return name, rest, true
}

var (
	// unknownOptionRE matches `echo: unknown option "prefx" (known: prefix)`.
	unknownOptionRE = regexp.MustCompile(`(?s)^(?:[\w.-]+: )*unknown option ("(?:[^"\\]|\\.)*")(.*)$`)
	// optionRE matches `email: option poll_interval: want …`, the name
	// bare or quoted.
	optionRE = regexp.MustCompile(`(?s)^(?:[\w.-]+: )*option ("(?:[^"\\]|\\.)*"|[\w.-]+): (.+)$`)
)

// parseOptionError finds the option an untyped adapter error is about, and
// the problem without the adapter's prefix and the option's name.
func parseOptionError(msg string) (name, problem string, ok bool) {
	if m := unknownOptionRE.FindStringSubmatch(msg); m != nil {
		if name, err := strconv.Unquote(m[1]); err == nil && name != "" {
			return name, "unknown option" + m[2], true
		}
	}
	if m := optionRE.FindStringSubmatch(msg); m != nil {
		name := m[1]
		if strings.HasPrefix(name, `"`) {
			var err error
			if name, err = strconv.Unquote(name); err != nil || name == "" {
				return "", "", false
			}
		}
		return name, m[2], true
	}
	return "", "", false
}
