package coupons_test

import (
	"log/slog"
	"testing"
	"time"

	"connectrpc.com/connect"

	couponsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1/couponsv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilitytest"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/services/coupons"
)

// TestPurgeThenRetry (issue 15, item 8) purges a token's records through
// the face, as the purge task does once the retention has passed, then
// retries its Exercise and Compensate through CapabilityService. Both are
// refused for good, PermissionDenied (no confirmation with this jti), never
// answered as if the effect had been undone: an orchestrator that
// compensates so late holds the order for an operator. (In production the
// token has expired long before its records go, so an Exercise is refused
// as expired first; this test's token is still fresh because only the
// purge's clock moved.) The coupon stays redeemed; purging inside the
// retention deletes nothing.
func TestPurgeThenRetry(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		var svc *coupons.Service
		d := capabilitytest.Start(t, coupons.Name, func(tr capability.Trust, vk *vault.Keyring) (capabilitytest.Service, error) {
			var err error
			svc, err = coupons.New(t.Context(), coupons.Config{DB: db, Vault: vk, Logger: slog.New(authn.NewLogHandler(slog.DiscardHandler)), Trust: tr})
			return svc, err
		})
		e := &env{Domain: d, coupons: couponsv1connect.NewCouponsServiceClient(d.HTTP, d.URL)}
		e.grant(t, "usr_p", campaign("PURGE-1"))
		e.grant(t, "usr_p", campaign("PURGE-2"))
		applied, err := e.confirm(t, "usr_p", "op_p1", 3000, "EUR", "PURGE-1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Exercise(t, applied.GetConfirmationToken(), "ord_p1"); err != nil {
			t.Fatal(err)
		}
		unused, err := e.confirm(t, "usr_p", "op_p2", 3000, "EUR", "PURGE-2")
		if err != nil {
			t.Fatal(err)
		}

		const retention = 30 * 24 * time.Hour
		if rows, err := svc.Purge(t.Context(), time.Now(), retention); err != nil || rows["confirmations"] != 0 {
			t.Fatalf("Purge inside the retention = %v, %v; want nothing", rows, err)
		}
		if rows, err := svc.Purge(t.Context(), time.Now(), 0); err != nil || len(rows) != 0 {
			t.Fatalf("Purge with retention 0 = %v, %v; want nothing", rows, err)
		}
		rows, err := svc.Purge(t.Context(), time.Now().Add(retention+time.Hour), retention)
		if err != nil || rows["confirmations"] != 2 || rows["exercises"] != 1 {
			t.Fatalf("Purge past the retention = %v, %v; want 2 confirmations and 1 exercise", rows, err)
		}

		for _, call := range []struct {
			name string
			do   func() error
		}{
			{"Compensate of the exercised token", func() error {
				_, err := e.Compensate(t, applied.GetConfirmationToken(), "ord_p1")
				return err
			}},
			{"Compensate of the unused token", func() error {
				_, err := e.Compensate(t, unused.GetConfirmationToken(), "ord_p2")
				return err
			}},
			{"Exercise retried", func() error {
				_, err := e.Exercise(t, applied.GetConfirmationToken(), "ord_p1")
				return err
			}},
		} {
			if err := call.do(); connect.CodeOf(err) != connect.CodePermissionDenied {
				t.Errorf("%s after the purge: %v, want permission_denied", call.name, err)
			}
		}
		if s := e.state(t, "usr_p", "PURGE-1"); s != couponsv1.CouponState_COUPON_STATE_REDEEMED {
			t.Errorf("the purged token's coupon is %v, want still redeemed", s)
		}
	})
}
