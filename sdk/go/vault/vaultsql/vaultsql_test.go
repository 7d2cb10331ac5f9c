package vaultsql

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
)

// keyrings returns rings holding versions 1..n of the same random keys.
func keyrings(t *testing.T, n int) []*vault.Keyring {
	t.Helper()
	all := map[uint32][]byte{}
	var out []*vault.Keyring
	for v := uint32(1); v <= uint32(n); v++ {
		all[v] = make([]byte, vault.KeySize)
		_, _ = rand.Read(all[v])
		k, err := vault.New(all)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, k)
	}
	return out
}

// tokens is a table with a two-column key, like a service's.
var tokens = Columns{{
	Table: "tokens", Name: "sealed", Key: []string{"owner", "slot"},
	RecordID: func(k []string) string { return "tokens/" + k[0] + "/" + k[1] },
}}

func setup(t *testing.T, db *sqldb.DB) {
	t.Helper()
	if _, err := db.SQL().ExecContext(t.Context(),
		`CREATE TABLE tokens (owner TEXT NOT NULL, slot TEXT NOT NULL, sealed TEXT NOT NULL, PRIMARY KEY (owner, slot))`); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, db *sqldb.DB) map[[2]string]string {
	t.Helper()
	rows, err := db.SQL().QueryContext(t.Context(), `SELECT owner, slot, sealed FROM tokens`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[[2]string]string{}
	for rows.Next() {
		var o, s, v string
		if err := rows.Scan(&o, &s, &v); err != nil {
			t.Fatal(err)
		}
		out[[2]string{o, s}] = v
	}
	return out
}

// TestReencrypt moves more than a page of records to a new key version, on
// SQLite and PostgreSQL: each still opens under its record id, a second run
// changes nothing, empty values are left alone, and a record that does not
// decrypt is named without stopping the others.
func TestReencrypt(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := t.Context()
		setup(t, db)
		rings := keyrings(t, 3)
		const n = PageSize + 5
		want := map[[2]string]string{}
		for i := range n {
			k := [2]string{fmt.Sprintf("o%d", i%3), fmt.Sprintf("s%03d", i)}
			plain := fmt.Sprintf("token-%d", i)
			rec, err := rings[0].Encrypt([]byte(plain), tokens[0].RecordID(k[:]))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.SQL().ExecContext(ctx, `INSERT INTO tokens VALUES ($1, $2, $3)`, k[0], k[1], rec.Encode()); err != nil {
				t.Fatal(err)
			}
			want[k] = plain
		}
		if _, err := db.SQL().ExecContext(ctx, `INSERT INTO tokens VALUES ('z', 'empty', '')`); err != nil {
			t.Fatal(err)
		}
		if got, err := tokens.Versions(ctx, db); err != nil || got[1] != n || len(got) != 1 {
			t.Fatalf("before: Versions = %v, %v", got, err)
		}
		changed, err := tokens.Reencrypt(ctx, db, rings[1])
		if err != nil || changed != n {
			t.Fatalf("Reencrypt = %d, %v; want %d", changed, err, n)
		}
		for k, sealed := range read(t, db) {
			if k[1] == "empty" {
				if sealed != "" {
					t.Fatal("an empty value was filled")
				}
				continue
			}
			rec, err := vault.ParseRecord(sealed)
			if err != nil || rec.Version != 2 {
				t.Fatalf("%v: %q, %v", k, sealed[:4], err)
			}
			plain, err := rings[1].Decrypt(rec, tokens[0].RecordID(k[:]))
			if err != nil || string(plain) != want[k] {
				t.Fatalf("%v does not open after re-encryption: %v", k, err)
			}
		}
		if changed, err := tokens.Reencrypt(ctx, db, rings[1]); err != nil || changed != 0 {
			t.Fatalf("second run = %d, %v; want 0", changed, err)
		}
		// A ciphertext copied into another row no longer authenticates: it
		// is named by record id, and the others still move.
		if _, err := db.SQL().ExecContext(ctx,
			`UPDATE tokens SET sealed = (SELECT sealed FROM tokens WHERE owner = 'o0' AND slot = 's000') WHERE owner = 'o1' AND slot = 's001'`); err != nil {
			t.Fatal(err)
		}
		changed, err = tokens.Reencrypt(ctx, db, rings[2])
		if changed != n-1 || !errors.Is(err, vault.ErrDecrypt) || !strings.Contains(err.Error(), "tokens tokens/o1/s001") ||
			strings.Contains(err.Error(), "v2.") {
			t.Fatalf("with a bad record: %d, %v", changed, err)
		}
	})
}

// TestSwapIsCompareAndSwap shows that a row rewritten after it was read
// keeps what its writer stored.
func TestSwapIsCompareAndSwap(t *testing.T) {
	t.Parallel()
	db := sqldbtest.SQLite(t)
	setup(t, db)
	if _, err := db.SQL().ExecContext(t.Context(), `INSERT INTO tokens VALUES ('o', 's', 'written-by-the-service')`); err != nil {
		t.Fatal(err)
	}
	ok, err := tokens[0].swap(t.Context(), db, []string{"o", "s"}, "read-before", "re-encrypted")
	if err != nil || ok {
		t.Fatalf("swap over a changed row = %v, %v; want false", ok, err)
	}
	if got := read(t, db)[[2]string{"o", "s"}]; got != "written-by-the-service" {
		t.Fatalf("row now holds %q", got)
	}
}

func TestRecordVersion(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]uint32{
		"v1.abc": 1, "v4294967295.": 4294967295, "v4294967296.": 0, "v01.x": 0, "v.x": 0, "1.x": 0, "v12": 0, "": 0, "v+1.x": 0,
	} {
		if got := recordVersion(in); got != want {
			t.Errorf("recordVersion(%q) = %d, want %d", in, got, want)
		}
	}
}
