package sqldb_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
)

// TestSQLiteFilesOwnerOnly (issue 20): whatever the umask lets SQLite do,
// a database Open creates, and its -wal and -shm files, are 0600; every URL
// form that names a file gets the same.
func TestSQLiteFilesOwnerOnly(t *testing.T) {
	old := syscall.Umask(0o022) // the usual umask, under which SQLite makes 0644 files
	t.Cleanup(func() { syscall.Umask(old) })
	dir := t.TempDir()
	for _, url := range []string{
		"sqlite://" + filepath.Join(dir, "a.db"),
		"sqlite:" + filepath.Join(dir, "b.db"),
		filepath.Join(dir, "c.db"),
		"file:" + filepath.Join(dir, "d.db") + "?cache=private",
		"file://" + filepath.Join(dir, "e.db"),
	} {
		db, err := sqldb.Open(t.Context(), url)
		if err != nil {
			t.Fatalf("Open(%s): %v", url, err)
		}
		if _, err := db.SQL().ExecContext(t.Context(), `CREATE TABLE t (x INTEGER)`); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	db, err := sqldb.Open(t.Context(), "sqlite://"+filepath.Join(dir, "open.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.SQL().ExecContext(t.Context(), `CREATE TABLE t (x INTEGER)`); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		seen[e.Name()] = true
		if fi.Mode().Perm() != sqldb.PrivateFileMode {
			t.Errorf("%s has mode %v, want %v", e.Name(), fi.Mode().Perm(), sqldb.PrivateFileMode)
		}
	}
	for _, name := range []string{"a.db", "b.db", "c.db", "d.db", "e.db", "open.db", "open.db-wal", "open.db-shm"} {
		if !seen[name] {
			t.Errorf("no file %s: %v", name, seen)
		}
	}
}

// TestSQLiteFilesNarrowed: an existing database readable by others (made
// before this fix, or copied in) is narrowed to 0600 when opened, and the
// log says which file was.
func TestSQLiteFilesNarrowed(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "old.db")
	for _, p := range []string{path, path + "-wal"} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var logs bytes.Buffer
	db, err := sqldb.Open(t.Context(), "sqlite://"+path, sqldb.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != sqldb.PrivateFileMode {
			t.Errorf("%s has mode %v after Open", p, fi.Mode().Perm())
		}
		if !strings.Contains(logs.String(), "file="+p+" ") || !strings.Contains(logs.String(), "was=-rw-r--r--") {
			t.Errorf("the log does not name %s:\n%s", p, logs.String())
		}
	}
}

// TestSQLiteReadOnlyNotCreated: a read-only URL never creates the file.
func TestSQLiteReadOnlyNotCreated(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "none.db")
	if db, err := sqldb.Open(t.Context(), "file:"+path+"?mode=ro"); err == nil {
		db.Close()
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("a read-only open created %s: %v", path, err)
	}
}
