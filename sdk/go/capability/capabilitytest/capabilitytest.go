// Package capabilitytest serves a domain service for its tests the way it
// runs behind the gateway: over HTTP/2 with TLS, trusting a test world's
// gateway and OrderProcessing (authntest), with helpers to call its
// CapabilityService as OrderProcessing would and to forge the tokens the
// refusal tests need.
//
// Its rule: only tests import it. It serves a face through the methods every
// face offers (Register and Close), never through its internals.
package capabilitytest

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"connectrpc.com/connect"

	capabilityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1/capabilityv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn/authntest"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
)

// Service is a domain's public face.
type Service interface {
	Register(mux *http.ServeMux, opts ...connect.HandlerOption)
	Close()
}

// Domain is a domain service served for a test.
type Domain struct {
	Name  string
	World *authntest.World
	// Keys is the domain's own ring.
	Keys *keys.Ring
	// HTTP and URL reach the server; build the domain's own client with
	// them.
	HTTP *http.Client
	URL  string
	caps capabilityv1connect.CapabilityServiceClient
}

// Start builds the domain name with build, given its trust configuration
// in a fresh world and a vault, and serves it until the test ends. opts
// configure the CapabilityService client (for example connect.WithGRPC()).
func Start(t testing.TB, name string, build func(capability.Trust, *vault.Keyring) (Service, error), opts ...connect.ClientOption) *Domain {
	t.Helper()
	w := authntest.New(t)
	ring, err := keys.NewRing()
	if err != nil {
		t.Fatal(err)
	}
	vk, err := vault.New(map[uint32][]byte{1: make([]byte, vault.KeySize)})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := build(w.Trust(ring), vk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	mux := http.NewServeMux()
	svc.Register(mux)
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &Domain{
		Name: name, World: w, Keys: ring, HTTP: srv.Client(), URL: srv.URL,
		caps: capabilityv1connect.NewCapabilityServiceClient(srv.Client(), srv.URL, opts...),
	}
}

// Request returns a request for msg carrying the headers h (from
// World.As or World.AsOrderProcessing).
func Request[T any](h http.Header, msg *T) *connect.Request[T] {
	r := connect.NewRequest(msg)
	for k, v := range h {
		r.Header()[k] = v
	}
	return r
}

// Exercise calls Exercise as OrderProcessing does.
func (d *Domain) Exercise(t testing.TB, tok, orderID string) (*capabilityv1.Exercise, error) {
	t.Helper()
	res, err := d.caps.Exercise(t.Context(), Request(d.World.AsOrderProcessing(t, "usr_test", d.Name),
		&capabilityv1.ExerciseRequest{ConfirmationToken: tok, OrderId: orderID}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetExercise(), nil
}

// Compensate calls Compensate as OrderProcessing does.
func (d *Domain) Compensate(t testing.TB, tok, orderID string) (*capabilityv1.Exercise, error) {
	t.Helper()
	res, err := d.caps.Compensate(t.Context(), Request(d.World.AsOrderProcessing(t, "usr_test", d.Name),
		&capabilityv1.CompensateRequest{ConfirmationToken: tok, OrderId: orderID, Reason: "test"}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetExercise(), nil
}

// ExerciseAsShopper calls Exercise with a shopper's transaction token and no
// workload token: the domain must refuse it.
func (d *Domain) ExerciseAsShopper(t testing.TB, tok, orderID string) error {
	t.Helper()
	_, err := d.caps.Exercise(t.Context(), Request(d.World.As(t, "usr_test", "shop"),
		&capabilityv1.ExerciseRequest{ConfirmationToken: tok, OrderId: orderID}))
	return err
}

// Forged returns two confirmation tokens with claims c that the domain must
// refuse: foreign, signed in the domain's name by a key it never had; and
// expired, signed with its own key an hour ago.
func (d *Domain) Forged(t testing.TB, c token.ConfirmationClaims) (foreign, expired string) {
	t.Helper()
	ring, err := keys.NewRing()
	if err != nil {
		t.Fatal(err)
	}
	sign := func(signer keys.Signer, opts ...token.Option) string {
		is, err := token.NewIssuer(d.Name, signer, opts...)
		if err != nil {
			t.Fatal(err)
		}
		raw, _, err := token.Issue(t.Context(), is, token.Confirmation, c)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	return sign(ring), sign(d.Keys, token.WithClock(func() time.Time { return time.Now().Add(-time.Hour) }))
}
