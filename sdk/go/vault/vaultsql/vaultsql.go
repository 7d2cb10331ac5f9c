// Package vaultsql re-encrypts the vault records a service keeps in SQL
// columns after a key rotation, and counts them by key version: the part of
// `tokenrelay vault rotate` that every service shares. A service lists its
// sealed columns (table, column, primary key, and how a row's record id, the
// associated data of its ciphertext, is made); this package does the rest,
// safely while the service runs.
package vaultsql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
)

// Column is a column that holds vault records (the text form of
// vault.Record), the primary key that pages through its table, and the
// record id, the associated data, each row's ciphertext is bound to.
type Column struct {
	Table, Name string
	// Key are the primary-key columns, in index order.
	Key []string
	// RecordID returns the record id of the row with these key values.
	RecordID func(key []string) string
}

// PageSize is how many rows one read of a sealed column returns.
const PageSize = 200

// maxReportedFailures bounds how many records that failed to re-encrypt are
// named in the error; the rest are counted.
const maxReportedFailures = 5

// Columns are the sealed columns of one service: all it keeps sealed with
// the vault. A service exports its Columns (its Sealed variable) for the
// operator's vault commands; a new sealed column must be added there, or key
// rotation leaves it behind.
type Columns []Column

// Reencrypt moves every record of cols to vk's current key version
// and returns how many rows it rewrote. Each table is read in pages of
// primary keys (keyset pagination, so rows written meanwhile neither stall
// nor repeat it) and each row is rewritten in its own short transaction,
// only if it still holds the ciphertext that was read: a compare-and-swap,
// so that a row the running service rewrote or emptied meanwhile is left
// as the service wrote it. Records already under the current version are
// authenticated and left unchanged (vault.Keyring.Reencrypt reports them
// unchanged). A record that does not decrypt is named in the error, by
// table and record id, never by content, and the others still move; a
// database error stops the run.
func (cols Columns) Reencrypt(ctx context.Context, db *sqldb.DB, vk *vault.Keyring) (int, error) {
	changed, failed := 0, 0
	var failures []error
	for _, c := range cols {
		after := make([]string, len(c.Key)) // "" sorts before every key
		for {
			page, err := c.page(ctx, db, after)
			if err != nil {
				return changed, err
			}
			for _, r := range page {
				ok, err := c.reencryptRow(ctx, db, vk, r)
				switch {
				case err != nil && ctx.Err() != nil:
					return changed, ctx.Err()
				case errors.Is(err, errStore):
					return changed, err
				case err != nil:
					failed++
					if len(failures) < maxReportedFailures {
						failures = append(failures, fmt.Errorf("%s %s: %w", c.Table, c.RecordID(r.key), err))
					}
				case ok:
					changed++
				}
			}
			if len(page) < PageSize {
				break
			}
			after = page[len(page)-1].key
		}
	}
	if failed > 0 {
		if failed > len(failures) {
			failures = append(failures, fmt.Errorf("and %d more", failed-len(failures)))
		}
		return changed, fmt.Errorf("%d sealed records could not be re-encrypted: %w", failed, errors.Join(failures...))
	}
	return changed, nil
}

// errStore marks a database failure, which stops a re-encryption run,
// unlike a record that fails to decrypt.
var errStore = errors.New("database")

type sealedRow struct {
	key    []string
	sealed string
}

// page returns up to PageSize non-empty records whose key is after
// after, in key order.
func (c Column) page(ctx context.Context, db *sqldb.DB, after []string) ([]sealedRow, error) {
	cols := strings.Join(c.Key, ", ")
	marks := make([]string, len(c.Key))
	args := make([]any, len(c.Key))
	for i := range c.Key {
		marks[i] = "$" + strconv.Itoa(i+1)
		args[i] = after[i]
	}
	q := fmt.Sprintf(`SELECT %s, %s FROM %s WHERE (%s) > (%s) AND %s <> '' ORDER BY %s LIMIT %d`,
		cols, c.Name, c.Table, cols, strings.Join(marks, ", "), c.Name, cols, PageSize)
	rows, err := db.SQL().QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%w: read %s.%s: %w", errStore, c.Table, c.Name, err)
	}
	defer rows.Close()
	var out []sealedRow
	for rows.Next() {
		r := sealedRow{key: make([]string, len(c.Key))}
		dst := make([]any, 0, len(c.Key)+1)
		for i := range r.key {
			dst = append(dst, &r.key[i])
		}
		if err := rows.Scan(append(dst, &r.sealed)...); err != nil {
			return nil, fmt.Errorf("%w: read %s.%s: %w", errStore, c.Table, c.Name, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: read %s.%s: %w", errStore, c.Table, c.Name, err)
	}
	return out, nil
}

// reencryptRow re-encrypts one record and stores it if the row still holds
// what was read. It reports whether the row was rewritten.
func (c Column) reencryptRow(ctx context.Context, db *sqldb.DB, vk *vault.Keyring, r sealedRow) (bool, error) {
	rec, err := vault.ParseRecord(r.sealed)
	if err != nil {
		return false, err
	}
	next, changed, err := vk.Reencrypt(rec, c.RecordID(r.key))
	if err != nil || !changed {
		return false, err
	}
	return c.swap(ctx, db, r.key, r.sealed, next.Encode())
}

// swap replaces old by new in the row with key, in a transaction of its
// own, only if the row still holds old.
func (c Column) swap(ctx context.Context, db *sqldb.DB, key []string, old, new string) (bool, error) {
	where := make([]string, len(c.Key))
	args := []any{new, old}
	for i, k := range c.Key {
		where[i] = fmt.Sprintf("%s = $%d", k, i+3)
		args = append(args, key[i])
	}
	q := fmt.Sprintf(`UPDATE %s SET %s = $1 WHERE %s AND %s = $2`, c.Table, c.Name, strings.Join(where, " AND "), c.Name)
	var n int64
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("%w: update %s.%s: %w", errStore, c.Table, c.Name, err)
	}
	return n == 1, nil
}

// Versions counts the non-empty records of cols by the key version
// that sealed them; 0 counts values that are not vault records. It reads
// only the version prefix and decrypts nothing.
func (cols Columns) Versions(ctx context.Context, db *sqldb.DB) (map[uint32]int, error) {
	out := map[uint32]int{}
	for _, c := range cols {
		// "v" and a 32-bit version in decimal take at most 11 bytes.
		rows, err := db.SQL().QueryContext(ctx,
			fmt.Sprintf(`SELECT substr(%s, 1, 12) FROM %s WHERE %s <> ''`, c.Name, c.Table, c.Name))
		if err != nil {
			return nil, fmt.Errorf("read %s.%s: %w", c.Table, c.Name, err)
		}
		for rows.Next() {
			var prefix string
			if err := rows.Scan(&prefix); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read %s.%s: %w", c.Table, c.Name, err)
			}
			out[recordVersion(prefix)]++
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s.%s: %w", c.Table, c.Name, err)
		}
	}
	return out, nil
}

// recordVersion parses the "v<version>." prefix of a vault record's text
// form; 0 if there is none.
func recordVersion(prefix string) uint32 {
	rest, ok := strings.CutPrefix(prefix, "v")
	digits, _, dot := strings.Cut(rest, ".")
	if !ok || !dot || digits == "" || digits[0] == '0' {
		return 0
	}
	v, err := strconv.ParseUint(digits, 10, 32)
	if err != nil {
		return 0
	}
	return uint32(v)
}
