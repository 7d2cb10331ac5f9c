package vault_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, vault.KeySize) }

func newRing(t testing.TB, versions ...uint32) *vault.Keyring {
	t.Helper()
	keys := map[uint32][]byte{}
	for _, v := range versions {
		keys[v] = testKey(byte(v))
	}
	k, err := vault.New(keys)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	k := newRing(t, 1, 7)
	tests := []struct {
		name      string
		plaintext []byte
		id        string
	}{
		{"empty", []byte{}, "orders/op_1/tokens/coupons"},
		{"nil", nil, "orders/op_1/tokens/points"},
		{"token", []byte("eyJhbGciOiJFZERTQSJ9.eyJqdGkiOiIxIn0.c2ln"), "orders/op_2"},
		{"binary", []byte{0, 1, 2, 255}, "x"},
		{"unicode id", []byte("v"), "commandes/op_é/jetons"},
		{"maximum size", bytes.Repeat([]byte{'a'}, vault.MaxPlaintextSize), "big"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec, err := k.Encrypt(tt.plaintext, tt.id)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Version != 7 {
				t.Errorf("Version = %d, want the highest, 7", rec.Version)
			}
			parsed, err := vault.ParseRecord(rec.Encode())
			if err != nil {
				t.Fatalf("ParseRecord(Encode()) = %v", err)
			}
			got, err := k.Decrypt(parsed, tt.id)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.plaintext) || got == nil {
				t.Errorf("Decrypt = %d bytes (nil %v), want %d bytes", len(got), got == nil, len(tt.plaintext))
			}
		})
	}
}

func TestEncryptRefuses(t *testing.T) {
	t.Parallel()
	k := newRing(t, 1)
	tests := []struct {
		name      string
		plaintext []byte
		id        string
		wantErr   error
	}{
		{"too large", make([]byte, vault.MaxPlaintextSize+1), "id", vault.ErrTooLarge},
		{"empty id", []byte("x"), "", vault.ErrEmptyID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := k.Encrypt(tt.plaintext, tt.id); !errors.Is(err, tt.wantErr) {
				t.Errorf("Encrypt() error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestDecryptFailures(t *testing.T) {
	t.Parallel()
	k := newRing(t, 1, 2)
	const id = "orders/op_1/tokens/coupons"
	secret := []byte("confirmation-token-secret")
	good, err := k.Encrypt(secret, id)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[(i+len(c))%len(c)] ^= 0x01
		return c
	}
	tests := []struct {
		name    string
		rec     vault.Record
		id      string
		wantErr error
	}{
		{"tampered ciphertext", vault.Record{Version: 2, Nonce: good.Nonce, Ciphertext: flip(good.Ciphertext, 0)}, id, vault.ErrDecrypt},
		{"tampered tag", vault.Record{Version: 2, Nonce: good.Nonce, Ciphertext: flip(good.Ciphertext, -1)}, id, vault.ErrDecrypt},
		{"tampered nonce", vault.Record{Version: 2, Nonce: flip(good.Nonce, 5), Ciphertext: good.Ciphertext}, id, vault.ErrDecrypt},
		{"truncated ciphertext", vault.Record{Version: 2, Nonce: good.Nonce, Ciphertext: good.Ciphertext[:len(good.Ciphertext)-1]}, id, vault.ErrDecrypt},
		{"wrong record id", good, "orders/op_2/tokens/coupons", vault.ErrDecrypt},
		{"id prefix", good, id[:len(id)-1], vault.ErrDecrypt},
		{"other known version", vault.Record{Version: 1, Nonce: good.Nonce, Ciphertext: good.Ciphertext}, id, vault.ErrDecrypt},
		{"unknown version", vault.Record{Version: 3, Nonce: good.Nonce, Ciphertext: good.Ciphertext}, id, vault.ErrUnknownKeyVersion},
		{"version zero", vault.Record{Version: 0, Nonce: good.Nonce, Ciphertext: good.Ciphertext}, id, vault.ErrMalformedRecord},
		{"short nonce", vault.Record{Version: 2, Nonce: good.Nonce[:11], Ciphertext: good.Ciphertext}, id, vault.ErrMalformedRecord},
		{"no nonce", vault.Record{Version: 2, Ciphertext: good.Ciphertext}, id, vault.ErrMalformedRecord},
		{"shorter than tag", vault.Record{Version: 2, Nonce: good.Nonce, Ciphertext: good.Ciphertext[:15]}, id, vault.ErrMalformedRecord},
		{"empty id", good, "", vault.ErrEmptyID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := k.Decrypt(tt.rec, tt.id)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Decrypt() = %q, %v; want %v", got, err, tt.wantErr)
			}
			if got != nil {
				t.Errorf("Decrypt returned %d bytes with an error", len(got))
			}
			msg := err.Error()
			for _, leak := range []string{string(secret), hex.EncodeToString(tt.rec.Ciphertext), tt.rec.Encode()} {
				if strings.Contains(msg, leak) {
					t.Errorf("error %q leaks record data", msg)
				}
			}
		})
	}
	if got, err := k.Decrypt(good, id); err != nil || !bytes.Equal(got, secret) {
		t.Errorf("the untampered record no longer decrypts: %v", err)
	}
}

func TestNoncesAreUnique(t *testing.T) {
	t.Parallel()
	k := newRing(t, 1)
	const n = 20000
	nonces := make(map[string]bool, n)
	cts := make(map[string]bool, n)
	for range n {
		rec, err := k.Encrypt([]byte("same plaintext"), "same id")
		if err != nil {
			t.Fatal(err)
		}
		if nonces[string(rec.Nonce)] || cts[string(rec.Ciphertext)] {
			t.Fatal("nonce or ciphertext repeated")
		}
		nonces[string(rec.Nonce)] = true
		cts[string(rec.Ciphertext)] = true
	}
}

func TestParseRecord(t *testing.T) {
	t.Parallel()
	nonce := base64.RawURLEncoding.EncodeToString(make([]byte, 12))
	ct := base64.RawURLEncoding.EncodeToString(make([]byte, 16))
	tests := []struct {
		name    string
		in      string
		wantErr error
	}{
		{"valid", "v1." + nonce + "." + ct, nil},
		{"max version", "v4294967295." + nonce + "." + ct, nil},
		{"empty", "", vault.ErrMalformedRecord},
		{"no prefix", "1." + nonce + "." + ct, vault.ErrMalformedRecord},
		{"upper-case prefix", "V1." + nonce + "." + ct, vault.ErrMalformedRecord},
		{"version zero", "v0." + nonce + "." + ct, vault.ErrMalformedRecord},
		{"leading zero", "v01." + nonce + "." + ct, vault.ErrMalformedRecord},
		{"signed version", "v+1." + nonce + "." + ct, vault.ErrMalformedRecord},
		{"version overflow", "v4294967296." + nonce + "." + ct, vault.ErrMalformedRecord},
		{"two parts", "v1." + nonce, vault.ErrMalformedRecord},
		{"four parts", "v1." + nonce + "." + ct + ".x", vault.ErrMalformedRecord},
		{"padded base64", "v1." + nonce + "." + ct + "==", vault.ErrMalformedRecord},
		{"standard alphabet", "v1." + nonce + "." + strings.Repeat("+", 22), vault.ErrMalformedRecord},
		{"non-canonical trailing bits", "v1." + nonce + "." + ct[:len(ct)-1] + "B", vault.ErrMalformedRecord},
		{"line break", "v1." + nonce + "." + ct[:4] + "\r\n" + ct[4:], vault.ErrMalformedRecord},
		{"short nonce", "v1.AAAA." + ct, vault.ErrMalformedRecord},
		{"short ciphertext", "v1." + nonce + ".AAAA", vault.ErrMalformedRecord},
		{"huge", "v1." + nonce + "." + strings.Repeat("A", 30<<20), vault.ErrMalformedRecord},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec, err := vault.ParseRecord(tt.in)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("ParseRecord() error = %v, want %v", err, tt.wantErr)
			}
			if err == nil && rec.Encode() != tt.in {
				t.Errorf("Encode(ParseRecord(s)) = %q, want s", rec.Encode())
			}
			if err != nil && len(err.Error()) > 200 {
				t.Errorf("error echoes the input: %d bytes", len(err.Error()))
			}
		})
	}
}

func TestParseKeys(t *testing.T) {
	t.Parallel()
	std := base64.StdEncoding.EncodeToString(testKey(1))
	url := base64.RawURLEncoding.EncodeToString(testKey(0xfb))
	short := base64.StdEncoding.EncodeToString(testKey(2)[:16])
	tests := []struct {
		name        string
		value       string
		wantErr     error
		wantCurrent uint32
	}{
		{"one key", "1:" + std, nil, 1},
		{"two keys, any order, spaces", " 5:" + url + " , 2:" + std + ",", nil, 5},
		{"empty", "", vault.ErrInvalidKeys, 0},
		{"only commas", ",,", vault.ErrInvalidKeys, 0},
		{"no version", std, vault.ErrInvalidKeys, 0},
		{"version zero", "0:" + std, vault.ErrInvalidKeys, 0},
		{"leading zero", "01:" + std, vault.ErrInvalidKeys, 0},
		{"duplicate version", "1:" + std + ",1:" + url, vault.ErrInvalidKeys, 0},
		{"128-bit key", "1:" + short, vault.ErrInvalidKeys, 0},
		{"not base64", "1:" + strings.Repeat("*", 44), vault.ErrInvalidKeys, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, err := vault.ParseKeys(tt.value)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("ParseKeys() error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				for _, secret := range []string{std, url, short} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error leaks a key: %v", err)
					}
				}
				return
			}
			if k.Current() != tt.wantCurrent {
				t.Errorf("Current() = %d, want %d", k.Current(), tt.wantCurrent)
			}
			if _, err := k.Rotate(); !errors.Is(err, vault.ErrReadOnly) {
				t.Errorf("Rotate() on an environment ring = %v, want ErrReadOnly", err)
			}
		})
	}
	// The same key from the environment and from New decrypts the same records.
	fromEnv, err := vault.ParseKeys("1:" + std)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := newRing(t, 1).Encrypt([]byte("x"), "id")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fromEnv.Decrypt(rec, "id"); err != nil {
		t.Errorf("key from the environment does not decrypt: %v", err)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		keys map[uint32][]byte
	}{
		{"no keys", nil},
		{"version zero", map[uint32][]byte{0: testKey(1)}},
		{"short key", map[uint32][]byte{1: testKey(1)[:31]}},
		{"long key", map[uint32][]byte{1: append(testKey(1), 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := vault.New(tt.keys); !errors.Is(err, vault.ErrInvalidKeys) {
				t.Errorf("New() error = %v, want ErrInvalidKeys", err)
			}
		})
	}
}

func TestRotationAndReencrypt(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "keys")
	k, err := vault.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if k.Current() != 1 {
		t.Fatalf("first key version = %d, want 1", k.Current())
	}
	assertMode(t, dir, 0o700)
	assertMode(t, filepath.Join(dir, "1.key"), 0o600)
	// A second process started before the rotation.
	stale, err := vault.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	old, err := k.Encrypt([]byte("old"), "r1")
	if err != nil {
		t.Fatal(err)
	}
	ver, err := k.Rotate()
	if err != nil || ver != 2 || k.Current() != 2 {
		t.Fatalf("Rotate() = %d, %v; Current %d; want 2", ver, err, k.Current())
	}
	assertMode(t, filepath.Join(dir, "2.key"), 0o600)
	if got, err := k.Decrypt(old, "r1"); err != nil || string(got) != "old" {
		t.Fatalf("old record after rotation: %q, %v", got, err)
	}
	moved, changed, err := k.Reencrypt(old, "r1")
	if err != nil || !changed || moved.Version != 2 {
		t.Fatalf("Reencrypt(old) = v%d, %v, %v; want v2, true", moved.Version, changed, err)
	}
	if bytes.Equal(moved.Nonce, old.Nonce) {
		t.Error("re-encryption reused the nonce")
	}
	same, changed, err := k.Reencrypt(moved, "r1")
	if err != nil || changed || same.Encode() != moved.Encode() {
		t.Errorf("Reencrypt(current) = changed %v, %v; want the record unchanged", changed, err)
	}
	if _, _, err := k.Reencrypt(moved, "r2"); !errors.Is(err, vault.ErrDecrypt) {
		t.Errorf("Reencrypt with the wrong id = %v, want ErrDecrypt", err)
	}
	// The stale process finds version 2 when it meets it.
	if got, err := stale.Decrypt(moved, "r1"); err != nil || string(got) != "old" {
		t.Errorf("stale ring on a newer record: %q, %v", got, err)
	}
	if stale.Current() != 2 {
		t.Errorf("stale ring Current() = %d after reload, want 2", stale.Current())
	}
	// A restart reads both versions back.
	restarted, err := vault.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := restarted.Versions(); len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Errorf("Versions() after restart = %v, want [1 2]", got)
	}
	if _, err := restarted.Decrypt(old, "r1"); err != nil {
		t.Errorf("restarted ring on the old record: %v", err)
	}
	missing := moved
	missing.Version = 9
	if _, err := restarted.Decrypt(missing, "r1"); !errors.Is(err, vault.ErrUnknownKeyVersion) {
		t.Errorf("version 9 = %v, want ErrUnknownKeyVersion", err)
	}
}

func TestConcurrentLoadAndRotate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "keys")
	const procs = 6
	rings := make([]*vault.Keyring, procs)
	var wg sync.WaitGroup
	for i := range procs {
		wg.Go(func() {
			k, err := vault.LoadDir(dir)
			if err != nil {
				t.Error(err)
				return
			}
			rings[i] = k
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for i, k := range rings {
		if k.Current() != 1 {
			t.Fatalf("ring %d starts at version %d, want 1 (one shared first key)", i, k.Current())
		}
	}
	// Every process rotates and seals at once; no key may be lost.
	recs := make([]vault.Record, procs)
	for i, k := range rings {
		wg.Go(func() {
			if _, err := k.Rotate(); err != nil {
				t.Error(err)
				return
			}
			rec, err := k.Encrypt([]byte{byte(i)}, "id")
			if err != nil {
				t.Error(err)
			}
			recs[i] = rec
		})
	}
	wg.Wait()
	final, err := vault.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(final.Versions()); got != procs+1 {
		t.Errorf("%d versions after %d rotations, want %d", got, procs, procs+1)
	}
	for i, rec := range recs {
		if got, err := final.Decrypt(rec, "id"); err != nil || !bytes.Equal(got, []byte{byte(i)}) {
			t.Errorf("record of ring %d: %v", i, err)
		}
	}
}

func TestLoadDirRefuses(t *testing.T) {
	t.Parallel()
	key := base64.StdEncoding.EncodeToString(testKey(3)) + "\n"
	tests := []struct {
		name    string
		dirMode os.FileMode
		files   map[string]string
		modes   map[string]os.FileMode
		wantErr error
	}{
		{"group-readable directory", 0o750, nil, nil, vault.ErrInsecurePermissions},
		{"world-readable key", 0o700, map[string]string{"1.key": key}, map[string]os.FileMode{"1.key": 0o644}, vault.ErrInsecurePermissions},
		{"garbage key", 0o700, map[string]string{"1.key": "not a key"}, nil, vault.ErrInvalidKeys},
		{"short key", 0o700, map[string]string{"1.key": base64.StdEncoding.EncodeToString(testKey(3)[:16])}, nil, vault.ErrInvalidKeys},
		{"oversized key file", 0o700, map[string]string{"1.key": strings.Repeat("A", 4096)}, nil, vault.ErrInvalidKeys},
		{"directory named like a key", 0o700, map[string]string{"1.key/x": key}, nil, vault.ErrInvalidKeys},
		{"other files ignored", 0o700, map[string]string{"2.key": key, "2.key~": "junk", "README": "junk", "01.key": "junk"}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "keys")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			for name, body := range tt.files {
				path := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
					t.Fatal(err)
				}
				mode := os.FileMode(0o600)
				if m, ok := tt.modes[name]; ok {
					mode = m
				}
				if err := os.WriteFile(path, []byte(body), mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, mode); err != nil { // beat the umask
					t.Fatal(err)
				}
			}
			if err := os.Chmod(dir, tt.dirMode); err != nil {
				t.Fatal(err)
			}
			k, err := vault.LoadDir(dir)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("LoadDir() error = %v, want %v", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), strings.TrimSpace(key)) {
				t.Errorf("error leaks the key: %v", err)
			}
			if err == nil && len(k.Versions()) == 0 {
				t.Error("no key loaded")
			}
		})
	}
}

func TestRemovedKeyFileIsAnError(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "keys")
	k, err := vault.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "1.key")); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Rotate(); !errors.Is(err, vault.ErrInvalidKeys) {
		t.Errorf("Rotate() after the key file vanished = %v, want ErrInvalidKeys", err)
	}
}

func TestKeyringNeverPrintsKeys(t *testing.T) {
	t.Parallel()
	key := testKey(0xa7)
	k, err := vault.New(map[uint32][]byte{4: key})
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("loaded", "keyring", k)
	outputs := []string{logged.String()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d", "%q"} {
		outputs = append(outputs, fmt.Sprintf(verb, k), fmt.Sprintf(verb, []any{k}), fmt.Sprintf(verb, struct{ K *vault.Keyring }{k}))
	}
	// AES expands the key into round keys whose first words are the key.
	leaks := []string{hex.EncodeToString(key[:8]), base64.StdEncoding.EncodeToString(key[:9]), "a7 a7", "167 167", "[167", "\\xa7"}
	for _, out := range outputs {
		for _, leak := range leaks {
			if strings.Contains(strings.ToLower(out), leak) {
				t.Errorf("output %q contains key material %q", out, leak)
			}
		}
	}
	if !strings.Contains(logged.String(), `"versions":[4]`) {
		t.Errorf("log %q does not show the versions", logged.String())
	}
}

func TestRecordInDatabaseColumn(t *testing.T) {
	t.Parallel()
	db := sqldbtest.SQLite(t)
	k := newRing(t, 1)
	ctx := t.Context()
	if _, err := db.SQL().ExecContext(ctx, `CREATE TABLE tokens (id TEXT NOT NULL PRIMARY KEY, sealed TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	rec, err := k.Encrypt([]byte("token"), "tokens/t1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().ExecContext(ctx, `INSERT INTO tokens VALUES ($1, $2)`, "t1", rec); err != nil {
		t.Fatal(err)
	}
	var got vault.Record
	if err := db.SQL().QueryRowContext(ctx, `SELECT sealed FROM tokens WHERE id = $1`, "t1").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if pt, err := k.Decrypt(got, "tokens/t1"); err != nil || string(pt) != "token" {
		t.Errorf("Decrypt(scanned) = %q, %v", pt, err)
	}
	if err := got.Scan(42); !errors.Is(err, vault.ErrMalformedRecord) {
		t.Errorf("Scan(int) = %v, want ErrMalformedRecord", err)
	}
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != want {
		t.Errorf("%s has mode %v, want %v", path, got, want)
	}
}
