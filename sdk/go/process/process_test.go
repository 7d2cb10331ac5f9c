package process_test

import (
	"flag"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/process"
	"github.com/tokenrelay/tokenrelay/sdk/go/server"
)

// TestFlagsDefaultToEnvironment: each flag's default is its variable, and a
// flag given on the command line wins.
func TestFlagsDefaultToEnvironment(t *testing.T) {
	t.Setenv(process.EnvAddr, "127.0.0.1:9999")
	t.Setenv(process.EnvLogLevel, "DEBUG")
	t.Setenv(process.EnvDBMaxConns, "not a number")
	t.Setenv(process.EnvShutdownTimeout, "3s")
	p := process.Process{Name: "coupons"}
	fs := flag.NewFlagSet("couponsd", flag.ContinueOnError)
	p.Flags(fs, "127.0.0.1:8081")
	p.StoreFlags(fs, "coupons")
	if err := fs.Parse([]string{"-schema", "shop"}); err != nil {
		t.Fatal(err)
	}
	want := process.Process{
		Name: "coupons", Addr: "127.0.0.1:9999", DataDir: filepath.Join(".data", "coupons"), Schema: "shop",
		MaxConns: 10, LogLevel: slog.LevelDebug, ShutdownTimeout: 3 * time.Second,
	}
	if p != want {
		t.Fatalf("Process = %+v, want %+v", p, want)
	}
	// The unparsable variable gave the default above, and stops the
	// process at Main.
	if err := process.CheckEnv(); err == nil || !strings.Contains(err.Error(), process.EnvDBMaxConns+`="not a number": want an integer`) {
		t.Fatalf("CheckEnv = %v, want it to name %s", err, process.EnvDBMaxConns)
	}
}

func TestDefaults(t *testing.T) {
	for _, v := range []string{process.EnvAddr, process.EnvLogLevel, process.EnvShutdownTimeout} {
		t.Setenv(v, "") // empty is unset
	}
	p := process.Process{Name: "identity"}
	p.Flags(flag.NewFlagSet("identityd", flag.ContinueOnError), "127.0.0.1:8085")
	if p.Addr != "127.0.0.1:8085" || p.LogLevel != slog.LevelInfo || p.ShutdownTimeout != server.DefaultShutdownTimeout {
		t.Fatalf("defaults: %+v", p)
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	var l process.List
	fs := flag.NewFlagSet("gatewayd", flag.ContinueOnError)
	fs.Var(&l, "route", "")
	if err := fs.Parse([]string{"-route", "a, b,", "-route", "c"}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(l, []string{"a", "b", "c"}) || l.String() != "a,b,c" {
		t.Fatalf("List = %q", l)
	}
}

// TestGatewayTrust: the gateway flags default to their variables, and a
// process behind the gateway refuses to start without the gateway's JWKS.
func TestGatewayTrust(t *testing.T) {
	t.Setenv("TOKENRELAY_GATEWAY_ISSUER", "")
	t.Setenv("TOKENRELAY_GATEWAY_JWKS", "")
	t.Setenv("TOKENRELAY_TRUST_DOMAIN", "shop")
	t.Setenv(process.EnvJWKSAllowInsecureHTTP, "")
	var g process.GatewayTrust
	fs := flag.NewFlagSet("identityd", flag.ContinueOnError)
	g.Flags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if want := (process.GatewayTrust{Issuer: "gateway", TrustDomain: "shop"}); g != want {
		t.Fatalf("GatewayTrust = %+v, want %+v", g, want)
	}
	if _, _, err := g.Peers(slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "-gateway-jwks") {
		t.Fatalf("Peers without a JWKS URL: err = %v, want one naming -gateway-jwks", err)
	}
}
