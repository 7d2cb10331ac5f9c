package embedded

import (
	"context"
	"fmt"
	"os"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	couponsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1"
	paymentsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/payments/v1"
	pointsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1"
	typev1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/type/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/client"
	"github.com/tokenrelay/tokenrelay/services/identity"
)

// Demo cards added to the shopper by Seed; see the payments package for the
// behaviour of each simulated card.
const (
	DemoCard            = "4242424242424242"
	DemoCardFailCapture = "4000000000000341"
	DemoCardDeclined    = "4000000000000002"
)

// Seed gives the demo shopper something to check out with, through the
// public API as the demo admin would: two coupons, 1,000 points and three
// cards (one that works, one that fails at capture, one that is declined).
// It runs once per data directory: marker is written when it succeeds, and
// its presence skips it. Calls answered unavailable are retried until ctx
// ends (see seedClient): every call is idempotent.
func Seed(ctx context.Context, baseURL, marker string) error {
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	admin, shopper := seedClient(baseURL), seedClient(baseURL)
	if _, err := admin.Login(ctx, "admin", identity.DemoAdminPassword); err != nil {
		return fmt.Errorf("login admin: %w", err)
	}
	s, err := shopper.Login(ctx, "shopper", identity.DemoShopperPassword)
	if err != nil {
		return fmt.Errorf("login shopper: %w", err)
	}
	user := s.User.ID
	now := time.Now().UTC().Truncate(time.Second)
	from, until := timestamppb.New(now.Add(-24*time.Hour)), timestamppb.New(now.Add(365*24*time.Hour))
	eur := func(n int64) *typev1.Money { return &typev1.Money{AmountMinor: n, Currency: "EUR"} }

	for _, c := range []*couponsv1.Campaign{
		{Code: "WELCOME5", Description: "5.00 EUR off any order of 20.00 EUR or more", Kind: couponsv1.DiscountKind_DISCOUNT_KIND_FIXED,
			AmountOff: eur(500), MinimumSpend: eur(2000), ValidFrom: from, ValidUntil: until},
		{Code: "TEA10", Description: "10% off", Kind: couponsv1.DiscountKind_DISCOUNT_KIND_PERCENT,
			PercentOffBps: 1000, MinimumSpend: eur(0), ValidFrom: from, ValidUntil: until},
	} {
		if _, err := admin.Coupons.GrantCoupon(ctx, connect.NewRequest(&couponsv1.GrantCouponRequest{
			UserId: user, Campaign: c, IdempotencyKey: "seed-coupon-" + c.GetCode(),
		})); err != nil && connect.CodeOf(err) != connect.CodeAlreadyExists {
			return fmt.Errorf("grant coupon %s: %w", c.GetCode(), err)
		}
	}
	if _, err := admin.Points.GrantPoints(ctx, connect.NewRequest(&pointsv1.GrantPointsRequest{
		UserId: user, Points: 1000, Reason: "welcome", IdempotencyKey: "seed-points",
	})); err != nil {
		return fmt.Errorf("grant points: %w", err)
	}
	for _, card := range []struct{ number, label string }{
		{DemoCard, "Everyday card"},
		{DemoCardFailCapture, "Fails at capture (test)"},
		{DemoCardDeclined, "Declined (test)"},
	} {
		if _, err := admin.Payments.AddPaymentMethod(ctx, connect.NewRequest(&paymentsv1.AddPaymentMethodRequest{
			UserId: user, CardNumber: card.number, ExpiryMonth: 12, ExpiryYear: int32(now.Year() + 3),
			Label: card.label, IdempotencyKey: "seed-card-" + card.number[len(card.number)-4:],
		})); err != nil {
			return fmt.Errorf("add card ending %s: %w", card.number[len(card.number)-4:], err)
		}
	}
	return os.WriteFile(marker, []byte(now.Format(time.RFC3339)+"\n"), 0o600)
}

// seedClient is the seeder's client of the gateway at baseURL: calls
// answered unavailable are retried, waiting 50 ms doubling to 2 s, until
// ctx ends: a deployment that has just started may answer so while a
// service still fetches a peer's keys (its first fetch, made before that
// peer listened, failed), which is what unavailable tells a client to
// retry. Every call is idempotent (an idempotency key each).
func seedClient(baseURL string) *client.Client {
	return client.New(baseURL, client.WithRetries(-1), client.WithRetryDelay(50*time.Millisecond),
		client.WithMaxRetryDelay(2*time.Second))
}
