package main

// Administration of stored data, run with the gateway stopped (the bolt
// store refuses a second process; on Redis a running gateway keeps its
// in-memory sessions until restarted):
//
//	jabbergate rotate-key -config FILE -new-key-file F
//	jabbergate export-user -config FILE -jid J
//	jabbergate delete-user -config FILE -jid J
//
// Secrets are never printed or logged: exports show "[redacted]" for every
// secret field, and rotate-key prints key ids, never keys. It also holds the
// size limit of webhook request bodies.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"slices"
	"syscall"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/jabbergate/jabbergate/bridges/config"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/bolt"
	pebblestore "github.com/jabbergate/jabbergate/bridges/store/pebble"
	"github.com/jabbergate/jabbergate/bridges/vault"
	"github.com/jabbergate/jabbergate/legacy"
)

// maxWebhookBody bounds the body of one webhook request (Telegram updates,
// Twilio and Kannel callbacks are a few KiB).
const maxWebhookBody = 1 << 20

// limitBody answers 413 Request Entity Too Large to a request whose body is
// larger than n bytes, whether it declares its length or is chunked, and
// hands h the body read into memory otherwise.
func limitBody(h http.Handler, n int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > n {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, n))
			var mbe *http.MaxBytesError
			switch {
			case errors.As(err, &mbe):
				http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
				return
			case err != nil:
				http.Error(w, "cannot read request body", http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		h.ServeHTTP(w, r)
	})
}

// vaultWithOldKeys builds the vault: key seals, old (base64, checked by
// the config loader) still open.
func vaultWithOldKeys(key []byte, old []string) (*vault.Vault, error) {
	keys := make([][]byte, 0, len(old))
	for _, s := range old {
		k, err := vault.DecodeKey(s)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return vault.NewKeys(key, keys...)
}

// currentKey returns the configured sealing key: vault.key, or the key in
// vault.key_file, which must exist (ensureVaultKey creates it).
func currentKey(cfg config.Vault) ([]byte, error) {
	if cfg.Key != "" {
		return vault.DecodeKey(cfg.Key)
	}
	return vault.LoadKey(cfg.KeyFile)
}

// adminEnv is what every admin command opens.
type adminEnv struct {
	cfg   *config.Config
	store store.Store
	vault *vault.Vault
}

// openAdmin parses -config and the extra flags, then opens the store and
// the vault. It prints problems to stderr and returns the exit status
// when ok is false.
func openAdmin(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer, extra func(*flag.FlagSet) func() error) (env *adminEnv, status int, ok bool) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "path to the YAML config file")
	check := extra(fs)
	if status, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return nil, status, false
	}
	if strayArgument(stderr, cmd, fs) {
		return nil, exitConfig, false
	}
	if *path == "" {
		requiredFlag(stderr, cmd, "-config FILE")
		return nil, exitConfig, false
	}
	if err := check(); err != nil {
		fmt.Fprintf(stderr, "jabbergate %s: %v\n", cmd, err)
		return nil, exitConfig, false
	}
	cfg, good := loadConfig(*path, stderr, checkStorePath, checkVaultKeyFile, checkMediaDir) // run's checks
	if !good {
		return nil, exitConfig, false
	}
	configError := func(err error) (*adminEnv, int, bool) {
		fmt.Fprintf(stderr, "jabbergate: configuration error:\n%v\n", err) // as loadConfig prints it
		return nil, exitConfig, false
	}
	// Read-only commands and a typo in the path: no new store, no new
	// key (run makes those).
	if err := storeMissing(*path, cfg); err != nil {
		return configError(err)
	}
	st, err := openStore(ctx, cfg.Store)
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			// As for run: another process holds the store (exitConfig).
			fmt.Fprintf(stderr, "jabbergate %s: %v: stop the gateway first\n", cmd, err)
			return nil, exitConfig, false
		}
		if errors.Is(err, store.ErrCorrupt) {
			// As for run: a damaged store is the admin's to restore (exitConfig).
			fmt.Fprintf(stderr, "jabbergate %s: %v\n", cmd, err)
			return nil, exitConfig, false
		}
		fmt.Fprintf(stderr, "jabbergate %s: open %s store: %v\n", cmd, cfg.Store.Backend, err)
		return nil, 1, false
	}
	if kf := cfg.Vault.KeyFile; cfg.Vault.Key == "" && kf != "" {
		if _, err := os.Stat(kf); errors.Is(err, os.ErrNotExist) {
			st.Close()
			return configError(&config.Error{File: *path, Line: cfg.Line("vault.key_file"), Key: "vault.key_file",
				Problem: fmt.Sprintf("key file %q does not exist: check -config or vault.key_file (the gateway makes a key on its first start while no account is registered; %s does not)", kf, cmd)})
		}
	}
	v, err := openVault(cfg.Vault)
	if err != nil {
		st.Close()
		return configError(vaultError(*path, cfg, err))
	}
	return &adminEnv{cfg: cfg, store: st, vault: v}, 0, true
}

// storeMissing returns the configuration error, at store.path, of a bolt
// or pebble store that does not exist: the admin commands open a store,
// never create one.
func storeMissing(file string, cfg *config.Config) error {
	s := cfg.Store
	if !storeMissingAt(s) {
		return nil
	}
	return &config.Error{File: file, Line: cfg.Line("store.path"), Key: "store.path",
		Problem: fmt.Sprintf("no store at %q: check -config or store.path", s.Path)}
}

// storeMissingAt reports whether the embedded store s names does not
// exist yet (the gateway would create it); false for Redis.
func storeMissingAt(s config.Store) bool {
	switch s.Backend {
	case "redis":
		return false
	case "pebble":
		return !pebblestore.Exists(s.Path)
	}
	_, err := os.Stat(s.Path)
	return errors.Is(err, fs.ErrNotExist)
}

// scrub closes the store and, on bolt, rewrites its file with only its
// live data (bolt.Scrub): bbolt keeps freed pages' old bytes, so a deleted
// user's sealed credentials, or values sealed with the key being retired,
// would stay readable in the file. It reports false after printing why it
// could not.
func (env *adminEnv) scrub(cmd string, stdout, stderr io.Writer) bool {
	env.store.Close()
	switch env.cfg.Store.Backend {
	case "bolt", "":
		if err := bolt.Scrub(env.cfg.Store.Path); err != nil {
			fmt.Fprintf(stderr, "jabbergate %s: the old values are still in the store file's free pages: %v (run the command again with the gateway stopped)\n", cmd, err)
			return false
		}
		fmt.Fprintf(stdout, "rewrote %s without the old values\n", env.cfg.Store.Path)
	default:
		fmt.Fprintf(stdout, "note: the %s store may keep the old values in its files until it compacts them (docs/security.md)\n", env.cfg.Store.Backend)
	}
	return true
}

// secretFields returns the names of a bridge's secret registration fields.
func secretFields(bc config.Bridge) (map[string]bool, error) {
	nw, err := legacy.New(bc.Network, bc.Options)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, f := range nw.Info().Fields {
		if f.Secret || f.Type == legacy.TextPrivate {
			out[f.Var] = true
		}
	}
	return out, nil
}

// isSecret reports whether a stored field value must be treated as
// sealed: the network declares it secret, or it looks sealed.
func isSecret(secret map[string]bool, field, value string) bool {
	_, sealed := vault.SealedKeyID(value)
	return secret[field] || sealed
}

// binding is the associated data a bridge seals a field with
// (bridges.Bridge.sealFields).
func binding(bridge, jid, field string) string { return bridge + "|" + jid + "|" + field }

// rotateKeyCmd re-seals every stored credential with a new key.
func rotateKeyCmd(args []string, stdout, stderr io.Writer) int {
	var newKeyFile string
	ctx := context.Background()
	env, status, ok := openAdmin(ctx, "rotate-key", args, stdout, stderr, func(fs *flag.FlagSet) func() error {
		fs.StringVar(&newKeyFile, "new-key-file", "", "file holding the new base64 key (created with a random key when missing)")
		return func() error {
			if newKeyFile == "" {
				return errors.New("-new-key-file F is required")
			}
			return nil
		}
	})
	if !ok {
		return status
	}
	defer env.store.Close()
	_, statErr := os.Stat(newKeyFile)
	newKey, err := vault.LoadOrCreateKey(newKeyFile)
	if err != nil {
		fmt.Fprintf(stderr, "jabbergate rotate-key: %v\n", err)
		return 1
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		// Made by this command, run as root: the service's user must be
		// able to read it, as it reads the current key (or the store).
		for _, like := range []string{env.cfg.Vault.KeyFile, env.cfg.Store.Path} {
			if st, err := os.Stat(like); like != "" && err == nil {
				if sys, ok := st.Sys().(*syscall.Stat_t); ok {
					if err := os.Chown(newKeyFile, int(sys.Uid), int(sys.Gid)); err != nil {
						fmt.Fprintf(stderr, "jabbergate rotate-key: %s: give it to the gateway's user: %v\n", newKeyFile, err)
					}
				}
				break
			}
		}
	}
	cur, err := currentKey(env.cfg.Vault)
	if err != nil {
		fmt.Fprintf(stderr, "jabbergate rotate-key: current key: %v\n", err)
		return 1
	}
	old := slices.Clone(env.cfg.Vault.OldKeys)
	if !bytes.Equal(cur, newKey) {
		old = append(old, vault.EncodeKey(cur))
	}
	nv, err := vaultWithOldKeys(newKey, old)
	if err != nil {
		fmt.Fprintf(stderr, "jabbergate rotate-key: %v\n", err)
		return 1
	}
	var resealed, accounts, failed, corrupt int
	for _, bc := range env.cfg.Bridges {
		secret, err := secretFields(bc)
		if err != nil {
			fmt.Fprintf(stderr, "jabbergate rotate-key: bridge %s: %v\n", bc.Domain, err)
			return exitConfig
		}
		accts, err := env.store.ListAccounts(ctx, bc.Domain)
		var ce *store.CorruptAccountsError
		if errors.As(err, &ce) {
			// Their values stay sealed with the old key: keep it.
			for _, r := range ce.Records {
				corrupt++
				fmt.Fprintf(stderr, "jabbergate rotate-key: bridge %s: %v; left as is\n", bc.Domain, r)
			}
		} else if err != nil {
			fmt.Fprintf(stderr, "jabbergate rotate-key: bridge %s: list accounts: %v\n", bc.Domain, err)
			return 1
		}
		for _, a := range accts {
			changed := 0
			for f, val := range a.Fields {
				if !isSecret(secret, f, val) || nv.Current(val) {
					continue
				}
				pt, err := nv.Open(binding(bc.Domain, a.JID, f), val)
				if err != nil {
					failed++
					fmt.Fprintf(stderr, "jabbergate rotate-key: bridge %s: a user's field %s does not open with any configured key (%v); left as is\n", bc.Domain, f, err)
					continue
				}
				s, err := nv.Seal(binding(bc.Domain, a.JID, f), pt)
				if err != nil {
					fmt.Fprintf(stderr, "jabbergate rotate-key: seal: %v\n", err)
					return 1
				}
				a.Fields[f] = s
				changed++
			}
			if changed == 0 {
				continue
			}
			if err := env.store.PutAccount(ctx, a); err != nil {
				fmt.Fprintf(stderr, "jabbergate rotate-key: bridge %s: store account: %v (run rotate-key again: it continues where it stopped)\n", bc.Domain, err)
				return 1
			}
			resealed += changed
			accounts++
		}
	}
	if bytes.Equal(cur, newKey) {
		fmt.Fprintf(stdout, "re-sealed %d values in %d accounts with key %s (the configured key)\n", resealed, accounts, vault.KeyID(newKey))
	} else {
		fmt.Fprintf(stdout, "re-sealed %d values in %d accounts with key %s (old key %s)\n", resealed, accounts, vault.KeyID(newKey), vault.KeyID(cur))
	}
	if resealed > 0 && !env.scrub("rotate-key", stdout, stderr) {
		return 1
	}
	if !bytes.Equal(cur, newKey) {
		fmt.Fprintf(stdout, "now set vault.key_file: %s (remove vault.key) and list the old key under vault.old_key_files until every instance runs with the new key; then run rotate-key again, which re-seals anything written meanwhile\n", newKeyFile)
	}
	if failed > 0 {
		fmt.Fprintf(stderr, "jabbergate rotate-key: %d values could not be opened (add the key they were sealed with to vault.old_keys)\n", failed)
	}
	if corrupt > 0 {
		fmt.Fprintf(stderr, "jabbergate rotate-key: %d account records could not be read, so their values are not re-sealed: keep the old key until they are restored (then run rotate-key again) or deleted (jabbergate delete-user)\n", corrupt)
	}
	if failed > 0 || corrupt > 0 {
		return 1
	}
	return 0
}

// userFlag adds -jid and returns the parsed bare JID through j.
func userFlag(j *string) func(*flag.FlagSet) func() error {
	return func(fs *flag.FlagSet) func() error {
		raw := fs.String("jid", "", "the user's JID")
		return func() error {
			if *raw == "" {
				return errors.New("-jid J is required")
			}
			p, err := jid.Parse(*raw)
			if err != nil || p.Localpart() == "" {
				return fmt.Errorf("-jid %q is not a user's JID", *raw)
			}
			*j = p.Bare().String()
			return nil
		}
	}
}

// userExport is the JSON of export-user.
type userExport struct {
	JID           string               `json:"jid"`
	Exported      time.Time            `json:"exported"`
	Registrations []registrationExport `json:"registrations"`
}

type registrationExport struct {
	Bridge       string            `json:"bridge"`
	Network      string            `json:"network"`
	LegacyID     string            `json:"legacy_id"`
	Created      time.Time         `json:"created"`
	Subscription string            `json:"subscription,omitempty"`
	Fields       map[string]string `json:"fields"`
	Settings     map[string]string `json:"settings,omitempty"`
	StateBytes   int               `json:"adapter_state_bytes"`
	Contacts     []contactExport   `json:"contacts"`
	Pending      map[string]int    `json:"pending_messages"`
}

type contactExport struct {
	JID          string `json:"jid"`
	LegacyID     string `json:"legacy_id"`
	Name         string `json:"name,omitempty"`
	Subscription string `json:"subscription,omitempty"`
}

// redactedValue replaces secrets in exports.
const redactedValue = "[redacted]"

// exportUserCmd prints everything stored about one user as JSON.
func exportUserCmd(args []string, stdout, stderr io.Writer) int {
	var user string
	ctx := context.Background()
	env, status, ok := openAdmin(ctx, "export-user", args, stdout, stderr, userFlag(&user))
	if !ok {
		return status
	}
	defer env.store.Close()
	out := userExport{JID: user, Exported: time.Now().UTC(), Registrations: []registrationExport{}}
	for _, bc := range env.cfg.Bridges {
		a, err := env.store.GetAccount(ctx, bc.Domain, user)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			fmt.Fprintf(stderr, "jabbergate export-user: bridge %s: %v\n", bc.Domain, err)
			return 1
		}
		secret, err := secretFields(bc)
		if err != nil {
			fmt.Fprintf(stderr, "jabbergate export-user: bridge %s: %v\n", bc.Domain, err)
			return exitConfig
		}
		r := registrationExport{Bridge: bc.Domain, Network: bc.Network, LegacyID: a.LegacyID, Created: a.Created,
			Subscription: a.Subscription, Fields: map[string]string{}, Settings: a.Settings, StateBytes: len(a.State),
			Contacts: []contactExport{}, Pending: map[string]int{}}
		for f, v := range a.Fields {
			if isSecret(secret, f, v) {
				v = redactedValue
			}
			r.Fields[f] = v
		}
		contacts, err := env.store.ListContacts(ctx, bc.Domain, user)
		if err != nil {
			fmt.Fprintf(stderr, "jabbergate export-user: bridge %s: contacts: %v\n", bc.Domain, err)
			return 1
		}
		for _, c := range contacts {
			r.Contacts = append(r.Contacts, contactExport{JID: c.Localpart + "@" + bc.Domain, LegacyID: c.LegacyID, Name: c.Name, Subscription: c.Subscription})
		}
		for _, k := range []store.QueueKind{store.Inbox, store.Outbox} {
			n, err := env.store.Len(ctx, store.Queue{Bridge: bc.Domain, JID: user, Kind: k})
			if err != nil {
				fmt.Fprintf(stderr, "jabbergate export-user: bridge %s: queue: %v\n", bc.Domain, err)
				return 1
			}
			r.Pending[map[store.QueueKind]string{store.Inbox: "to_xmpp", store.Outbox: "to_legacy"}[k]] = n
		}
		out.Registrations = append(out.Registrations, r)
	}
	if len(out.Registrations) == 0 {
		fmt.Fprintf(stderr, "jabbergate export-user: %s is not registered with any bridge of this config\n", user)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintf(stderr, "jabbergate export-user: %v\n", err)
		return 1
	}
	return 0
}

// deleteUserCmd deletes everything stored about one user: registrations,
// sealed credentials, contacts, queued messages and id maps, on every
// bridge of the config.
func deleteUserCmd(args []string, stdout, stderr io.Writer) int {
	var user string
	ctx := context.Background()
	env, status, ok := openAdmin(ctx, "delete-user", args, stdout, stderr, userFlag(&user))
	if !ok {
		return status
	}
	defer env.store.Close()
	deleted := 0
	for _, bc := range env.cfg.Bridges {
		_, err := env.store.GetAccount(ctx, bc.Domain, user)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if errors.Is(err, store.ErrCorrupt) {
			// The admin's way to be rid of a record the gateway skips.
			fmt.Fprintf(stderr, "jabbergate delete-user: bridge %s: %v; deleting it\n", bc.Domain, err)
		} else if err != nil {
			fmt.Fprintf(stderr, "jabbergate delete-user: bridge %s: %v\n", bc.Domain, err)
			return 1
		}
		contacts, _ := env.store.ListContacts(ctx, bc.Domain, user)
		if err := env.store.DeleteAccount(ctx, bc.Domain, user); err != nil {
			fmt.Fprintf(stderr, "jabbergate delete-user: bridge %s: %v\n", bc.Domain, err)
			return 1
		}
		deleted++
		fmt.Fprintf(stdout, "deleted %s from %s: registration, credentials, %d contacts, queued messages and id maps\n", user, bc.Domain, len(contacts))
	}
	if deleted == 0 {
		fmt.Fprintf(stderr, "jabbergate delete-user: %s is not registered with any bridge of this config\n", user)
		// Still rewritten: after the live admin command "Delete a user"
		// the deleted values are in the file's free pages (security.md).
		env.scrub("delete-user", stdout, stderr)
		return 1
	}
	if env.cfg.Store.Backend == "redis" {
		fmt.Fprintln(stdout, "note: a gateway running on this Redis keeps the user's session until it restarts; on a live gateway prefer the admin command \"Delete a user\"")
	}
	if !env.scrub("delete-user", stdout, stderr) {
		return 1
	}
	return 0
}
