package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault/vaultsql"
	"github.com/tokenrelay/tokenrelay/services/coupons"
	"github.com/tokenrelay/tokenrelay/services/identity"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing"
	"github.com/tokenrelay/tokenrelay/services/payments"
	"github.com/tokenrelay/tokenrelay/services/points"
)

// sealedStore is a service that keeps records sealed with the vault, and
// where its database is found.
type sealedStore struct {
	name   string // the service, and its SQLite file <data>/<name>.db
	schema string // its PostgreSQL schema when scaled out
	sealed vaultsql.Columns
}

// sealedStores lists every service that stores vault records. The payments
// processor's database (payments-processor) holds none, and neither does the
// gateway, which has no database.
func sealedStores() []sealedStore {
	return []sealedStore{
		{identity.Name, "identity", identity.Sealed},
		{coupons.Name, "coupons", coupons.Sealed},
		{points.Name, "points", points.Sealed},
		{payments.Name, "payments", payments.Sealed},
		{orderprocessing.Name, "orderprocessing", orderprocessing.Sealed},
	}
}

func storeNames() []string {
	var names []string
	for _, s := range sealedStores() {
		names = append(names, s.name)
	}
	return names
}

// kvFlag is a repeatable NAME=VALUE flag.
type kvFlag map[string]string

func (k kvFlag) String() string { return "" }

func (k kvFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" || value == "" {
		return errors.New("want SERVICE=VALUE")
	}
	if !slices.Contains(storeNames(), name) {
		return fmt.Errorf("unknown service %q (want one of %s)", truncate(name, 32), strings.Join(storeNames(), ", "))
	}
	k[name] = value
	return nil
}

// vaultFlags are the flags every vault command shares: where the keys and
// the services' databases are.
type vaultFlags struct {
	data, vaultDir, pgURL       *string
	vaultEnv, asJSON            *bool
	schemas, dbs, serviceVaults kvFlag
}

func addVaultFlags(fs *flag.FlagSet) *vaultFlags {
	f := &vaultFlags{schemas: kvFlag{}, dbs: kvFlag{}, serviceVaults: kvFlag{}}
	f.data = fs.String("data", ".data", "the embedded data directory `DIR`: vault keys in DIR/vault, databases DIR/SERVICE.db")
	f.vaultDir = fs.String("vault", "", "the vault key directory `DIR` (default DATA/vault)")
	fs.Var(f.serviceVaults, "service-vault", "the vault key directory of one service, as `SERVICE=DIR`, when services keep their own (scaled out: each binary's -vault) (repeatable)")
	f.vaultEnv = fs.Bool("vault-env", false, "read the vault keys from $"+vault.EnvKeys+" instead of a directory (such keys cannot rotate here)")
	f.pgURL = fs.String("postgres-url", "", "scaled out: the PostgreSQL `URL` whose schemas hold the services' tables (one schema per service, see --schema)")
	fs.Var(f.schemas, "schema", "the PostgreSQL schema of a service with --postgres-url, as `SERVICE=SCHEMA` (repeatable; defaults: identity, coupons, points, payments, orderprocessing)")
	fs.Var(f.dbs, "db", "the database of one service, as `SERVICE=URL`: a SQLite path or a postgres:// URL (with search_path), overriding --data and --postgres-url (repeatable)")
	f.asJSON = fs.Bool("json", false, "print JSON")
	return f
}

// keySource is one set of vault keys, shared by the services that use it.
type keySource struct {
	where    string // a directory, or $TOKENRELAY_VAULT_KEYS
	env      bool
	vk       *vault.Keyring
	err      error
	added    uint32
	services []string
}

// keySources resolves the vault keys of the services named: --service-vault
// for one service, else --vault-env, --vault or DATA/vault for all. Services
// that name the same keys share one Keyring, so that a rotation adds one
// version there. It returns the sources by service and in first-use order.
func (f *vaultFlags) keySources(e *env, services []string) (map[string]*keySource, []*keySource) {
	byWhere := map[string]*keySource{}
	var order []*keySource
	load := func(where string, env bool) *keySource {
		if ks, ok := byWhere[where]; ok {
			return ks
		}
		ks := &keySource{where: where, env: env}
		if env {
			if v := e.getenv(vault.EnvKeys); v == "" {
				ks.err = fmt.Errorf("--vault-env: $%s is empty", vault.EnvKeys)
			} else {
				ks.vk, ks.err = vault.ParseKeys(v)
			}
		} else {
			ks.vk, ks.err = loadVaultDir(where)
		}
		byWhere[where] = ks
		order = append(order, ks)
		return ks
	}
	shared := *f.vaultDir
	if shared == "" {
		shared = filepath.Join(*f.data, "vault")
	}
	out := map[string]*keySource{}
	for _, name := range services {
		var ks *keySource
		switch dir, ok := f.serviceVaults[name]; {
		case ok:
			ks = load(filepath.Clean(dir), false)
		case *f.vaultEnv:
			ks = load("$"+vault.EnvKeys, true)
		default:
			ks = load(filepath.Clean(shared), false)
		}
		ks.services = append(ks.services, name)
		out[name] = ks
	}
	return out, order
}

// loadVaultDir loads a key directory that must exist and hold a key:
// vault.LoadDir would otherwise create a fresh key, which no record was ever
// sealed with.
func loadVaultDir(dir string) (*vault.Keyring, error) {
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("vault key directory: %w", err)
	}
	if !slices.ContainsFunc(entries, func(e os.DirEntry) bool { return strings.HasSuffix(e.Name(), ".key") }) {
		return nil, fmt.Errorf("no vault keys in %s (is --data or --vault right?)", dir)
	}
	return vault.LoadDir(dir)
}

// target is one service's database.
type target struct {
	store  sealedStore
	dsn    string // for sqldb.Open; may hold credentials, never printed
	where  string // for people: a path, or a schema and a host
	path   string // the SQLite file, "" for PostgreSQL
	schema string // the PostgreSQL schema expected, "" if the URL decides
}

func (f *vaultFlags) targets() ([]target, error) {
	for name, schema := range f.schemas {
		if *f.pgURL == "" {
			return nil, usagef("--schema needs --postgres-url")
		}
		if !sqldb.ValidSchemaName(schema) {
			return nil, usagef("--schema %s: want a plain lower-case identifier", name)
		}
	}
	var base *url.URL
	if *f.pgURL != "" {
		u, err := url.Parse(*f.pgURL)
		if err != nil || !sqldb.IsPostgres(*f.pgURL) {
			return nil, usagef("--postgres-url: want a postgres:// URL")
		}
		base = u
	}
	var out []target
	usesData := false
	for _, s := range sealedStores() {
		t := target{store: s}
		switch db, ok := f.dbs[s.name]; {
		case ok && sqldb.IsPostgres(db):
			t.dsn, t.where = db, "PostgreSQL "+sqldb.Redact(db)
		case ok:
			t.dsn, t.path = db, sqlitePath(db)
			t.where = t.path
		case base != nil:
			t.schema = s.schema
			if v, ok := f.schemas[s.name]; ok {
				t.schema = v
			}
			u := *base
			q := u.Query()
			q.Set("search_path", t.schema)
			u.RawQuery = q.Encode()
			t.dsn, t.where = u.String(), "schema "+t.schema+" of PostgreSQL "+sqldb.Redact(*f.pgURL)
		default:
			usesData = true
			t.path = filepath.Join(*f.data, s.name+".db")
			t.dsn, t.where = "sqlite://"+t.path, t.path
		}
		out = append(out, t)
	}
	if usesData {
		// A missing database is a service that never ran; a missing data
		// directory is a wrong --data.
		if err := dataDir(*f.data); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// dataDir returns an error unless dir, the --data of a command that reads
// from it, is a directory: a mistyped path must not read as an empty
// deployment.
func dataDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("data directory %s does not exist (is --data right?)", dir)
	case err != nil:
		return fmt.Errorf("data directory: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("data directory %s is not a directory (is --data right?)", dir)
	}
	return nil
}

// open opens t's database, or says why there is none to open: a missing
// SQLite file or PostgreSQL schema is a service that never ran, and opening
// must not create it.
func (t target) open(ctx context.Context) (db *sqldb.DB, skipped string, err error) {
	if t.path != "" {
		if _, err := os.Stat(t.path); errors.Is(err, os.ErrNotExist) {
			return nil, "no database file", nil
		}
	}
	db, err = sqldb.Open(ctx, t.dsn, sqldb.WithMaxOpenConns(2))
	if err != nil {
		return nil, "", err
	}
	if db.Dialect() == sqldb.Postgres {
		// current_schema() is NULL when no schema of the search path exists.
		var schema sql.NullString
		if err := db.SQL().QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
			db.Close()
			return nil, "", err
		}
		if !schema.Valid || (t.schema != "" && schema.String != t.schema) {
			db.Close()
			return nil, "no schema " + t.schema, nil
		}
	}
	return db, "", nil
}

// sqlitePath is the file of a SQLite URL in the forms sqldb.Open accepts.
func sqlitePath(dsn string) string {
	name, _, _ := strings.Cut(dsn, "?")
	lower := strings.ToLower(name)
	switch {
	case strings.HasPrefix(lower, "sqlite://"):
		return name[len("sqlite://"):]
	case strings.HasPrefix(lower, "sqlite:"):
		return name[len("sqlite:"):]
	case strings.HasPrefix(lower, "file:"):
		return name[len("file:"):]
	}
	return name
}

const vaultDatabases = `Databases: by default the embedded layout, DATA/<service>.db for identity,
coupons, points, payments and order-processing (payments-processor holds
nothing sealed). Scaled out on PostgreSQL: --postgres-url URL with one
schema per service (identity, coupons, points, payments, orderprocessing,
as the service binaries default to; change one with --schema
order-processing=orders), or --db SERVICE=URL per service. A service whose
SQLite file or schema does not exist is skipped, never created.

Vault keys: DATA/vault, or --vault DIR, for every service; or a directory
per service with --service-vault SERVICE=DIR (scaled out, each binary has
its own -vault); or $` + vault.EnvKeys + ` with --vault-env.`

// vaultSetup is the setup of a vault command: the vault flags, no
// arguments, then run.
func vaultSetup(run func(*env, *vaultFlags) error) func(*flag.FlagSet) func(*env, []string) error {
	return func(fs *flag.FlagSet) func(*env, []string) error {
		f := addVaultFlags(fs)
		return func(e *env, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument")
			}
			return run(e, f)
		}
	}
}

func vaultStatusCommand() command {
	return command{
		name:    "vault status",
		summary: "show the vault key versions and how many sealed records each service holds per version",
		details: `Read-only: decrypts nothing and needs no key to count (the version is
stored beside each ciphertext).

` + vaultDatabases + `

Examples:
  tokenrelay vault status --data .data
  tokenrelay vault status --vault-env --postgres-url postgres://tokenrelay@db/tokenrelay`,
		setup: vaultSetup(vaultStatus),
	}
}

func vaultRotateCommand() command {
	return command{
		name:    "vault rotate",
		summary: "add a vault key version and re-encrypt every sealed record of every service under it",
		details: `Adds key version N+1 to the key directory (never overwriting a key), then
moves every sealed record of every service to it and prints how many each
service re-encrypted. Safe while the services run: each record is rewritten
in its own short transaction, only if it still holds the ciphertext read.

A running service keeps sealing new records under the old version until it
restarts (or first reads a record under the new one): restart the services,
then run "tokenrelay vault reencrypt" to move those too. "vault status"
shows what is left. Delete an old <version>.key file only when status shows
no record under it and no service runs with it loaded.

Keys from $` + vault.EnvKeys + ` cannot rotate here: add a version to the
variable of every service, restart them, then run "vault reencrypt --vault-env".

` + vaultDatabases + `

Examples:
  tokenrelay vault rotate --data .data
  tokenrelay vault rotate --vault /etc/tokenrelay/vault --postgres-url postgres://tokenrelay@db/tokenrelay`,
		setup: vaultSetup(func(e *env, f *vaultFlags) error { return vaultReencrypt(e, f, true) }),
	}
}

func vaultReencryptCommand() command {
	return command{
		name:    "vault reencrypt",
		summary: "re-encrypt every sealed record under the current vault key version, without adding one",
		details: `Moves every record sealed under an older key version to the current one,
as "vault rotate" does after adding a version. Records already current are
only authenticated, so a run with nothing to do rewrites nothing and
reports 0: run it after restarting the services that were up during a
rotation, or after adding a version to $` + vault.EnvKeys + `.

` + vaultDatabases,
		setup: vaultSetup(func(e *env, f *vaultFlags) error { return vaultReencrypt(e, f, false) }),
	}
}

// opened is a target with its database, or the reason it has none.
type opened struct {
	target
	db      *sqldb.DB
	skipped string
}

// openAll opens every target's database before anything changes, so that a
// wrong flag fails before a key is added.
func openAll(ctx context.Context, f *vaultFlags) ([]opened, func(), error) {
	targets, err := f.targets()
	if err != nil {
		return nil, nil, err
	}
	var out []opened
	closeAll := func() {
		for _, o := range out {
			if o.db != nil {
				o.db.Close()
			}
		}
	}
	for _, t := range targets {
		db, skipped, err := t.open(ctx)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("%s: open %s: %w", t.store.name, t.where, err)
		}
		out = append(out, opened{target: t, db: db, skipped: skipped})
	}
	return out, closeAll, nil
}

type reencryptResult struct {
	Service     string `json:"service"`
	Database    string `json:"database"`
	Keys        string `json:"keys,omitempty"`
	Skipped     string `json:"skipped,omitempty"`
	Reencrypted int    `json:"reencrypted"`
	Error       string `json:"error,omitempty"`
}

// keysJSON describes one set of vault keys in JSON output.
type keysJSON struct {
	Keys     string   `json:"keys"`
	Added    uint32   `json:"added_version,omitempty"`
	Current  uint32   `json:"current_version,omitempty"`
	Versions []uint32 `json:"versions,omitempty"`
	Services []string `json:"services"`
	Error    string   `json:"error,omitempty"`
}

func (ks *keySource) json() keysJSON {
	j := keysJSON{Keys: ks.where, Added: ks.added, Services: ks.services}
	if ks.err != nil {
		j.Error = ks.err.Error()
	} else {
		j.Current, j.Versions = ks.vk.Current(), ks.vk.Versions()
	}
	return j
}

// present lists the services whose database exists.
func present(dbs []opened) []string {
	var names []string
	for _, o := range dbs {
		if o.db != nil {
			names = append(names, o.store.name)
		}
	}
	return names
}

func vaultReencrypt(e *env, f *vaultFlags, rotate bool) error {
	dbs, closeAll, err := openAll(e.ctx, f)
	if err != nil {
		return err
	}
	defer closeAll()
	if len(present(dbs)) == 0 {
		return fmt.Errorf("no service database found (looked for %s): is --data, --postgres-url or --db right?", dbs[0].where)
	}
	// Every key set must load (and, to rotate, be rotatable) before any
	// key is added or any record changes.
	byService, sources := f.keySources(e, present(dbs))
	for _, ks := range sources {
		switch {
		case ks.err != nil:
			return ks.err
		case rotate && ks.env:
			return fmt.Errorf("keys from $%s cannot rotate here: add version %d to the variable of every service, restart them, then run \"tokenrelay vault reencrypt --vault-env\"",
				vault.EnvKeys, ks.vk.Current()+1)
		}
	}
	from := map[*keySource]uint32{}
	for _, ks := range sources {
		from[ks] = ks.vk.Current()
		if rotate {
			if ks.added, err = ks.vk.Rotate(); err != nil {
				return fmt.Errorf("add a vault key to %s: %w", ks.where, err)
			}
		}
	}
	results := make([]reencryptResult, 0, len(dbs))
	total := 0
	for _, o := range dbs {
		r := reencryptResult{Service: o.store.name, Database: o.where, Skipped: o.skipped}
		if o.db != nil {
			ks := byService[o.store.name]
			r.Keys = ks.where
			n, err := o.store.sealed.Reencrypt(e.ctx, o.db, ks.vk)
			r.Reencrypted, total = n, total+n
			if err != nil {
				r.Error = err.Error()
			}
		}
		results = append(results, r)
	}
	if *f.asJSON {
		out := struct {
			Keys     []keysJSON        `json:"keys"`
			Services []reencryptResult `json:"services"`
			Total    int               `json:"reencrypted"`
		}{Keys: keysJSONOf(sources), Services: results, Total: total}
		err = writeJSONValue(e.stdout, out)
	} else {
		err = printReencrypted(e.stdout, sources, results, total, rotate, from)
	}
	if err != nil {
		return err
	}
	return reportFailures(e, "tokenrelay vault", results)
}

// printReencrypted writes what vault reencrypt (rotate: vault rotate) did
// as text: the key sets, a table of the services, and after a rotation
// the versions running services still seal under (from).
func printReencrypted(w io.Writer, sources []*keySource, results []reencryptResult, total int, rotate bool, from map[*keySource]uint32) error {
	for _, ks := range sources {
		what := "current"
		if rotate {
			what = "added"
		}
		fmt.Fprintf(w, "Vault keys %s: %s version %d (versions %s)%s.\n", ks.where, what, ks.vk.Current(),
			versionList(ks.vk.Versions()), servicesNote(ks, len(sources)))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tRE-ENCRYPTED\tDATABASE")
	for _, r := range results {
		count := strconv.Itoa(r.Reencrypted)
		switch {
		case r.Skipped != "":
			count = "skipped: " + r.Skipped
		case r.Error != "":
			count += " (with errors)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Service, count, r.Database)
	}
	fmt.Fprintf(tw, "total\t%d\n", total)
	err := tw.Flush()
	if rotate {
		fmt.Fprintf(w, "Running services keep sealing new records under version %s until they restart: restart them, then run \"tokenrelay vault reencrypt\".\n",
			versionList(slices.Compact(slices.Sorted(maps.Values(from)))))
	}
	return err
}

// keysJSONOf describes every key set in JSON output; never nil.
func keysJSONOf(sources []*keySource) []keysJSON {
	out := []keysJSON{}
	for _, ks := range sources {
		out = append(out, ks.json())
	}
	return out
}

// failure is a service's row of vault status or reencrypt, which may carry
// the error that stopped it.
type failure interface{ failure() (service, msg string) }

func (r reencryptResult) failure() (string, string) { return r.Service, r.Error }
func (r statusResult) failure() (string, string)    { return r.Service, r.Error }

// reportFailures writes the error of every service that failed to
// standard error after prefix, and returns errReported when any did.
func reportFailures[R failure](e *env, prefix string, results []R) error {
	failed := false
	for _, r := range results {
		if service, msg := r.failure(); msg != "" {
			fmt.Fprintf(e.stderr, "%s: %s: %s\n", prefix, service, msg)
			failed = true
		}
	}
	if failed {
		return errReported
	}
	return nil
}

// servicesNote names the services of a key set when there are several sets.
func servicesNote(ks *keySource, sets int) string {
	if sets < 2 {
		return ""
	}
	return ", for " + strings.Join(ks.services, ", ")
}

type statusResult struct {
	Service   string         `json:"service"`
	Database  string         `json:"database"`
	Keys      string         `json:"keys,omitempty"`
	Current   uint32         `json:"current_version,omitempty"`
	Skipped   string         `json:"skipped,omitempty"`
	Records   int            `json:"records"`
	ByVersion map[string]int `json:"by_version"`
	Error     string         `json:"error,omitempty"`
}

func vaultStatus(e *env, f *vaultFlags) error {
	dbs, closeAll, err := openAll(e.ctx, f)
	if err != nil {
		return err
	}
	defer closeAll()
	// Counting needs no key; the keys only say which versions are current.
	byService, sources := f.keySources(e, present(dbs))
	results := make([]statusResult, 0, len(dbs))
	outdated, unreadable := 0, 0
	for _, o := range dbs {
		r := statusResult{Service: o.store.name, Database: o.where, Skipped: o.skipped, ByVersion: map[string]int{}}
		if o.db != nil {
			ks := byService[o.store.name]
			r.Keys = ks.where
			if ks.err == nil {
				r.Current = ks.vk.Current()
			}
			counts, err := o.store.sealed.Versions(e.ctx, o.db)
			if err != nil {
				r.Error = err.Error()
			}
			for v, n := range counts {
				r.ByVersion[strconv.FormatUint(uint64(v), 10)] = n
				r.Records += n
				if ks.err == nil && v != r.Current {
					outdated += n
				}
				if v == 0 || (ks.err == nil && !slices.Contains(ks.vk.Versions(), v)) {
					unreadable += n
				}
			}
		}
		results = append(results, r)
	}
	if *f.asJSON {
		out := struct {
			Keys       []keysJSON     `json:"keys"`
			Services   []statusResult `json:"services"`
			Outdated   int            `json:"outdated"`
			Unreadable int            `json:"unreadable"`
		}{Keys: keysJSONOf(sources), Services: results, Outdated: outdated, Unreadable: unreadable}
		if err := writeJSONValue(e.stdout, out); err != nil {
			return err
		}
	} else if err := printStatus(e.stdout, sources, results, outdated, unreadable); err != nil {
		return err
	}
	return reportFailures(e, "tokenrelay vault status", results)
}

// printStatus writes vault status as text: the key sets, a table of the
// services' records by key version, and what to do about outdated and
// unreadable records.
func printStatus(w io.Writer, sources []*keySource, results []statusResult, outdated, unreadable int) error {
	keysOK := true
	for _, ks := range sources {
		if ks.err != nil {
			keysOK = false
			fmt.Fprintf(w, "Vault keys %s: unavailable: %v%s\n", ks.where, ks.err, servicesNote(ks, len(sources)))
		} else {
			fmt.Fprintf(w, "Vault keys %s: current version %d (versions %s)%s.\n", ks.where, ks.vk.Current(),
				versionList(ks.vk.Versions()), servicesNote(ks, len(sources)))
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tRECORDS\tBY KEY VERSION\tDATABASE")
	for _, r := range results {
		if r.Skipped != "" {
			fmt.Fprintf(tw, "%s\t-\tskipped: %s\t%s\n", r.Service, r.Skipped, r.Database)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", r.Service, r.Records, byVersion(r.ByVersion), r.Database)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	switch {
	case !keysOK || len(sources) == 0:
	case outdated == 0:
		fmt.Fprintln(w, "Every sealed record is under the current key version.")
	default:
		fmt.Fprintf(w, "%d sealed record(s) under an older version: run \"tokenrelay vault reencrypt\".\n", outdated)
	}
	if unreadable > 0 {
		fmt.Fprintf(w, "%d record(s) are not vault records (v0) or use a version the keys do not hold: they cannot be opened.\n", unreadable)
	}
	return nil
}

func byVersion(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := slices.Collect(maps.Keys(m))
	sort.Slice(keys, func(i, j int) bool {
		a, _ := strconv.Atoi(keys[i])
		b, _ := strconv.Atoi(keys[j])
		return a < b
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("v%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func versionList(vs []uint32) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = strconv.FormatUint(uint64(v), 10)
	}
	return strings.Join(parts, ", ")
}

func writeJSONValue(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
