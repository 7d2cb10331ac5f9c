// Package authntest builds the token world a service test needs: a gateway
// and an OrderProcessing with their own key rings, issuing transaction,
// checkout and workload tokens, so that a domain service is tested through
// its generated client exactly as it runs behind the gateway.
package authntest

import (
	"net/http"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// Names used by World.
const (
	GatewayName         = "gateway"
	OrderProcessingName = "order-processing"
	TrustDomain         = "tokenrelay.test"
)

// World holds the issuers of a test.
type World struct {
	GatewayKeys         *keys.Ring
	OrderProcessingKeys *keys.Ring
	gateway             *token.Issuer
	orders              *token.Issuer
}

// New returns a world with fresh in-memory Ed25519 rings.
func New(t testing.TB) *World {
	t.Helper()
	w := &World{GatewayKeys: ring(t), OrderProcessingKeys: ring(t)}
	w.gateway = issuer(t, GatewayName, w.GatewayKeys)
	w.orders = issuer(t, OrderProcessingName, w.OrderProcessingKeys)
	return w
}

func ring(t testing.TB) *keys.Ring {
	t.Helper()
	r, err := keys.NewRing()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func issuer(t testing.TB, name string, r *keys.Ring) *token.Issuer {
	t.Helper()
	is, err := token.NewIssuer(name, r)
	if err != nil {
		t.Fatal(err)
	}
	return is
}

// Txn issues a transaction token for user sub with the space-separated scope.
func (w *World) Txn(t testing.TB, sub, scope string) string {
	t.Helper()
	raw, _, err := token.Issue(t.Context(), w.gateway, token.Transaction, token.TransactionClaims{
		Registered: token.Registered{Subject: sub, Audience: []string{TrustDomain}},
		Scope:      scope, Context: map[string]string{"tenant": "test"}, RequestingWorkload: GatewayName,
	})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// Checkout issues a checkout token of user sub for checkout id, total and
// currency, for the audiences (the domain services).
func (w *World) Checkout(t testing.TB, sub, id string, total int64, currency string, audience ...string) string {
	t.Helper()
	raw, _, err := token.Issue(t.Context(), w.orders, token.Checkout, token.CheckoutClaims{
		Registered:        token.Registered{Subject: sub, Audience: audience, ExpiresAt: time.Now().Add(30 * time.Minute)},
		OrderProcessingID: id, AmountMinor: total, Currency: currency,
	})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// Workload issues a workload token of OrderProcessing for audience, bound
// to the unary call of procedure (such as
// capabilityv1connect.CapabilityServiceExerciseProcedure) with request msg,
// as authn.WithWorkload would sign it.
func (w *World) Workload(t testing.TB, audience, procedure string, msg proto.Message) string {
	t.Helper()
	req, err := authn.RequestDigest(msg)
	if err != nil {
		t.Fatal(err)
	}
	raw, _, err := token.Issue(t.Context(), w.orders, token.Workload, token.WorkloadClaims{
		Registered: token.Registered{Audience: []string{audience}},
		Procedure:  procedure, RequestDigest: req,
	})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// As returns headers that authenticate a request as user sub with scope, as
// the gateway would forward it.
func (w *World) As(t testing.TB, sub, scope string) http.Header {
	t.Helper()
	h := http.Header{}
	h.Set(authn.TxnHeader, w.Txn(t, sub, scope))
	return h
}

// AsOrderProcessing returns headers for the CapabilityService call
// procedure with request msg to audience, on behalf of user sub. The
// workload token is bound to that call: send msg itself.
func (w *World) AsOrderProcessing(t testing.TB, sub, audience, procedure string, msg proto.Message) http.Header {
	t.Helper()
	h := w.As(t, sub, "shop")
	h.Set(authn.WorkloadHeader, w.Workload(t, audience, procedure, msg))
	return h
}

// Trust returns the trust configuration of a domain service whose own key
// ring is own, in this world.
func (w *World) Trust(own *keys.Ring) capability.Trust {
	return capability.Trust{
		Keys:            own,
		Gateway:         capability.Peer{Issuer: GatewayName, Keys: w.GatewayKeys},
		TrustDomain:     TrustDomain,
		OrderProcessing: capability.Peer{Issuer: OrderProcessingName, Keys: w.OrderProcessingKeys},
	}
}
