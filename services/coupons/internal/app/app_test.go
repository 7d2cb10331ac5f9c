package app_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/ids"
	"github.com/tokenrelay/tokenrelay/sdk/go/money"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/services/coupons/internal/adapters"
	"github.com/tokenrelay/tokenrelay/services/coupons/internal/app"
	"github.com/tokenrelay/tokenrelay/services/coupons/internal/domain"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// fakeIssuer signs nothing: it hands out opaque tokens and remembers each
// draft, so that a test can build the capability.Token the ports would have
// verified from it.
type fakeIssuer struct {
	mu     sync.Mutex
	drafts map[string]capability.Draft // by token
	jtis   map[string]string           // by token
}

func (f *fakeIssuer) IssueConfirmation(_ context.Context, d capability.Draft) (capability.Issued, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	jti := ids.New("")
	tok := "tok." + jti
	f.drafts[tok], f.jtis[tok] = d, jti
	return capability.Issued{Token: tok, JTI: jti, ExpiresAt: t0.Add(2 * time.Minute)}, nil
}

func (f *fakeIssuer) issuedCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.drafts)
}

// verified is the token as the ports would pass it to Exercise.
func (f *fakeIssuer) verified(t *testing.T, tok string) capability.Token {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.drafts[tok]
	if !ok {
		t.Fatalf("token %q was not issued", tok)
	}
	return capability.Token{JTI: f.jtis[tok], Issuer: "coupons", Subject: d.Subject, CheckoutID: d.CheckoutID,
		Capabilities: []string{d.Capability}, Constraints: maps.Clone(d.Constraints), Settlement: d.Settlement,
		ExpiresAt: t0.Add(2 * time.Minute)}
}

// fakeSealer binds the "ciphertext" to the record id, like AES-GCM's
// associated data, so that a token opened under another id is refused.
type fakeSealer struct{}

func (fakeSealer) Seal(id, plaintext string) (string, error) { return id + "|" + plaintext, nil }

func (fakeSealer) Open(id, sealed string) (string, error) {
	gotID, plaintext, ok := strings.Cut(sealed, "|")
	if !ok || gotID != id {
		return "", errors.New("fake sealer: wrong record")
	}
	return plaintext, nil
}

// clock is a settable now for the service.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

type fixture struct {
	svc    *app.Service
	store  *adapters.Store
	issuer *fakeIssuer
	clock  *clock
}

func newFixture(t *testing.T, db *sqldb.DB) fixture {
	t.Helper()
	store, err := adapters.NewStore(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{store: store, issuer: &fakeIssuer{drafts: map[string]capability.Draft{}, jtis: map[string]string{}},
		clock: &clock{t: t0}}
	f.svc = app.New(store, f.issuer, fakeSealer{}, f.clock.Now)
	return f
}

var admin = app.Caller{UserID: "usr_admin", Admin: true}

func eur(n int64) money.Money { return money.Money{AmountMinor: n, Currency: "EUR"} }

// The campaigns of the tests, relative to t0.
var (
	save5 = domain.Campaign{Code: "SAVE-5", Description: "5 off from 10", Kind: domain.DiscountFixed, AmountOff: 500,
		MinimumSpend: 1000, Currency: "EUR", ValidFrom: t0.Add(-24 * time.Hour), ValidUntil: t0.Add(24 * time.Hour)}
	pct = domain.Campaign{Code: "PCT-12", Kind: domain.DiscountPercent, PercentOffBPS: 1250,
		Currency: "EUR", ValidFrom: t0.Add(-24 * time.Hour), ValidUntil: t0.Add(48 * time.Hour)}
	tiny = domain.Campaign{Code: "TINY", Kind: domain.DiscountPercent, PercentOffBPS: 1,
		Currency: "EUR", ValidFrom: t0.Add(-24 * time.Hour), ValidUntil: t0.Add(72 * time.Hour)}
	old = domain.Campaign{Code: "OLD", Kind: domain.DiscountFixed, AmountOff: 100,
		Currency: "EUR", ValidFrom: t0.Add(-48 * time.Hour), ValidUntil: t0}
	soon = domain.Campaign{Code: "SOON", Kind: domain.DiscountFixed, AmountOff: 100,
		Currency: "EUR", ValidFrom: t0.Add(time.Second), ValidUntil: t0.Add(96 * time.Hour)}
)

func (f fixture) grant(t *testing.T, user string, cs ...domain.Campaign) {
	t.Helper()
	for _, c := range cs {
		if _, err := f.svc.Grant(t.Context(), admin, user, c, ""); err != nil {
			t.Fatalf("grant %s: %v", c.Code, err)
		}
	}
}

func (f fixture) coupons(t *testing.T, user string) []domain.Coupon {
	t.Helper()
	cs, err := f.store.Coupons(t.Context(), user)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(cs, func(a, b domain.Coupon) int { return strings.Compare(a.ID, b.ID) })
	return cs
}

func TestGrant(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		f := newFixture(t, db)
		ctx := t.Context()
		if _, err := f.svc.Grant(ctx, app.Caller{UserID: "usr_ann"}, "usr_ann", save5, ""); !errors.Is(err, domain.ErrPermissionDenied) {
			t.Fatalf("grant without admin: %v, want ErrPermissionDenied", err)
		}
		if _, err := f.svc.Grant(ctx, admin, "", save5, ""); !errors.Is(err, domain.ErrInvalidArgument) {
			t.Fatalf("grant without user: %v, want ErrInvalidArgument", err)
		}
		bad := save5
		bad.Code = "save-5"
		if _, err := f.svc.Grant(ctx, admin, "usr_ann", bad, ""); !errors.Is(err, domain.ErrInvalidArgument) {
			t.Fatalf("grant of an invalid campaign: %v, want ErrInvalidArgument", err)
		}
		if got := f.coupons(t, "usr_ann"); len(got) != 0 {
			t.Fatalf("refused grants left coupons: %+v", got)
		}

		first, err := f.svc.Grant(ctx, admin, "usr_ann", save5, "k1")
		if err != nil || first.GrantedBy != "usr_admin" || first.State != domain.CouponAvailable {
			t.Fatalf("Grant = %+v, %v", first, err)
		}
		// Times finer than the store keeps and in another zone are the same
		// campaign.
		same := save5
		same.ValidFrom = save5.ValidFrom.In(time.FixedZone("CET", 3600)).Add(100 * time.Nanosecond)
		if again, err := f.svc.Grant(ctx, admin, "usr_ann", same, "k2"); err != nil || again.ID != first.ID {
			t.Fatalf("second grant of the campaign = %+v, %v; want coupon %s", again, err, first.ID)
		}
		if _, err := f.svc.Grant(ctx, admin, "usr_ann", pct, "k1"); !errors.Is(err, domain.ErrIdempotencyConflict) {
			t.Fatalf("key reused for another campaign: %v, want ErrIdempotencyConflict", err)
		}
		other := save5
		other.AmountOff = 600
		if _, err := f.svc.Grant(ctx, admin, "usr_bob", other, ""); !errors.Is(err, domain.ErrCampaignConflict) {
			t.Fatalf("campaign code with other terms: %v, want ErrCampaignConflict", err)
		}
		if got := f.coupons(t, "usr_bob"); len(got) != 0 {
			t.Fatalf("a refused grant left coupons: %+v", got)
		}
	})
}

func TestList(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		f := newFixture(t, db)
		ctx := t.Context()
		ann := app.Caller{UserID: "usr_ann"}
		f.grant(t, "usr_ann", old, soon, pct, save5, tiny)
		// Redeem a second SAVE-5-like coupon to see ALREADY_USED.
		used := save5
		used.Code, used.ValidUntil = "USED", t0.Add(time.Hour)
		f.grant(t, "usr_ann", used)
		co := domain.Checkout{ID: "op_1", UserID: "usr_ann", Total: eur(1999)}
		c, err := f.svc.Confirm(ctx, ann, co, "USED", "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Exercise(ctx, f.issuer.verified(t, c.Token), "ord_1"); err != nil {
			t.Fatal(err)
		}
		f.grant(t, "usr_bob", save5)

		type row struct {
			code     string
			reason   domain.Reason
			discount money.Money
		}
		tests := []struct {
			name string
			co   *domain.Checkout
			want []row
		}{
			{"without a checkout", nil, []row{
				{"SAVE-5", domain.ReasonNone, money.Money{}},
				{"PCT-12", domain.ReasonNone, money.Money{}},
				{"TINY", domain.ReasonNone, money.Money{}},
				{"OLD", domain.ReasonExpired, money.Money{}},
				{"USED", domain.ReasonAlreadyUsed, money.Money{}},
				{"SOON", domain.ReasonNotYetValid, money.Money{}},
			}},
			{"with a checkout", &co, []row{
				{"SAVE-5", domain.ReasonNone, eur(500)},
				{"PCT-12", domain.ReasonNone, eur(249)}, // 12.5 % of 1999, rounded down
				{"OLD", domain.ReasonExpired, money.Money{}},
				{"USED", domain.ReasonAlreadyUsed, money.Money{}},
				{"TINY", domain.ReasonBelowMinimumSpend, money.Money{}}, // 0.01 % of 1999 is nothing
				{"SOON", domain.ReasonNotYetValid, money.Money{}},
			}},
			{"below the minimum spend", &domain.Checkout{ID: "op_2", UserID: "usr_ann", Total: eur(999)}, []row{
				{"PCT-12", domain.ReasonNone, eur(124)},
				{"OLD", domain.ReasonExpired, money.Money{}},
				{"USED", domain.ReasonAlreadyUsed, money.Money{}},
				{"SAVE-5", domain.ReasonBelowMinimumSpend, money.Money{}},
				{"TINY", domain.ReasonBelowMinimumSpend, money.Money{}},
				{"SOON", domain.ReasonNotYetValid, money.Money{}},
			}},
			{"in another currency", &domain.Checkout{ID: "op_3", UserID: "usr_ann", Total: money.Money{AmountMinor: 5000, Currency: "USD"}}, []row{
				{"OLD", domain.ReasonExpired, money.Money{}},
				{"USED", domain.ReasonAlreadyUsed, money.Money{}},
				{"SAVE-5", domain.ReasonCurrencyMismatch, money.Money{}},
				{"PCT-12", domain.ReasonCurrencyMismatch, money.Money{}},
				{"TINY", domain.ReasonCurrencyMismatch, money.Money{}},
				{"SOON", domain.ReasonNotYetValid, money.Money{}},
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				listed, err := f.svc.List(ctx, ann, tt.co)
				if err != nil {
					t.Fatal(err)
				}
				got := make([]row, len(listed))
				for i, l := range listed {
					got[i] = row{l.Coupon.Campaign.Code, l.Unusable, l.Discount}
				}
				if !slices.Equal(got, tt.want) {
					t.Fatalf("List =\n%v\nwant\n%v", got, tt.want)
				}
			})
		}
		bobs := domain.Checkout{ID: "op_b", UserID: "usr_bob", Total: eur(5000)}
		if _, err := f.svc.List(ctx, ann, &bobs); !errors.Is(err, domain.ErrPermissionDenied) {
			t.Fatalf("list against another user's checkout: %v, want ErrPermissionDenied", err)
		}
	})
}

func TestConfirm(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		f := newFixture(t, db)
		ctx := t.Context()
		ann := app.Caller{UserID: "usr_ann"}
		f.grant(t, "usr_ann", save5, pct, tiny, old, soon)
		f.grant(t, "usr_bob", save5)
		co := domain.Checkout{ID: "op_1", UserID: "usr_ann", Total: eur(2000)}

		t.Run("happy path", func(t *testing.T) {
			c, err := f.svc.Confirm(ctx, ann, co, "SAVE-5", "key-1")
			if err != nil {
				t.Fatal(err)
			}
			if c.Token == "" || !c.ExpiresAt.Equal(t0.Add(2*time.Minute)) || c.Discount != eur(500) ||
				c.Coupon.Campaign.Code != "SAVE-5" || c.Coupon.State != domain.CouponAvailable {
				t.Fatalf("Confirm = %+v", c)
			}
			tok := f.issuer.verified(t, c.Token)
			if tok.Subject != "usr_ann" || tok.CheckoutID != "op_1" || !tok.Grants("coupons:redeem") ||
				tok.Settlement != eur(500) || tok.Constraints["coupon_id"] != c.Coupon.ID ||
				len(tok.Constraints["discount_sha256"]) != 64 {
				t.Fatalf("draft = %+v", tok)
			}
			rec, err := f.store.ConfirmationByKey(ctx, "usr_ann", "key-1")
			if err != nil || rec.JTI != tok.JTI || rec.CouponID != c.Coupon.ID || rec.Discount != 500 ||
				rec.SealedToken != rec.JTI+"|"+c.Token {
				t.Fatalf("stored confirmation = %+v, %v", rec, err)
			}
		})

		t.Run("percentage rounds down and fixed is capped", func(t *testing.T) {
			c, err := f.svc.Confirm(ctx, ann, domain.Checkout{ID: "op_p", UserID: "usr_ann", Total: eur(1999)}, "PCT-12", "")
			if err != nil || c.Discount != eur(249) {
				t.Fatalf("Confirm PCT-12 = %+v, %v; want 249 EUR", c, err)
			}
			capped := save5
			capped.Code, capped.MinimumSpend = "CAPPED", 0
			f.grant(t, "usr_ann", capped)
			c, err = f.svc.Confirm(ctx, ann, domain.Checkout{ID: "op_c", UserID: "usr_ann", Total: eur(300)}, "CAPPED", "")
			if err != nil || c.Discount != eur(300) || f.issuer.verified(t, c.Token).Settlement != eur(300) {
				t.Fatalf("Confirm CAPPED = %+v, %v; want 300 EUR", c, err)
			}
		})

		t.Run("retry with the same key returns the same token", func(t *testing.T) {
			first, err := f.svc.Confirm(ctx, ann, co, "SAVE-5", "key-r")
			if err != nil {
				t.Fatal(err)
			}
			issued := f.issuer.issuedCount()
			again, err := f.svc.Confirm(ctx, ann, co, "SAVE-5", "key-r")
			if err != nil || again.Token != first.Token || !again.ExpiresAt.Equal(first.ExpiresAt) || again.Discount != first.Discount {
				t.Fatalf("retry = %+v, %v; want %+v", again, err, first)
			}
			if f.issuer.issuedCount() != issued {
				t.Fatal("the retry issued another token")
			}
			// Concurrent retries agree on one token: the losers' tokens were
			// never stored, so they can never be exercised.
			var wg sync.WaitGroup
			tokens := make([]string, 8)
			for i := range tokens {
				wg.Go(func() {
					c, err := f.svc.Confirm(context.Background(), ann, co, "SAVE-5", "key-par")
					if err != nil {
						t.Errorf("concurrent confirm: %v", err)
					}
					tokens[i] = c.Token
				})
			}
			wg.Wait()
			for _, tok := range tokens {
				if tok != tokens[0] {
					t.Fatalf("concurrent retries returned different tokens: %q", tokens)
				}
			}
			if _, err := f.svc.Confirm(ctx, ann, co, "PCT-12", "key-r"); !errors.Is(err, domain.ErrIdempotencyConflict) {
				t.Fatalf("key reused with another code: %v, want ErrIdempotencyConflict", err)
			}
			other := co
			other.ID = "op_other"
			if _, err := f.svc.Confirm(ctx, ann, other, "SAVE-5", "key-r"); !errors.Is(err, domain.ErrIdempotencyConflict) {
				t.Fatalf("key reused with another checkout: %v, want ErrIdempotencyConflict", err)
			}
		})

		refusals := []struct {
			name   string
			co     domain.Checkout
			code   string
			want   error
			reason domain.Reason
		}{
			{"unknown coupon", co, "NOPE", domain.ErrNotFound, 0},
			{"malformed code", co, "save 5", domain.ErrInvalidArgument, 0},
			{"expired coupon", co, "OLD", domain.ErrUnusable, domain.ReasonExpired},
			{"coupon not yet valid", co, "SOON", domain.ErrUnusable, domain.ReasonNotYetValid},
			{"below the minimum spend", domain.Checkout{ID: "op_1", UserID: "usr_ann", Total: eur(999)}, "SAVE-5",
				domain.ErrUnusable, domain.ReasonBelowMinimumSpend},
			{"checkout in another currency", domain.Checkout{ID: "op_1", UserID: "usr_ann",
				Total: money.Money{AmountMinor: 2000, Currency: "USD"}}, "SAVE-5", domain.ErrUnusable, domain.ReasonCurrencyMismatch},
			{"someone else's checkout", domain.Checkout{ID: "op_b", UserID: "usr_bob", Total: eur(2000)}, "SAVE-5",
				domain.ErrPermissionDenied, 0},
			{"no discount", domain.Checkout{ID: "op_1", UserID: "usr_ann", Total: eur(9999)}, "TINY",
				domain.ErrUnusable, domain.ReasonBelowMinimumSpend},
			{"malformed total", domain.Checkout{ID: "op_1", UserID: "usr_ann", Total: money.Money{AmountMinor: 2000, Currency: "eu"}},
				"SAVE-5", domain.ErrInvalidArgument, 0},
		}
		for _, tt := range refusals {
			t.Run("refused: "+tt.name, func(t *testing.T) {
				issued := f.issuer.issuedCount()
				before := f.coupons(t, "usr_ann")
				key := "key-" + tt.name
				_, err := f.svc.Confirm(ctx, ann, tt.co, tt.code, key)
				if !errors.Is(err, tt.want) {
					t.Fatalf("Confirm = %v, want %v", err, tt.want)
				}
				if tt.reason != 0 {
					if ue, ok := errors.AsType[*domain.UnusableError](err); !ok || ue.Reason != tt.reason {
						t.Fatalf("Confirm = %v, want reason %v", err, tt.reason)
					}
				}
				// Nothing changed: no token, no record, the coupons as they were.
				if f.issuer.issuedCount() != issued {
					t.Fatal("a refused request issued a token")
				}
				if _, err := f.store.ConfirmationByKey(ctx, "usr_ann", key); !errors.Is(err, domain.ErrNotFound) {
					t.Fatalf("a refused request stored a confirmation: %v", err)
				}
				if after := f.coupons(t, "usr_ann"); !slices.EqualFunc(before, after, sameCoupon) {
					t.Fatalf("coupons changed:\n%+v\n%+v", before, after)
				}
				// The key stays free for a good request.
				if _, err := f.svc.Confirm(ctx, ann, co, "SAVE-5", key); err != nil {
					t.Fatalf("good request after the refusal: %v", err)
				}
			})
		}
	})
}

func sameCoupon(a, b domain.Coupon) bool {
	return a.ID == b.ID && a.State == b.State && a.RedeemedJTI == b.RedeemedJTI && a.Campaign.SameTerms(b.Campaign)
}

func TestExerciseAndCompensate(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		f := newFixture(t, db)
		ctx := t.Context()
		ann := app.Caller{UserID: "usr_ann"}
		f.grant(t, "usr_ann", save5, pct)
		co := domain.Checkout{ID: "op_1", UserID: "usr_ann", Total: eur(2000)}
		confirm := func(code string) capability.Token {
			t.Helper()
			c, err := f.svc.Confirm(ctx, ann, co, code, "")
			if err != nil {
				t.Fatal(err)
			}
			return f.issuer.verified(t, c.Token)
		}
		state := func(code string) domain.CouponState {
			t.Helper()
			cp, err := f.store.CouponByCode(ctx, "usr_ann", code)
			if err != nil {
				t.Fatal(err)
			}
			return cp.State
		}

		t.Run("tokens that do not match the record", func(t *testing.T) {
			tok, other := confirm("SAVE-5"), confirm("PCT-12")
			tampered := map[string]func(*capability.Token){
				"other capability":     func(t *capability.Token) { t.Capabilities = []string{"coupons:admin"} },
				"extra capability":     func(t *capability.Token) { t.Capabilities = append(t.Capabilities, "points:spend") },
				"no capability":        func(t *capability.Token) { t.Capabilities = nil },
				"other subject":        func(t *capability.Token) { t.Subject = "usr_bob" },
				"other checkout":       func(t *capability.Token) { t.CheckoutID = "op_2" },
				"larger settlement":    func(t *capability.Token) { t.Settlement = eur(501) },
				"other currency":       func(t *capability.Token) { t.Settlement.Currency = "USD" },
				"other coupon":         func(t *capability.Token) { t.Constraints["coupon_id"] = "cpn_other" },
				"other hash":           func(t *capability.Token) { t.Constraints["discount_sha256"] = strings.Repeat("0", 64) },
				"extra constraint":     func(t *capability.Token) { t.Constraints["x"] = "y" },
				"missing constraint":   func(t *capability.Token) { delete(t.Constraints, "coupon_id") },
				"unknown jti":          func(t *capability.Token) { t.JTI = ids.New("") },
				"another record's jti": func(t *capability.Token) { t.JTI = other.JTI },
			}
			for name, change := range tampered {
				bad := tok
				bad.Capabilities = slices.Clone(tok.Capabilities)
				bad.Constraints = maps.Clone(tok.Constraints)
				change(&bad)
				if _, err := f.svc.Exercise(ctx, bad, "ord_t"); !errors.Is(err, domain.ErrMismatch) {
					t.Fatalf("exercise with %s: %v, want ErrMismatch", name, err)
				}
				if _, err := f.svc.Compensate(ctx, bad, "ord_t", ""); !errors.Is(err, domain.ErrMismatch) {
					t.Fatalf("compensate with %s: %v, want ErrMismatch", name, err)
				}
			}
			if state("SAVE-5") != domain.CouponAvailable {
				t.Fatal("a refused exercise redeemed the coupon")
			}
			if _, err := f.svc.Exercise(ctx, tok, ""); !errors.Is(err, domain.ErrInvalidArgument) {
				t.Fatalf("exercise without order: %v", err)
			}
			if _, err := f.svc.Compensate(ctx, tok, "ord_t", strings.Repeat("x", 201)); !errors.Is(err, domain.ErrInvalidArgument) {
				t.Fatalf("compensate with a long reason: %v", err)
			}
		})

		t.Run("exercise, retry, reuse, compensate", func(t *testing.T) {
			tok := confirm("SAVE-5")
			x, err := f.svc.Exercise(ctx, tok, "ord_1")
			if err != nil || x.State != domain.ExerciseApplied || x.Discount != 500 || x.Currency != "EUR" {
				t.Fatalf("Exercise = %+v, %v", x, err)
			}
			if state("SAVE-5") != domain.CouponRedeemed {
				t.Fatal("the coupon is not redeemed")
			}
			if again, err := f.svc.Exercise(ctx, tok, "ord_1"); err != nil || again != x {
				t.Fatalf("retry = %+v, %v; want %+v", again, err, x)
			}
			if _, err := f.svc.Exercise(ctx, tok, "ord_2"); !errors.Is(err, domain.ErrAlreadyExercised) {
				t.Fatalf("other order: %v, want ErrAlreadyExercised", err)
			}
			// The coupon is now used: a new confirmation is refused.
			if _, err := f.svc.Confirm(ctx, ann, co, "SAVE-5", ""); !errors.Is(err, domain.ErrUnusable) {
				t.Fatalf("confirm a used coupon: %v, want ErrUnusable", err)
			}
			x, err = f.svc.Compensate(ctx, tok, "ord_1", "payment failed")
			if err != nil || x.State != domain.ExerciseCompensated {
				t.Fatalf("Compensate = %+v, %v", x, err)
			}
			if state("SAVE-5") != domain.CouponAvailable {
				t.Fatal("compensation did not restore the coupon")
			}
			// Restored, the coupon can be confirmed and redeemed again.
			if _, err := f.svc.Exercise(ctx, confirm("SAVE-5"), "ord_3"); err != nil {
				t.Fatal(err)
			}
		})

		t.Run("void, and a coupon confirmed twice", func(t *testing.T) {
			voided, first, second := confirm("PCT-12"), confirm("PCT-12"), confirm("PCT-12")
			if x, err := f.svc.Compensate(ctx, voided, "ord_v", "checkout cancelled"); err != nil || !x.AppliedAt.IsZero() {
				t.Fatalf("void = %+v, %v", x, err)
			}
			if _, err := f.svc.Exercise(ctx, voided, "ord_v"); !errors.Is(err, domain.ErrVoided) {
				t.Fatalf("exercise after void: %v, want ErrVoided", err)
			}
			if _, err := f.svc.Exercise(ctx, first, "ord_f"); err != nil {
				t.Fatal(err)
			}
			_, err := f.svc.Exercise(ctx, second, "ord_s")
			if ue, ok := errors.AsType[*domain.UnusableError](err); !ok || ue.Reason != domain.ReasonAlreadyUsed {
				t.Fatalf("second confirmation: %v, want already used", err)
			}
		})

		t.Run("validity is judged again at exercise", func(t *testing.T) {
			late := pct
			late.Code = "LATE"
			f.grant(t, "usr_ann", late)
			tok := confirm("LATE")
			f.clock.Set(late.ValidUntil)
			defer f.clock.Set(t0)
			_, err := f.svc.Exercise(ctx, tok, "ord_l")
			if ue, ok := errors.AsType[*domain.UnusableError](err); !ok || ue.Reason != domain.ReasonExpired {
				t.Fatalf("exercise after the window: %v, want expired", err)
			}
			if state("LATE") != domain.CouponAvailable {
				t.Fatal("a refused exercise redeemed the coupon")
			}
		})
	})
}
