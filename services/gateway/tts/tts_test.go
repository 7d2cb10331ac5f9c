package tts_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	pointsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1/pointsv1connect"
	txntokenv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/txntoken/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
	"github.com/tokenrelay/tokenrelay/sdk/go/txntoken"
	"github.com/tokenrelay/tokenrelay/services/gateway/tts"
)

// service is a Txn-Token Service under test with its workloads' rings and a
// clock the test moves.
type service struct {
	gwRing *keys.Ring
	rings  map[string]*keys.Ring
	srv    *httptest.Server
	logs   *syncBuffer
	mu     sync.Mutex
	now    time.Time
}

func (e *service) clock() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return e.now }
func (e *service) advance(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now = e.now.Add(d)
}

// startTTS serves a Txn-Token Service that knows three workloads:
// "nightly" (a batch job that may act for usr_1 and itself, scopes shop and
// report), "order-processing" (any subject, may continue transactions,
// scope payments:capture and coupons:redeem) and "stranger" (its
// own subject only, scope report).
func startTTS(t *testing.T) *service {
	t.Helper()
	e := &service{gwRing: ring(t), rings: map[string]*keys.Ring{}, logs: &syncBuffer{}, now: time.Now().Truncate(time.Second)} // the upstream of the batch test verifies with the real clock
	for _, n := range []string{"nightly", "order-processing", "stranger", "unknown"} {
		e.rings[n] = ring(t)
	}
	s, err := tts.New(tts.Config{
		Keys: e.gwRing, Logger: slog.New(authn.NewLogHandler(slog.NewJSONHandler(e.logs, nil))), Clock: e.clock,
		Workloads: []tts.Workload{
			{Name: "nightly", Keys: e.rings["nightly"], Subjects: []string{"usr_1", "nightly"}, Scopes: []string{"shop", "report"}},
			{Name: "order-processing", Keys: e.rings["order-processing"], Subjects: []string{tts.AnySubject},
				Scopes: []string{"payments:capture", "coupons:redeem", "shop"}, Continue: true},
			{Name: "stranger", Keys: e.rings["stranger"], Subjects: []string{"stranger"}, Scopes: []string{"report"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	mux := http.NewServeMux()
	for _, p := range s.Paths() {
		mux.Handle(p, s.Handler())
	}
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

// client is workload's Connect client of the service.
func (e *service) client(t *testing.T, workload string) *txntoken.Client {
	return txntoken.NewClient(e.srv.Client(), e.srv.URL, tts.DefaultName, tts.DefaultTrustDomain,
		issuer(t, workload, e.rings[workload], token.WithClock(e.clock)))
}

// verify checks a token as every service does.
func (e *service) verify(t *testing.T, raw string) (token.TransactionClaims, error) {
	t.Helper()
	v, err := token.NewVerifier(token.WithClock(e.clock),
		token.Trust(tts.DefaultName, e.gwRing, token.Accept(token.Transaction, tts.DefaultTrustDomain)))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	return token.Verify(t.Context(), v, token.Transaction, raw)
}

// gatewayToken mints a transaction token as the gateway does for a request.
func (e *service) gatewayToken(t *testing.T, sub, scope string) (string, token.TransactionClaims) {
	t.Helper()
	raw, c, err := token.Issue(t.Context(), issuer(t, tts.DefaultName, e.gwRing, token.WithClock(e.clock)), token.Transaction, token.TransactionClaims{
		Registered: token.Registered{Subject: sub, Audience: []string{tts.DefaultTrustDomain}},
		Scope:      scope, Context: map[string]string{"tenant": "default"}, RequestingWorkload: tts.DefaultName,
	})
	if err != nil {
		t.Fatal(err)
	}
	return raw, c
}

// form posts an exchange as workload, with its workload token as
// client_assertion bound to the request, and returns the status and JSON.
func (e *service) form(t *testing.T, workload string, v url.Values) (int, map[string]any) {
	t.Helper()
	req := &txntokenv1.ExchangeRequest{
		Audience: v.Get("audience"), Scope: v.Get("scope"), SubjectToken: v.Get("subject_token"),
		SubjectTokenType: v.Get("subject_token_type"), RequestContext: v.Get("request_context"), RequestDetails: v.Get("request_details"),
	}
	digest, err := authn.RequestDigest(req)
	if err != nil {
		t.Fatal(err)
	}
	wl, _, err := token.Issue(t.Context(), issuer(t, workload, e.rings[workload], token.WithClock(e.clock)), token.Workload, token.WorkloadClaims{
		Registered: token.Registered{Audience: []string{tts.DefaultName}}, Procedure: tts.TokenPath, RequestDigest: digest,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !v.Has("client_assertion") {
		v.Set("client_assertion_type", tts.ClientAssertionJWT)
		v.Set("client_assertion", wl)
	}
	return e.post(t, v.Encode())
}

func (e *service) post(t *testing.T, body string) (int, map[string]any) {
	t.Helper()
	res, err := e.srv.Client().Post(e.srv.URL+tts.TokenPath, "application/x-www-form-urlencoded", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("status %d, body %q: %v", res.StatusCode, b, err)
	}
	if res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q", res.Header.Get("Cache-Control"))
	}
	return res.StatusCode, out
}

// assertion is workload's subject assertion for sub, continuing txn if set.
func (e *service) assertion(t *testing.T, workload, sub, txn string) string {
	t.Helper()
	raw, _, err := token.Issue(t.Context(), issuer(t, workload, e.rings[workload], token.WithClock(e.clock)), token.Assertion, token.AssertionClaims{
		Registered: token.Registered{Subject: sub, Audience: []string{tts.DefaultName}}, Txn: txn,
	})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func exchangeForm(scope, subject, typ string) url.Values {
	return url.Values{
		"grant_type": {tts.GrantTokenExchange}, "requested_token_type": {tts.TokenTypeTxn},
		"audience": {tts.DefaultTrustDomain}, "scope": {scope},
		"subject_token": {subject}, "subject_token_type": {typ},
	}
}

// A batch job, with no inbound request, gets a transaction token by token
// exchange as an allowed workload, over the form post and over Connect,
// and calls a service with it: the service verifies it as any transaction
// token and sees the job's subject and txn.
func TestTxnTokenServiceBatchJob(t *testing.T) {
	t.Parallel()
	e := startTTS(t)

	v := exchangeForm("shop", e.assertion(t, "nightly", "usr_1", ""), tts.TokenTypeJWT)
	v.Set("request_context", `{"job":"nightly-report"}`)
	v.Set("request_details", `{"batch":"2026-12-03"}`)
	status, out := e.form(t, "nightly", v)
	if status != http.StatusOK || out["token_type"] != "N_A" || out["issued_token_type"] != tts.TokenTypeTxn || out["expires_in"] != float64(300) {
		t.Fatalf("form exchange: %d %v", status, out)
	}
	if _, ok := out["refresh_token"]; ok {
		t.Fatal("a refresh token was issued")
	}
	raw := out["access_token"].(string)
	c, err := e.verify(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "usr_1" || c.Scope != "shop" || c.Txn == "" || c.RequestingWorkload != "nightly" ||
		c.Context["tenant"] != tts.DefaultTenant || c.Context["batch"] != "2026-12-03" || c.RequestContext["job"] != "nightly-report" {
		t.Fatalf("claims = %+v", c)
	}
	if strings.Contains(e.logs.String(), raw) || !strings.Contains(e.logs.String(), `"txn":"`+c.Txn+`"`) {
		t.Fatalf("the issuance is not logged with its txn, or the token is logged: %s", e.logs)
	}

	// Over Connect, for itself, and on to a service.
	rawRPC, err := e.client(t, "nightly").Exchange(t.Context(), txntoken.Request{Subject: "nightly", Scopes: []string{"report"}})
	if err != nil {
		t.Fatal(err)
	}
	p := &points{}
	pc := startPoints(t, p, e.gwRing)
	ctx := t.Context()
	rpcClaims, err := e.verify(t, rawRPC)
	if err != nil {
		t.Fatal(err)
	}
	ctx = authn.ContextWithTransaction(ctx, rawRPC, rpcClaims)
	if _, err := pc.GetBalance(ctx, connect.NewRequest(&pointsv1.GetBalanceRequest{})); err != nil {
		t.Fatalf("calling a service with the exchanged token: %v", err)
	}
	if got := p.seen(); got.Subject != "nightly" || got.Txn != rpcClaims.Txn || got.Txn == c.Txn || !got.HasScope("report") {
		t.Fatalf("the service saw %+v", got)
	}
}

// A replacement keeps txn, sub, aud and tctx, narrows the scope, and adds
// the workload to the call chain; OrderProcessing continues a transaction it
// recorded (same txn, same subject) long after its token expired.
func TestTxnTokenServiceReplaceAndContinue(t *testing.T) {
	t.Parallel()
	e := startTTS(t)
	orig, oc := e.gatewayToken(t, "usr_1", "shop payments:capture")
	op := e.client(t, "order-processing")
	raw, err := op.Replace(t.Context(), orig, []string{"payments:capture"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.verify(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	if c.Txn != oc.Txn || c.Subject != "usr_1" || c.Scope != "payments:capture" || c.RequestingWorkload != "gateway,order-processing" ||
		c.Audience[0] != tts.DefaultTrustDomain || c.Context["tenant"] != "default" {
		t.Fatalf("replacement = %+v", c)
	}

	e.advance(6 * time.Hour) // the saga resumes on another replica, hours later
	raw, err = op.Exchange(t.Context(), txntoken.Request{Subject: "usr_1", Txn: oc.Txn, Scopes: []string{"coupons:redeem"}})
	if err != nil {
		t.Fatal(err)
	}
	if c, err = e.verify(t, raw); err != nil || c.Txn != oc.Txn || c.Subject != "usr_1" || c.Scope != "coupons:redeem" {
		t.Fatalf("continued = %+v, %v", c, err)
	}
}

// Every refusal the draft and the allow-list call for, over the form post
// (RFC 6749 section 5.2 errors) and Connect (codes).
func TestTxnTokenServiceRefusals(t *testing.T) {
	t.Parallel()
	e := startTTS(t)
	expired, _ := e.gatewayToken(t, "usr_1", "shop")
	expiredAssertion := e.assertion(t, "nightly", "usr_1", "")
	e.advance(10 * time.Minute)
	orig, oc := e.gatewayToken(t, "usr_1", "shop")

	// A replaced token whose txn was changed: the payload edited, the
	// signature kept.
	replaced, err := e.client(t, "order-processing").Replace(t.Context(), orig, []string{"shop"})
	if err != nil {
		t.Fatal(err)
	}
	changedTxn := editClaim(t, replaced, "txn", "txn-of-another-order")

	tests := []struct {
		name     string
		workload string
		form     url.Values
		status   int
		oauth    string
	}{
		{"disallowed workload: subject", "stranger", exchangeForm("report", e.assertion(t, "stranger", "usr_1", ""), tts.TokenTypeJWT), 400, "unauthorized_client"},
		{"disallowed workload: scope", "stranger", exchangeForm("shop", e.assertion(t, "stranger", "stranger", ""), tts.TokenTypeJWT), 400, "invalid_scope"},
		{"unknown workload", "unknown", exchangeForm("shop", e.assertion(t, "unknown", "usr_1", ""), tts.TokenTypeJWT), 401, "invalid_client"},
		{"widened scope", "order-processing", exchangeForm("shop payments:capture", orig, tts.TokenTypeTxn), 400, "invalid_scope"},
		{"expired subject token", "order-processing", exchangeForm("shop", expired, tts.TokenTypeTxn), 400, "invalid_grant"},
		{"expired subject assertion", "nightly", exchangeForm("shop", expiredAssertion, tts.TokenTypeJWT), 400, "invalid_grant"},
		{"replaced token with a changed txn", "order-processing", exchangeForm("shop", changedTxn, tts.TokenTypeTxn), 400, "invalid_grant"},
		{"continuing without leave", "nightly", exchangeForm("shop", e.assertion(t, "nightly", "usr_1", oc.Txn), tts.TokenTypeJWT), 400, "unauthorized_client"},
		{"another workload's assertion", "nightly", exchangeForm("shop", e.assertion(t, "order-processing", "usr_1", ""), tts.TokenTypeJWT), 400, "invalid_grant"},
		{"another audience", "nightly", func() url.Values {
			v := exchangeForm("shop", e.assertion(t, "nightly", "usr_1", ""), tts.TokenTypeJWT)
			v.Set("audience", "elsewhere")
			return v
		}(), 400, "invalid_target"},
		{"no scope", "nightly", exchangeForm("", e.assertion(t, "nightly", "usr_1", ""), tts.TokenTypeJWT), 400, "invalid_request"},
		{"malformed scope", "nightly", exchangeForm("shop  report", e.assertion(t, "nightly", "usr_1", ""), tts.TokenTypeJWT), 400, "invalid_scope"},
		{"unknown subject token type", "nightly", exchangeForm("shop", e.assertion(t, "nightly", "usr_1", ""), "urn:ietf:params:oauth:token-type:access_token"), 400, "invalid_request"},
		{"request_details on a replacement", "order-processing", func() url.Values {
			v := exchangeForm("shop", orig, tts.TokenTypeTxn)
			v.Set("request_details", `{"tenant":"other"}`)
			return v
		}(), 400, "invalid_request"},
		{"request_details setting the tenant", "nightly", func() url.Values {
			v := exchangeForm("shop", e.assertion(t, "nightly", "usr_1", ""), tts.TokenTypeJWT)
			v.Set("request_details", `{"tenant":"other"}`)
			return v
		}(), 400, "invalid_request"},
		{"request_context not an object of strings", "nightly", func() url.Values {
			v := exchangeForm("shop", e.assertion(t, "nightly", "usr_1", ""), tts.TokenTypeJWT)
			v.Set("request_context", `{"n":1}`)
			return v
		}(), 400, "invalid_request"},
		{"another grant type", "nightly", func() url.Values {
			v := exchangeForm("shop", e.assertion(t, "nightly", "usr_1", ""), tts.TokenTypeJWT)
			v.Set("grant_type", "client_credentials")
			return v
		}(), 400, "unsupported_grant_type"},
		{"another requested token type", "nightly", func() url.Values {
			v := exchangeForm("shop", e.assertion(t, "nightly", "usr_1", ""), tts.TokenTypeJWT)
			v.Set("requested_token_type", "urn:ietf:params:oauth:token-type:access_token")
			return v
		}(), 400, "invalid_request"},
		{"no client assertion", "nightly", func() url.Values {
			v := exchangeForm("shop", e.assertion(t, "nightly", "usr_1", ""), tts.TokenTypeJWT)
			v.Set("client_assertion", "")
			return v
		}(), 401, "invalid_client"},
		{"repeated parameter", "nightly", func() url.Values {
			v := exchangeForm("shop", e.assertion(t, "nightly", "usr_1", ""), tts.TokenTypeJWT)
			v.Add("scope", "report")
			return v
		}(), 400, "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, out := e.form(t, tc.workload, tc.form)
			if status != tc.status || out["error"] != tc.oauth || out["access_token"] != nil {
				t.Fatalf("got %d %v, want %d %s", status, out, tc.status, tc.oauth)
			}
		})
	}

	t.Run("client assertion bound to another request", func(t *testing.T) {
		v := exchangeForm("shop", e.assertion(t, "nightly", "usr_1", ""), tts.TokenTypeJWT)
		status, _ := e.form(t, "nightly", v) // binds to scope shop
		if status != http.StatusOK {
			t.Fatalf("status %d", status)
		}
		v.Set("scope", "report") // the same client assertion, another request
		if status, out := e.post(t, v.Encode()); status != 401 || out["error"] != "invalid_client" {
			t.Fatalf("got %d %v", status, out)
		}
	})
	t.Run("GET", func(t *testing.T) {
		res, err := e.srv.Client().Get(e.srv.URL + tts.TokenPath)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 400 {
			t.Fatalf("status %d", res.StatusCode)
		}
	})
	t.Run("connect codes", func(t *testing.T) {
		op := e.client(t, "order-processing")
		if _, err := op.Replace(t.Context(), orig, []string{"shop", "payments:capture"}); connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Fatalf("widened scope: %v", err)
		}
		if _, err := op.Replace(t.Context(), expired, []string{"shop"}); connect.CodeOf(err) != connect.CodeFailedPrecondition {
			t.Fatalf("expired: %v", err)
		}
		if _, err := op.Replace(t.Context(), changedTxn, []string{"shop"}); connect.CodeOf(err) != connect.CodeFailedPrecondition {
			t.Fatalf("changed txn: %v", err)
		}
		if _, err := e.client(t, "stranger").Exchange(t.Context(), txntoken.Request{Subject: "usr_1", Scopes: []string{"report"}}); connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Fatalf("disallowed workload: %v", err)
		}
		if _, err := e.client(t, "unknown").Exchange(t.Context(), txntoken.Request{Subject: "usr_1", Scopes: []string{"shop"}}); connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Fatalf("unknown workload: %v", err)
		}
	})
	// The services refuse the edited token too.
	if _, err := e.verify(t, changedTxn); err == nil {
		t.Fatal("a token with a changed txn verified")
	}
	if strings.Contains(e.logs.String(), orig) || strings.Contains(e.logs.String(), expired) {
		t.Fatal("a subject token was logged")
	}
}

// editClaim returns raw with the claim name set to value in its payload and
// its signature unchanged.
func editClaim(t *testing.T, raw, name, value string) string {
	t.Helper()
	parts := strings.Split(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatal(err)
	}
	claims[name] = value
	if b, err = json.Marshal(claims); err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
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

// points is a service a batch job calls: it sees the caller of its
// verified transaction token.
type points struct {
	pointsv1connect.UnimplementedPointsServiceHandler
	mu     sync.Mutex
	caller authn.Caller
}

func (p *points) GetBalance(ctx context.Context, _ *connect.Request[pointsv1.GetBalanceRequest]) (*connect.Response[pointsv1.GetBalanceResponse], error) {
	c, err := authn.RequireCaller(ctx)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.caller = c
	p.mu.Unlock()
	return connect.NewResponse(&pointsv1.GetBalanceResponse{}), nil
}

func (p *points) seen() authn.Caller { p.mu.Lock(); defer p.mu.Unlock(); return p.caller }

// startPoints serves p behind the interceptor every service installs,
// trusting the gateway's transaction tokens.
func startPoints(t *testing.T, p *points, gwRing *keys.Ring) pointsv1connect.PointsServiceClient {
	t.Helper()
	v, err := token.NewVerifier(token.Trust(tts.DefaultName, gwRing, token.Accept(token.Transaction, tts.DefaultTrustDomain)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	mux := http.NewServeMux()
	mux.Handle(pointsv1connect.NewPointsServiceHandler(p, connect.WithInterceptors(authn.NewServerInterceptor(v))))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return pointsv1connect.NewPointsServiceClient(srv.Client(), srv.URL, connect.WithInterceptors(authn.NewClientInterceptor()))
}

func TestParseWorkloads(t *testing.T) {
	t.Parallel()
	r := ring(t)
	var asked []string
	keysOf := func(name, jwks string) (keys.Source, error) {
		if jwks == "" {
			return nil, errors.New("no JWKS URL")
		}
		asked = append(asked, name+"="+jwks)
		return r, nil
	}
	ws, err := tts.ParseWorkloads([]byte(`{"workloads": [{"name": "order-processing", "jwks": "http://127.0.0.1:8084/.well-known/jwks.json",
		"subjects": ["*"], "scopes": ["payments:capture"], "continue": true}]}`), keysOf)
	if err != nil || len(ws) != 1 || ws[0].Name != "order-processing" || !ws[0].Continue || ws[0].Scopes[0] != "payments:capture" ||
		ws[0].Keys != keys.Source(r) || asked[0] != "order-processing=http://127.0.0.1:8084/.well-known/jwks.json" {
		t.Fatalf("ParseWorkloads = %+v, %v (asked %v)", ws, err, asked)
	}
	for name, doc := range map[string]string{
		"not JSON":       `{`,
		"unknown member": `{"workloads": [{"name": "a", "jwks": "http://x", "scopes": ["s"], "subjects": ["*"], "admin": true}]}`,
		"no workload":    `{"workloads": []}`,
		"no JWKS":        `{"workloads": [{"name": "a", "scopes": ["s"], "subjects": ["*"]}]}`,
	} {
		if _, err := tts.ParseWorkloads([]byte(doc), keysOf); !errors.Is(err, tts.ErrConfig) {
			t.Errorf("%s: err = %v, want ErrConfig", name, err)
		}
	}
}

// FuzzTokenEndpoint: whatever body reaches the form endpoint, the answer is
// RFC 6749 JSON (an error, or a token for a genuine request), never a panic
// or another status.
func FuzzTokenEndpoint(f *testing.F) {
	gwRing, wlRing := ring(f), ring(f)
	s, err := tts.New(tts.Config{Keys: gwRing, Logger: slog.New(slog.DiscardHandler),
		Workloads: []tts.Workload{{Name: "nightly", Keys: wlRing, Subjects: []string{tts.AnySubject}, Scopes: []string{"shop"}}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(s.Close)
	f.Add(exchangeForm("shop", "x.y.z", tts.TokenTypeJWT).Encode())
	f.Add("grant_type=" + url.QueryEscape(tts.GrantTokenExchange) + "&scope=shop&scope=shop")
	f.Add("request_context=%7B%22a%22%3A1%7D&audience=tokenrelay")
	f.Add("")
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, tts.TokenPath, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("status %d, body %q is not JSON", rec.Code, rec.Body.String())
		}
		switch rec.Code {
		case http.StatusOK:
			if out["token_type"] != "N_A" {
				t.Fatalf("200 without N_A: %v", out)
			}
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusServiceUnavailable:
			if e, _ := out["error"].(string); e == "" {
				t.Fatalf("status %d without an error code: %v", rec.Code, out)
			}
		default:
			t.Fatalf("status %d", rec.Code)
		}
	})
}
