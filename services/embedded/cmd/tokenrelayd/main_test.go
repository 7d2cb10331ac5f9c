package main

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMain runs tokenrelayd's main instead of the tests when
// TOKENRELAYD_TEST_MAIN is set: how a test sees it start, or refuse to.
func TestMain(m *testing.M) {
	if os.Getenv("TOKENRELAYD_TEST_MAIN") != "" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestRefusesToStart (issue 20): an invalid environment stops tokenrelayd
// before it starts, naming the variable, with status 2 as for an invalid
// flag; a certificate without its key stops it naming the missing flag.
// Neither leaves anything in the data directory.
func TestRefusesToStart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		env    []string
		status int
		want   []string
	}{
		{"invalid duration", []string{"TOKENRELAY_IDLE_TIMEOUT=banana"}, 2,
			[]string{"tokenrelayd not started", `TOKENRELAY_IDLE_TIMEOUT=\"banana\"`, "want a duration"}},
		{"invalid retention", []string{"TOKENRELAY_SEALED_TOKEN_RETENTION=1 day"}, 2,
			[]string{"tokenrelayd not started", "TOKENRELAY_SEALED_TOKEN_RETENTION"}},
		{"unknown domain to seal", []string{"TOKENRELAY_SEAL_CONSTRAINTS=payments,orders"}, 2,
			[]string{"-seal-constraints", `unknown domain "orders"`}},
		{"certificate without key", []string{"TOKENRELAY_TLS_CERT=tls.crt"}, 1,
			[]string{"tokenrelayd stopped", "-tls-key (TOKENRELAY_TLS_KEY) is required with -tls-cert"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			data := t.TempDir()
			// Only a guard, should tokenrelayd start after all.
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-addr", "127.0.0.1:0", "-data", data)
			cmd.Env = append(os.Environ(), append(tc.env, "TOKENRELAYD_TEST_MAIN=1")...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if exit, ok := errors.AsType[*exec.ExitError](err); !ok || exit.ExitCode() != tc.status {
				t.Fatalf("exit: %v, want status %d\n%s", err, tc.status, stderr.String())
			}
			for _, want := range tc.want {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %s:\n%s", want, stderr.String())
				}
			}
			if entries, err := os.ReadDir(data); err != nil || len(entries) != 0 {
				t.Errorf("data directory: %v, %v; want it untouched", entries, err)
			}
		})
	}
}

func TestSealConstraintsList(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		list string
		want map[string]bool
	}{
		{"payments", map[string]bool{"coupons": false, "points": false, "payments": true}},
		{" coupons , points,", map[string]bool{"coupons": true, "points": true, "payments": false}},
		{"none", map[string]bool{"coupons": false, "points": false, "payments": false}},
		{"", map[string]bool{"coupons": false, "points": false, "payments": false}},
	} {
		got, err := sealConstraints(tc.list)
		if err != nil || !maps.Equal(got, tc.want) {
			t.Errorf("%q: %v, %v; want %v", tc.list, got, err, tc.want)
		}
	}
	for _, bad := range []string{"Payments", "none,payments", "order-processing"} {
		if _, err := sealConstraints(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
