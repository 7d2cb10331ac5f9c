package sqldb

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// ErrMigration reports a set of migration files that cannot be applied as
// given: a badly named file, a version with both a shared and a dialect file,
// or a pending version older than one already applied.
var ErrMigration = errors.New("sqldb: invalid migrations")

// DefaultMigrationSet is the migration set of [Migrate] without
// [MigrationSet]: the service's own schema.
const DefaultMigrationSet = "app"

// migrationLockKey is the PostgreSQL advisory lock that serializes Migrate
// across processes: the FNV-1a 64 hash of "tokenrelay/sqldb.Migrate", as an
// int64. It is
// database-wide, so services migrating different schemas of one database
// wait for each other briefly; that is harmless.
const migrationLockKey int64 = 4456616243790514561

type migrateConfig struct {
	set string
}

// MigrateOption configures [Migrate].
type MigrateOption func(*migrateConfig)

// MigrationSet names the component whose files are applied, so that several
// components (a service and the packages it uses, such as replay) keep
// independent version numbers in one schema_migrations table. Default
// [DefaultMigrationSet].
func MigrationSet(name string) MigrateOption {
	return func(c *migrateConfig) { c.set = name }
}

type migration struct {
	version int64
	name    string // file name, for errors and the record
}

// Migrate applies the *.sql files at the root of fsys that have not been
// applied yet, in ascending version order, each in its own transaction with
// its schema_migrations record, and returns the first error. Files are named
// NNNN_name.sql (both dialects), NNNN_name.sqlite.sql or
// NNNN_name.postgres.sql (one dialect); other files are ignored. A file may
// hold several statements.
//
// Applied versions that fsys does not contain are ignored, so an older binary
// still starts against a database that a newer one has migrated. A pending
// version lower than the highest applied one is refused with [ErrMigration]:
// it was written against a schema that no longer exists.
//
// Migrate is safe to run from several processes at once: on PostgreSQL each
// file's transaction holds an advisory lock, on SQLite the write lock, and
// re-reads what has been applied before applying anything.
func Migrate(ctx context.Context, db *DB, fsys fs.FS, opts ...MigrateOption) error {
	cfg := migrateConfig{set: DefaultMigrationSet}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.set == "" {
		return fmt.Errorf("%w: empty migration set", ErrMigration)
	}
	files, err := migrationFiles(fsys, db.dialect)
	if err != nil {
		return err
	}
	for _, m := range files {
		body, err := fs.ReadFile(fsys, m.name)
		if err != nil {
			return fmt.Errorf("sqldb: read migration %s: %w", m.name, err)
		}
		err = db.Tx(ctx, func(tx *sql.Tx) error {
			return applyMigration(ctx, tx, db.dialect, cfg.set, m, string(body))
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// migrationFiles lists the files of fsys that apply to dialect, in version
// order, and checks their names.
func migrationFiles(fsys fs.FS, dialect Dialect) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("sqldb: read migrations: %w", err)
	}
	type versionFiles struct{ shared, own []string }
	byVersion := map[int64]*versionFiles{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || path.Ext(name) != ".sql" {
			continue
		}
		version, fileDialect, err := parseMigrationName(name)
		if err != nil {
			return nil, err
		}
		vf := byVersion[version]
		if vf == nil {
			vf = &versionFiles{}
			byVersion[version] = vf
		}
		switch fileDialect {
		case 0:
			vf.shared = append(vf.shared, name)
		case dialect:
			vf.own = append(vf.own, name)
		}
	}
	var out []migration
	for version, vf := range byVersion {
		files := append(vf.shared, vf.own...)
		switch {
		case len(vf.shared) > 0 && len(vf.own) > 0, len(files) > 1:
			return nil, fmt.Errorf("%w: version %d has several files for %s: %s", ErrMigration, version, dialect, strings.Join(files, ", "))
		case len(files) == 1:
			out = append(out, migration{version: version, name: files[0]})
		}
	}
	slices.SortFunc(out, func(a, b migration) int { return cmp.Compare(a.version, b.version) })
	return out, nil
}

// parseMigrationName splits NNNN_name[.dialect].sql; dialect 0 means both.
func parseMigrationName(name string) (version int64, dialect Dialect, err error) {
	digits, rest, ok := strings.Cut(strings.TrimSuffix(name, ".sql"), "_")
	version, convErr := strconv.ParseInt(digits, 10, 64)
	if !ok || rest == "" || convErr != nil || version < 1 {
		return 0, 0, fmt.Errorf("%w: %q is not named NNNN_name[.sqlite|.postgres].sql with NNNN >= 1", ErrMigration, name)
	}
	switch path.Ext(rest) {
	case ".sqlite":
		dialect = SQLite
	case ".postgres":
		dialect = Postgres
	case "":
	default:
		return 0, 0, fmt.Errorf("%w: %q: unknown dialect suffix %q", ErrMigration, name, path.Ext(rest))
	}
	return version, dialect, nil
}

func applyMigration(ctx context.Context, tx *sql.Tx, dialect Dialect, set string, m migration, body string) error {
	ddl := `CREATE TABLE IF NOT EXISTS schema_migrations (
	migration_set TEXT NOT NULL,
	version BIGINT NOT NULL,
	name TEXT NOT NULL,
	applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
	PRIMARY KEY (migration_set, version)
)`
	if dialect == Postgres {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLockKey); err != nil {
			return fmt.Errorf("sqldb: migration lock: %w", err)
		}
		ddl = strings.Replace(ddl, "TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP", "TIMESTAMPTZ NOT NULL DEFAULT now()", 1)
	}
	if _, err := tx.ExecContext(ctx, ddl); err != nil {
		return fmt.Errorf("sqldb: create schema_migrations: %w", err)
	}
	var latest, applied int64
	err := tx.QueryRowContext(ctx,
		`SELECT COALESCE(MAX(version), 0), COUNT(CASE WHEN version = $2 THEN 1 END)
		FROM schema_migrations WHERE migration_set = $1`, set, m.version).Scan(&latest, &applied)
	if err != nil {
		return fmt.Errorf("sqldb: read schema_migrations: %w", err)
	}
	if applied > 0 {
		return nil
	}
	if latest > m.version {
		return fmt.Errorf("%w: %s is pending but version %d of set %q is already applied", ErrMigration, m.name, latest, set)
	}
	// A dialect may need nothing for a version (an empty file keeps the
	// numbering aligned), and not every driver accepts empty SQL.
	if strings.TrimSpace(body) != "" {
		if _, err := tx.ExecContext(ctx, body); err != nil {
			return fmt.Errorf("sqldb: apply migration %s: %w", m.name, err)
		}
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO schema_migrations (migration_set, version, name) VALUES ($1, $2, $3)`,
		set, m.version, m.name); err != nil {
		return fmt.Errorf("sqldb: record migration %s: %w", m.name, err)
	}
	return nil
}

// MigrateDir applies, as [Migrate] does under migration set set, the files
// in directory dir of fsys (typically an embed.FS whose files sit under
// "migrations/"), so that a store's constructor migrates in one call. Errors
// are prefixed "<set>: migrate: ".
func MigrateDir(ctx context.Context, db *DB, fsys fs.FS, dir, set string) error {
	files, err := fs.Sub(fsys, dir)
	if err == nil {
		err = Migrate(ctx, db, files, MigrationSet(set))
	}
	if err != nil {
		return fmt.Errorf("%s: migrate: %w", set, err)
	}
	return nil
}
