package process_test

import (
	"io/fs"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/tokenrelay/tokenrelay/sdk/go/process"
)

// TestOpenStateOwnerOnly (issue 20): a fresh data directory opened by a
// service holds nothing group or others may read: every directory 0700,
// every file (key ring, vault key, SQLite database, -wal, -shm) 0600.
func TestOpenStateOwnerOnly(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })
	t.Setenv("TOKENRELAY_VAULT_KEYS", "")
	data := filepath.Join(t.TempDir(), "coupons")
	p := process.Process{Name: "coupons", DataDir: data, MaxConns: 2}
	st, err := p.OpenState(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer st.DB.Close()
	if _, err := st.DB.SQL().ExecContext(t.Context(), `CREATE TABLE t (x INTEGER)`); err != nil {
		t.Fatal(err) // a write, so that the -wal and -shm files exist
	}
	files := 0
	err = filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		} else {
			files++
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", path, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// keyring.json, 1.key, coupons.db, -wal, -shm
	if files < 5 {
		t.Errorf("%d files under %s, want the ring, the vault key and the database with its -wal and -shm", files, data)
	}
}
