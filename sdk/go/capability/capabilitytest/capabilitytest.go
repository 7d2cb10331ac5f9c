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
	"cmp"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
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
	return StartReplicas(t, name, 1, build, opts...)[0]
}

// StartReplicas is Start for n instances of the domain, as it runs scaled
// out: each is built with build (over the database build gives it, usually
// one for all) from one trust configuration, key ring and vault, in one
// world, and served by its own server.
func StartReplicas(t testing.TB, name string, n int, build func(capability.Trust, *vault.Keyring) (Service, error), opts ...connect.ClientOption) []*Domain {
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
	out := make([]*Domain, n)
	for i := range out {
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
		out[i] = &Domain{
			Name: name, World: w, Keys: ring, HTTP: srv.Client(), URL: srv.URL,
			caps: capabilityv1connect.NewCapabilityServiceClient(srv.Client(), srv.URL, opts...),
		}
	}
	return out
}

// Concurrently runs call(i) for i in [0, n) at once, as far as a start
// signal makes them, and counts the answers: each result under itself, each
// error under "error: " and its code and message. Retries of one request
// must all land under one result.
func Concurrently(n int, call func(i int) (string, error)) map[string]int {
	var (
		mu    sync.Mutex
		got   = map[string]int{}
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	for i := range n {
		wg.Go(func() {
			<-start
			res, err := call(i)
			if err != nil {
				res = "error: " + connect.CodeOf(err).String() + ": " + err.Error()
			}
			mu.Lock()
			defer mu.Unlock()
			got[res]++
		})
	}
	close(start)
	wg.Wait()
	return got
}

// Same returns the one result that every call counted in got (see
// Concurrently) had, and fails t when they had several, or an error, listing
// each with how many calls had it, most first.
func Same(t testing.TB, what string, got map[string]int) string {
	t.Helper()
	results := slices.SortedFunc(maps.Keys(got), func(a, b string) int { return cmp.Compare(got[b], got[a]) })
	if len(results) == 1 && !strings.HasPrefix(results[0], "error: ") {
		return results[0]
	}
	n := 0
	var list strings.Builder
	for _, r := range results {
		n += got[r]
		fmt.Fprintf(&list, "\n%d× %s", got[r], r)
	}
	t.Fatalf("%s ×%d: %d different results, want one for all:%s", what, n, len(results), list.String())
	return ""
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
	msg := &capabilityv1.ExerciseRequest{ConfirmationToken: tok, OrderId: orderID}
	res, err := d.caps.Exercise(t.Context(), Request(d.World.AsOrderProcessing(t, "usr_test", d.Name,
		capabilityv1connect.CapabilityServiceExerciseProcedure, msg), msg))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetExercise(), nil
}

// Compensate calls Compensate as OrderProcessing does.
func (d *Domain) Compensate(t testing.TB, tok, orderID string) (*capabilityv1.Exercise, error) {
	t.Helper()
	msg := &capabilityv1.CompensateRequest{ConfirmationToken: tok, OrderId: orderID, Reason: "test"}
	res, err := d.caps.Compensate(t.Context(), Request(d.World.AsOrderProcessing(t, "usr_test", d.Name,
		capabilityv1connect.CapabilityServiceCompensateProcedure, msg), msg))
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
