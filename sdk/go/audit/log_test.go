package audit_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/audit"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
)

var t0 = time.Date(2026, 12, 3, 10, 0, 0, 123_456_789, time.UTC)

func open(t *testing.T, db *sqldb.DB) *audit.Log {
	t.Helper()
	if err := audit.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	if err := audit.Migrate(t.Context(), db); err != nil { // idempotent
		t.Fatal(err)
	}
	return audit.New(db)
}

// lifecycle is one confirmation token's events at its issuer, and a
// refused replay of it.
func lifecycle(service, jti string) []audit.Event {
	tok := audit.Event{Service: service, Issuer: "payments", JTI: jti, Kind: "confirmation", Subject: "usr_1",
		CheckoutID: "op_" + jti, ExpiresAt: t0.Add(2 * time.Minute)}
	at := func(e audit.Event, a audit.Action, d time.Duration, order, txn, check string) audit.Event {
		e.Action, e.At, e.OrderID, e.Txn, e.Check = a, t0.Add(d), order, txn, check
		return e
	}
	return []audit.Event{
		at(tok, audit.Issued, 0, "", "txn_confirm_"+jti, ""),
		at(tok, audit.Exercised, time.Second, "ord_"+jti, "", ""),
		at(tok, audit.Refused, 2*time.Second, "ord_other", "txn_replay_"+jti, "replay"),
		at(tok, audit.Compensated, 3*time.Second, "ord_"+jti, "", ""),
	}
}

func appendAll(t *testing.T, db *sqldb.DB, l *audit.Log, events []audit.Event) []audit.Event {
	t.Helper()
	out := make([]audit.Event, len(events))
	for i, e := range events {
		err := db.Tx(t.Context(), func(tx *sql.Tx) error {
			var err error
			out[i], err = l.Append(t.Context(), db.Cached(tx), e)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestLog(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := t.Context()
		l := open(t, db)

		t.Run("append and read", func(t *testing.T) {
			got := appendAll(t, db, l, append(lifecycle("payments", "j1"), lifecycle("payments", "j2")...))
			for i, e := range got {
				if e.Seq != int64(i+1) || e.Hash == "" || (i > 0 && e.PrevHash != got[i-1].Hash) || (i == 0 && e.PrevHash != "") {
					t.Fatalf("event %d: seq %d prev %q hash %q", i, e.Seq, e.PrevHash, e.Hash)
				}
			}
			byJTI, err := l.ByJTI(ctx, "payments", "j1")
			if err != nil || len(byJTI) != 4 {
				t.Fatalf("ByJTI: %d events, %v", len(byJTI), err)
			}
			for i, want := range []audit.Action{audit.Issued, audit.Exercised, audit.Refused, audit.Compensated} {
				if byJTI[i].Action != want {
					t.Fatalf("ByJTI[%d] = %s, want %s", i, byJTI[i].Action, want)
				}
			}
			if e := byJTI[0]; e != got[0] || !e.At.Equal(t0.Truncate(time.Millisecond)) || !e.ExpiresAt.Equal(t0.Add(2*time.Minute).Truncate(time.Millisecond)) {
				t.Fatalf("read back %+v, appended %+v", e, got[0])
			}
			if r := byJTI[2]; r.Check != "replay" || r.Txn != "txn_replay_j1" || r.OrderID != "ord_other" {
				t.Fatalf("refusal %+v", r)
			}
			for name, f := range map[string]func() ([]audit.Event, error){
				"ByOrder ord_j1":    func() ([]audit.Event, error) { return l.ByOrder(ctx, "ord_j1") },
				"ByOrder ord_j2":    func() ([]audit.Event, error) { return l.ByOrder(ctx, "ord_j2") },
				"ByTxn txn_replay":  func() ([]audit.Event, error) { return l.ByTxn(ctx, "txn_replay_j2") },
				"ByJTI other iss":   func() ([]audit.Event, error) { return l.ByJTI(ctx, "coupons", "j1") },
				"ByOrder empty id":  func() ([]audit.Event, error) { return l.ByOrder(ctx, "") },
				"ByTxn empty id":    func() ([]audit.Event, error) { return l.ByTxn(ctx, "") },
				"ByJTI unknown jti": func() ([]audit.Event, error) { return l.ByJTI(ctx, "payments", "nope") },
				// Confirmation tokens' events name the checkout too: not
				// checkout tokens.
				"CheckoutTokens op_j1": func() ([]audit.Event, error) { return l.CheckoutTokens(ctx, "op_j1") },
			} {
				want := map[string]int{"ByOrder ord_j1": 2, "ByOrder ord_j2": 2, "ByTxn txn_replay": 1}[name]
				if evs, err := f(); err != nil || len(evs) != want {
					t.Errorf("%s: %d events, %v; want %d", name, len(evs), err, want)
				}
			}
			h, err := l.Verify(ctx, "payments")
			if err != nil || h.Seq != 8 || h.Hash != got[7].Hash {
				t.Fatalf("Verify: %+v, %v", h, err)
			}
		})

		t.Run("checkout tokens", func(t *testing.T) {
			tok := audit.Event{Service: "order-processing", Action: audit.Issued, At: t0, Issuer: "order-processing",
				JTI: "cj1", Kind: "checkout", Subject: "usr_1", CheckoutID: "op_c1", ExpiresAt: t0.Add(time.Hour)}
			refused := tok
			refused.Service, refused.Action, refused.At, refused.Subject, refused.Check = "coupons", audit.Refused, t0.Add(time.Second), "usr_2", "subject"
			other := tok
			other.JTI, other.CheckoutID = "cj2", "op_c2"
			appendAll(t, db, l, []audit.Event{tok, refused, other})
			evs, err := l.CheckoutTokens(ctx, "op_c1")
			if err != nil || len(evs) != 2 || evs[0].Action != audit.Issued || evs[1].Check != "subject" {
				t.Fatalf("CheckoutTokens(op_c1) = %+v, %v", evs, err)
			}
			if evs, err := l.CheckoutTokens(ctx, ""); err != nil || len(evs) != 0 {
				t.Fatalf("CheckoutTokens of no checkout = %+v, %v", evs, err)
			}
		})

		t.Run("in the caller's transaction", func(t *testing.T) {
			boom := errors.New("the effect failed")
			err := db.Tx(ctx, func(tx *sql.Tx) error {
				if _, err := l.Append(ctx, tx, lifecycle("rollback", "j1")[0]); err != nil {
					return err
				}
				return boom
			})
			if !errors.Is(err, boom) {
				t.Fatal(err)
			}
			if evs, _ := l.ByJTI(ctx, "payments", "j1"); len(evs) != 4 {
				t.Fatalf("a rolled-back append left %d events", len(evs)-4)
			}
			e, err := l.Record(ctx, lifecycle("rollback", "j1")[0])
			if err != nil || e.Seq != 1 {
				t.Fatalf("after a rollback the chain starts at %d: %v", e.Seq, err)
			}
		})

		t.Run("invalid events", func(t *testing.T) {
			for _, e := range []audit.Event{
				{Action: audit.Issued, At: t0},
				{Service: "x", Action: "stolen", At: t0},
				{Service: "x", Action: audit.Issued},
			} {
				if _, err := l.Record(ctx, e); !errors.Is(err, audit.ErrInvalidEvent) {
					t.Errorf("%+v: %v", e, err)
				}
			}
		})

		t.Run("replicas extend one chain", func(t *testing.T) {
			replicas := []*audit.Log{l, audit.New(db)}
			const n = 24
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := range n {
				wg.Go(func() {
					e := lifecycle("replicas", fmt.Sprintf("c%d", i))[0]
					_, err := replicas[i%2].Record(context.WithoutCancel(ctx), e)
					errs <- err
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if h, err := l.Verify(ctx, "replicas"); err != nil || h.Seq != n {
				t.Fatalf("Verify after concurrent appends: %+v, %v", h, err)
			}
		})

		t.Run("batches", func(t *testing.T) {
			// Single appends and batches interleave into one chain, the
			// same as appending each event alone.
			evs := append(lifecycle("batch", "b1"), lifecycle("batch", "b2")...)
			first := appendAll(t, db, l, evs[:1])
			var batch []audit.Event
			err := db.Tx(ctx, func(tx *sql.Tx) error {
				var err error
				batch, err = l.AppendAll(ctx, db.Cached(tx), evs[1:4]...)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			single := appendAll(t, db, l, evs[4:5])
			var big []audit.Event
			var many []audit.Event // more than one INSERT's rows
			for i := range 40 {
				many = append(many, lifecycle("batch", fmt.Sprintf("m%d", i))...)
			}
			err = db.Tx(ctx, func(tx *sql.Tx) error {
				var err error
				if big, err = l.AppendAll(ctx, tx, evs[5:]...); err != nil {
					return err
				}
				more, err := l.AppendAll(ctx, tx, many...)
				big = append(big, more...)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			got := append(append(append(first, batch...), single...), big...)
			if len(got) != 8+len(many) {
				t.Fatalf("%d events appended, want %d", len(got), 8+len(many))
			}
			prev := ""
			for i, e := range got {
				want := append(evs, many...)[i]
				want.Seq = int64(i + 1)
				if e.Seq != int64(i+1) || e.PrevHash != prev || e.Hash != want.Digest(prev) || e.JTI != want.JTI || e.Action != want.Action {
					t.Fatalf("event %d: %+v", i, e)
				}
				prev = e.Hash
			}
			h, err := l.Verify(ctx, "batch")
			if err != nil || h.Seq != int64(len(got)) || h.Hash != prev {
				t.Fatalf("Verify: %+v, %v", h, err)
			}
			if r, err := l.ByJTI(ctx, "payments", "b1"); err != nil || len(r) != 4 || r[2] != got[2] {
				t.Fatalf("ByJTI after a batch: %+v, %v", r, err)
			}

			// A batch in a transaction rolled back leaves nothing, not
			// even a move of the head.
			boom := errors.New("the effect failed")
			err = db.Tx(ctx, func(tx *sql.Tx) error {
				if _, err := l.AppendAll(ctx, db.Cached(tx), lifecycle("batch", "gone")...); err != nil {
					return err
				}
				return boom
			})
			if !errors.Is(err, boom) {
				t.Fatal(err)
			}
			if evs, _ := l.ByJTI(ctx, "payments", "gone"); len(evs) != 0 {
				t.Fatalf("a rolled-back batch left %d events", len(evs))
			}
			if h2, err := l.Verify(ctx, "batch"); err != nil || h2 != h {
				t.Fatalf("Verify after a rolled-back batch: %+v, %v; want %+v", h2, err, h)
			}
			err = db.Tx(ctx, func(tx *sql.Tx) error {
				if _, err := l.AppendAll(ctx, tx, lifecycle("batch-first", "gone")...); err != nil {
					return err
				}
				return boom
			})
			if !errors.Is(err, boom) {
				t.Fatal(err)
			}
			if e, err := l.Record(ctx, lifecycle("batch-first", "j1")[0]); err != nil || e.Seq != 1 || e.PrevHash != "" {
				t.Fatalf("after a rolled-back first batch the chain starts at %d: %v", e.Seq, err)
			}

			// A tampered batch is detected like any event.
			if _, err := db.SQL().ExecContext(ctx, `UPDATE audit_events SET order_id = 'ord_x' WHERE service = $1 AND seq = 3`, "batch"); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Verify(ctx, "batch"); !errors.Is(err, audit.ErrTampered) || !strings.Contains(err.Error(), "event 3") {
				t.Fatalf("Verify of a tampered batch: %v", err)
			}

			// What would not be one valid Append is no valid batch.
			for name, bad := range map[string][]audit.Event{
				"an invalid event":  {lifecycle("batch", "x")[0], {Service: "batch", Action: "stolen", At: t0}},
				"two services":      {lifecycle("batch", "x")[0], lifecycle("other", "x")[0]},
				"no service at all": {{Action: audit.Issued, At: t0}},
			} {
				err := db.Tx(ctx, func(tx *sql.Tx) error {
					_, err := l.AppendAll(ctx, tx, bad...)
					return err
				})
				if !errors.Is(err, audit.ErrInvalidEvent) {
					t.Errorf("%s: %v", name, err)
				}
			}
			if out, err := l.AppendAll(ctx, db.SQL()); err != nil || out != nil {
				t.Fatalf("an empty batch: %v, %v", out, err)
			}
		})

		t.Run("concurrent batches extend one chain", func(t *testing.T) {
			// Two writers (replicas) append batches of 3 and single
			// events at once; every batch keeps consecutive numbers.
			replicas := []*audit.Log{l, audit.New(db)}
			const writers, rounds = 2, 8
			var wg sync.WaitGroup
			errs := make(chan error, writers*rounds)
			for w := range writers {
				wg.Go(func() {
					for r := range rounds {
						evs := lifecycle("concurrent", fmt.Sprintf("w%dr%d", w, r))[:3]
						if r%3 == 2 {
							evs = evs[:1]
						}
						err := db.Tx(context.WithoutCancel(ctx), func(tx *sql.Tx) error {
							out, err := replicas[w].AppendAll(ctx, db.Cached(tx), evs...)
							for i := 1; err == nil && i < len(out); i++ {
								if out[i].Seq != out[i-1].Seq+1 || out[i].PrevHash != out[i-1].Hash {
									err = fmt.Errorf("batch %d/%d not consecutive: %+v", w, r, out)
								}
							}
							return err
						})
						errs <- err
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			want := int64(writers*(rounds-rounds/3)*3 + writers*(rounds/3))
			if h, err := l.Verify(ctx, "concurrent"); err != nil || h.Seq != want {
				t.Fatalf("Verify after concurrent batches: %+v, %v; want %d events", h, err, want)
			}
		})

		t.Run("tampering", func(t *testing.T) {
			for i, tc := range []struct {
				name string
				sql  func(evs []audit.Event) string // $1 is the service
				bad  string                         // what Verify names
			}{
				{"an event edited", func([]audit.Event) string {
					return `UPDATE audit_events SET subject = 'usr_2' WHERE service = $1 AND seq = 2`
				}, "event 2"},
				{"an event's time edited", func([]audit.Event) string {
					return `UPDATE audit_events SET at_ms = at_ms + 1 WHERE service = $1 AND seq = 3`
				}, "event 3"},
				{"an event deleted from the middle", func([]audit.Event) string {
					return `DELETE FROM audit_events WHERE service = $1 AND seq = 2`
				}, "event 2"},
				{"the last event deleted", func([]audit.Event) string {
					return `DELETE FROM audit_events WHERE service = $1 AND seq = 4`
				}, "the events after event 3 are missing"},
				{"an event appended past the head, its hash chained", func(evs []audit.Event) string {
					forged := evs[3]
					forged.Seq = 5
					return `INSERT INTO audit_events SELECT service, 5, at_ms, action, iss, jti, kind, subject, checkout_id, order_id,
						txn, refused_check, exp_ms, hash, '` + forged.Digest(evs[3].Hash) + `' FROM audit_events WHERE service = $1 AND seq = 4`
				}, "the head (4) does not match the last event (5)"},
				{"an event forged with a consistent hash of its own", func(evs []audit.Event) string {
					forged := evs[0]
					forged.Subject = "usr_forged"
					return `UPDATE audit_events SET subject = 'usr_forged', hash = '` + forged.Digest("") + `' WHERE service = $1 AND seq = 1`
				}, "event 2"}, // the next event's prev_hash no longer matches
			} {
				t.Run(tc.name, func(t *testing.T) {
					svc := fmt.Sprintf("tamper-%d", i)
					evs := appendAll(t, db, l, lifecycle(svc, "j1"))
					if _, err := l.Verify(ctx, svc); err != nil {
						t.Fatal(err)
					}
					if _, err := db.SQL().ExecContext(ctx, tc.sql(evs), svc); err != nil {
						t.Fatal(err)
					}
					_, err := l.Verify(ctx, svc)
					if !errors.Is(err, audit.ErrTampered) || !strings.Contains(err.Error(), tc.bad) {
						t.Fatalf("Verify: %v, want ErrTampered naming %q", err, tc.bad)
					}
				})
			}
		})

		t.Run("retention", func(t *testing.T) {
			evs := appendAll(t, db, l, append(lifecycle("purge", "p1"), lifecycle("purge", "p2")...))
			// Events at t0+0..3s twice over: a cutoff of t0+1.5s keeps
			// everything from the first event at or after it, a prefix
			// going.
			n, err := l.Purge(ctx, "purge", t0.Add(1500*time.Millisecond))
			if err != nil || n != 2 {
				t.Fatalf("Purge: %d, %v", n, err)
			}
			h, err := l.Verify(ctx, "purge")
			if err != nil || h.AnchorSeq != 2 || h.AnchorHash != evs[1].Hash || h.Seq != 8 {
				t.Fatalf("after a purge: %+v, %v", h, err)
			}
			if got, _ := l.ByJTI(ctx, "payments", "p1"); len(got) != 2 {
				t.Fatalf("p1 has %d events after the purge, want 2", len(got))
			}
			if n, err := l.Purge(ctx, "purge", t0.Add(1500*time.Millisecond)); err != nil || n != 0 {
				t.Fatalf("Purge again: %d, %v", n, err)
			}
			if n, err := l.Purge(ctx, "purge", t0.Add(time.Hour)); err != nil || n != 6 {
				t.Fatalf("Purge all: %d, %v", n, err)
			}
			if h, err := l.Verify(ctx, "purge"); err != nil || h.AnchorSeq != 8 || h.Seq != 8 {
				t.Fatalf("after purging all: %+v, %v", h, err)
			}
			e, err := l.Record(ctx, lifecycle("purge", "p3")[0])
			if err != nil || e.Seq != 9 || e.PrevHash != evs[7].Hash {
				t.Fatalf("append after purging all: %+v, %v", e, err)
			}
			if _, err := l.Verify(ctx, "purge"); err != nil {
				t.Fatal(err)
			}
			if h, err := l.Verify(ctx, "never-written"); err != nil || h != (audit.Head{}) {
				t.Fatalf("Verify of an empty chain: %+v, %v", h, err)
			}
		})
	})
}
