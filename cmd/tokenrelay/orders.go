package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing"
)

// ordersFlags are the flags every orders command shares: where
// OrderProcessing's database is, as the vault commands find it.
type ordersFlags struct {
	data, pgURL, schema, db *string
	asJSON                  *bool
}

func addOrdersFlags(fs *flag.FlagSet) *ordersFlags {
	return &ordersFlags{
		data:   fs.String("data", ".data", "the embedded data directory `DIR`: the database is DIR/"+orderprocessing.Name+".db"),
		pgURL:  fs.String("postgres-url", "", "scaled out: the PostgreSQL `URL` whose schema (see --schema) holds OrderProcessing's tables"),
		schema: fs.String("schema", "orderprocessing", "the PostgreSQL `SCHEMA` of OrderProcessing with --postgres-url"),
		db:     fs.String("db", "", "OrderProcessing's database as a `URL`: a SQLite path or a postgres:// URL (with search_path), overriding --data and --postgres-url"),
		asJSON: fs.Bool("json", false, "print JSON"),
	}
}

const ordersDatabase = `Database: by default the embedded layout, DATA/` + orderprocessing.Name + `.db. Scaled
out on PostgreSQL: --postgres-url URL, in schema orderprocessing (as
orderprocessingd's -schema defaults; another with --schema NAME), or --db
URL. A database that does not exist is an error, never created, and the
commands never migrate it: run them with the version of the service that
migrated it. They are safe while the service runs (one short transaction
each).`

// open opens OrderProcessing's database as the flags say, or says why there
// is none.
func (f *ordersFlags) open(ctx context.Context) (*sqldb.DB, error) {
	store := sealedStore{name: orderprocessing.Name, schema: *f.schema}
	t := target{store: store}
	switch {
	case *f.db != "" && sqldb.IsPostgres(*f.db):
		t.dsn, t.where = *f.db, "PostgreSQL "+sqldb.Redact(*f.db)
	case *f.db != "":
		t.dsn, t.path = *f.db, sqlitePath(*f.db)
		t.where = t.path
	case *f.pgURL != "":
		u, err := url.Parse(*f.pgURL)
		if err != nil || !sqldb.IsPostgres(*f.pgURL) {
			return nil, usagef("--postgres-url: want a postgres:// URL")
		}
		if !sqldb.ValidSchemaName(*f.schema) {
			return nil, usagef("--schema: want a plain lower-case identifier")
		}
		t.schema = *f.schema
		q := u.Query()
		q.Set("search_path", t.schema)
		u.RawQuery = q.Encode()
		t.dsn, t.where = u.String(), "schema "+t.schema+" of PostgreSQL "+sqldb.Redact(*f.pgURL)
	default:
		if err := dataDir(*f.data); err != nil {
			return nil, err
		}
		t.path = filepath.Join(*f.data, orderprocessing.Name+".db")
		t.dsn, t.where = "sqlite://"+t.path, t.path
	}
	db, skipped, err := t.open(ctx)
	switch {
	case err != nil:
		return nil, fmt.Errorf("open %s: %w", t.where, err)
	case skipped != "":
		return nil, fmt.Errorf("no OrderProcessing database at %s (%s): is --data, --postgres-url or --db right?", t.where, skipped)
	}
	return db, nil
}

// orderJSON is an order in the JSON output.
type orderJSON struct {
	ID            string     `json:"id"`
	UserID        string     `json:"user_id"`
	Status        string     `json:"status"`
	FailureReason string     `json:"failure_reason"`
	OperatorNote  string     `json:"operator_note,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	AgeSeconds    int64      `json:"age_seconds"`
	Steps         []stepJSON `json:"steps"`
}

type stepJSON struct {
	Capability string `json:"capability"`
	Issuer     string `json:"issuer"`
	State      string `json:"state"`
	Attempts   int    `json:"attempts"`
	LastError  string `json:"last_error"`
}

func toJSON(o orderprocessing.StuckOrder, now time.Time) orderJSON {
	j := orderJSON{ID: o.ID, UserID: o.UserID, Status: o.Status, FailureReason: o.FailureReason, OperatorNote: o.OperatorNote,
		CreatedAt: o.CreatedAt.UTC(), UpdatedAt: o.UpdatedAt.UTC(), AgeSeconds: int64(now.Sub(o.CreatedAt) / time.Second),
		Steps: []stepJSON{}}
	for _, st := range o.Steps {
		j.Steps = append(j.Steps, stepJSON{Capability: st.Capability, Issuer: st.Issuer, State: st.State, Attempts: st.Attempts, LastError: st.LastError})
	}
	return j
}

func ordersStuckCommand() command {
	return command{
		name:    "orders stuck",
		summary: "list the orders that need an operator: an issuer refused for good to compensate a step",
		details: `An order ends NEEDS_OPERATOR when an issuer refuses for good (not a
transient error) to compensate one of its steps: the step is
COMPENSATION_REFUSED with the issuer's answer, the other steps were
compensated, and no replica's saga touches the order again. Each such
refusal is logged at ERROR by the service and counted in
tokenrelay_saga_compensations_refused_total{capability}.

Lists them oldest first: the order, its user, its age (since it was placed)
and how long it has been stuck, each refused step with the issuer's answer,
and the order's failure reason. Then fix the cause and run "tokenrelay
orders retry", or settle the step with the issuer by hand and run
"tokenrelay orders resolve". Read-only.

` + ordersDatabase + `

Examples:
  tokenrelay orders stuck --data .data
  tokenrelay orders stuck --postgres-url "$DATABASE_URL" --json`,
		setup: func(fs *flag.FlagSet) func(*env, []string) error {
			f := addOrdersFlags(fs)
			limit := fs.Int("limit", 100, "list at most `N` orders")
			return func(e *env, args []string) error { return ordersStuck(e, f, *limit, args) }
		},
	}
}

func ordersStuck(e *env, f *ordersFlags, limit int, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument")
	}
	if limit < 1 {
		return usagef("--limit must be at least 1")
	}
	db, err := f.open(e.ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	orders, err := orderprocessing.StuckOrders(e.ctx, db, limit)
	if err != nil {
		return err
	}
	now := e.now()
	if *f.asJSON {
		out := struct {
			Orders []orderJSON `json:"orders"`
		}{Orders: []orderJSON{}}
		for _, o := range orders {
			out.Orders = append(out.Orders, toJSON(o, now))
		}
		return writeJSONValue(e.stdout, out)
	}
	return printStuck(e.stdout, orders, now)
}

// printStuck writes the stuck orders as a table, one row per refused
// step, then each order's failure reason and what to do.
func printStuck(w io.Writer, orders []orderprocessing.StuckOrder, now time.Time) error {
	if len(orders) == 0 {
		_, err := fmt.Fprintln(w, "No order needs an operator.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ORDER\tUSER\tAGE\tSTUCK FOR\tREFUSED STEP\tATTEMPTS\tISSUER'S ANSWER")
	for _, o := range orders {
		for i, st := range o.Steps {
			if i == 0 {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t", safe(o.ID), safe(o.UserID), human(now.Sub(o.CreatedAt)), human(now.Sub(o.UpdatedAt)))
			} else {
				fmt.Fprint(tw, "\t\t\t\t")
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\n", safe(st.Capability), st.Attempts, safe(st.LastError))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nFailure reasons:")
	for _, o := range orders {
		fmt.Fprintf(w, "  %s  %s\n", safe(o.ID), safe(o.FailureReason))
	}
	_, err := fmt.Fprintf(w, `
%d order(s) need an operator. Once the cause is fixed (a route, the issuer's data):
  tokenrelay orders retry ORDER_ID                  the saga compensates the refused steps again
Or, after settling the refused steps with their issuer by hand:
  tokenrelay orders resolve ORDER_ID --note TEXT    the order ends FAILED, the steps RESOLVED
`, len(orders))
	return err
}

// orderArg is the one ORDER_ID argument of retry and resolve.
func orderArg(args []string) (string, error) {
	switch {
	case len(args) == 0:
		return "", usagef("an ORDER_ID is required")
	case len(args) > 1:
		return "", usagef("one ORDER_ID at a time")
	case args[0] == "" || len(args[0]) > 64 || !utf8.ValidString(args[0]):
		return "", usagef("ORDER_ID: want an order id such as ord_...")
	}
	return args[0], nil
}

// orderFailure says why retry or resolve did nothing, for people.
func orderFailure(err error, id string) error {
	switch {
	case errors.Is(err, orderprocessing.ErrOrderNotFound):
		return fmt.Errorf("no order %s", safe(id))
	case errors.Is(err, orderprocessing.ErrNotStuck):
		return fmt.Errorf("order %s: %v (see tokenrelay orders stuck)", safe(id), err)
	}
	return err
}

func ordersRetryCommand() command {
	return command{
		name:    "orders retry",
		args:    "ORDER_ID",
		summary: "put an order that needs an operator back to COMPENSATING, for the saga to retry the refused steps",
		details: `Puts the order's COMPENSATION_REFUSED steps back to COMPENSATING (their
attempts and last answer kept) and the order back to COMPENSATING with a
free lease: the recovery scan of any running replica (every 2 s by
default, orderprocessingd -saga-recover-every) picks it up and calls
Compensate again. The order then ends FAILED, or NEEDS_OPERATOR again if an
issuer still refuses. Fix the cause first (a route, the issuer's data).
Exit status 1 for an unknown order or one that does not need an operator.

` + ordersDatabase + `

Example:
  tokenrelay orders retry --data .data ord_5kq...`,
		setup: func(fs *flag.FlagSet) func(*env, []string) error {
			f := addOrdersFlags(fs)
			return func(e *env, args []string) error { return ordersRetry(e, f, args) }
		},
	}
}

func ordersRetry(e *env, f *ordersFlags, args []string) error {
	id, err := orderArg(args)
	if err != nil {
		return err
	}
	db, err := f.open(e.ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	o, err := orderprocessing.RetryOrder(e.ctx, db, id)
	if err != nil {
		return orderFailure(err, id)
	}
	if *f.asJSON {
		return writeJSONValue(e.stdout, toJSON(o, e.now()))
	}
	fmt.Fprintf(e.stdout, "Order %s is COMPENSATING again; %s back to COMPENSATING.\n", safe(o.ID), stepList(o.Steps))
	_, err = fmt.Fprintln(e.stdout, `A running replica's saga retries them at its next recovery scan; follow the order with "tokenrelay orders stuck" or GetOrder.`)
	return err
}

func ordersResolveCommand() command {
	return command{
		name:    "orders resolve",
		args:    "ORDER_ID",
		summary: "record that an operator settled an order's refused compensations by hand: the order ends FAILED",
		details: `For an order that needs an operator, once its refused compensations were
settled with their issuers by hand (outside the saga): the refused steps
become RESOLVED (not COMPENSATED: no issuer confirmed a compensation) and
the order FAILED, its failure reason unchanged. The note, required, says
what was done, in at most ` + strconv.Itoa(orderprocessing.MaxOperatorNote) + ` characters;
it is kept with the order and never shown to its user. Exit status 1 for an
unknown order or one that does not need an operator.

` + ordersDatabase + `

Example:
  tokenrelay orders resolve --data .data --note "coupon re-issued by hand, ticket OPS-7" ord_5kq...`,
		setup: func(fs *flag.FlagSet) func(*env, []string) error {
			f := addOrdersFlags(fs)
			note := fs.String("note", "", "`TEXT` saying what the operator did to settle the refused steps, kept with the order (required)")
			return func(e *env, args []string) error { return ordersResolve(e, f, *note, args) }
		},
	}
}

func ordersResolve(e *env, f *ordersFlags, note string, args []string) error {
	id, err := orderArg(args)
	if err != nil {
		return err
	}
	if strings.TrimSpace(note) == "" {
		return usagef("--note is required: say how the refused steps were settled")
	}
	db, err := f.open(e.ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	o, err := orderprocessing.ResolveOrder(e.ctx, db, id, note)
	if errors.Is(err, orderprocessing.ErrInvalidNote) {
		return usagef("--note: %v", err)
	}
	if err != nil {
		return orderFailure(err, id)
	}
	if *f.asJSON {
		return writeJSONValue(e.stdout, toJSON(o, e.now()))
	}
	_, err = fmt.Fprintf(e.stdout, "Order %s is FAILED, resolved by hand; %s RESOLVED.\n", safe(o.ID), stepList(o.Steps))
	return err
}

// stepList names steps for a sentence: "step coupons:redeem",
// "steps coupons:redeem, points:spend".
func stepList(steps []orderprocessing.StuckStep) string {
	names := make([]string, len(steps))
	for i, st := range steps {
		names[i] = safe(st.Capability)
	}
	switch len(names) {
	case 0:
		return "no step"
	case 1:
		return "step " + names[0]
	}
	return "steps " + strings.Join(names, ", ")
}

// safe makes text from the database (an issuer's answer, an id) safe to
// print on one line: unprintable characters become Go escapes.
func safe(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) || r == utf8.RuneError {
			q := strconv.QuoteToGraphic(s)
			return q[1 : len(q)-1]
		}
	}
	return s
}
