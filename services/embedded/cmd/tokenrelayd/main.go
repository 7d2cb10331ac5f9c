// Command tokenrelayd runs the whole tokenrelay checkout in one process: the
// gateway at -addr, every service behind it, SQLite files and keys under
// -data, demo data seeded on first start. It answers /livez while it runs
// and /readyz (and /healthz) once its databases answer and the demo data is
// seeded: wait for /readyz, not for the port. With -tls-cert and -tls-key
// it serves HTTPS (HTTP/2 and HTTP/1.1 by ALPN, TLS 1.2 at least) and
// reloads the pair on SIGHUP or when the files change; else HTTP/1.1 and
// h2c. An invalid value in one of the variables below stops it before it
// starts (status 2), naming the variable; SIGINT or SIGTERM stops it
// gracefully.
//
// Flags, each defaulting to its environment variable when set:
//
//	-addr                    public listen address (TOKENRELAY_ADDR, default 127.0.0.1:8080)
//	-data                    data directory: SQLite files, key rings, vault keys (TOKENRELAY_DATA, default .data)
//	-web                     serve the built web checkout in DIR at / (TOKENRELAY_WEB, default web/dist when
//	                         built, empty for none)
//	-tls-cert                certificate chain (PEM, leaf first) to serve HTTPS with, reloaded on SIGHUP or
//	                         change (TOKENRELAY_TLS_CERT, default none: HTTP/1.1 and h2c; requires -tls-key)
//	-tls-key                 its private key (PEM) (TOKENRELAY_TLS_KEY; requires -tls-cert)
//	-read-body-timeout       how long a client may take to send a request body (TOKENRELAY_READ_BODY_TIMEOUT,
//	                         default 30s; negative: no bound)
//	-idle-timeout            how long a keep-alive connection may stay idle (TOKENRELAY_IDLE_TIMEOUT,
//	                         default 2m; negative: never)
//	-no-seed                 do not create the demo users and data
//	-access-token-lifetime   lifetime of access tokens, at most and by default 15m (tests shorten it)
//	-cpuprofile              write a CPU profile of the whole run to this file (for bench/load)
//	-issuers-file            JSON file of foreign OpenID Connect providers the gateway trusts besides the
//	                         identity service, each with its verification profile, as gatewayd's flag of the
//	                         same name (TOKENRELAY_GATEWAY_ISSUERS_FILE; see services/gateway/README.md);
//	                         /readyz then waits for their discovery too
//	-watch-per-user          WatchOrder streams one user may hold open, beyond which resource_exhausted
//	                         (TOKENRELAY_WATCH_PER_USER, default 8; negative: no cap)
//	-watch-total             WatchOrder streams of all users (TOKENRELAY_WATCH_TOTAL, default 1024;
//	                         negative: no cap)
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
//
// Sealed constraints (package sealed):
//
//	-seal-constraints        the domains, comma-separated, whose confirmation tokens carry their constraints
//	                         sealed for their issuer alone; "none" for none (TOKENRELAY_SEAL_CONSTRAINTS,
//	                         default payments)
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/process"
	"github.com/tokenrelay/tokenrelay/services/coupons"
	"github.com/tokenrelay/tokenrelay/services/embedded"
	"github.com/tokenrelay/tokenrelay/services/embedded/webui"
	"github.com/tokenrelay/tokenrelay/services/gateway"
	"github.com/tokenrelay/tokenrelay/services/identity"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing"
	"github.com/tokenrelay/tokenrelay/services/payments"
	"github.com/tokenrelay/tokenrelay/services/points"
)

// options are tokenrelayd's flags that embedded.Config does not hold.
type options struct {
	webDir, cpuProfile, issuersFile string
	tls                             process.TLSConfig
}

func main() {
	cfg := embedded.Config{Seed: true}
	var opt options
	flag.StringVar(&cfg.Addr, "addr", process.Env(process.EnvAddr, "127.0.0.1:8080"), "public listen address (env "+process.EnvAddr+")")
	flag.StringVar(&cfg.DataDir, "data", process.Env(process.EnvData, ".data"), "data directory: SQLite files, key rings, vault keys (env "+process.EnvData+")")
	noSeed := flag.Bool("no-seed", false, "do not create the demo users and data")
	flag.StringVar(&opt.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file (for bench/load)")
	flag.StringVar(&opt.webDir, "web", process.Env("TOKENRELAY_WEB", defaultWebDir()), "serve the built web checkout in `DIR` at / (npm run build -w web); default web/dist when built, empty for none (env TOKENRELAY_WEB)")
	flag.DurationVar(&cfg.AccessTokenLifetime, "access-token-lifetime", 0, "lifetime of access tokens, at most and by default 15m (tests shorten it)")
	// Their zero default stands for the server's, as in every daemon.
	flag.DurationVar(&cfg.ReadBodyTimeout, "read-body-timeout", process.EnvDuration(process.EnvReadBodyTimeout, 0),
		"how long a client may take to send a request body; streams are not cut (env "+process.EnvReadBodyTimeout+"; default 30s, negative: no bound)")
	flag.DurationVar(&cfg.IdleTimeout, "idle-timeout", process.EnvDuration(process.EnvIdleTimeout, 0),
		"close keep-alive connections idle that long (env "+process.EnvIdleTimeout+"; default 2m, negative: never)")
	opt.tls.Flags(flag.CommandLine)
	flag.IntVar(&cfg.WatchPerUser, "watch-per-user", process.EnvInt("TOKENRELAY_WATCH_PER_USER", orderprocessing.DefaultWatchPerUser),
		"WatchOrder streams one user may hold open, beyond which resource_exhausted; negative: no cap (env TOKENRELAY_WATCH_PER_USER)")
	flag.IntVar(&cfg.WatchTotal, "watch-total", process.EnvInt("TOKENRELAY_WATCH_TOTAL", orderprocessing.DefaultWatchTotal),
		"WatchOrder streams of all users, beyond which resource_exhausted; negative: no cap (env TOKENRELAY_WATCH_TOTAL)")
	retention := process.Retention{}
	retention.Flags(flag.CommandLine)
	sealedRetention := flag.Duration("sealed-token-retention", process.EnvDuration("TOKENRELAY_SEALED_TOKEN_RETENTION", orderprocessing.DefaultSealedTokenRetention),
		"how long an order COMPLETED or FAILED keeps its sealed confirmation tokens; 0 keeps them (env TOKENRELAY_SEALED_TOKEN_RETENTION)")
	orderRetention := flag.Duration("order-retention", process.EnvDuration("TOKENRELAY_ORDER_RETENTION", 0),
		"how long an order COMPLETED or FAILED is kept, with its steps and checkout; 0 keeps every order (env TOKENRELAY_ORDER_RETENTION)")
	flag.StringVar(&opt.issuersFile, "issuers-file", process.Env("TOKENRELAY_GATEWAY_ISSUERS_FILE", ""),
		"JSON `file` of foreign OpenID Connect providers and their verification profiles (env TOKENRELAY_GATEWAY_ISSUERS_FILE)")
	sealList := flag.String("seal-constraints", process.Env("TOKENRELAY_SEAL_CONSTRAINTS", "payments"),
		"`domains`, comma-separated, that seal their tokens' constraints for themselves: coupons, points, payments, or none (env TOKENRELAY_SEAL_CONSTRAINTS)")
	flag.Parse()
	cfg.Seed = !*noSeed
	seal, err := sealConstraints(*sealList)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tokenrelayd: -seal-constraints:", err)
		os.Exit(2)
	}
	cfg.SealConstraints = seal
	// Flags say 0 for "keep"; embedded.Config says it with a negative
	// duration (its 0 is the default).
	cfg.Retention, cfg.SealedTokenRetention = keepAsNegative(retention.Keep), keepAsNegative(*sealedRetention)
	cfg.OrderRetention, cfg.PurgeEvery = *orderRetention, retention.Every
	cfg.Logger = slog.New(authn.NewLogHandler(slog.NewJSONHandler(os.Stderr, nil)))
	// Main refuses an invalid environment (status 2), runs until SIGINT or
	// SIGTERM, and logs a failure (status 1).
	process.Process{Name: "tokenrelayd"}.Main("tokenrelayd", func(ctx context.Context) error { return run(ctx, cfg, opt) })
}

// sealConstraints reads -seal-constraints: every domain named seals, every
// other does not.
func sealConstraints(list string) (map[string]bool, error) {
	seal := map[string]bool{coupons.Name: false, points.Name: false, payments.Name: false}
	if strings.TrimSpace(list) == "none" {
		return seal, nil
	}
	for _, d := range strings.Split(list, ",") {
		d = strings.TrimSpace(d)
		if d == "" {
			continue
		}
		if _, ok := seal[d]; !ok {
			return nil, fmt.Errorf("unknown domain %q (want coupons, points, payments or none)", d)
		}
		seal[d] = true
	}
	return seal, nil
}

func run(ctx context.Context, cfg embedded.Config, opt options) error {
	cert, err := opt.tls.Reloader(cfg.Logger)
	if err != nil {
		return err
	}
	if opt.issuersFile != "" {
		data, err := os.ReadFile(opt.issuersFile)
		if err == nil {
			cfg.Issuers, err = gateway.ParseIssuers(data)
		}
		if err != nil {
			return fmt.Errorf("-issuers-file %s: %w", opt.issuersFile, err)
		}
	}
	if opt.webDir != "" {
		if cfg.Web, err = webui.Handler(os.DirFS(opt.webDir)); err != nil {
			return fmt.Errorf("cannot serve the web checkout in %s: %w", opt.webDir, err)
		}
	}
	if opt.cpuProfile != "" {
		f, err := os.Create(opt.cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if cert != nil {
		cfg.TLS = cert.TLSConfig()
		// The reloads go on until run returns.
		reloadCtx, stopReloads := context.WithCancel(ctx)
		var reloads sync.WaitGroup
		defer reloads.Wait()
		defer stopReloads()
		reloads.Go(func() { _ = cert.Run(reloadCtx) }) // returns only when stopped
	}
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

// keepAsNegative maps a retention flag's 0 (keep) to a negative duration.
func keepAsNegative(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
