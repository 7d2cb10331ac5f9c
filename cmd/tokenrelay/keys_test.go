package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
)

type ringJSON struct {
	Dir  string `json:"dir"`
	Keys []struct {
		KID  string `json:"kid"`
		Alg  string `json:"alg"`
		Role string `json:"role"`
	} `json:"keys"`
}

func listKeys(t *testing.T, args ...string) ringJSON {
	t.Helper()
	out, errOut, code := runCmd(t, "", append([]string{"keys", "list", "--json"}, args...)...)
	if code != exitOK {
		t.Fatalf("keys list: exit %d: %s", code, errOut)
	}
	var got ringJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("keys list --json: %v\n%s", err, out)
	}
	return got
}

func TestKeysRotateAndList(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	dir := filepath.Join(data, "keys", "coupons")
	ring, err := keys.OpenRing(dir)
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := ring.SigningKey()
	before := listKeys(t, "--data", data, "--issuer", "coupons")
	if len(before.Keys) != 2 || before.Keys[0].Role != "current" || before.Keys[0].KID != cur.KID() ||
		before.Keys[0].Alg != keys.EdDSA || before.Keys[1].Role != "next" {
		t.Fatalf("before rotation: %+v", before)
	}

	out, errOut, code := runAt(t, time.Now().Add(keys.DefaultPublishWindow), "keys", "rotate", "--dir", dir)
	if code != exitOK {
		t.Fatalf("keys rotate: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"old current key  " + before.Keys[0].KID, "new current key  " + before.Keys[1].KID, "Restart"} {
		if !strings.Contains(out, want) {
			t.Fatalf("rotate output lacks %q:\n%s", want, out)
		}
	}

	after := listKeys(t, "--dir", dir)
	roles := map[string]string{}
	for _, k := range after.Keys {
		roles[k.KID] = k.Role
	}
	if len(after.Keys) != 3 || roles[before.Keys[0].KID] != "retired" || roles[before.Keys[1].KID] != "current" ||
		after.Keys[1].Role != "next" || roles[after.Keys[1].KID] != "next" {
		t.Fatalf("after rotation: %+v", after)
	}
	// The ring on disk is what the services load.
	reopened, err := keys.OpenRing(dir)
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := reopened.SigningKey(); k.KID() != before.Keys[1].KID {
		t.Fatalf("reopened ring signs with %s", k.KID())
	}

	// The text listing names every key and role, and no private material.
	out, _, code = runCmd(t, "", "keys", "list", "--dir", dir)
	if code != exitOK || !strings.Contains(out, "retired") || !strings.Contains(out, after.Keys[0].KID) ||
		strings.Contains(out, "pkcs8") || strings.Contains(out, `"d"`) {
		t.Fatalf("keys list:\n%s", out)
	}
}

// runAt runs the command with the clock at now.
func runAt(t *testing.T, now time.Time, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	e := &env{ctx: t.Context(), stdin: strings.NewReader(""), stdout: &out, stderr: &errOut,
		now: func() time.Time { return now }, getenv: func(string) string { return "" }}
	code = runEnv(e, args)
	return out.String(), errOut.String(), code
}

// TestKeysRotateWindow (issue 20): keys rotate refuses, changing nothing,
// while the next key was published less than an hour ago (a second
// rotation in the same second above all), names the key and when it may
// rotate; it rotates once the hour has passed, or with --force.
func TestKeysRotateWindow(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "coupons")
	created := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	ring, err := keys.OpenRing(dir, keys.WithRingClock(func() time.Time { return created }))
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := ring.SigningKey()
	next := ring.PublicKeys()[1].KID()
	signing := func() string {
		t.Helper()
		r, err := keys.OpenRing(dir)
		if err != nil {
			t.Fatal(err)
		}
		k, _ := r.SigningKey()
		return k.KID()
	}
	out, errOut, code := runAt(t, created.Add(59*time.Minute), "keys", "rotate", "--dir", dir)
	if code != exitFail || !strings.Contains(errOut, next) || !strings.Contains(errOut, "59m0s ago") ||
		!strings.Contains(errOut, "2026-11-22T11:00:00Z") || !strings.Contains(errOut, "--force") {
		t.Fatalf("rotate inside the window: exit %d\n%s%s", code, out, errOut)
	}
	if signing() != cur.KID() {
		t.Fatal("a refused rotation changed the ring")
	}
	at := created.Add(time.Hour)
	if _, errOut, code := runAt(t, at, "keys", "rotate", "--dir", dir); code != exitOK {
		t.Fatalf("rotate after the window: exit %d: %s", code, errOut)
	}
	if signing() != next {
		t.Fatal("the next key was not promoted")
	}
	// Twice in one second: the key the first rotation made is brand new.
	if _, errOut, code := runAt(t, at.Add(time.Second), "keys", "rotate", "--dir", dir); code != exitFail || !strings.Contains(errOut, "published too recently") {
		t.Fatalf("second rotation in the same second: exit %d: %s", code, errOut)
	}
	if signing() != next {
		t.Fatal("the refused second rotation changed the ring")
	}
	if _, errOut, code := runAt(t, at.Add(time.Second), "keys", "rotate", "--dir", dir, "--force"); code != exitOK {
		t.Fatalf("rotate --force: exit %d: %s", code, errOut)
	}
	if signing() == next {
		t.Fatal("--force did not rotate")
	}
}

func TestKeysErrors(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	if _, err := keys.OpenRing(filepath.Join(data, "keys", "points")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"keys", "list"}, exitUsage, "give --dir DIR, or --issuer NAME"},
		{[]string{"keys", "list", "--dir", "x", "--issuer", "y"}, exitUsage, "not both"},
		{[]string{"keys", "rotate", "--data", data, "--issuer", "../x"}, exitUsage, "plain name"},
		{[]string{"keys", "rotate", "--data", data, "--issuer", "coupons"}, exitFail, "issuers under " + filepath.Join(data, "keys") + ": [points]"},
		{[]string{"keys", "list", "--bogus"}, exitUsage, "flag provided but not defined"},
		{[]string{"keys", "list", "--dir", data, "extra"}, exitUsage, "unexpected argument"},
	}
	for _, tt := range tests {
		out, errOut, code := runCmd(t, "", tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d, want %d with %q:\n%s%s", tt.args, code, tt.code, tt.want, out, errOut)
		}
	}
	// A missing ring is reported, never created.
	if _, err := os.Stat(filepath.Join(data, "keys", "coupons")); !os.IsNotExist(err) {
		t.Fatalf("keys rotate created a ring: %v", err)
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		code int
		want string
	}{
		{nil, exitUsage, "Commands:"},
		{[]string{"help"}, exitOK, "vault rotate"},
		{[]string{"--help"}, exitOK, "token inspect"},
		{[]string{"help", "vault", "rotate"}, exitOK, "-postgres-url"},
		{[]string{"help", "keys"}, exitOK, "tokenrelay keys rotate"},
		{[]string{"help", "nope"}, exitUsage, "unknown command"},
		{[]string{"token"}, exitUsage, "missing or unknown subcommand"},
		{[]string{"token", "sign"}, exitUsage, "missing or unknown subcommand"},
		{[]string{"frobnicate"}, exitUsage, "unknown command"},
		{[]string{"vault", "status", "-h"}, exitOK, "Usage: tokenrelay vault status"},
	}
	for _, tt := range tests {
		out, errOut, code := runCmd(t, "", tt.args...)
		if code != tt.code || !strings.Contains(out+errOut, tt.want) {
			t.Errorf("%v: exit %d, want %d with %q:\n%s%s", tt.args, code, tt.code, tt.want, out, errOut)
		}
	}
}
