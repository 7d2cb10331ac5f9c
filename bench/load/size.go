package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// DBSize is one SQLite database of the server's data directory, read after
// the server stopped (so its write-ahead log has been checkpointed into the
// file and removed).
type DBSize struct {
	Name string // the file's name: coupons.db, order-processing.db, ...
	// FileBytes is the file's size: what the disk holds. SQLite reuses the
	// pages that deletes free, but does not give them back to the file
	// system without VACUUM, so it never shrinks.
	FileBytes int64
	// LiveBytes is what the data takes: the pages in use (the page count
	// minus the free list, from the file's header) times the page size.
	LiveBytes int64
	// WALBytes is the size of a write-ahead log left next to the file
	// (0 after a clean stop).
	WALBytes int64
}

// Sizes is the data directory's size after a run.
type Sizes struct {
	// Settle is how long the server ran idle after the last checkout, so
	// that its purge could run, before it was stopped.
	Settle time.Duration
	// DirBytes sums every file of the data directory (databases, key
	// rings, vault keys).
	DirBytes int64
	DBs      []DBSize
}

// measureDir reads the sizes of dir's SQLite databases and the total of
// its files.
func measureDir(dir string) (Sizes, error) {
	var s Sizes
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		s.DirBytes += info.Size()
		if !strings.HasSuffix(path, ".db") {
			return nil
		}
		db := DBSize{Name: filepath.Base(path), FileBytes: info.Size()}
		if db.LiveBytes, err = liveBytes(path); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if wal, err := os.Stat(path + "-wal"); err == nil {
			db.WALBytes = wal.Size()
		}
		s.DBs = append(s.DBs, db)
		return nil
	})
	slices.SortFunc(s.DBs, func(a, b DBSize) int { return strings.Compare(a.Name, b.Name) })
	return s, err
}

// liveBytes reads the pages in use of a SQLite file from its header
// (https://www.sqlite.org/fileformat2.html#the_database_header): the page
// size at offset 16 (1 meaning 65536), the database size in pages at 28
// and the number of free-list pages at 36, all big-endian.
func liveBytes(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var h [100]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return 0, err
	}
	if string(h[:16]) != "SQLite format 3\x00" {
		return 0, fmt.Errorf("not a SQLite database")
	}
	pageSize := int64(binary.BigEndian.Uint16(h[16:18]))
	if pageSize == 1 {
		pageSize = 65536
	}
	pages, free := int64(binary.BigEndian.Uint32(h[28:32])), int64(binary.BigEndian.Uint32(h[36:40]))
	return (pages - free) * pageSize, nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// print writes the sizes, and a "size:" row for BENCHMARKS.md: label,
// checkouts, settle, the databases' file and live totals, then each
// database's live size.
func (s Sizes) print(w io.Writer, label string, checkouts int) {
	var file, live int64
	var each []string
	for _, db := range s.DBs {
		file, live = file+db.FileBytes, live+db.LiveBytes
		fmt.Fprintf(w, "database %-26s file %10s  live %10s", db.Name, mib(db.FileBytes), mib(db.LiveBytes))
		if db.WALBytes > 0 {
			fmt.Fprintf(w, "  (write-ahead log left: %s)", mib(db.WALBytes))
		}
		fmt.Fprintln(w)
		each = append(each, fmt.Sprintf("%s %s", strings.TrimSuffix(db.Name, ".db"), mib(db.LiveBytes)))
	}
	fmt.Fprintf(w, "data directory after %v idle: %s in all; databases %s on disk, %s live\n",
		s.Settle, mib(s.DirBytes), mib(file), mib(live))
	fmt.Fprintf(w, "size: | %s | %d | %v | %s | %s | %s |\n", label, checkouts, s.Settle, mib(file), mib(live), strings.Join(each, ", "))
}
