package sqldb

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestSQLiteDSN(t *testing.T) {
	t.Parallel()
	cfg := config{busyTimeout: 5000 * 1e6}
	tests := []struct {
		url      string
		wantName string
		wantErr  error
		wantKV   map[string]string // query values the DSN must carry
	}{
		{url: "sqlite:///var/lib/tr/a.db", wantName: "/var/lib/tr/a.db"},
		{url: "sqlite:data/a.db", wantName: "data/a.db"},
		{url: "sqlite://data/a.db", wantName: "data/a.db"},
		{url: "sqlite:///tmp/with%20space.db", wantName: "/tmp/with space.db"},
		{url: "/tmp/a.db", wantName: "/tmp/a.db"},
		{url: "a.db", wantName: "a.db"},
		{url: "file:/tmp/a.db?cache=private", wantName: "file:/tmp/a.db", wantKV: map[string]string{"cache": "private"}},
		{url: "sqlite:///tmp/a.db?_busy_timeout=10&_txlock=deferred", wantName: "/tmp/a.db", wantKV: map[string]string{"_busy_timeout": "10", "_txlock": "deferred", "_journal_mode": "WAL"}},
		{url: "SQLITE:///tmp/a.db", wantName: "/tmp/a.db"},
		{url: "sqlite::memory:", wantErr: ErrUnsupportedURL},
		{url: ":memory:", wantErr: ErrUnsupportedURL},
		{url: "file::memory:?cache=shared", wantErr: ErrUnsupportedURL},
		{url: "file:a.db?mode=memory", wantErr: ErrUnsupportedURL},
		{url: "sqlite://", wantErr: ErrUnsupportedURL},
		{url: "", wantErr: ErrUnsupportedURL},
		{url: "mysql://u:secret@h/db", wantErr: ErrUnsupportedURL},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			t.Parallel()
			dsn, err := sqliteDSN(tt.url, cfg)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("sqliteDSN(%q) error = %v, want %v", tt.url, err, tt.wantErr)
			}
			if err != nil {
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error leaks the password: %v", err)
				}
				return
			}
			name, rawQuery, _ := strings.Cut(dsn, "?")
			if name != tt.wantName {
				t.Errorf("name = %q, want %q", name, tt.wantName)
			}
			q, err := url.ParseQuery(rawQuery)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{
				"_journal_mode": "WAL", "_synchronous": "NORMAL", "_foreign_keys": "1",
				"_busy_timeout": "5000", "_txlock": "immediate", "_time_format": "sqlite", "_timezone": "UTC",
			}
			for k, v := range tt.wantKV {
				want[k] = v
			}
			for k, v := range want {
				if got := q[k]; len(got) != 1 || got[0] != v {
					t.Errorf("%s = %q, want [%q]", k, got, v)
				}
			}
		})
	}
}

func TestParseMigrationName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		wantVersion int64
		wantDialect Dialect
		wantErr     error
	}{
		{"0001_init.sql", 1, 0, nil},
		{"12_add_index.sqlite.sql", 12, SQLite, nil},
		{"0003_x.postgres.sql", 3, Postgres, nil},
		{"0003_x.y.sql", 0, 0, ErrMigration},
		{"0003_x.mysql.sql", 0, 0, ErrMigration},
		{"0000_zero.sql", 0, 0, ErrMigration},
		{"0001_.sql", 0, 0, ErrMigration},
		{"0001.sql", 0, 0, ErrMigration},
		{"init.sql", 0, 0, ErrMigration},
		{"-1_neg.sql", 0, 0, ErrMigration},
		{"99999999999999999999_big.sql", 0, 0, ErrMigration},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, d, err := parseMigrationName(tt.name)
			if !errors.Is(err, tt.wantErr) || v != tt.wantVersion || d != tt.wantDialect {
				t.Errorf("parseMigrationName(%q) = %d, %v, %v; want %d, %v, %v", tt.name, v, d, err, tt.wantVersion, tt.wantDialect, tt.wantErr)
			}
		})
	}
}

func TestValidSchemaName(t *testing.T) {
	t.Parallel()
	tests := map[string]bool{
		"coupons": true, "_x": true, "svc_2": true, strings.Repeat("a", 63): true,
		"": false, "2svc": false, "Coupons": false, "a-b": false, `a"b`: false, "a b": false, strings.Repeat("a", 64): false,
	}
	for name, want := range tests {
		if got := ValidSchemaName(name); got != want {
			t.Errorf("ValidSchemaName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestIsPostgres(t *testing.T) {
	t.Parallel()
	for url, want := range map[string]bool{
		"postgres://db/x": true, "postgresql://db/x": true, "POSTGRES://db": true,
		"sqlite:a.db": false, "a.db": false, "file:a.db?mode=ro": false, "": false,
	} {
		if got := IsPostgres(url); got != want {
			t.Errorf("IsPostgres(%q) = %v, want %v", url, got, want)
		}
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"postgres://tr:s3cret@db:5432/tr?sslmode=disable&password=p2": "postgres://tr:xxxxx@db:5432/tr",
		"postgres://tr@db/tr?search_path=coupons":                     "postgres://tr@db/tr",
		"postgres://db/tr#frag":                                       "postgres://db/tr",
		"sqlite:///var/lib/tr/a.db?_pragma=key(x)":                    "sqlite:///var/lib/tr/a.db",
		"data/my file.db":                                             "data/my file.db",
		"postgres://tr:s3cret@db:bad-port/tr":                         "(unparsable URL)",
	} {
		if got := Redact(raw); got != want {
			t.Errorf("Redact(%q) = %q, want %q", raw, got, want)
		}
	}
}
