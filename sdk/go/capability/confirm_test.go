package capability_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/money"
)

var (
	errNotFound = capability.ErrNotFound
	errConflict = capability.ErrIdempotencyConflict
	errMismatch = capability.ErrMismatch
	errInvalid  = capability.ErrInvalidArgument
)

// record is a domain's confirmation record in these tests.
type record struct {
	capability.Kept
	UserID, CheckoutID, Ref, Key string
	Amount                       int64
}

// book is an in-memory store of records, with hooks to fail or to lose the
// race to a concurrent retry.
type book struct {
	mu      sync.Mutex
	byJTI   map[string]record
	byKey   map[string]string // user/key -> jti
	failKey error
	racer   *record // saved first by a "concurrent" retry on the next Save
}

func (b *book) ConfirmationByKey(_ context.Context, userID, key string) (record, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failKey != nil {
		return record{}, b.failKey
	}
	jti, ok := b.byKey[userID+"/"+key]
	if !ok {
		return record{}, fmt.Errorf("confirmation: %w", errNotFound)
	}
	return b.byJTI[jti], nil
}

func (b *book) Confirmation(_ context.Context, jti string) (record, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.byJTI[jti]
	if !ok {
		return record{}, fmt.Errorf("confirmation: %w", errNotFound)
	}
	return r, nil
}

func (b *book) SaveConfirmation(_ context.Context, r record) (record, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.racer != nil {
		first := *b.racer
		b.racer = nil
		b.byJTI[first.JTI], b.byKey[first.UserID+"/"+first.Key] = first, first.JTI
	}
	if jti, ok := b.byKey[r.UserID+"/"+r.Key]; ok && r.Key != "" {
		return b.byJTI[jti], false, nil
	}
	b.byJTI[r.JTI] = r
	if r.Key != "" {
		b.byKey[r.UserID+"/"+r.Key] = r.JTI
	}
	return r, true, nil
}

type issuer struct {
	mu     sync.Mutex
	n      int
	drafts map[string]capability.Draft // by jti
	fail   error
}

func (is *issuer) IssueConfirmation(_ context.Context, d capability.Draft) (capability.Issued, error) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.fail != nil {
		return capability.Issued{}, is.fail
	}
	is.n++
	jti := fmt.Sprintf("jti_%d", is.n)
	is.drafts[jti] = d
	return capability.Issued{Token: "tok." + jti, JTI: jti, ExpiresAt: t0.Add(2 * time.Minute)}, nil
}

// token is the draft signed under jti, as the ports would verify it.
func (is *issuer) token(jti string) capability.Token {
	is.mu.Lock()
	defer is.mu.Unlock()
	d := is.drafts[jti]
	cons := map[string]string{}
	for k, v := range d.Constraints {
		cons[k] = v
	}
	return capability.Token{JTI: jti, Subject: d.Subject, CheckoutID: d.CheckoutID, Capabilities: []string{d.Capability},
		Constraints: cons, Settlement: d.Settlement, ExpiresAt: t0.Add(2 * time.Minute)}
}

type sealer struct{ fail error }

func (s sealer) Seal(id, p string) (string, error) { return id + "|" + p, s.fail }

func (sealer) Open(id, sealed string) (string, error) {
	gotID, p, ok := strings.Cut(sealed, "|")
	if !ok || gotID != id {
		return "", errors.New("sealer: wrong record")
	}
	return p, nil
}

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func bind(r record) capability.Bound {
	s := money.Money{AmountMinor: r.Amount, Currency: "EUR"}
	return capability.Bound{Subject: r.UserID, CheckoutID: r.CheckoutID, Settlement: s, Constraints: map[string]string{
		"ref": r.Ref, "amount_sha256": capability.Hash(r.Ref, r.CheckoutID, fmt.Sprint(r.Amount)),
	}}
}

type fixture struct {
	book   *book
	issuer *issuer
	c      capability.Confirmer[record]
}

func newFixture() *fixture {
	f := &fixture{book: &book{byJTI: map[string]record{}, byKey: map[string]string{}}, issuer: &issuer{drafts: map[string]capability.Draft{}}}
	f.c = capability.Confirmer[record]{
		Capability: "test:use", Issuer: f.issuer, Sealer: sealer{},
		Records: f.book, Bind: bind, Now: func() time.Time { return t0 },
		Kept: func(r *record) *capability.Kept { return &r.Kept },
	}
	return f
}

// request asks to use amount on checkout op_1 for usr_ann with key.
func request(key string, amount int64, prepared *int) capability.Request[record] {
	return capability.Request[record]{
		UserID: "usr_ann", Key: key,
		Same: func(prev record) bool { return prev.CheckoutID == "op_1" && prev.Amount == amount },
		Prepare: func(context.Context) (record, error) {
			*prepared++
			if amount <= 0 {
				return record{}, fmt.Errorf("%w: amount must be positive", errInvalid)
			}
			return record{UserID: "usr_ann", CheckoutID: "op_1", Ref: "ref_1", Key: key, Amount: amount}, nil
		},
	}
}

func TestHash(t *testing.T) {
	t.Parallel()
	sum := sha256.Sum256([]byte("op_1\x00cpn_1\x00500\x00EUR"))
	if got, want := capability.Hash("op_1", "cpn_1", "500", "EUR"), hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("Hash = %s, want %s", got, want)
	}
}

func TestConfirm(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("issues, seals, saves and replays", func(t *testing.T) {
		t.Parallel()
		f, n := newFixture(), 0
		first, err := f.c.Confirm(ctx, request("k1", 500, &n))
		if err != nil || first.Replayed || first.Token != "tok.jti_1" || !first.ExpiresAt.Equal(t0.Add(2*time.Minute)) {
			t.Fatalf("first = %+v, %v", first, err)
		}
		if r := first.Record; r.JTI != "jti_1" || r.SealedToken != "jti_1|tok.jti_1" || !r.CreatedAt.Equal(t0) {
			t.Fatalf("record = %+v", r)
		}
		d := f.issuer.drafts["jti_1"]
		if b := bind(first.Record); d.Subject != "usr_ann" || d.CheckoutID != "op_1" || d.Capability != "test:use" ||
			d.Settlement != b.Settlement || d.Constraints["amount_sha256"] != b.Constraints["amount_sha256"] {
			t.Fatalf("draft = %+v", d)
		}
		again, err := f.c.Confirm(ctx, request("k1", 500, &n))
		if err != nil || !again.Replayed || again.Token != first.Token || !again.ExpiresAt.Equal(first.ExpiresAt) || again.Record != first.Record {
			t.Fatalf("replay = %+v, %v", again, err)
		}
		if n != 1 || f.issuer.n != 1 {
			t.Fatalf("prepared %d times, issued %d tokens; want 1, 1", n, f.issuer.n)
		}
	})

	t.Run("a key reused for another request is refused", func(t *testing.T) {
		t.Parallel()
		f, n := newFixture(), 0
		if _, err := f.c.Confirm(ctx, request("k1", 500, &n)); err != nil {
			t.Fatal(err)
		}
		if _, err := f.c.Confirm(ctx, request("k1", 600, &n)); !errors.Is(err, errConflict) {
			t.Fatalf("err = %v, want the conflict", err)
		}
	})

	t.Run("without a key every call issues", func(t *testing.T) {
		t.Parallel()
		f, n := newFixture(), 0
		a, err1 := f.c.Confirm(ctx, request("", 500, &n))
		b, err2 := f.c.Confirm(ctx, request("", 500, &n))
		if err1 != nil || err2 != nil || a.Token == b.Token || a.Replayed || b.Replayed {
			t.Fatalf("a = %+v, %v; b = %+v, %v", a, err1, b, err2)
		}
	})

	t.Run("a concurrent retry that saved first is replayed", func(t *testing.T) {
		t.Parallel()
		f, n := newFixture(), 0
		f.book.racer = &record{UserID: "usr_ann", CheckoutID: "op_1", Ref: "ref_1", Key: "k1", Amount: 500,
			Kept: capability.Kept{JTI: "jti_racer", SealedToken: "jti_racer|tok.racer", ExpiresAt: t0.Add(time.Minute)}}
		got, err := f.c.Confirm(ctx, request("k1", 500, &n))
		if err != nil || !got.Replayed || got.Token != "tok.racer" || got.Record.JTI != "jti_racer" {
			t.Fatalf("got %+v, %v; want the racer's token", got, err)
		}
	})

	t.Run("refusals and failures", func(t *testing.T) {
		t.Parallel()
		boom := errors.New("boom")
		for _, tc := range []struct {
			name   string
			setup  func(*fixture)
			amount int64
			want   error
			text   string
		}{
			{"prepare refuses", func(*fixture) {}, 0, errInvalid, "amount must be positive"},
			{"key lookup fails", func(f *fixture) { f.book.failKey = boom }, 500, boom, "boom"},
			{"issuer fails", func(f *fixture) { f.issuer.fail = boom }, 500, boom, "issue confirmation: boom"},
			{"sealer fails", func(f *fixture) { f.c.Sealer = sealer{fail: boom} }, 500, boom, "seal confirmation: boom"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				f, n := newFixture(), 0
				tc.setup(f)
				_, err := f.c.Confirm(ctx, request("k1", tc.amount, &n))
				if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
					t.Fatalf("err = %v, want %v (%q)", err, tc.want, tc.text)
				}
				if len(f.book.byJTI) != 0 {
					t.Fatalf("saved %v after a failure", f.book.byJTI)
				}
			})
		}
	})
}

func TestCheck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, n := newFixture(), 0
	c, err := f.c.Confirm(ctx, request("k1", 500, &n))
	if err != nil {
		t.Fatal(err)
	}
	good := f.issuer.token(c.Record.JTI)
	if err := f.c.CheckExercise(ctx, good, "ord_1"); err != nil {
		t.Fatalf("CheckExercise(good) = %v", err)
	}
	if err := f.c.CheckCompensate(ctx, good, "ord_1", "capture failed"); err != nil {
		t.Fatalf("CheckCompensate(good) = %v", err)
	}
	for _, tc := range []struct {
		name   string
		edit   func(*capability.Token)
		order  string
		reason string
		want   error
	}{
		{"other capability", func(t *capability.Token) { t.Capabilities = []string{"test:other"} }, "ord_1", "", errMismatch},
		{"two capabilities", func(t *capability.Token) { t.Capabilities = append(t.Capabilities, "test:use") }, "ord_1", "", errMismatch},
		{"unknown jti", func(t *capability.Token) { t.JTI = "jti_none" }, "ord_1", "", errMismatch},
		{"other subject", func(t *capability.Token) { t.Subject = "usr_bob" }, "ord_1", "", errMismatch},
		{"other checkout", func(t *capability.Token) { t.CheckoutID = "op_2" }, "ord_1", "", errMismatch},
		{"other settlement", func(t *capability.Token) { t.Settlement.AmountMinor++ }, "ord_1", "", errMismatch},
		{"changed constraint", func(t *capability.Token) { t.Constraints["ref"] = "ref_2" }, "ord_1", "", errMismatch},
		{"missing constraint", func(t *capability.Token) { delete(t.Constraints, "ref") }, "ord_1", "", errMismatch},
		{"swapped constraint", func(t *capability.Token) { delete(t.Constraints, "ref"); t.Constraints["x"] = "ref_1" }, "ord_1", "", errMismatch},
		{"extra constraint", func(t *capability.Token) { t.Constraints["x"] = "y" }, "ord_1", "", errMismatch},
		{"no order", func(*capability.Token) {}, "", "", errInvalid},
		{"long reason", func(*capability.Token) {}, "ord_1", strings.Repeat("x", capability.MaxReasonLen+1), capability.ErrReasonTooLong},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok := f.issuer.token(c.Record.JTI)
			tc.edit(&tok)
			if err := f.c.CheckCompensate(ctx, tok, tc.order, tc.reason); !errors.Is(err, tc.want) {
				t.Fatalf("CheckCompensate = %v, want %v", err, tc.want)
			}
			if tc.reason == "" {
				if err := f.c.CheckExercise(ctx, tok, tc.order); !errors.Is(err, tc.want) {
					t.Fatalf("CheckExercise = %v, want %v", err, tc.want)
				}
			}
		})
	}
}
