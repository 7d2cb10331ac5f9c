// Command tokenrelayd runs the whole tokenrelay checkout in one process: the
// gateway at -addr, every service behind it, SQLite files and keys under
// -data, demo data seeded on first start. It answers /livez while it runs
// and /readyz (and /healthz) once its databases answer and the demo data is
// seeded: wait for /readyz, not for the port. -read-body-timeout
// (TOKENRELAY_READ_BODY_TIMEOUT, default 30s) bounds how long a client may
// take to send a request body, -idle-timeout (TOKENRELAY_IDLE_TIMEOUT,
// default 2m) how long a keep-alive connection may stay idle.
// -issuers-file (TOKENRELAY_GATEWAY_ISSUERS_FILE) makes the gateway trust
// foreign OpenID Connect providers besides the identity service, each with
// its verification profile, as gatewayd's flag of the same name does (see
// services/gateway/README.md); /readyz then waits for their discovery too.
//
// Retention (each flag 0 keeps what it governs; else at least 1m):
//
//	-retention               how long every service keeps a finished record after its last change: a token's
//	                         confirmation and exercise, an unplaced checkout, an ended session
//	                         (TOKENRELAY_RETENTION, default 720h, 30 days)
//	-sealed-token-retention  how long an order COMPLETED or FAILED keeps its sealed confirmation tokens
//	                         (TOKENRELAY_SEALED_TOKEN_RETENTION, default 24h)
//	-order-retention         how long an order COMPLETED or FAILED is kept (TOKENRELAY_ORDER_RETENTION,
//	                         default 0: every order is kept)
//	-purge-every             how often the purge runs (TOKENRELAY_PURGE_EVERY, default 10m)
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/process"
	"github.com/tokenrelay/tokenrelay/services/embedded"
	"github.com/tokenrelay/tokenrelay/services/embedded/webui"
	"github.com/tokenrelay/tokenrelay/services/gateway"
	"github.com/tokenrelay/tokenrelay/services/identity"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing"
)

func main() {
	cfg := embedded.Config{Seed: true}
	flag.StringVar(&cfg.Addr, "addr", envOr("TOKENRELAY_ADDR", "127.0.0.1:8080"), "public listen address (env TOKENRELAY_ADDR)")
	flag.StringVar(&cfg.DataDir, "data", envOr("TOKENRELAY_DATA", ".data"), "data directory: SQLite files, key rings, vault keys (env TOKENRELAY_DATA)")
	noSeed := flag.Bool("no-seed", false, "do not create the demo users and data")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file (for bench/load)")
	webDir := flag.String("web", envOr("TOKENRELAY_WEB", defaultWebDir()), "serve the built web checkout in `DIR` at / (npm run build -w web); default web/dist when built, empty for none (env TOKENRELAY_WEB)")
	flag.DurationVar(&cfg.AccessTokenLifetime, "access-token-lifetime", 0, "lifetime of access tokens, at most and by default 15m (tests shorten it)")
	flag.DurationVar(&cfg.ReadBodyTimeout, "read-body-timeout", envDuration("TOKENRELAY_READ_BODY_TIMEOUT"),
		"how long a client may take to send a request body; streams are not cut (env TOKENRELAY_READ_BODY_TIMEOUT; default 30s, negative: no bound)")
	flag.DurationVar(&cfg.IdleTimeout, "idle-timeout", envDuration("TOKENRELAY_IDLE_TIMEOUT"),
		"close keep-alive connections idle that long (env TOKENRELAY_IDLE_TIMEOUT; default 2m, negative: never)")
	retention := process.Retention{}
	retention.Flags(flag.CommandLine)
	sealedRetention := flag.Duration("sealed-token-retention", process.EnvDuration("TOKENRELAY_SEALED_TOKEN_RETENTION", orderprocessing.DefaultSealedTokenRetention),
		"how long an order COMPLETED or FAILED keeps its sealed confirmation tokens; 0 keeps them (env TOKENRELAY_SEALED_TOKEN_RETENTION)")
	orderRetention := flag.Duration("order-retention", process.EnvDuration("TOKENRELAY_ORDER_RETENTION", 0),
		"how long an order COMPLETED or FAILED is kept, with its steps and checkout; 0 keeps every order (env TOKENRELAY_ORDER_RETENTION)")
	issuersFile := flag.String("issuers-file", os.Getenv("TOKENRELAY_GATEWAY_ISSUERS_FILE"),
		"JSON `file` of foreign OpenID Connect providers and their verification profiles (env TOKENRELAY_GATEWAY_ISSUERS_FILE)")
	flag.Parse()
	cfg.Seed = !*noSeed
	// Flags say 0 for "keep"; embedded.Config says it with a negative
	// duration (its 0 is the default).
	cfg.Retention, cfg.SealedTokenRetention = keepAsNegative(retention.Keep), keepAsNegative(*sealedRetention)
	cfg.OrderRetention, cfg.PurgeEvery = *orderRetention, retention.Every
	cfg.Logger = slog.New(authn.NewLogHandler(slog.NewJSONHandler(os.Stderr, nil)))
	if *issuersFile != "" {
		data, err := os.ReadFile(*issuersFile)
		if err == nil {
			cfg.Issuers, err = gateway.ParseIssuers(data)
		}
		if err != nil {
			cfg.Logger.Error("-issuers-file", "file", *issuersFile, "err", err)
			os.Exit(1)
		}
	}
	if *webDir != "" {
		web, err := webui.Handler(os.DirFS(*webDir))
		if err != nil {
			cfg.Logger.Error("cannot serve the web checkout", "dir", *webDir, "err", err)
			os.Exit(1)
		}
		cfg.Web = web
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			cfg.Logger.Error("cpu profile", "err", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(cfg); err != nil {
		pprof.StopCPUProfile()
		cfg.Logger.Error("tokenrelayd stopped", "err", err)
		os.Exit(1)
	}
}

func run(cfg embedded.Config) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sys, err := embedded.Start(ctx, cfg)
	if err != nil {
		return err
	}
	cfg.Logger.Info(fmt.Sprintf("tokenrelay is up at %s — log in as shopper / %s (or admin / %s); data in %s",
		sys.URL(), identity.DemoShopperPassword, identity.DemoAdminPassword, cfg.DataDir))
	select {
	case <-ctx.Done():
		cfg.Logger.Info("shutting down")
	case <-sys.Err(): // a listener or task failed; Close returns it
	}
	return sys.Close()
}

// defaultWebDir is web/dist when it has been built (tokenrelayd run from the
// repository's root, as `make run` does), else none.
func defaultWebDir() string {
	if st, err := os.Stat(filepath.Join("web", "dist", webui.IndexFile)); err == nil && !st.IsDir() {
		return filepath.Join("web", "dist")
	}
	return ""
}

// envDuration is the duration in the environment variable key, or 0 (the
// server's default) when it is unset or unparsable.
func envDuration(key string) time.Duration {
	d, _ := time.ParseDuration(os.Getenv(key))
	return d
}

// keepAsNegative maps a retention flag's 0 (keep) to a negative duration.
func keepAsNegative(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
