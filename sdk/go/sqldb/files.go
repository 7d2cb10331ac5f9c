package sqldb

import (
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"strings"
)

// PrivateFileMode is the mode of the SQLite files Open creates, and to
// which it narrows existing ones: the database holds sealed tokens,
// password hashes and every order, which no other account of the machine
// has to read.
const PrivateFileMode fs.FileMode = 0o600

// sqliteCompanions are the suffixes of the files SQLite keeps beside a
// database: the WAL, its shared-memory index, and the rollback journal.
var sqliteCompanions = []string{"", "-wal", "-shm", "-journal"}

// sqliteFile returns the path of the database file of a modernc DSN
// (sqliteDSN's result) and whether Open may create it: "" for a URI it
// cannot read a plain path from.
func sqliteFile(dsn string) (path string, create bool) {
	name, rawQuery, _ := strings.Cut(dsn, "?")
	q, _ := url.ParseQuery(rawQuery)
	mode := q.Get("mode")
	create = mode == "" || mode == "rwc"
	if rest, ok := strings.CutPrefix(name, "file:"); ok {
		// A SQLite URI: file:path, file:/abs or file:///abs (an empty or
		// localhost authority).
		if after, ok := strings.CutPrefix(rest, "//"); ok {
			auth, p, _ := strings.Cut(after, "/")
			if auth != "" && auth != "localhost" {
				return "", false
			}
			rest = "/" + p
		}
		unescaped, err := url.PathUnescape(rest)
		if err != nil {
			return "", false
		}
		name = unescaped
	}
	return name, create
}

// privateFiles makes the SQLite files of path owner-only: it creates the
// database file with PrivateFileMode when it does not exist (an empty file
// is an empty database; SQLite would create it 0644 and its -wal and -shm
// files with the database file's mode), and narrows to PrivateFileMode the
// database file and its companions that group or others may access,
// logging each. A file it cannot narrow (another owner's) is logged and
// left to SQLite, which reports what it cannot open.
func privateFiles(path string, create bool, log *slog.Logger) {
	if path == "" {
		return
	}
	if create {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, PrivateFileMode)
		if err == nil {
			_ = f.Close()
		}
		// Otherwise it exists (narrowed below), or its directory does not
		// (SQLite's error says so).
	}
	for _, suffix := range sqliteCompanions {
		p := path + suffix
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 == 0 {
			continue
		}
		if err := os.Chmod(p, PrivateFileMode); err != nil {
			log.Warn("sqldb: a database file is readable by others and its mode cannot be narrowed",
				"file", p, "mode", fi.Mode().Perm().String(), "err", err)
			continue
		}
		log.Warn("sqldb: narrowed the mode of a database file readable by others",
			"file", p, "was", fi.Mode().Perm().String(), "now", PrivateFileMode.String())
	}
}
