package sqldb_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
)

func file(body string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(body)} }

// migrations is a realistic set: shared, per-dialect and multi-statement
// files. The DDL has no IF NOT EXISTS, so applying a file twice fails.
func migrations() fstest.MapFS {
	return fstest.MapFS{
		"0001_accounts.sql":          file(`CREATE TABLE accounts (id TEXT PRIMARY KEY, balance BIGINT NOT NULL);`),
		"0002_ledger.sqlite.sql":     file(`CREATE TABLE ledger (id INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL REFERENCES accounts(id));`),
		"0002_ledger.postgres.sql":   file(`CREATE TABLE ledger (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, account TEXT NOT NULL REFERENCES accounts(id));`),
		"0003_seed.sql":              file("INSERT INTO accounts VALUES ('a', 0);\nINSERT INTO accounts VALUES ('b', 0);\nCREATE INDEX ledger_account ON ledger (account);"),
		"0004_noop.sqlite.sql":       file("  \n"),
		"0004_noop.postgres.sql":     file(`COMMENT ON TABLE ledger IS 'append-only';`),
		"README.md":                  file("ignored"),
		"notes/0009_ignored_dir.sql": file("not a migration: in a subdirectory"),
	}
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := t.Context()
		// Several migrators at once, as replicas starting together.
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Go(func() { errs <- sqldb.Migrate(ctx, db, migrations()) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("concurrent Migrate: %v", err)
			}
		}
		if err := sqldb.Migrate(ctx, db, migrations()); err != nil {
			t.Fatalf("second Migrate: %v", err)
		}
		exec(t, db, `INSERT INTO ledger (account) VALUES ($1)`, "a")
		rows, err := db.SQL().QueryContext(ctx, `SELECT migration_set, version, name FROM schema_migrations ORDER BY version`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var got []string
		for rows.Next() {
			var set, name string
			var version int64
			if err := rows.Scan(&set, &version, &name); err != nil {
				t.Fatal(err)
			}
			got = append(got, set+"/"+name)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		d := db.Dialect().String()
		want := []string{"app/0001_accounts.sql", "app/0002_ledger." + d + ".sql", "app/0003_seed.sql", "app/0004_noop." + d + ".sql"}
		if len(got) != len(want) {
			t.Fatalf("schema_migrations = %v, want %v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("schema_migrations[%d] = %q, want %q", i, got[i], want[i])
			}
		}
	})
}

func TestMigrateSetsAreIndependent(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := t.Context()
		app := fstest.MapFS{"0001_init.sql": file(`CREATE TABLE app_things (id TEXT PRIMARY KEY)`)}
		lib := fstest.MapFS{"0001_init.sql": file(`CREATE TABLE lib_things (id TEXT PRIMARY KEY)`)}
		if err := sqldb.Migrate(ctx, db, app); err != nil {
			t.Fatal(err)
		}
		if err := sqldb.Migrate(ctx, db, lib, sqldb.MigrationSet("lib")); err != nil {
			t.Fatal(err)
		}
		exec(t, db, `INSERT INTO app_things VALUES ('x')`)
		exec(t, db, `INSERT INTO lib_things VALUES ('x')`)
		if err := sqldb.Migrate(ctx, db, lib, sqldb.MigrationSet("")); !errors.Is(err, sqldb.ErrMigration) {
			t.Errorf("empty set: error = %v, want ErrMigration", err)
		}
	})
}

func TestMigrateFailureRollsBackFile(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := t.Context()
		fsys := fstest.MapFS{
			"0001_ok.sql":     file(`CREATE TABLE ok (id TEXT)`),
			"0002_broken.sql": file("CREATE TABLE half (id TEXT);\nINSERT INTO no_such_table VALUES (1);"),
		}
		if err := sqldb.Migrate(ctx, db, fsys); err == nil {
			t.Fatal("Migrate succeeded with a broken file")
		}
		exec(t, db, `INSERT INTO ok VALUES ('applied')`)
		if _, err := db.SQL().ExecContext(ctx, `INSERT INTO half VALUES ('x')`); err == nil {
			t.Error("table of the failed migration exists: the file was not one transaction")
		}
		// Fixing the file lets the next start finish the job.
		fsys["0002_broken.sql"] = file(`CREATE TABLE half (id TEXT)`)
		if err := sqldb.Migrate(ctx, db, fsys); err != nil {
			t.Fatalf("Migrate after fix: %v", err)
		}
		exec(t, db, `INSERT INTO half VALUES ('x')`)
	})
}

func TestMigrateRefusesBadSets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		first   fstest.MapFS // applied successfully before
		fsys    fstest.MapFS
		wantErr error
	}{
		{
			name:    "bad name",
			fsys:    fstest.MapFS{"init.sql": file(`SELECT 1`)},
			wantErr: sqldb.ErrMigration,
		},
		{
			name:    "shared and dialect file for one version",
			fsys:    fstest.MapFS{"0001_a.sql": file(`SELECT 1`), "0001_a.sqlite.sql": file(`SELECT 1`)},
			wantErr: sqldb.ErrMigration,
		},
		{
			name:    "two files for one version",
			fsys:    fstest.MapFS{"0001_a.sql": file(`SELECT 1`), "1_b.sql": file(`SELECT 1`)},
			wantErr: sqldb.ErrMigration,
		},
		{
			name:    "pending version below an applied one",
			first:   fstest.MapFS{"0002_b.sql": file(`CREATE TABLE b (id TEXT)`)},
			fsys:    fstest.MapFS{"0001_a.sql": file(`CREATE TABLE a (id TEXT)`), "0002_b.sql": file(`CREATE TABLE b (id TEXT)`)},
			wantErr: sqldb.ErrMigration,
		},
		{
			name:  "applied version unknown to this binary is ignored",
			first: fstest.MapFS{"0001_a.sql": file(`CREATE TABLE a (id TEXT)`), "0002_b.sql": file(`CREATE TABLE b (id TEXT)`)},
			fsys:  fstest.MapFS{"0001_a.sql": file(`CREATE TABLE a (id TEXT)`)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := sqldbtest.SQLite(t)
			if tt.first != nil {
				if err := sqldb.Migrate(t.Context(), db, tt.first); err != nil {
					t.Fatal(err)
				}
			}
			err := sqldb.Migrate(t.Context(), db, tt.fsys)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("Migrate() error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestMigrateDir(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := t.Context()
		fsys := fstest.MapFS{
			"migrations/0001_init.sql": file(`CREATE TABLE dir_things (id TEXT PRIMARY KEY)`),
			"0001_outside.sql":         file(`not a migration of the set: outside dir`),
		}
		if err := sqldb.MigrateDir(ctx, db, fsys, "migrations", "dir"); err != nil {
			t.Fatal(err)
		}
		exec(t, db, `INSERT INTO dir_things VALUES ('x')`)
		var n int
		if err := db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE migration_set = 'dir'`).Scan(&n); err != nil || n != 1 {
			t.Errorf("schema_migrations rows of set dir = %d, %v; want 1", n, err)
		}
		fsys["bad/init.sql"] = file(`CREATE TABLE bad_things (id TEXT)`)
		err := sqldb.MigrateDir(ctx, db, fsys, "bad", "bad")
		if !errors.Is(err, sqldb.ErrMigration) || !strings.HasPrefix(err.Error(), "bad: migrate: ") {
			t.Errorf("badly named file: error = %v, want ErrMigration prefixed \"bad: migrate: \"", err)
		}
	})
}
