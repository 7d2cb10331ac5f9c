package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
)

// ringFlags selects one issuer's key ring: --dir, or --data and --issuer.
type ringFlags struct {
	dir, data, issuer *string
}

func addRingFlags(fs *flag.FlagSet) ringFlags {
	return ringFlags{
		dir:    fs.String("dir", "", "the key ring directory `DIR` (holding "+keys.RingFile+")"),
		data:   fs.String("data", ".data", "the embedded data directory `DIR`; with --issuer, the ring is DIR/keys/NAME"),
		issuer: fs.String("issuer", "", "the issuer `NAME` whose ring to use under --data: gateway, identity, order-processing, coupons, points, payments"),
	}
}

// open opens the selected ring, on e's clock, and returns it with its
// directory; the keys commands take no arguments, so any in args is a
// usage error.
func (f ringFlags) open(e *env, args []string) (*keys.Ring, string, error) {
	dir := *f.dir
	switch {
	case len(args) > 0:
		return nil, "", usagef("unexpected argument")
	case dir != "" && *f.issuer != "":
		return nil, "", usagef("give --dir, or --data and --issuer, not both")
	case dir == "" && *f.issuer == "":
		return nil, "", usagef("give --dir DIR, or --issuer NAME (with --data)")
	case dir == "":
		if filepath.Base(*f.issuer) != *f.issuer || *f.issuer == "." || *f.issuer == ".." {
			return nil, "", usagef("--issuer must be a plain name")
		}
		if err := dataDir(*f.data); err != nil {
			return nil, "", err
		}
		dir = filepath.Join(*f.data, "keys", *f.issuer)
	}
	ring, err := openExistingRing(dir, keys.WithRingClock(e.now))
	if err != nil && *f.dir == "" {
		if entries, rerr := os.ReadDir(filepath.Join(*f.data, "keys")); rerr == nil {
			var names []string
			for _, e := range entries {
				if e.IsDir() {
					names = append(names, e.Name())
				}
			}
			err = fmt.Errorf("%w; issuers under %s: %v", err, filepath.Join(*f.data, "keys"), names)
		}
	}
	return ring, dir, err
}

func keysListCommand() command {
	return command{
		name:    "keys list",
		summary: "list an issuer's signing keys: kid, algorithm, role and dates (never private keys)",
		details: `Roles: "current" signs now; "next" is already published in the JWKS and
becomes current at the next rotation; "retired" keys stay published until
their retention ends, so that the tokens they signed keep verifying.

Examples:
  tokenrelay keys list --data .data --issuer coupons
  tokenrelay keys list --dir /etc/tokenrelay/keys/coupons --json`,
		setup: func(fs *flag.FlagSet) func(*env, []string) error {
			rf := addRingFlags(fs)
			asJSON := fs.Bool("json", false, "print JSON")
			return func(e *env, args []string) error {
				ring, dir, err := rf.open(e, args)
				if err != nil {
					return err
				}
				info := ring.Describe()
				if *asJSON {
					return printKeysJSON(e, dir, info)
				}
				fmt.Fprintf(e.stdout, "Key ring %s:\n", dir)
				tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "KID\tALG\tROLE\tCREATED\tPUBLISHED UNTIL")
				for _, k := range info {
					until := "-"
					if !k.RetireUntil.IsZero() {
						until = k.RetireUntil.UTC().Format(time.RFC3339) + " (" + relative(k.RetireUntil, e.now()) + ")"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.KID, k.Algorithm, k.Role, formatTime(k.Created), until)
				}
				return tw.Flush()
			}
		},
	}
}

func keysRotateCommand() command {
	return command{
		name:    "keys rotate",
		summary: "rotate an issuer's key ring: the next key becomes current, the current key is retired",
		details: `Promotes the next key (already published, so verifiers that cached the
JWKS know it), retires the current key (published for the retention, 61
minutes by default, so that tokens it signed keep verifying) and generates
a new next key. The ring file is replaced atomically.

A process that already loaded the ring keeps signing with the old key until
it restarts: restart the issuing service (or the embedded tokenrelayd)
after rotating. Verifiers learn the next key from the JWKS they cached,
refreshed hourly: the command refuses (exit 1) while the next key was
published less than an hour ago (--window), which a second rotation within
the hour always is; --force rotates anyway, for a key that must go now
(verifiers that have not refreshed then refuse the new key's tokens until
they refetch its kid).

Example:
  tokenrelay keys rotate --data .data --issuer coupons`,
		setup: func(fs *flag.FlagSet) func(*env, []string) error {
			rf := addRingFlags(fs)
			force := fs.Bool("force", false, "rotate even if the next key was published less than --window ago")
			window := fs.Duration("window", keys.DefaultPublishWindow, "how long the next key must have been published (the verifiers' JWKS refresh interval)")
			return func(e *env, args []string) error {
				ring, dir, err := rf.open(e, args)
				if err != nil {
					return err
				}
				before := ring.Describe()
				rotate := func() error { return ring.RotateAfter(*window) }
				if *force {
					rotate = ring.Rotate
				}
				if err := rotate(); err != nil {
					if errors.Is(err, keys.ErrRotateTooSoon) {
						return fmt.Errorf("%w; verifiers refresh the JWKS hourly and may not know it yet (pass --force to rotate anyway)", err)
					}
					return err
				}
				after := ring.Describe()
				fmt.Fprintf(e.stdout, "Rotated key ring %s:\n", dir)
				tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "  old current key\t%s\t(retired", before[0].KID)
				if i := slices.IndexFunc(after, func(k keys.KeyInfo) bool { return k.KID == before[0].KID }); i >= 0 {
					fmt.Fprintf(tw, ", published until %s", after[i].RetireUntil.UTC().Format(time.RFC3339))
				}
				fmt.Fprintln(tw, ")")
				fmt.Fprintf(tw, "  new current key\t%s\n", after[0].KID)
				fmt.Fprintf(tw, "  new next key\t%s\n", after[1].KID)
				if err := tw.Flush(); err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, "Restart the service that signs with this ring: a running process keeps signing with the old key.")
				return nil
			}
		},
	}
}

func printKeysJSON(e *env, dir string, info []keys.KeyInfo) error {
	type key struct {
		KID         string     `json:"kid"`
		Algorithm   string     `json:"alg"`
		Role        string     `json:"role"`
		Created     *time.Time `json:"created,omitempty"`
		RetireUntil *time.Time `json:"published_until,omitempty"`
	}
	out := struct {
		Dir  string `json:"dir"`
		Keys []key  `json:"keys"`
	}{Dir: dir}
	for _, k := range info {
		j := key{KID: k.KID, Algorithm: k.Algorithm, Role: k.Role}
		if !k.Created.IsZero() {
			t := k.Created.UTC()
			j.Created = &t
		}
		if !k.RetireUntil.IsZero() {
			t := k.RetireUntil.UTC()
			j.RetireUntil = &t
		}
		out.Keys = append(out.Keys, j)
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func relative(t, now time.Time) string {
	if d := t.Sub(now); d >= 0 {
		return "in " + human(d)
	}
	return human(now.Sub(t)) + " ago"
}
