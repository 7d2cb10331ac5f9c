package capabilityrpc_test

import (
	"context"
	"log/slog"
	"maps"
	"path/filepath"
	"testing"

	"connectrpc.com/connect"

	capabilityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilityrpc"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/sealed"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/money"
	"github.com/tokenrelay/tokenrelay/sdk/go/rpcerr"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
)

// paymentsKeys returns the verifier and issuer of a domain "payments"
// with keys of its own, closed at the test's end, and the issuer of
// OrderProcessing's tokens it trusts.
func paymentsKeys(t testing.TB) (*token.Verifier, *token.Issuer, *token.Issuer) {
	t.Helper()
	ring, err := keys.NewRing()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := keys.NewRing()
	v, err := capabilityrpc.NewVerifier("payments", capability.Trust{
		Keys: ring, Gateway: capability.Peer{Issuer: "gateway", Keys: other}, TrustDomain: "tokenrelay",
		OrderProcessing: capability.Peer{Issuer: capability.Audience, Keys: other},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	is, err := token.NewIssuer("payments", ring)
	if err != nil {
		t.Fatal(err)
	}
	op, err := token.NewIssuer(capability.Audience, other)
	if err != nil {
		t.Fatal(err)
	}
	return v, is, op
}

// mapErr is a domain's error mapping: the shared sentinels.
func mapErr(ctx context.Context, err error) *connect.Error {
	return rpcerr.New(slog.New(slog.DiscardHandler), capabilityrpc.Codes()...).Map(ctx, err)
}

// seen is a capability.Domain that keeps the token it was handed.
type seen struct{ got capability.Token }

func (s *seen) Exercise(_ context.Context, t capability.Token, orderID string) (capability.Record, error) {
	s.got = t
	return capability.Record{JTI: t.JTI, OrderID: orderID}, nil
}

func (s *seen) Compensate(_ context.Context, t capability.Token, orderID, _ string) (capability.Record, error) {
	s.got = t
	return capability.Record{JTI: t.JTI, OrderID: orderID, Compensated: true}, nil
}

// TestSealedConstraintsAtTheHandler: the issuer seals what the draft says,
// the handler hands the domain the constraints in the clear, at Exercise
// and Compensate; plain tokens still pass; a token whose sealed constraints
// the handler cannot open is refused PermissionDenied (ErrMismatch), and so
// is one whose handler has no opener.
func TestSealedConstraintsAtTheHandler(t *testing.T) {
	t.Parallel()
	v, is, _ := paymentsKeys(t)
	vk, _ := vault.LoadDir(filepath.Join(t.TempDir(), "vault"))
	sl, _ := sealed.New(vk, "payments", "")
	foreignVault, _ := vault.LoadDir(filepath.Join(t.TempDir(), "other"))
	foreign, _ := sealed.New(foreignVault, "payments", "")

	draft := capability.Draft{Subject: "usr_1", CheckoutID: "op_1", Capability: "payments:capture",
		Constraints: map[string]string{"authorization_id": "auth_1"}, Settlement: money.Money{AmountMinor: 100, Currency: "EUR"}}
	issue := func(s *sealed.Sealer) string {
		t.Helper()
		iss, err := capabilityrpc.TokenIssuer{Issuer: is, Sealer: s}.IssueConfirmation(t.Context(), draft)
		if err != nil {
			t.Fatal(err)
		}
		return iss.Token
	}
	for _, tc := range []struct {
		name   string
		tok    string
		opener *sealed.Sealer
		want   connect.Code // 0: handed to the domain in the clear
	}{
		{"sealed", issue(sl), sl, 0},
		{"plain, opener set", issue(nil), sl, 0},
		{"plain, no opener", issue(nil), nil, 0},
		{"sealed, no opener", issue(sl), nil, connect.CodePermissionDenied},
		{"sealed under another vault", issue(foreign), sl, connect.CodePermissionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &seen{}
			h := capabilityrpc.NewHandler(v, d, mapErr, slog.New(slog.DiscardHandler)).OpenSealed(tc.opener)
			_, errX := h.Exercise(t.Context(), connect.NewRequest(&capabilityv1.ExerciseRequest{ConfirmationToken: tc.tok, OrderId: "ord_1"}))
			gotX := d.got
			d.got = capability.Token{}
			_, errC := h.Compensate(t.Context(), connect.NewRequest(&capabilityv1.CompensateRequest{ConfirmationToken: tc.tok, OrderId: "ord_1", Reason: "test"}))
			for name, err := range map[string]error{"Exercise": errX, "Compensate": errC} {
				if tc.want == 0 && err != nil || tc.want != 0 && connect.CodeOf(err) != tc.want {
					t.Fatalf("%s: %v, want code %v", name, err, tc.want)
				}
			}
			if tc.want == 0 {
				for name, got := range map[string]capability.Token{"Exercise": gotX, "Compensate": d.got} {
					if !maps.Equal(got.Constraints, draft.Constraints) {
						t.Fatalf("%s: the domain got constraints %v", name, got.Constraints)
					}
				}
			}
		})
	}
}

// BenchmarkConfirmationRoundTrip is what sealing adds to one confirmation
// token's life at its issuer, side by side: sign it (Confirm), then verify
// it and hand it to the domain (Exercise), plain and sealed (dir, A256KW).
// OrderProcessing's own verification of the envelope is the same either
// way and is not counted.
func BenchmarkConfirmationRoundTrip(b *testing.B) {
	v, is, _ := paymentsKeys(b)
	vk, _ := vault.LoadDir(filepath.Join(b.TempDir(), "vault"))
	draft := capability.Draft{Subject: "usr_1", CheckoutID: "op_1", Capability: "payments:capture",
		Constraints: map[string]string{"authorization_id": "auth_0123456789abcdef0123456789", "amount_sha256": capability.Hash("x")},
		Settlement:  money.Money{AmountMinor: 100, Currency: "EUR"}}
	for _, alg := range []string{"plain", sealed.Dir, sealed.A256KW} {
		b.Run(alg, func(b *testing.B) {
			var sl *sealed.Sealer
			if alg != "plain" {
				sl, _ = sealed.New(vk, "payments", alg)
			}
			ti := capabilityrpc.TokenIssuer{Issuer: is, Sealer: sl}
			h := capabilityrpc.NewHandler(v, &seen{}, mapErr, slog.New(slog.DiscardHandler)).OpenSealed(sl)
			for b.Loop() {
				iss, err := ti.IssueConfirmation(b.Context(), draft)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := h.Exercise(b.Context(), connect.NewRequest(&capabilityv1.ExerciseRequest{ConfirmationToken: iss.Token, OrderId: "ord_1"})); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
