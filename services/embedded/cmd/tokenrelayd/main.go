// Command tokenrelayd runs the whole tokenrelay checkout in one process: the
// gateway at -addr, every service behind it, SQLite files and keys under
// -data, demo data seeded on first start.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/services/embedded"
	"github.com/tokenrelay/tokenrelay/services/identity"
)

func main() {
	cfg := embedded.Config{Seed: true}
	flag.StringVar(&cfg.Addr, "addr", envOr("TOKENRELAY_ADDR", "127.0.0.1:8080"), "public listen address (env TOKENRELAY_ADDR)")
	flag.StringVar(&cfg.DataDir, "data", envOr("TOKENRELAY_DATA", ".data"), "data directory: SQLite files, key rings, vault keys (env TOKENRELAY_DATA)")
	noSeed := flag.Bool("no-seed", false, "do not create the demo users and data")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file (for bench/load)")
	flag.Parse()
	cfg.Seed = !*noSeed
	cfg.Logger = slog.New(authn.NewLogHandler(slog.NewJSONHandler(os.Stderr, nil)))
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
	defer sys.Close()
	cfg.Logger.Info(fmt.Sprintf("tokenrelay is up at %s — log in as shopper / %s (or admin / %s); data in %s",
		sys.URL(), identity.DemoShopperPassword, identity.DemoAdminPassword, cfg.DataDir))
	select {
	case <-ctx.Done():
		cfg.Logger.Info("shutting down")
		return nil
	case err := <-sys.Err():
		return err
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
