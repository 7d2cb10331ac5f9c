package coupons_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	capabilityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1"
	couponsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1/couponsv1connect"
	typev1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/type/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilitytest"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/services/coupons"
)

type env struct {
	*capabilitytest.Domain
	coupons couponsv1connect.CouponsServiceClient
}

func start(t *testing.T, db *sqldb.DB, opts ...connect.ClientOption) *env {
	t.Helper()
	d := capabilitytest.Start(t, coupons.Name, func(tr capability.Trust, vk *vault.Keyring) (capabilitytest.Service, error) {
		return coupons.New(t.Context(), coupons.Config{DB: db, Vault: vk, Logger: slog.New(authn.NewLogHandler(slog.DiscardHandler)), Trust: tr})
	}, opts...)
	return &env{Domain: d, coupons: couponsv1connect.NewCouponsServiceClient(d.HTTP, d.URL, opts...)}
}

func eur(n int64) *typev1.Money { return &typev1.Money{AmountMinor: n, Currency: "EUR"} }

// campaign is valid for a day around now: 5 EUR off above 20 EUR.
func campaign(code string) *couponsv1.Campaign {
	return &couponsv1.Campaign{
		Code: code, Description: "5 off", Kind: couponsv1.DiscountKind_DISCOUNT_KIND_FIXED,
		AmountOff: eur(500), MinimumSpend: eur(2000),
		ValidFrom: timestamppb.New(time.Now().Add(-time.Hour)), ValidUntil: timestamppb.New(time.Now().Add(23 * time.Hour)),
	}
}

func (e *env) grant(t *testing.T, user string, c *couponsv1.Campaign) {
	t.Helper()
	if _, err := e.coupons.GrantCoupon(t.Context(), capabilitytest.Request(e.World.As(t, "usr_admin", "shop admin"),
		&couponsv1.GrantCouponRequest{UserId: user, Campaign: c})); err != nil {
		t.Fatal(err)
	}
}

func (e *env) confirm(t *testing.T, user, checkout string, total int64, currency, code string) (*couponsv1.ConfirmCouponResponse, error) {
	t.Helper()
	res, err := e.coupons.ConfirmCoupon(t.Context(), capabilitytest.Request(e.World.As(t, user, "shop"), &couponsv1.ConfirmCouponRequest{
		CheckoutToken: e.World.Checkout(t, user, checkout, total, currency, "coupons", "points", "payments"), Code: code,
	}))
	if err != nil {
		return nil, err
	}
	return res.Msg, nil
}

func (e *env) state(t *testing.T, user, code string) couponsv1.CouponState {
	t.Helper()
	res, err := e.coupons.ListAvailableCoupons(t.Context(), capabilitytest.Request(e.World.As(t, user, "shop"), &couponsv1.ListAvailableCouponsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Msg.GetCoupons() {
		if c.GetCode() == code {
			return c.GetState()
		}
	}
	t.Fatalf("%s holds no coupon %s", user, code)
	return 0
}

// TestCycle runs grant -> list -> confirm -> exercise -> compensate through
// the generated clients, on both stores and both protocols.
func TestCycle(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		for name, opts := range map[string][]connect.ClientOption{"connect": nil, "grpc": {connect.WithGRPC()}} {
			t.Run(name, func(t *testing.T) {
				e := start(t, db, opts...)
				user, code := "usr_"+name, "WELCOME-"+strings.ToUpper(name)
				e.grant(t, user, campaign(code))
				list, err := e.coupons.ListAvailableCoupons(t.Context(), capabilitytest.Request(e.World.As(t, user, "shop"), &couponsv1.ListAvailableCouponsRequest{
					CheckoutToken: e.World.Checkout(t, user, "op_"+name, 3000, "EUR", "coupons"),
				}))
				if err != nil {
					t.Fatal(err)
				}
				if cs := list.Msg.GetCoupons(); len(cs) != 1 || !cs[0].GetUsable() || cs[0].GetDiscount().GetAmountMinor() != 500 {
					t.Fatalf("ListAvailableCoupons = %v", cs)
				}
				conf, err := e.confirm(t, user, "op_"+name, 3000, "EUR", code)
				if err != nil {
					t.Fatal(err)
				}
				if conf.GetDiscount().GetAmountMinor() != 500 {
					t.Fatalf("ConfirmCoupon = %v", conf)
				}
				x, err := e.Exercise(t, conf.GetConfirmationToken(), "ord_"+name)
				if err != nil {
					t.Fatal(err)
				}
				if x.GetState() != capabilityv1.ExerciseState_EXERCISE_STATE_APPLIED || x.GetCapability() != "coupons:redeem" {
					t.Fatalf("Exercise = %v", x)
				}
				if s := e.state(t, user, code); s != couponsv1.CouponState_COUPON_STATE_REDEEMED {
					t.Fatalf("after exercise state = %v", s)
				}
				if _, err := e.Exercise(t, conf.GetConfirmationToken(), "ord_other"); connect.CodeOf(err) != connect.CodeAlreadyExists {
					t.Fatalf("replay for another order: %v, want already_exists", err)
				}
				if _, err := e.Compensate(t, conf.GetConfirmationToken(), "ord_"+name); err != nil {
					t.Fatal(err)
				}
				if s := e.state(t, user, code); s != couponsv1.CouponState_COUPON_STATE_AVAILABLE {
					t.Fatalf("after compensation state = %v", s)
				}
			})
		}
	})
}

// TestRefusals sends every kind of bad request: each gets its code and
// changes nothing.
func TestRefusals(t *testing.T) {
	t.Parallel()
	e := start(t, sqldbtest.SQLite(t))
	e.grant(t, "usr_alice", campaign("WELCOME5"))
	expiredCampaign := campaign("OLD")
	expiredCampaign.ValidFrom = timestamppb.New(time.Now().Add(-48 * time.Hour))
	expiredCampaign.ValidUntil = timestamppb.New(time.Now().Add(-24 * time.Hour))
	e.grant(t, "usr_alice", expiredCampaign)
	good, err := e.confirm(t, "usr_alice", "op_1", 3000, "EUR", "WELCOME5")
	if err != nil {
		t.Fatal(err)
	}
	foreign, expired := e.Forged(t, token.ConfirmationClaims{
		Registered: token.Registered{Subject: "usr_alice", Audience: []string{"order-processing"}}, OrderProcessingID: "op_1",
		Capabilities: []string{"coupons:redeem"}, Settlement: token.Settlement{AmountMinor: 500, Currency: "EUR"},
	})
	parts := strings.Split(good.GetConfirmationToken(), ".")
	tampered := parts[0] + "." + parts[1] + "x." + parts[2]
	confirm := func(user, owner string, total int64, currency, code string) func() error {
		return func() error {
			_, err := e.coupons.ConfirmCoupon(t.Context(), capabilitytest.Request(e.World.As(t, user, "shop"), &couponsv1.ConfirmCouponRequest{
				CheckoutToken: e.World.Checkout(t, owner, "op_2", total, currency, "coupons"), Code: code,
			}))
			return err
		}
	}
	badCampaign := campaign("BAD")
	badCampaign.MinimumSpend = &typev1.Money{AmountMinor: 100, Currency: "USD"}
	for _, tc := range []struct {
		name string
		call func() error
		want connect.Code
	}{
		{"no transaction token", func() error {
			_, err := e.coupons.ListAvailableCoupons(t.Context(), connect.NewRequest(&couponsv1.ListAvailableCouponsRequest{}))
			return err
		}, connect.CodeUnauthenticated},
		{"grant without admin", func() error {
			_, err := e.coupons.GrantCoupon(t.Context(), capabilitytest.Request(e.World.As(t, "usr_alice", "shop"), &couponsv1.GrantCouponRequest{UserId: "usr_alice", Campaign: campaign("FREE")}))
			return err
		}, connect.CodePermissionDenied},
		{"grant with two currencies", func() error {
			_, err := e.coupons.GrantCoupon(t.Context(), capabilitytest.Request(e.World.As(t, "usr_admin", "admin"), &couponsv1.GrantCouponRequest{UserId: "usr_alice", Campaign: badCampaign}))
			return err
		}, connect.CodeInvalidArgument},
		{"grant same code other terms", func() error {
			other := campaign("WELCOME5")
			other.AmountOff = eur(900)
			_, err := e.coupons.GrantCoupon(t.Context(), capabilitytest.Request(e.World.As(t, "usr_admin", "admin"), &couponsv1.GrantCouponRequest{UserId: "usr_bob", Campaign: other}))
			return err
		}, connect.CodeAlreadyExists},
		{"unknown coupon", confirm("usr_alice", "usr_alice", 3000, "EUR", "NOPE"), connect.CodeNotFound},
		{"expired coupon", confirm("usr_alice", "usr_alice", 3000, "EUR", "OLD"), connect.CodeFailedPrecondition},
		{"below minimum spend", confirm("usr_alice", "usr_alice", 1999, "EUR", "WELCOME5"), connect.CodeFailedPrecondition},
		{"wrong currency", confirm("usr_alice", "usr_alice", 3000, "USD", "WELCOME5"), connect.CodeFailedPrecondition},
		{"someone else's checkout", confirm("usr_bob", "usr_alice", 3000, "EUR", "WELCOME5"), connect.CodePermissionDenied},
		{"tampered token", func() error { _, err := e.Exercise(t, tampered, "ord_1"); return err }, connect.CodeInvalidArgument},
		{"foreign token", func() error { _, err := e.Exercise(t, foreign, "ord_1"); return err }, connect.CodeInvalidArgument},
		{"expired token", func() error { _, err := e.Exercise(t, expired, "ord_1"); return err }, connect.CodeFailedPrecondition},
		{"exercise without workload token", func() error {
			return e.ExerciseAsShopper(t, good.GetConfirmationToken(), "ord_1")
		}, connect.CodeUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); connect.CodeOf(err) != tc.want {
				t.Fatalf("error = %v, want code %v", err, tc.want)
			}
		})
	}
	if s := e.state(t, "usr_alice", "WELCOME5"); s != couponsv1.CouponState_COUPON_STATE_AVAILABLE {
		t.Fatalf("after refused requests state = %v", s)
	}
	if _, err := e.Exercise(t, good.GetConfirmationToken(), "ord_1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Exercise(t, good.GetConfirmationToken(), "ord_2"); connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Fatalf("replayed jti: %v, want already_exists", err)
	}
}
