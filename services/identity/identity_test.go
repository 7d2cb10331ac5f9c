package identity_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	identityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1/identityv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn/authntest"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/jwks"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/services/identity"
)

// clock is a settable fake clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

type env struct {
	world  *authntest.World
	keys   *keys.Ring
	svc    *identity.Service
	url    string
	client identityv1connect.IdentityServiceClient
	clock  *clock
	logs   *syncBuffer
}

// syncBuffer is a log sink safe for the concurrent handlers of a test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func start(t *testing.T, db *sqldb.DB, opts ...connect.ClientOption) *env {
	t.Helper()
	w := authntest.New(t)
	ring, err := keys.NewRing()
	if err != nil {
		t.Fatal(err)
	}
	vk, err := vault.New(map[uint32][]byte{1: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Now()}
	logs := &syncBuffer{}
	svc, err := identity.New(t.Context(), identity.ForTest(identity.Config{
		DB: db, Vault: vk, Logger: slog.New(authn.NewLogHandler(slog.NewJSONHandler(logs, nil))),
		Keys: ring, Issuer: "https://id.tokenrelay.test",
		Gateway: capability.Peer{Issuer: authntest.GatewayName, Keys: w.GatewayKeys}, TrustDomain: authntest.TrustDomain,
		Users: identity.DemoUsers(),
	}, clk.Now))
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
	return &env{world: w, keys: ring, svc: svc, url: srv.URL, clock: clk, logs: logs,
		client: identityv1connect.NewIdentityServiceClient(srv.Client(), srv.URL, opts...)}
}

// anon returns the headers with the transaction token the gateway mints for Login and
// Refresh.
func (e *env) anon(t *testing.T, key string) http.Header {
	t.Helper()
	h := e.world.As(t, "anonymous", "")
	if key != "" {
		h.Set("Idempotency-Key", key)
	}
	return h
}

func req[T any](h http.Header, msg *T) *connect.Request[T] {
	r := connect.NewRequest(msg)
	for k, v := range h {
		r.Header()[k] = v
	}
	return r
}

func (e *env) login(t *testing.T, user, password string) (*identityv1.Session, error) {
	t.Helper()
	res, err := e.client.Login(t.Context(), req(e.anon(t, ""), &identityv1.LoginRequest{Username: user, Password: password}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetSession(), nil
}

func (e *env) refresh(t *testing.T, rt, key string) (*identityv1.Session, error) {
	t.Helper()
	res, err := e.client.Refresh(t.Context(), req(e.anon(t, key), &identityv1.RefreshRequest{RefreshToken: rt}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetSession(), nil
}

func (e *env) logout(t *testing.T, rt string) error {
	t.Helper()
	_, err := e.client.Logout(t.Context(), req(e.world.As(t, "usr_x", "shop"), &identityv1.LogoutRequest{RefreshToken: rt}))
	return err
}

// verifier checks access tokens as the gateway does.
func (e *env) verify(t *testing.T, raw string) (token.AccessClaims, error) {
	t.Helper()
	v, err := token.NewVerifier(token.Trust(e.svc.Issuer(), e.svc.Keys(), token.Accept(token.Access, identity.DefaultAudience)))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	return token.Verify(t.Context(), v, token.Access, raw)
}

func wantCode(t *testing.T, err error, code connect.Code) {
	t.Helper()
	if connect.CodeOf(err) != code {
		t.Fatalf("error = %v, want %v", err, code)
	}
}

// TestLogin covers both stores and both protocols: the demo users log in
// and get RFC 9068 access tokens with their scopes.
func TestLogin(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		for name, opts := range map[string][]connect.ClientOption{"connect": nil, "grpc": {connect.WithGRPC()}} {
			t.Run(name, func(t *testing.T) {
				e := start(t, db, opts...)
				for _, tc := range []struct{ user, password, scope string }{
					{"shopper", identity.DemoShopperPassword, "shop"},
					{"Admin", identity.DemoAdminPassword, "shop admin"},
				} {
					s, err := e.login(t, tc.user, tc.password)
					if err != nil {
						t.Fatalf("login %s: %v", tc.user, err)
					}
					claims, err := e.verify(t, s.GetAccessToken())
					if err != nil {
						t.Fatalf("access token does not verify: %v", err)
					}
					life := claims.ExpiresAt.Sub(claims.IssuedAt)
					if !strings.HasPrefix(claims.Subject, "usr_") || claims.Subject != s.GetUser().GetId() || claims.Scope != tc.scope ||
						claims.ClientID != identity.DefaultClientID || claims.ID == "" || life <= 0 || life > 15*time.Minute ||
						claims.Issuer != "https://id.tokenrelay.test" {
						t.Fatalf("claims = %+v", claims)
					}
					if !strings.HasPrefix(s.GetRefreshToken(), "rt_") || time.Until(s.GetRefreshTokenExpiresAt().AsTime()) > identity.RefreshTokenLifetime+time.Minute {
						t.Fatalf("session = %v", s)
					}
					if strings.Contains(e.logs.String(), s.GetRefreshToken()) || strings.Contains(e.logs.String(), s.GetAccessToken()) {
						t.Fatal("a token was logged")
					}
				}
			})
		}
	})
}

// TestLoginRefusals: every bad login is Unauthenticated with one message,
// or InvalidArgument for a malformed request; calls without a transaction
// token are Unauthenticated.
func TestLoginRefusals(t *testing.T) {
	t.Parallel()
	e := start(t, sqldbtest.SQLite(t))
	var msgs []string
	for _, tc := range []struct {
		name, user, password string
		want                 connect.Code
	}{
		{"wrong password", "shopper", "nope", connect.CodeUnauthenticated},
		{"unknown user", "mallory", "nope", connect.CodeUnauthenticated},
		{"admin password for shopper", "shopper", identity.DemoAdminPassword, connect.CodeUnauthenticated},
		{"empty user", "", "x", connect.CodeInvalidArgument},
		{"empty password", "shopper", "", connect.CodeInvalidArgument},
		{"long password", "shopper", strings.Repeat("x", 257), connect.CodeInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.login(t, tc.user, tc.password)
			wantCode(t, err, tc.want)
			if tc.want == connect.CodeUnauthenticated {
				msgs = append(msgs, connect.CodeOf(err).String()+": "+err.(*connect.Error).Message())
			}
		})
	}
	for _, m := range msgs {
		if m != msgs[0] {
			t.Fatalf("messages differ: %q", msgs)
		}
	}
	_, err := e.client.Login(t.Context(), connect.NewRequest(&identityv1.LoginRequest{Username: "shopper", Password: identity.DemoShopperPassword}))
	wantCode(t, err, connect.CodeUnauthenticated) // no transaction token
}

func TestLockout(t *testing.T) {
	t.Parallel()
	e := start(t, sqldbtest.SQLite(t))
	for i := range identity.MaxFailedLogins {
		_, err := e.login(t, "shopper", "wrong")
		if connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	_, err := e.login(t, "SHOPPER", identity.DemoShopperPassword)
	wantCode(t, err, connect.CodeResourceExhausted)
	if _, err := e.login(t, "admin", identity.DemoAdminPassword); err != nil {
		t.Fatalf("another user is not locked: %v", err)
	}
	e.clock.Add(identity.LockoutWindow + time.Second)
	if _, err := e.login(t, "shopper", identity.DemoShopperPassword); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// TestRefresh: rotation, reuse revoking the family, idempotent retry,
// expiry and logout, on both stores.
func TestRefresh(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		e := start(t, db)

		t.Run("rotation and reuse", func(t *testing.T) {
			s0, err := e.login(t, "shopper", identity.DemoShopperPassword)
			if err != nil {
				t.Fatal(err)
			}
			s1, err := e.refresh(t, s0.GetRefreshToken(), "")
			if err != nil {
				t.Fatal(err)
			}
			if s1.GetRefreshToken() == s0.GetRefreshToken() || s1.GetAccessToken() == s0.GetAccessToken() {
				t.Fatal("refresh did not rotate")
			}
			if _, err := e.verify(t, s1.GetAccessToken()); err != nil {
				t.Fatal(err)
			}
			s2, err := e.refresh(t, s1.GetRefreshToken(), "")
			if err != nil {
				t.Fatal(err)
			}
			// s0's token again: reuse. The whole family is revoked.
			_, err = e.refresh(t, s0.GetRefreshToken(), "")
			wantCode(t, err, connect.CodeUnauthenticated)
			_, err = e.refresh(t, s2.GetRefreshToken(), "")
			wantCode(t, err, connect.CodeUnauthenticated)
			// Other sessions live on.
			other, err := e.login(t, "shopper", identity.DemoShopperPassword)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.refresh(t, other.GetRefreshToken(), ""); err != nil {
				t.Fatalf("another session: %v", err)
			}
		})

		t.Run("idempotent retry", func(t *testing.T) {
			s0, err := e.login(t, "shopper", identity.DemoShopperPassword)
			if err != nil {
				t.Fatal(err)
			}
			first, err := e.refresh(t, s0.GetRefreshToken(), "retry-1")
			if err != nil {
				t.Fatal(err)
			}
			again, err := e.refresh(t, s0.GetRefreshToken(), "retry-1")
			if err != nil || again.GetRefreshToken() != first.GetRefreshToken() || again.GetAccessToken() != first.GetAccessToken() {
				t.Fatalf("retry = %v, %v; want the first result", again, err)
			}
			// Another key is reuse: the family is revoked.
			_, err = e.refresh(t, s0.GetRefreshToken(), "retry-2")
			wantCode(t, err, connect.CodeUnauthenticated)
			_, err = e.refresh(t, first.GetRefreshToken(), "")
			wantCode(t, err, connect.CodeUnauthenticated)
		})

		t.Run("retry after the window is reuse", func(t *testing.T) {
			s0, err := e.login(t, "admin", identity.DemoAdminPassword)
			if err != nil {
				t.Fatal(err)
			}
			first, err := e.refresh(t, s0.GetRefreshToken(), "late")
			if err != nil {
				t.Fatal(err)
			}
			e.clock.Add(identity.RetryWindow + time.Second)
			_, err = e.refresh(t, s0.GetRefreshToken(), "late")
			wantCode(t, err, connect.CodeUnauthenticated)
			_, err = e.refresh(t, first.GetRefreshToken(), "")
			wantCode(t, err, connect.CodeUnauthenticated)
		})

		t.Run("concurrent retries get one result", func(t *testing.T) {
			s0, err := e.login(t, "shopper", identity.DemoShopperPassword)
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			got := make([]string, 4)
			for i := range got {
				wg.Go(func() {
					s, err := e.refresh(t, s0.GetRefreshToken(), "same")
					if err != nil {
						t.Errorf("retry %d: %v", i, err)
						return
					}
					got[i] = s.GetRefreshToken()
				})
			}
			wg.Wait()
			for _, g := range got {
				if g != got[0] {
					t.Fatalf("concurrent retries got different tokens")
				}
			}
			if _, err := e.refresh(t, got[0], ""); err != nil {
				t.Fatalf("the one new token: %v", err)
			}
		})

		t.Run("expired refresh token", func(t *testing.T) {
			s0, err := e.login(t, "shopper", identity.DemoShopperPassword)
			if err != nil {
				t.Fatal(err)
			}
			e.clock.Add(identity.RefreshTokenLifetime + time.Second)
			_, err = e.refresh(t, s0.GetRefreshToken(), "")
			wantCode(t, err, connect.CodeUnauthenticated)
		})

		t.Run("logout", func(t *testing.T) {
			s0, err := e.login(t, "shopper", identity.DemoShopperPassword)
			if err != nil {
				t.Fatal(err)
			}
			s1, err := e.refresh(t, s0.GetRefreshToken(), "")
			if err != nil {
				t.Fatal(err)
			}
			// Any token of the session ends it, twice is fine, unknown is fine.
			for _, rt := range []string{s0.GetRefreshToken(), s1.GetRefreshToken(), "rt_unknown"} {
				if err := e.logout(t, rt); err != nil {
					t.Fatalf("logout: %v", err)
				}
			}
			_, err = e.refresh(t, s1.GetRefreshToken(), "")
			wantCode(t, err, connect.CodeUnauthenticated)
			wantCode(t, e.logout(t, ""), connect.CodeInvalidArgument)
		})

		t.Run("bad tokens", func(t *testing.T) {
			for _, rt := range []string{"rt_nope", "x"} {
				_, err := e.refresh(t, rt, "")
				wantCode(t, err, connect.CodeUnauthenticated)
			}
			_, err := e.refresh(t, strings.Repeat("x", 257), "")
			wantCode(t, err, connect.CodeInvalidArgument)
		})
	})
}

// TestDiscovery: the discovery document names the issuer and a JWKS URL
// whose keys verify the access tokens, as a resource server would fetch
// them.
func TestDiscovery(t *testing.T) {
	t.Parallel()
	e := start(t, sqldbtest.SQLite(t))
	mux := http.NewServeMux()
	e.svc.Register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, identity.DiscoveryPath, nil))
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || rec.Code != 200 {
		t.Fatalf("discovery: %d %v", rec.Code, err)
	}
	if doc.Issuer != "https://id.tokenrelay.test" || doc.JWKSURI != "https://id.tokenrelay.test/.well-known/jwks.json" {
		t.Fatalf("discovery = %+v", doc)
	}
	// Serve the JWKS over HTTP and verify a token with a jwks.Cache.
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	cache, err := jwks.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Close)
	src, err := cache.Add(e.svc.Issuer(), srv.URL+identity.JWKSPath)
	if err != nil {
		t.Fatal(err)
	}
	v, err := token.NewVerifier(token.Trust(e.svc.Issuer(), src, token.Accept(token.Access, identity.DefaultAudience)))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	s, err := e.login(t, "shopper", identity.DemoShopperPassword)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := token.Verify(t.Context(), v, token.Access, s.GetAccessToken()); err != nil {
		t.Fatalf("verify through JWKS: %v", err)
	}
}
