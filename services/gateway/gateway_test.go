package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	capabilityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1/capabilityv1connect"
	identityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1/identityv1connect"
	pointsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1/pointsv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
	"github.com/tokenrelay/tokenrelay/services/gateway"
)

const idIssuer = "https://id.tokenrelay.test"

// syncBuffer is a log sink safe for concurrent handlers.
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

func ring(t testing.TB) *keys.Ring {
	t.Helper()
	r, err := keys.NewRing()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func issuer(t testing.TB, name string, r *keys.Ring, opts ...token.Option) *token.Issuer {
	t.Helper()
	is, err := token.NewIssuer(name, r, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return is
}

// access mints an access token as an identity provider would.
func access(t testing.TB, is *token.Issuer, sub, scope, aud string) string {
	t.Helper()
	raw, _, err := token.Issue(t.Context(), is, token.Access, token.AccessClaims{
		Registered: token.Registered{Subject: sub, Audience: []string{aud}}, ClientID: "test-client", Scope: scope,
	})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// seen is what an upstream observed of one request.
type seen struct {
	txn      string
	claims   token.TransactionClaims
	workload string
	authz    string
}

// points is a test PointsService: it reports the transaction it was called
// in, checked by the authn interceptor against the gateway's keys.
type points struct {
	pointsv1connect.UnimplementedPointsServiceHandler
	mu   sync.Mutex
	last seen
	next capabilityv1connect.CapabilityServiceClient // optional: the next hop of a chain
	log  *slog.Logger
}

func (p *points) record(ctx context.Context, h http.Header) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last = seen{txn: h.Get(authn.TxnHeader), workload: h.Get(authn.WorkloadHeader), authz: h.Get("Authorization")}
	c, _ := authn.CallerFrom(ctx)
	p.last.claims = token.TransactionClaims{Txn: c.Txn, Scope: strings.Join(c.Scopes, " "), Context: map[string]string{"tenant": c.Tenant}}
	p.last.claims.Subject = c.Subject
}

func (p *points) seen() seen { p.mu.Lock(); defer p.mu.Unlock(); return p.last }

func (p *points) GetBalance(ctx context.Context, req *connect.Request[pointsv1.GetBalanceRequest]) (*connect.Response[pointsv1.GetBalanceResponse], error) {
	p.record(ctx, req.Header())
	res := &pointsv1.GetBalanceResponse{Balance: 42}
	if p.next != nil {
		p.log.InfoContext(ctx, "hop", "service", "a")
		out, err := p.next.Exercise(ctx, connect.NewRequest(&capabilityv1.ExerciseRequest{}))
		if err != nil {
			return nil, err
		}
		res.Entries = []*pointsv1.LedgerEntry{{Id: out.Msg.GetExercise().GetReference()}}
	}
	return connect.NewResponse(res), nil
}

func (p *points) GrantPoints(ctx context.Context, req *connect.Request[pointsv1.GrantPointsRequest]) (*connect.Response[pointsv1.GrantPointsResponse], error) {
	p.record(ctx, req.Header())
	return connect.NewResponse(&pointsv1.GrantPointsResponse{Balance: req.Msg.GetPoints()}), nil
}

// identity is a test IdentityService that answers with its caller.
type identity struct {
	identityv1connect.UnimplementedIdentityServiceHandler
}

func (identity) Login(ctx context.Context, _ *connect.Request[identityv1.LoginRequest]) (*connect.Response[identityv1.LoginResponse], error) {
	c, _ := authn.CallerFrom(ctx)
	return connect.NewResponse(&identityv1.LoginResponse{Session: &identityv1.Session{User: &identityv1.User{Id: c.Subject, Scopes: c.Scopes, DisplayName: c.Txn}}}), nil
}

func (identity) Refresh(ctx context.Context, _ *connect.Request[identityv1.RefreshRequest]) (*connect.Response[identityv1.RefreshResponse], error) {
	c, _ := authn.CallerFrom(ctx)
	return connect.NewResponse(&identityv1.RefreshResponse{Session: &identityv1.Session{User: &identityv1.User{Id: c.Subject}}}), nil
}

func (identity) Logout(context.Context, *connect.Request[identityv1.LogoutRequest]) (*connect.Response[identityv1.LogoutResponse], error) {
	return connect.NewResponse(&identityv1.LogoutResponse{}), nil
}

// capabilities is a CapabilityService the gateway must never reach.
type capabilities struct {
	capabilityv1connect.UnimplementedCapabilityServiceHandler
	reached chan struct{}
}

func (c capabilities) Exercise(context.Context, *connect.Request[capabilityv1.ExerciseRequest]) (*connect.Response[capabilityv1.ExerciseResponse], error) {
	c.reached <- struct{}{}
	return connect.NewResponse(&capabilityv1.ExerciseResponse{}), nil
}

// env is a gateway in front of an in-process mux holding Points, Identity
// and CapabilityService (the embedded default's shared mux).
type env struct {
	idRing, gwRing *keys.Ring
	id             *token.Issuer
	points         *points
	caps           capabilities
	gw             *gateway.Gateway
	srv            *httptest.Server
	logs           *syncBuffer
	txnVerifier    *token.Verifier
}

func txnVerifier(t testing.TB, gwRing *keys.Ring) *token.Verifier {
	t.Helper()
	v, err := token.NewVerifier(token.WithVerifiedCache(1<<10), token.Trust(gateway.DefaultName, gwRing, token.Accept(token.Transaction, gateway.DefaultTrustDomain)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

func start(t *testing.T, mod func(*gateway.Config)) *env {
	t.Helper()
	e := &env{idRing: ring(t), gwRing: ring(t), points: &points{}, caps: capabilities{reached: make(chan struct{}, 10)}, logs: &syncBuffer{}}
	e.id = issuer(t, idIssuer, e.idRing)
	e.txnVerifier = txnVerifier(t, e.gwRing)
	auth := connect.WithInterceptors(authn.NewServerInterceptor(e.txnVerifier))
	mux := http.NewServeMux()
	mux.Handle(pointsv1connect.NewPointsServiceHandler(e.points, auth))
	mux.Handle(identityv1connect.NewIdentityServiceHandler(identity{}, auth))
	mux.Handle(capabilityv1connect.NewCapabilityServiceHandler(e.caps)) // no auth at all: the gateway must never route here
	cfg := gateway.Config{
		Keys:    e.gwRing,
		Logger:  slog.New(authn.NewLogHandler(slog.NewJSONHandler(e.logs, nil))),
		Issuers: []gateway.Issuer{{Issuer: idIssuer, Keys: e.idRing}},
		Routes: []gateway.Route{
			{Service: pointsv1connect.PointsServiceName, Handler: mux},
			{Service: identityv1connect.IdentityServiceName, Handler: mux},
		},
		AllowedOrigins: []string{"http://127.0.0.1:8080"},
		Fallback: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get(authn.TxnHeader) != "" {
				t.Error("fallback got a Txn-Token")
			}
			_, _ = w.Write([]byte("web"))
		}),
	}
	if mod != nil {
		mod(&cfg)
	}
	e.gw, e.srv = serveGateway(t, cfg, true)
	return e
}

// serve starts the gateway of cfg behind a test server: over TLS with
// HTTP/2 when h2, else plain HTTP/1.1.
func serve(t *testing.T, cfg gateway.Config, h2 bool) *httptest.Server {
	t.Helper()
	_, srv := serveGateway(t, cfg, h2)
	return srv
}

// serveGateway is serve, returning the gateway too.
func serveGateway(t *testing.T, cfg gateway.Config, h2 bool) (*gateway.Gateway, *httptest.Server) {
	t.Helper()
	gw, err := gateway.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	srv := httptest.NewUnstartedServer(gw)
	if h2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return gw, srv
}

// config is the smallest gateway Config: gwRing signs the transaction
// tokens, idIssuer's access tokens are checked with idRing, and PointsService
// goes to route.
func config(gwRing, idRing *keys.Ring, route gateway.Route) gateway.Config {
	route.Service = pointsv1connect.PointsServiceName
	return gateway.Config{
		Keys: gwRing, Logger: slog.New(slog.DiscardHandler),
		Issuers: []gateway.Issuer{{Issuer: idIssuer, Keys: idRing}},
		Routes:  []gateway.Route{route},
	}
}

// startUpstream serves svc as a scaled-out PointsService would: over h2c,
// behind the interceptor that checks transaction tokens with gwRing.
func startUpstream(t *testing.T, svc pointsv1connect.PointsServiceHandler, gwRing *keys.Ring) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(pointsv1connect.NewPointsServiceHandler(svc, connect.WithInterceptors(authn.NewServerInterceptor(txnVerifier(t, gwRing)))))
	up := httptest.NewUnstartedServer(mux)
	up.Config.Protocols = new(http.Protocols)
	up.Config.Protocols.SetHTTP1(true)
	up.Config.Protocols.SetUnencryptedHTTP2(true)
	up.Start()
	t.Cleanup(up.Close)
	return up
}

func (e *env) pointsClient(opts ...connect.ClientOption) pointsv1connect.PointsServiceClient {
	return pointsClient(e.srv, opts...)
}

// pointsClient calls PointsService through the gateway at srv.
func pointsClient(srv *httptest.Server, opts ...connect.ClientOption) pointsv1connect.PointsServiceClient {
	return pointsv1connect.NewPointsServiceClient(srv.Client(), srv.URL, opts...)
}

// wantUnavailable checks that GetBalance through the gateway at srv is
// Unavailable: no upstream is left to take it.
func wantUnavailable(t *testing.T, srv *httptest.Server, tok, why string) {
	t.Helper()
	_, err := pointsClient(srv).GetBalance(t.Context(), withBearer(&pointsv1.GetBalanceRequest{}, tok))
	if connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("%s: %v, want unavailable", why, err)
	}
}

func withBearer[T any](msg *T, tok string) *connect.Request[T] {
	r := connect.NewRequest(msg)
	if tok != "" {
		r.Header().Set("Authorization", "Bearer "+tok)
	}
	return r
}

var protocols = map[string][]connect.ClientOption{
	"connect":  nil,
	"grpc":     {connect.WithGRPC()},
	"grpc-web": {connect.WithGRPCWeb()},
}

// TestUnauthenticated: every bad access token is refused with
// Unauthenticated, in every protocol, and never reaches the service.
func TestUnauthenticated(t *testing.T) {
	t.Parallel()
	// 21 refused tokens from one address: more than the default failure
	// budget (TestAdversarialFailureBudget tests it).
	e := start(t, func(c *gateway.Config) { c.AuthFailureBurst = 1000 })
	other := ring(t)
	past := issuer(t, idIssuer, e.idRing, token.WithClock(func() time.Time { return time.Now().Add(-time.Hour) }))
	txn, _, err := token.Issue(t.Context(), issuer(t, gateway.DefaultName, e.gwRing), token.Transaction, token.TransactionClaims{
		Registered: token.Registered{Subject: "usr_a", Audience: []string{gateway.DefaultTrustDomain}},
	})
	if err != nil {
		t.Fatal(err)
	}
	good := access(t, e.id, "usr_a", "shop", gateway.DefaultAudience)
	for _, tc := range []struct {
		name   string
		header string
	}{
		{"no token", ""},
		{"malformed", "Bearer not-a-token"},
		{"not bearer", "Basic " + good},
		{"bearer without token", "Bearer "},
		{"tampered", "Bearer " + good[:len(good)-4] + "AAAA"},
		{"expired", "Bearer " + access(t, past, "usr_a", "shop", gateway.DefaultAudience)},
		{"wrongly signed", "Bearer " + access(t, issuer(t, idIssuer, other), "usr_a", "shop", gateway.DefaultAudience)},
		{"wrong audience", "Bearer " + access(t, e.id, "usr_a", "shop", "another-api")},
		{"unconfigured issuer", "Bearer " + access(t, issuer(t, "https://evil.test", other), "usr_a", "shop", gateway.DefaultAudience)},
		{"transaction token as access token", "Bearer " + txn},
	} {
		for proto, opts := range protocols {
			t.Run(tc.name+"/"+proto, func(t *testing.T) {
				t.Parallel()
				req := connect.NewRequest(&pointsv1.GetBalanceRequest{})
				if tc.header != "" {
					req.Header().Set("Authorization", tc.header)
				}
				_, err := e.pointsClient(opts...).GetBalance(t.Context(), req)
				if connect.CodeOf(err) != connect.CodeUnauthenticated {
					t.Fatalf("error = %v, want unauthenticated", err)
				}
				if strings.Contains(err.Error(), good) {
					t.Fatal("error echoes the token")
				}
			})
		}
	}
	t.Run("good token passes", func(t *testing.T) {
		if _, err := e.pointsClient().GetBalance(t.Context(), withBearer(&pointsv1.GetBalanceRequest{}, good)); err != nil {
			t.Fatal(err)
		}
	})
	if strings.Contains(e.logs.String(), good) {
		t.Fatal("a token was logged")
	}
}

// TestTransactionToken: the gateway drops client-supplied Txn-Token and
// Workload-Token headers and the Authorization header; the service sees
// only a transaction token the gateway minted, with the access token's
// sub and scope.
func TestTransactionToken(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	forged, clientClaims, err := token.Issue(t.Context(), issuer(t, gateway.DefaultName, e.gwRing), token.Transaction, token.TransactionClaims{
		Registered: token.Registered{Subject: "usr_admin", Audience: []string{gateway.DefaultTrustDomain}}, Scope: "shop admin",
	})
	if err != nil {
		t.Fatal(err)
	}
	for proto, opts := range protocols {
		t.Run(proto, func(t *testing.T) {
			req := withBearer(&pointsv1.GetBalanceRequest{}, access(t, e.id, "usr_shopper", "shop", gateway.DefaultAudience))
			req.Header().Set(authn.TxnHeader, forged) // a genuine gateway token from an earlier request
			req.Header().Set(authn.WorkloadHeader, "forged")
			res, err := e.pointsClient(opts...).GetBalance(t.Context(), req)
			if err != nil || res.Msg.GetBalance() != 42 {
				t.Fatalf("GetBalance = %v, %v", res, err)
			}
			s := e.points.seen()
			if s.txn == forged || s.workload != "" || s.authz != "" {
				t.Fatalf("upstream saw client headers: txn forged %v, workload %q, authorization %q", s.txn == forged, s.workload, s.authz)
			}
			claims, err := token.Verify(t.Context(), e.txnVerifier, token.Transaction, s.txn)
			if err != nil {
				t.Fatalf("upstream's txn token does not verify with the gateway's keys: %v", err)
			}
			if claims.Subject != "usr_shopper" || claims.Scope != "shop" || claims.Txn == clientClaims.Txn ||
				claims.Context["tenant"] != gateway.DefaultTenant || claims.RequestingWorkload != gateway.DefaultName ||
				claims.ExpiresAt.Sub(claims.IssuedAt) > 5*time.Minute || claims.Issuer != gateway.DefaultName {
				t.Fatalf("transaction claims = %+v", claims)
			}
			if s.claims.Txn != claims.Txn || s.claims.Subject != "usr_shopper" {
				t.Fatalf("handler's caller = %+v", s.claims)
			}
		})
	}
}

// TestAnonymous: Login and Refresh pass without an access token, with a
// transaction token for "anonymous"; Logout does not.
func TestAnonymous(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	for proto, opts := range protocols {
		t.Run(proto, func(t *testing.T) {
			client := identityv1connect.NewIdentityServiceClient(e.srv.Client(), e.srv.URL, opts...)
			req := connect.NewRequest(&identityv1.LoginRequest{})
			req.Header().Set(authn.TxnHeader, "forged")
			res, err := client.Login(t.Context(), req)
			if err != nil || res.Msg.GetSession().GetUser().GetId() != gateway.AnonymousSubject || len(res.Msg.GetSession().GetUser().GetScopes()) != 0 ||
				res.Msg.GetSession().GetUser().GetDisplayName() == "" {
				t.Fatalf("Login = %v, %v; want the anonymous caller with a txn", res, err)
			}
			if !strings.Contains(e.logs.String(), `"txn":"`+res.Msg.GetSession().GetUser().GetDisplayName()+`"`) {
				t.Fatal("the gateway's log line lacks the txn of the login")
			}
			if _, err := client.Refresh(t.Context(), connect.NewRequest(&identityv1.RefreshRequest{})); err != nil {
				t.Fatalf("Refresh: %v", err)
			}
			_, err = client.Logout(t.Context(), connect.NewRequest(&identityv1.LogoutRequest{}))
			if connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Fatalf("Logout without a token: %v", err)
			}
		})
	}
}

// TestRefusedProcedures: CapabilityService is unreachable for everyone,
// admin RPCs for shoppers; an admin reaches them.
func TestRefusedProcedures(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	shopper := access(t, e.id, "usr_shopper", "shop", gateway.DefaultAudience)
	admin := access(t, e.id, "usr_admin", "shop admin", gateway.DefaultAudience)
	for proto, opts := range protocols {
		caps := capabilityv1connect.NewCapabilityServiceClient(e.srv.Client(), e.srv.URL, opts...)
		for _, tc := range []struct {
			name string
			call func() error
			want connect.Code
		}{
			{"capability as shopper", func() error {
				_, err := caps.Exercise(t.Context(), withBearer(&capabilityv1.ExerciseRequest{}, shopper))
				return err
			}, connect.CodeNotFound},
			{"capability as admin", func() error {
				_, err := caps.Exercise(t.Context(), withBearer(&capabilityv1.ExerciseRequest{}, admin))
				return err
			}, connect.CodeNotFound},
			{"capability without token", func() error {
				_, err := caps.Compensate(t.Context(), connect.NewRequest(&capabilityv1.CompensateRequest{}))
				return err
			}, connect.CodeNotFound},
			{"grant as shopper", func() error {
				_, err := e.pointsClient(opts...).GrantPoints(t.Context(), withBearer(&pointsv1.GrantPointsRequest{Points: 1}, shopper))
				return err
			}, connect.CodePermissionDenied},
			{"grant as admin", func() error {
				_, err := e.pointsClient(opts...).GrantPoints(t.Context(), withBearer(&pointsv1.GrantPointsRequest{Points: 1}, admin))
				return err
			}, codeOK},
		} {
			t.Run(tc.name+"/"+proto, func(t *testing.T) {
				t.Parallel()
				err := tc.call()
				if tc.want == codeOK && err != nil || tc.want != codeOK && connect.CodeOf(err) != tc.want {
					t.Fatalf("error = %v, want %v", err, tc.want)
				}
			})
		}
	}
	t.Cleanup(func() {
		if len(e.caps.reached) > 0 {
			t.Error("CapabilityService was reached through the gateway")
		}
	})
}

// TestChainKeepsOneTxn: gateway -> A -> B -> C keeps the one txn the
// gateway minted; each service verified it and logged it.
func TestChainKeepsOneTxn(t *testing.T) {
	t.Parallel()
	gwRing := ring(t)
	v := txnVerifier(t, gwRing)
	logs := &syncBuffer{}
	logger := slog.New(authn.NewLogHandler(slog.NewJSONHandler(logs, nil)))
	auth := connect.WithInterceptors(authn.NewServerInterceptor(v))
	client := connect.WithInterceptors(authn.NewClientInterceptor())

	var url string
	for _, name := range []string{"c", "b"} {
		h := &hop{name: name, log: logger}
		if url != "" {
			h.next = capabilityv1connect.NewCapabilityServiceClient(http.DefaultClient, url, client)
		}
		mux := http.NewServeMux()
		mux.Handle(capabilityv1connect.NewCapabilityServiceHandler(h, auth))
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		url = srv.URL
	}
	a := &points{log: logger, next: capabilityv1connect.NewCapabilityServiceClient(http.DefaultClient, url, client)}
	muxA := http.NewServeMux()
	muxA.Handle(pointsv1connect.NewPointsServiceHandler(a, auth))

	idRing := ring(t)
	cfg := config(gwRing, idRing, gateway.Route{Handler: muxA})
	cfg.Logger = logger
	srv := serve(t, cfg, false)

	tok := access(t, issuer(t, idIssuer, idRing), "usr_alice", "shop", gateway.DefaultAudience)
	res, err := pointsClient(srv).GetBalance(t.Context(), withBearer(&pointsv1.GetBalanceRequest{}, tok))
	if err != nil {
		t.Fatal(err)
	}
	txn := res.Msg.GetEntries()[0].GetId()
	if txn == "" || a.seen().claims.Txn != txn {
		t.Fatalf("last hop saw txn %q, first hop %q", txn, a.seen().claims.Txn)
	}
	out := logs.String()
	for _, want := range []string{`"service":"a","txn":"` + txn + `"`, `"service":"b","sub":"usr_alice","txn":"` + txn + `"`, `"service":"c","sub":"usr_alice","txn":"` + txn + `"`, `"msg":"rpc"`} {
		if !strings.Contains(out, want) {
			t.Errorf("no log line with %s in:\n%s", want, out)
		}
	}
	if n := strings.Count(out, `"txn":"`+txn+`"`); n != 4 {
		t.Errorf("%d log lines carry the txn, want 4 (gateway, a, b, c)", n)
	}
	if strings.Contains(out, tok) {
		t.Error("a log line contains the access token")
	}
}

// hop is a CapabilityService that logs its caller and calls the next hop.
type hop struct {
	capabilityv1connect.UnimplementedCapabilityServiceHandler
	name string
	log  *slog.Logger
	next capabilityv1connect.CapabilityServiceClient
}

func (h *hop) Exercise(ctx context.Context, req *connect.Request[capabilityv1.ExerciseRequest]) (*connect.Response[capabilityv1.ExerciseResponse], error) {
	caller, ok := authn.CallerFrom(ctx)
	if !ok {
		return nil, connect.NewError(connect.CodeInternal, errors.New("no caller"))
	}
	h.log.InfoContext(ctx, "hop", "service", h.name, "sub", caller.Subject)
	if h.next == nil {
		return connect.NewResponse(&capabilityv1.ExerciseResponse{Exercise: &capabilityv1.Exercise{Reference: caller.Txn}}), nil
	}
	return h.next.Exercise(ctx, req)
}

// TestSecondOIDCIssuer: a provider with its own keys and discovery document
// is trusted by configuration alone; its scopes can be limited.
func TestSecondOIDCIssuer(t *testing.T) {
	t.Parallel()
	providerRing := ring(t)
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	docIssuer := srv.URL
	mux.Handle(keys.WellKnownPath, providerRing.Handler())
	mux.HandleFunc(gateway.DiscoveryPath, func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": docIssuer, "jwks_uri": srv.URL + keys.WellKnownPath, "response_types_supported": []string{"code"}})
	})

	e := start(t, func(c *gateway.Config) {
		c.Issuers = append(c.Issuers, gateway.Issuer{Issuer: srv.URL, Audience: "external-api", Scopes: []string{"shop"}})
	})
	provider := issuer(t, srv.URL, providerRing, token.WithClock(time.Now))
	for _, tc := range []struct {
		name, scope, aud string
		want             connect.Code
		wantScope        string
	}{
		{"accepted", "shop", "external-api", codeOK, "shop"},
		{"admin scope dropped", "shop admin", "external-api", codeOK, "shop"},
		{"wrong audience", "shop", gateway.DefaultAudience, connect.CodeUnauthenticated, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.pointsClient().GetBalance(t.Context(), withBearer(&pointsv1.GetBalanceRequest{}, access(t, provider, "ext|42", tc.scope, tc.aud)))
			if connect.CodeOf(err) != tc.want && !(err == nil && tc.want == codeOK) {
				t.Fatalf("error = %v, want %v", err, tc.want)
			}
			// A foreign provider's user is qualified by its issuer.
			if err == nil && (e.points.seen().claims.Subject != gateway.ForeignSubject(srv.URL, "ext|42") || e.points.seen().claims.Scope != tc.wantScope) {
				t.Fatalf("upstream saw %+v", e.points.seen().claims)
			}
		})
	}
	// The provider's keys were fetched once, counted for the JWKS metrics.
	if ok, failed := e.gw.Fetches(); ok != 1 || failed != 0 || e.gw.Refused() != 0 {
		t.Fatalf("JWKS fetches: %d ok, %d failed, %d refused; want the one of the provider", ok, failed, e.gw.Refused())
	}
	// An admin token of the external provider cannot reach admin RPCs.
	_, err := e.pointsClient().GrantPoints(t.Context(), withBearer(&pointsv1.GrantPointsRequest{}, access(t, provider, "ext|42", "shop admin", "external-api")))
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("external admin: %v", err)
	}

	t.Run("discovery naming another issuer is refused", func(t *testing.T) {
		docIssuer := "https://elsewhere.test"
		bad := http.NewServeMux()
		bad.HandleFunc(gateway.DiscoveryPath, func(w http.ResponseWriter, _ *http.Request) {
			_ = json.NewEncoder(w).Encode(map[string]any{"issuer": docIssuer, "jwks_uri": srv.URL + keys.WellKnownPath})
		})
		badSrv := httptest.NewServer(bad)
		defer badSrv.Close()
		cfg := config(ring(t), nil, gateway.Route{Handler: http.NotFoundHandler()})
		cfg.Issuers = []gateway.Issuer{{Issuer: badSrv.URL}}
		// The gateway starts, not ready, and says why (issue 16).
		gw, err := gateway.New(t.Context(), cfg)
		if err != nil {
			t.Fatalf("New = %v, want a gateway that is not ready", err)
		}
		defer gw.Close()
		if err := gw.Ready(t.Context()); !errors.Is(err, gateway.ErrNotReady) || !errors.Is(err, gateway.ErrDiscovery) {
			t.Fatalf("Ready = %v, want ErrNotReady and ErrDiscovery", err)
		}
	})
}

// TestCORS: an allowed origin's preflight gets the Connect headers; a
// disallowed origin gets no CORS header.
func TestCORS(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	for _, tc := range []struct {
		name, origin string
		allowed      bool
	}{
		{"allowed", "http://127.0.0.1:8080", true},
		{"disallowed", "https://evil.test", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodOptions, e.srv.URL+pointsv1connect.PointsServiceGetBalanceProcedure, nil)
			req.Header.Set("Origin", tc.origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "authorization,content-type,connect-protocol-version,idempotency-key")
			res, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			allow := res.Header.Get("Access-Control-Allow-Origin")
			if !tc.allowed {
				for k := range res.Header {
					if strings.HasPrefix(k, "Access-Control-") {
						t.Fatalf("disallowed origin got %s", k)
					}
				}
				return
			}
			headers := strings.ToLower(res.Header.Get("Access-Control-Allow-Headers"))
			if res.StatusCode != http.StatusNoContent || allow != tc.origin || !strings.Contains(res.Header.Get("Access-Control-Allow-Methods"), "POST") {
				t.Fatalf("preflight = %d %v", res.StatusCode, res.Header)
			}
			for _, h := range []string{"authorization", "content-type", "connect-protocol-version", "connect-timeout-ms", "idempotency-key", "x-grpc-web"} {
				if !strings.Contains(headers, h) {
					t.Errorf("Allow-Headers lacks %s: %s", h, headers)
				}
			}
			if strings.Contains(headers, "txn-token") {
				t.Error("Txn-Token is allowed from browsers")
			}
		})
	}
	t.Run("actual request exposes the Connect headers", func(t *testing.T) {
		t.Parallel()
		req := connect.NewRequest(&pointsv1.GetBalanceRequest{})
		req.Header().Set("Origin", "http://127.0.0.1:8080")
		_, err := e.pointsClient().GetBalance(t.Context(), req)
		var cerr *connect.Error
		if !errors.As(err, &cerr) || cerr.Code() != connect.CodeUnauthenticated {
			t.Fatalf("error = %v", err)
		}
		exposed := cerr.Meta().Get("Access-Control-Expose-Headers")
		for _, h := range []string{"Connect-Protocol-Version", "Connect-Timeout-Ms", "Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin", "Checkout-Token", "Idempotency-Key", "WWW-Authenticate", "Retry-After"} {
			if !strings.Contains(exposed, h) {
				t.Errorf("Expose-Headers lacks %s: %q", h, exposed)
			}
		}
	})
}

// TestLimits: an oversized body or header block is refused cleanly, in the
// request's protocol, before it reaches a service.
func TestLimits(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *gateway.Config) { c.MaxBodyBytes = 1 << 10; c.MaxHeaderBytes = 8 << 10 })
	admin := access(t, e.id, "usr_admin", "shop admin", gateway.DefaultAudience)
	for proto, opts := range protocols {
		t.Run("body/"+proto, func(t *testing.T) {
			t.Parallel()
			_, err := e.pointsClient(opts...).GrantPoints(t.Context(), withBearer(&pointsv1.GrantPointsRequest{Points: 1, Reason: strings.Repeat("x", 2<<10)}, admin))
			if connect.CodeOf(err) != connect.CodeResourceExhausted {
				t.Fatalf("error = %v, want resource_exhausted", err)
			}
			if _, err := e.pointsClient(opts...).GrantPoints(t.Context(), withBearer(&pointsv1.GrantPointsRequest{Points: 1, Reason: "ok"}, admin)); err != nil {
				t.Fatalf("small body: %v", err)
			}
		})
		t.Run("headers/"+proto, func(t *testing.T) {
			t.Parallel()
			req := withBearer(&pointsv1.GetBalanceRequest{}, admin)
			req.Header().Set("X-Padding", strings.Repeat("x", 9<<10))
			_, err := e.pointsClient(opts...).GetBalance(t.Context(), req)
			if connect.CodeOf(err) != connect.CodeResourceExhausted {
				t.Fatalf("error = %v, want resource_exhausted", err)
			}
		})
	}
	t.Run("plain HTTP client gets a plain error", func(t *testing.T) {
		t.Parallel()
		res, err := e.srv.Client().Post(e.srv.URL+pointsv1connect.PointsServiceGrantPointsProcedure, "text/plain", strings.NewReader(strings.Repeat("x", 2<<10)))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusTooManyRequests && res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d", res.StatusCode)
		}
	})
}

// TestFallback: non-RPC paths go to the fallback, without tokens; unknown
// services are NotFound.
func TestFallback(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.srv.URL+"/index.html", nil)
	req.Header.Set(authn.TxnHeader, "forged")
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("fallback status %d", res.StatusCode)
	}
	_, err = connect.NewClient[pointsv1.GetBalanceRequest, pointsv1.GetBalanceResponse](e.srv.Client(), e.srv.URL+"/tokenrelay.unknown.v1.UnknownService/Get").
		CallUnary(t.Context(), connect.NewRequest(&pointsv1.GetBalanceRequest{}))
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("unknown service: %v", err)
	}
}

// TestRemoteUpstream: a route by URL reaches an h2c upstream, over gRPC
// too, and the upstream gets the minted transaction token.
func TestRemoteUpstream(t *testing.T) {
	t.Parallel()
	gwRing, idRing := ring(t), ring(t)
	p := &points{}
	up := startUpstream(t, p, gwRing)
	srv := serve(t, config(gwRing, idRing, gateway.Route{URL: up.URL}), true)
	tok := access(t, issuer(t, idIssuer, idRing), "usr_bob", "shop", gateway.DefaultAudience)
	for proto, opts := range protocols {
		t.Run(proto, func(t *testing.T) {
			res, err := pointsClient(srv, opts...).GetBalance(t.Context(), withBearer(&pointsv1.GetBalanceRequest{}, tok))
			if err != nil || res.Msg.GetBalance() != 42 || p.seen().claims.Subject != "usr_bob" {
				t.Fatalf("GetBalance = %v, %v; upstream saw %+v", res, err, p.seen())
			}
		})
	}
	up.Close()
	wantUnavailable(t, srv, tok, "upstream down")
}

func TestConfigRefusals(t *testing.T) {
	t.Parallel()
	base := func() gateway.Config { return config(ring(t), ring(t), gateway.Route{Handler: http.NotFoundHandler()}) }
	for _, tc := range []struct {
		name string
		mod  func(*gateway.Config)
	}{
		{"no keys", func(c *gateway.Config) { c.Keys = nil }},
		{"no issuers", func(c *gateway.Config) { c.Issuers = nil }},
		{"capability route", func(c *gateway.Config) {
			c.Routes = append(c.Routes, gateway.Route{Service: capabilityv1connect.CapabilityServiceName, Handler: http.NotFoundHandler()})
		}},
		{"repeated route", func(c *gateway.Config) { c.Routes = append(c.Routes, c.Routes[0]) }},
		{"bad URL", func(c *gateway.Config) {
			c.Routes[0] = gateway.Route{Service: pointsv1connect.PointsServiceName, URL: "ftp://x"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := base()
			tc.mod(&c)
			if _, err := gateway.New(t.Context(), c); !errors.Is(err, gateway.ErrConfig) {
				t.Fatalf("New = %v, want ErrConfig", err)
			}
		})
	}
}

// codeOK stands for success in the tables (connect.Code has no OK value).
const codeOK connect.Code = 0

// lastLine is the last line written.
func (s *syncBuffer) lastLine() string {
	lines := strings.Split(strings.TrimSpace(s.String()), "\n")
	return lines[len(lines)-1]
}
