package audit_test

import (
	"database/sql"
	"fmt"
	"testing"

	"github.com/tokenrelay/tokenrelay/sdk/go/audit"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
)

// BenchmarkAppend is one checkout's worth of a service's appends on
// SQLite: three events, each in a transaction of its own (a domain's
// Confirm or Exercise), or the three in one transaction (PlaceOrder).
func BenchmarkAppend(b *testing.B) {
	for _, variant := range []string{"single", "batched"} {
		batched := variant == "batched"
		b.Run(variant, func(b *testing.B) {
			db := sqldbtest.SQLite(b)
			ctx := b.Context()
			if err := audit.Migrate(ctx, db); err != nil {
				b.Fatal(err)
			}
			l := audit.New(db)
			events := func(i int) []audit.Event {
				var evs []audit.Event
				for j := range 3 {
					e := lifecycle("payments", fmt.Sprintf("j%d-%d", i, j))[0]
					e.OrderID, e.Txn = fmt.Sprintf("ord_%d", i), fmt.Sprintf("txn_%d", i)
					evs = append(evs, e)
				}
				return evs
			}
			b.ResetTimer()
			for i := range b.N {
				evs := events(i)
				var err error
				if batched {
					err = db.Tx(ctx, func(tx *sql.Tx) error {
						_, err := l.AppendAll(ctx, db.Cached(tx), evs...)
						return err
					})
				} else {
					for _, e := range evs {
						if err = db.Tx(ctx, func(tx *sql.Tx) error {
							_, err := l.Append(ctx, db.Cached(tx), e)
							return err
						}); err != nil {
							break
						}
					}
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
