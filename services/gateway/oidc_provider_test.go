package gateway_test

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	pointsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
	"github.com/tokenrelay/tokenrelay/services/gateway"
	"github.com/tokenrelay/tokenrelay/services/gateway/oidctest"
)

// TestRealProvider (issue 16): the gateway in front of a real OpenID
// Connect provider, npm oidc-provider, issuing RFC 9068 access tokens
// signed with RS256 and ES256 through the client credentials grant and
// the authorization code flow. The provider is down when the gateway
// starts (the gateway runs, not ready), comes up (ready), goes down again
// (its last keys stay trusted) and rotates its keys (followed).
func TestRealProvider(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	p := oidctest.Start(t)
	p.Down(t)
	gw := func(profile *gateway.Profile) *env {
		return start(t, func(c *gateway.Config) {
			c.Issuers = append(c.Issuers, gateway.Issuer{Issuer: p.Issuer, Audience: oidctest.Audience, Profile: profile})
			c.DiscoveryRetry = 5 * time.Millisecond
			c.DiscoveryRefresh = 100 * time.Millisecond
			c.AuthFailureBurst = -1
		})
	}
	plain := gw(nil) // the default profile: RFC 9068, no admin
	mapped := gw(&gateway.Profile{ScopeMap: map[string][]string{"shop": {"shop"}, "admin": {"admin"}}})
	for _, e := range []*env{plain, mapped} {
		if e.gw.Ready(ctx) == nil {
			t.Fatal("ready while the provider is down")
		}
		runCtx, stop := context.WithCancel(ctx)
		ran := make(chan error, 1)
		go func() { ran <- e.gw.Run(runCtx) }()
		t.Cleanup(func() { stop(); <-ran })
	}
	p.Up(t)
	for _, e := range []*env{plain, mapped} {
		eventually(ctx, t, "ready once the provider is up", func() bool { return e.gw.Ready(ctx) == nil })
	}

	type call struct {
		name      string
		tok       string
		sub       string
		principal string
	}
	var calls []call
	for _, res := range []string{oidctest.RS256, oidctest.ES256} {
		calls = append(calls,
			call{"client credentials " + res, p.ClientCredentials(t, res, "shop admin"),
				gateway.ForeignClient(p.Issuer, oidctest.BatchClient), gateway.PrincipalClient},
			call{"authorization code " + res, p.AuthorizationCode(t, res, "alice", "openid shop admin"),
				gateway.ForeignSubject(p.Issuer, "alice"), gateway.PrincipalUser},
		)
	}
	check := func(t *testing.T, e *env, c call, wantScope string) {
		t.Helper()
		if _, err := e.pointsClient().GetBalance(ctx, withBearer(&pointsv1.GetBalanceRequest{}, c.tok)); err != nil {
			t.Fatalf("GetBalance: %v", err)
		}
		txn, err := token.Verify(ctx, e.txnVerifier, token.Transaction, e.points.seen().txn)
		if err != nil {
			t.Fatal(err)
		}
		if txn.Subject != c.sub || txn.Scope != wantScope || txn.Context[gateway.ContextIssuer] != p.Issuer || txn.Context[gateway.ContextPrincipal] != c.principal {
			t.Fatalf("transaction token sub %q scope %q tctx %v; want %q %q %s", txn.Subject, txn.Scope, txn.Context, c.sub, wantScope, c.principal)
		}
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			check(t, plain, c, "shop")
			// Admin is refused unless the provider's scopes are mapped to it.
			_, err := plain.pointsClient().GrantPoints(ctx, withBearer(&pointsv1.GrantPointsRequest{}, c.tok))
			if connect.CodeOf(err) != connect.CodePermissionDenied {
				t.Fatalf("GrantPoints without a mapping: %v, want permission_denied", err)
			}
			check(t, mapped, c, "shop admin")
			if _, err := mapped.pointsClient().GrantPoints(ctx, withBearer(&pointsv1.GrantPointsRequest{}, c.tok)); err != nil {
				t.Fatalf("GrantPoints with admin mapped: %v", err)
			}
		})
	}

	// Down later: tokens already issued keep verifying with the last keys.
	p.Down(t)
	for _, c := range calls {
		if _, err := plain.pointsClient().GetBalance(ctx, withBearer(&pointsv1.GetBalanceRequest{}, c.tok)); err != nil {
			t.Fatalf("%s while the provider is down: %v", c.name, err)
		}
	}
	if err := plain.gw.Ready(ctx); err != nil {
		t.Fatalf("Ready with a known provider down: %v", err)
	}

	// Key rotation: tokens signed with the new keys are accepted once the
	// gateway has fetched them (an unknown kid makes it fetch again; until
	// then the answer is unavailable, not a refusal of the token).
	p.Up(t)
	p.Rotate(t)
	for _, res := range []string{oidctest.RS256, oidctest.ES256} {
		tok := p.ClientCredentials(t, res, "shop")
		eventually(ctx, t, "token of the rotated key accepted", func() bool {
			_, err := plain.pointsClient().GetBalance(ctx, withBearer(&pointsv1.GetBalanceRequest{}, tok))
			if err != nil && connect.CodeOf(err) != connect.CodeUnavailable {
				t.Fatalf("token of the rotated %s key: %v", res, err)
			}
			return err == nil
		})
	}
}
