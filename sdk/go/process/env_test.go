package process_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/process"
)

// TestCheckEnv: every typed variable that holds a value its flag cannot
// take is named by CheckEnv, with the value and what was expected; valid,
// empty and unset ones are not.
func TestCheckEnv(t *testing.T) {
	for _, tc := range []struct {
		key, value string
		read       func(string)
		want       string // "" when valid
	}{
		{process.EnvShutdownTimeout, "banana", func(k string) { process.EnvDuration(k, time.Second) }, `TOKENRELAY_SHUTDOWN_TIMEOUT="banana": want a duration`},
		{process.EnvShutdownTimeout, "10", func(k string) { process.EnvDuration(k, time.Second) }, `TOKENRELAY_SHUTDOWN_TIMEOUT="10": want a duration`},
		{process.EnvShutdownTimeout, "15s", func(k string) { process.EnvDuration(k, time.Second) }, ""},
		{process.EnvDBMaxConns, "ten", func(k string) { process.EnvInt(k, 10) }, `TOKENRELAY_DB_MAX_CONNS="ten": want an integer`},
		{process.EnvDBMaxConns, "-3", func(k string) { process.EnvInt(k, 10) }, ""},
		{process.EnvJWKSAllowInsecureHTTP, "yes", func(k string) { process.EnvBool(k, false) }, `TOKENRELAY_JWKS_ALLOW_INSECURE_HTTP="yes": want true or false`},
		{process.EnvJWKSAllowInsecureHTTP, "", func(k string) { process.EnvBool(k, false) }, ""},
		{process.EnvLogLevel, "LOUD", func(k string) { process.EnvLevel(k, 0) }, `TOKENRELAY_LOG_LEVEL="LOUD": want DEBUG, INFO, WARN or ERROR`},
		{process.EnvLogLevel, "warn", func(k string) { process.EnvLevel(k, 0) }, ""},
	} {
		t.Run(tc.key+"="+tc.value, func(t *testing.T) {
			t.Setenv(tc.key, tc.value)
			tc.read(tc.key)
			err := process.CheckEnv()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("CheckEnv = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("CheckEnv = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestInvalidEnvironmentGivesDefaultUntilMain: the flags still parse (the
// default stands in), and CheckEnv names each bad variable, in order.
func TestInvalidEnvironmentGivesDefaultUntilMain(t *testing.T) {
	t.Setenv(process.EnvShutdownTimeout, "banana")
	t.Setenv(process.EnvIdleTimeout, "forever")
	p := process.Process{Name: "coupons"}
	fs := flag.NewFlagSet("couponsd", flag.ContinueOnError)
	p.Flags(fs, "127.0.0.1:8081")
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if p.ShutdownTimeout != 10*time.Second {
		t.Fatalf("ShutdownTimeout = %v", p.ShutdownTimeout)
	}
	err := process.CheckEnv()
	if err == nil {
		t.Fatal("CheckEnv = nil")
	}
	msg := err.Error()
	i, j := strings.Index(msg, "TOKENRELAY_IDLE_TIMEOUT"), strings.Index(msg, "TOKENRELAY_SHUTDOWN_TIMEOUT")
	if i < 0 || j < 0 || i > j {
		t.Fatalf("CheckEnv = %q, want both variables, sorted", msg)
	}
}

// TestMainRefusesInvalidEnvironment (issue 20): a binary whose environment
// holds TOKENRELAY_SHUTDOWN_TIMEOUT=banana does not start: Main logs the
// variable and exits with status 2 before running anything.
func TestMainRefusesInvalidEnvironment(t *testing.T) {
	if os.Getenv("PROCESS_TEST_MAIN") == "1" {
		p := process.Process{Name: "coupons"}
		p.Flags(flag.NewFlagSet("couponsd", flag.ContinueOnError), "127.0.0.1:0")
		p.Main("couponsd", func(context.Context) error { return nil })
		os.Exit(0) // Main ran: the test above sees status 0
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestMainRefusesInvalidEnvironment$")
	cmd.Env = append(os.Environ(), "PROCESS_TEST_MAIN=1", process.EnvShutdownTimeout+"=banana")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("exit: %v, want status 2\n%s", err, stderr.String())
	}
	for _, want := range []string{"couponsd not started", `TOKENRELAY_SHUTDOWN_TIMEOUT=\"banana\"`, "want a duration"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %s:\n%s", want, stderr.String())
		}
	}
}
