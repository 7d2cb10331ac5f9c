// Command scaleoutctl is the Go side of scripts/scaleout.sh:
//
//	scaleoutctl ports N                      print N free loopback ports, one a line
//	scaleoutctl ping -db URL                 exit 0 when the PostgreSQL database at URL answers
//	scaleoutctl wait -url BASE [-timeout D] [-keys N]  wait until BASE/readyz answers 200 (default 30s), then until it has loaded N peers' key sets
//	scaleoutctl drop-schemas -db URL -prefix P   drop the schemas P_* (CASCADE)
//	scaleoutctl demo -url GATEWAY -data DIR [-checkouts N]
//	    seed the demo data through the gateway (once per DIR), then run N
//	    complete checkouts (default 3) and one whose capture fails, printing
//	    each order's final status; exit 1 if any ends otherwise than expected
//	scaleoutctl seed -url GATEWAY -data DIR
//	    seed the demo data through the gateway (once per DIR) and nothing
//	    else: for a load run against the deployment (SCALEOUT_RUN in
//	    scripts/scaleout.sh, make bench-scaleout)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	orderprocessingv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/services/embedded"
	"github.com/tokenrelay/tokenrelay/services/identity"
	"github.com/tokenrelay/tokenrelay/services/scaleout"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "ports":
		err = ports(args)
	case "ping":
		err = ping(ctx, args)
	case "wait":
		err = wait(ctx, args)
	case "drop-schemas":
		err = drop(ctx, args)
	case "demo":
		err = demo(ctx, args)
	case "seed":
		err = seed(ctx, args)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scaleoutctl:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: scaleoutctl ports N | ping -db URL | wait -url BASE | drop-schemas -db URL -prefix P | demo -url BASE -data DIR [-checkouts N] | seed -url BASE -data DIR")
	os.Exit(2)
}

func ports(args []string) error {
	if len(args) != 1 {
		usage()
	}
	n, err := strconv.Atoi(args[0])
	if err != nil {
		return err
	}
	ps, err := scaleout.FreePorts(n)
	for _, p := range ps {
		fmt.Println(p)
	}
	return err
}

func ping(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("ping", flag.ExitOnError)
	db := fs.String("db", "", "PostgreSQL URL")
	_ = fs.Parse(args)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d, err := sqldb.Open(ctx, *db, sqldb.WithMaxOpenConns(1))
	if err != nil {
		return err
	}
	return d.Close()
}

func wait(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("wait", flag.ExitOnError)
	base := fs.String("url", "", "base URL")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait")
	issuers := fs.Int("keys", 0, "then wait until the process has loaded this many peers' key sets (scaleout.WaitKeysLoaded)")
	_ = fs.Parse(args)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := scaleout.WaitHealthy(ctx, *base); err != nil {
		return err
	}
	if *issuers > 0 {
		return scaleout.WaitKeysLoaded(ctx, *base, *issuers)
	}
	return nil
}

func drop(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("drop-schemas", flag.ExitOnError)
	db := fs.String("db", "", "PostgreSQL URL")
	prefix := fs.String("prefix", "", "schema prefix")
	_ = fs.Parse(args)
	names, err := scaleout.DropSchemas(ctx, *db, *prefix)
	for _, n := range names {
		fmt.Println("dropped schema", n)
	}
	return err
}

func seed(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("seed", flag.ExitOnError)
	base := fs.String("url", "", "the gateway's base URL")
	data := fs.String("data", "", "directory for the seed marker")
	_ = fs.Parse(args)
	if err := embedded.Seed(ctx, *base, filepath.Join(*data, "seeded")); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	fmt.Println("seeded the demo data through", *base)
	return nil
}

func demo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ExitOnError)
	base := fs.String("url", "", "the gateway's base URL")
	data := fs.String("data", "", "directory for the seed marker")
	n := fs.Int("checkouts", 3, "complete checkouts to run")
	_ = fs.Parse(args)
	if err := embedded.Seed(ctx, *base, filepath.Join(*data, "seeded")); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	fmt.Println("seeded the demo data through", *base)
	s, err := scaleout.Login(ctx, *base, "shopper", identity.DemoShopperPassword)
	if err != nil {
		return err
	}
	var failed error
	check := func(what string, o *orderprocessingv1.Order, err error, want orderprocessingv1.OrderStatus) {
		if err != nil {
			failed = errors.Join(failed, fmt.Errorf("%s: %w", what, err))
			return
		}
		fmt.Printf("%-40s order %s %s\n", what, o.GetId(), o.GetStatus())
		if o.GetStatus() != want {
			failed = errors.Join(failed, fmt.Errorf("%s: order %s ended %s, want %s", what, o.GetId(), o.GetStatus(), want))
		}
	}
	for i := range *n {
		coupon := ""
		if i == 0 {
			coupon = "WELCOME5"
		}
		o, err := s.Checkout(ctx, coupon, 50, scaleout.CardOK)
		check(fmt.Sprintf("checkout %d (coupon %q, 50 points, card %s)", i+1, coupon, scaleout.CardOK), o, err, orderprocessingv1.OrderStatus_ORDER_STATUS_COMPLETED)
	}
	o, err := s.Checkout(ctx, "", 50, scaleout.CardFailCapture)
	check("checkout with a capture that fails", o, err, orderprocessingv1.OrderStatus_ORDER_STATUS_FAILED)
	if bal, err := s.Balance(ctx); err == nil {
		fmt.Println("points balance now", bal)
	}
	return failed
}
