package replay_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/replay"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
)

// A service consumes a confirmation token's jti in the transaction that
// performs its effect, and marks the fast path once that has committed.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "replay-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	db, err := sqldb.Open(ctx, "sqlite://"+filepath.Join(dir, "coupons.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	if err := replay.Migrate(ctx, db); err != nil {
		fmt.Println(err)
		return
	}
	guard, err := replay.New(db)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer guard.Close()

	redeem := func(iss, jti string, exp time.Time) error {
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			if err := guard.Consume(ctx, tx, iss, jti, exp); err != nil {
				return err
			}
			// ... redeem the coupon in tx ...
			return nil
		})
		if err == nil {
			guard.Mark(iss, jti, exp)
		}
		return err
	}
	exp := time.Now().Add(2 * time.Minute)
	fmt.Println("first use:", redeem("https://coupons.example", "jti-1", exp))
	fmt.Println("replay:", redeem("https://coupons.example", "jti-1", exp))
	// Output:
	// first use: <nil>
	// replay: token already used
}
