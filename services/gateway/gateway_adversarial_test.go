package gateway_test

import (
	"bufio"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1/identityv1connect"
	pointsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1/pointsv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
	"github.com/tokenrelay/tokenrelay/services/gateway"
)

// forge returns tok with a random signature: a forger's token, with a
// genuine header and claims, that only the signature check refuses, and
// only after the whole verification: its scalar S is canonical (below
// 2^252, less than the group order), or Ed25519 would refuse it at once.
func forge(tok string) string {
	sig := make([]byte, 64)
	_, _ = rand.Read(sig)
	sig[63] &= 0x0f // S little-endian: S < 2^252 < L
	return tok[:strings.LastIndexByte(tok, '.')+1] + base64.RawURLEncoding.EncodeToString(sig)
}

// parseChallenge parses a Bearer challenge (RFC 6750 section 3) into its
// attributes; ok is false when h is not one.
func parseChallenge(h string) (attrs map[string]string, ok bool) {
	scheme, rest, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return nil, false
	}
	attrs = map[string]string{}
	for rest = strings.TrimSpace(rest); rest != ""; {
		name, after, found := strings.Cut(rest, `="`)
		if !found {
			return nil, false
		}
		end := strings.IndexByte(after, '"') // the gateway's values hold no quote
		if end < 0 {
			return nil, false
		}
		attrs[strings.TrimSpace(name)] = after[:end]
		rest = strings.TrimPrefix(strings.TrimSpace(after[end+1:]), ",")
		rest = strings.TrimSpace(rest)
	}
	return attrs, true
}

// upstreamHeaders records the headers the upstream got, by the X-Case
// header of the request.
type upstreamHeaders struct {
	mu   sync.Mutex
	seen map[string]http.Header
}

func (u *upstreamHeaders) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen[r.Header.Get("X-Case")] = r.Header.Clone()
		u.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

func (u *upstreamHeaders) get(name string) (http.Header, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	h, ok := u.seen[name]
	return h, ok
}

// answer is what one hostile request got back.
type answer struct {
	code      connect.Code // codeOK: passed
	status    int          // HTTP status (plain and raw Connect requests)
	message   string
	challenge string // WWW-Authenticate
}

// TestAdversarial is the gateway's table of hostile requests about
// credentials: several credentials at once (RFC 6750 section 2: one method,
// one token), client-supplied headers only the gateway may set, and the
// challenge of every refusal (RFC 6750 section 3). Each case goes through
// the generated clients (Connect, gRPC, gRPC-Web), as a raw Connect JSON
// request and, for refusals, as a plain HTTP request.
func TestAdversarial(t *testing.T) {
	t.Parallel()
	up := &upstreamHeaders{seen: map[string]http.Header{}}
	e := start(t, func(c *gateway.Config) {
		c.AuthFailureBurst = 1000 // TestAdversarialFailureBudget tests the budget
		for i := range c.Routes {
			c.Routes[i].Handler = up.wrap(c.Routes[i].Handler)
		}
	})
	other := ring(t)
	past := issuer(t, idIssuer, e.idRing, token.WithClock(func() time.Time { return time.Now().Add(-time.Hour) }))
	good := access(t, e.id, "usr_shopper", "shop", gateway.DefaultAudience)
	admin := access(t, e.id, "usr_admin", "shop admin", gateway.DefaultAudience)
	forged := forge(good)
	clientTxn, clientClaims, err := token.Issue(t.Context(), issuer(t, gateway.DefaultName, e.gwRing), token.Transaction, token.TransactionClaims{
		Registered: token.Registered{Subject: "usr_admin", Audience: []string{gateway.DefaultTrustDomain}}, Scope: "shop admin",
	})
	if err != nil {
		t.Fatal(err)
	}
	bearer := func(tok string) func(http.Header) {
		return func(h http.Header) { h.Set("Authorization", "Bearer "+tok) }
	}
	authorizations := func(values ...string) func(http.Header) {
		return func(h http.Header) { h["Authorization"] = values }
	}
	// mintedOnly checks that the upstream got one Txn-Token, minted by the
	// gateway for this request, and no other header of its kind.
	mintedOnly := func(t *testing.T, h http.Header) {
		t.Helper()
		for k := range h {
			n := strings.ReplaceAll(strings.ToLower(k), "_", "-")
			if (n == "txn-token" && k != authn.TxnHeader) || n == "workload-token" || n == "authorization" {
				t.Errorf("upstream got client header %s: %q", k, h[k])
			}
		}
		txns := h.Values(authn.TxnHeader)
		if len(txns) != 1 || txns[0] == clientTxn {
			t.Fatalf("upstream got %d Txn-Token values, the client's: %v", len(txns), len(txns) > 0 && txns[0] == clientTxn)
		}
		claims, err := token.Verify(t.Context(), e.txnVerifier, token.Transaction, txns[0])
		if err != nil || claims.Txn == clientClaims.Txn || claims.Subject != "usr_shopper" || claims.Scope != "shop" {
			t.Fatalf("upstream's Txn-Token: %+v, %v", claims, err)
		}
	}

	const (
		invalidRequest    = "invalid_request"
		invalidToken      = "invalid_token"
		insufficientScope = "insufficient_scope"
	)
	for _, tc := range []struct {
		name     string
		admin    bool              // call GrantPoints (an admin procedure), not GetBalance
		header   func(http.Header) // the request's credentials and hostile headers
		query    string            // raw query (raw requests only)
		want     connect.Code      // codeOK: passes
		status   int               // plain HTTP status of a refusal
		error    string            // the challenge's error attribute; "" none
		scope    string            // the challenge's scope attribute
		upstream func(*testing.T, http.Header)
	}{
		// Item 10: one credential, sent one way.
		{name: "one valid token passes", header: bearer(good), want: codeOK, upstream: mintedOnly},
		{name: "two Authorization headers, the first valid", header: authorizations("Bearer "+good, "Bearer "+forged),
			want: connect.CodeUnauthenticated, status: http.StatusBadRequest, error: invalidRequest},
		{name: "two Authorization headers, the second valid", header: authorizations("Bearer "+forged, "Bearer "+good),
			want: connect.CodeUnauthenticated, status: http.StatusBadRequest, error: invalidRequest},
		{name: "two Authorization headers, both valid", header: authorizations("Bearer "+good, "Bearer "+admin),
			want: connect.CodeUnauthenticated, status: http.StatusBadRequest, error: invalidRequest},
		{name: "two tokens in one header", header: authorizations("Bearer " + good + " " + admin),
			want: connect.CodeUnauthenticated, status: http.StatusBadRequest, error: invalidRequest},
		{name: "two credentials joined by a comma", header: authorizations("Bearer " + good + ", Bearer " + forged),
			want: connect.CodeUnauthenticated, status: http.StatusBadRequest, error: invalidRequest},
		{name: "Basic and Bearer in one header", header: authorizations("Basic dXNlcjpwYXNz, Bearer " + good),
			want: connect.CodeUnauthenticated, status: http.StatusBadRequest, error: invalidRequest},
		{name: "Bearer without a token", header: authorizations("Bearer"),
			want: connect.CodeUnauthenticated, status: http.StatusBadRequest, error: invalidRequest},
		{name: "token outside the b64token syntax", header: authorizations("Bearer " + good + "!"),
			want: connect.CodeUnauthenticated, status: http.StatusBadRequest, error: invalidRequest},
		{name: "header and access_token query parameter", header: bearer(good), query: "access_token=" + forged,
			want: connect.CodeUnauthenticated, status: http.StatusBadRequest, error: invalidRequest},
		{name: "access_token query parameter alone is no credential", header: func(http.Header) {}, query: "access_token=" + good,
			want: connect.CodeUnauthenticated, status: http.StatusUnauthorized},
		// Item 10: headers only the gateway sets.
		{name: "repeated client Txn-Token and Workload-Token", want: codeOK, upstream: mintedOnly, header: func(h http.Header) {
			bearer(good)(h)
			h[authn.TxnHeader] = []string{clientTxn, clientTxn}
			h[authn.WorkloadHeader] = []string{"forged", "forged"}
		}},
		{name: "underscore and case variants of Txn-Token and Workload-Token", want: codeOK, upstream: mintedOnly, header: func(h http.Header) {
			bearer(good)(h)
			h["Txn_token"] = []string{clientTxn}
			h["TXN_TOKEN"] = []string{clientTxn}
			h["Workload_token"] = []string{"forged"}
		}},
		// Item 11: the challenge of every refusal.
		{name: "no token", header: func(http.Header) {}, want: connect.CodeUnauthenticated, status: http.StatusUnauthorized},
		{name: "Basic credentials", header: authorizations("Basic dXNlcjpwYXNz"), want: connect.CodeUnauthenticated, status: http.StatusUnauthorized},
		{name: "forged signature", header: bearer(forged), want: connect.CodeUnauthenticated, status: http.StatusUnauthorized, error: invalidToken},
		{name: "malformed", header: bearer("not-a-token"), want: connect.CodeUnauthenticated, status: http.StatusUnauthorized, error: invalidToken},
		{name: "expired", header: bearer(access(t, past, "usr_a", "shop", gateway.DefaultAudience)),
			want: connect.CodeUnauthenticated, status: http.StatusUnauthorized, error: invalidToken},
		{name: "wrong audience", header: bearer(access(t, e.id, "usr_a", "shop", "another-api")),
			want: connect.CodeUnauthenticated, status: http.StatusUnauthorized, error: invalidToken},
		{name: "unknown issuer", header: bearer(access(t, issuer(t, "https://evil.test", other), "usr_a", "shop", gateway.DefaultAudience)),
			want: connect.CodeUnauthenticated, status: http.StatusUnauthorized, error: invalidToken},
		{name: "unknown key", header: bearer(access(t, issuer(t, idIssuer, other), "usr_a", "shop", gateway.DefaultAudience)),
			want: connect.CodeUnauthenticated, status: http.StatusUnauthorized, error: invalidToken},
		{name: "transaction token as access token", header: bearer(clientTxn),
			want: connect.CodeUnauthenticated, status: http.StatusUnauthorized, error: invalidToken},
		{name: "admin procedure without the admin scope", admin: true, header: bearer(good),
			want: connect.CodePermissionDenied, status: http.StatusForbidden, error: insufficientScope, scope: authn.AdminScope},
		{name: "admin procedure with the admin scope", admin: true, header: bearer(admin), want: codeOK},
	} {
		procedure := pointsv1connect.PointsServiceGetBalanceProcedure
		if tc.admin {
			procedure = pointsv1connect.PointsServiceGrantPointsProcedure
		}
		check := func(t *testing.T, mode string, got answer) {
			t.Helper()
			if tc.want == codeOK {
				if got.code != codeOK {
					t.Fatalf("%s: refused: %v %q", mode, got.code, got.message)
				}
				if tc.upstream != nil {
					h, ok := up.get(tc.name + "/" + mode)
					if !ok {
						t.Fatalf("%s: the upstream was not reached", mode)
					}
					tc.upstream(t, h)
				}
				return
			}
			status := tc.status // plain HTTP: RFC 6750's status
			if mode == "raw" {
				status = connectStatus(tc.want) // Connect: the code's
			}
			if got.code != tc.want || (got.status != 0 && got.status != status) {
				t.Fatalf("%s: answer %v (HTTP %d) %q, want %v (HTTP %d)", mode, got.code, got.status, got.message, tc.want, status)
			}
			if _, ok := up.get(tc.name + "/" + mode); ok {
				t.Fatalf("%s: a refused request reached the upstream", mode)
			}
			attrs, ok := parseChallenge(got.challenge)
			if !ok || attrs["realm"] != gateway.DefaultTrustDomain || attrs["error"] != tc.error || attrs["scope"] != tc.scope {
				t.Fatalf("%s: WWW-Authenticate %q, want realm %q, error %q, scope %q", mode, got.challenge, gateway.DefaultTrustDomain, tc.error, tc.scope)
			}
			if _, ok := attrs["error_description"]; ok != (tc.error != "") {
				t.Fatalf("%s: WWW-Authenticate %q: error_description with no error, or none with one", mode, got.challenge)
			}
			for _, tok := range []string{good, admin, forged, clientTxn} {
				if strings.Contains(got.message, tok) || strings.Contains(got.challenge, tok) {
					t.Fatalf("%s: the answer echoes a token", mode)
				}
			}
		}
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.query == "" {
				for proto, opts := range protocols {
					check(t, proto, callRPC(t, e, tc.name+"/"+proto, tc.admin, tc.header, opts))
				}
			}
			check(t, "raw", callRaw(t, e, tc.name+"/raw", procedure, tc.query, tc.header, false))
			if tc.want != codeOK {
				check(t, "plain", callRaw(t, e, tc.name+"/plain", procedure, tc.query, tc.header, true))
			}
		})
	}
	if strings.Contains(e.logs.String(), good) || strings.Contains(e.logs.String(), forged) {
		t.Fatal("a token was logged")
	}
}

// TestAdversarialInvalidTokensLookAlike: every refused access token gets
// the same answer, whichever check refused it, so that a forger learns
// nothing from it (which claims pass, which issuers and keys exist); the
// reason is in the gateway's log and metrics.
func TestAdversarialInvalidTokensLookAlike(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *gateway.Config) { c.AuthFailureBurst = 1000 })
	other := ring(t)
	past := issuer(t, idIssuer, e.idRing, token.WithClock(func() time.Time { return time.Now().Add(-time.Hour) }))
	good := access(t, e.id, "usr_a", "shop", gateway.DefaultAudience)
	answers := map[string]string{}
	for name, tok := range map[string]string{
		"forged signature": forge(good),
		"malformed":        "not-a-token",
		"expired":          access(t, past, "usr_a", "shop", gateway.DefaultAudience),
		"wrong audience":   access(t, e.id, "usr_a", "shop", "another-api"),
		"unknown issuer":   access(t, issuer(t, "https://evil.test", other), "usr_a", "shop", gateway.DefaultAudience),
		"unknown key":      access(t, issuer(t, idIssuer, other), "usr_a", "shop", gateway.DefaultAudience),
	} {
		for proto, opts := range protocols {
			got := callRPC(t, e, name, false, func(h http.Header) { h.Set("Authorization", "Bearer "+tok) }, opts)
			answers[name+"/"+proto] = got.message + " | " + got.challenge
		}
		got := callRaw(t, e, name, pointsv1connect.PointsServiceGetBalanceProcedure, "", func(h http.Header) { h.Set("Authorization", "Bearer "+tok) }, true)
		answers[name+"/plain"] = got.message + " | " + got.challenge
	}
	var first string
	for k, v := range answers {
		if first == "" {
			first = k
		}
		if v != answers[first] {
			t.Errorf("%s answered %q, %s %q", k, v, first, answers[first])
		}
	}
}

// callRPC calls GetBalance (GrantPoints when admin) through the generated
// client with the headers set by header.
func callRPC(t *testing.T, e *env, name string, admin bool, header func(http.Header), opts []connect.ClientOption) answer {
	t.Helper()
	client := e.pointsClient(opts...)
	var err error
	if admin {
		req := connect.NewRequest(&pointsv1.GrantPointsRequest{Points: 1})
		header(req.Header())
		req.Header().Set("X-Case", name)
		_, err = client.GrantPoints(t.Context(), req)
	} else {
		req := connect.NewRequest(&pointsv1.GetBalanceRequest{})
		header(req.Header())
		req.Header().Set("X-Case", name)
		_, err = client.GetBalance(t.Context(), req)
	}
	if err == nil {
		return answer{code: codeOK}
	}
	var cerr *connect.Error
	if !errors.As(err, &cerr) {
		t.Fatalf("%s: %v", name, err)
	}
	return answer{code: cerr.Code(), message: cerr.Message(), challenge: cerr.Meta().Get("WWW-Authenticate")}
}

// callRaw posts to procedure as a Connect unary JSON request, or as plain
// HTTP (text/plain, a protocol the gateway does not speak).
func callRaw(t *testing.T, e *env, name, procedure, query string, header func(http.Header), plain bool) answer {
	t.Helper()
	u := e.srv.URL + procedure
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, u, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	if plain {
		req.Header.Set("Content-Type", "text/plain")
	} else {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Connect-Protocol-Version", "1")
	}
	header(req.Header)
	req.Header.Set("X-Case", name)
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	return readAnswer(t, res.StatusCode, res.Header, res.Body, plain)
}

// readAnswer reads a raw answer: a Connect unary error body, or a plain
// text one.
func readAnswer(t *testing.T, status int, h http.Header, body io.Reader, plain bool) answer {
	t.Helper()
	b, _ := io.ReadAll(body)
	a := answer{status: status, challenge: h.Get("WWW-Authenticate")}
	if status == http.StatusOK {
		return a
	}
	if plain {
		a.message = strings.TrimSpace(string(b))
		a.code = plainCode(status)
		return a
	}
	var e struct {
		Code    connect.Code `json:"code"`
		Message string       `json:"message"`
	}
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("HTTP %d, not a Connect error: %q", status, b)
	}
	a.code, a.message = e.Code, e.Message
	return a
}

// plainCode is the code a plain HTTP refusal stands for.
func plainCode(status int) connect.Code {
	switch status {
	case http.StatusBadRequest, http.StatusUnauthorized:
		return connect.CodeUnauthenticated
	case http.StatusForbidden:
		return connect.CodePermissionDenied
	case http.StatusTooManyRequests:
		return connect.CodeResourceExhausted
	}
	return connect.CodeUnknown
}

// connectStatus is the HTTP status of a Connect unary error of code.
func connectStatus(code connect.Code) int {
	switch code {
	case connect.CodeUnauthenticated:
		return http.StatusUnauthorized
	case connect.CodePermissionDenied:
		return http.StatusForbidden
	case connect.CodeResourceExhausted:
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }

// countingSource counts key lookups: the token engine looks a key up only
// when a token passed every other check, right before the signature check.
type countingSource struct {
	keys.Source
	n *atomic.Int64
}

func (c countingSource) Key(ctx context.Context, kid string) (*keys.PublicKey, error) {
	c.n.Add(1)
	return c.Source.Key(ctx, kid)
}

// TestAdversarialFailureBudget: a client that has spent its budget of
// failed authentications is refused with ResourceExhausted, before its
// token is looked at, until the budget refills; successes, missing tokens
// and the anonymous procedures spend nothing; other clients keep theirs.
// The budget's clock is a fake one: nothing depends on the machine's speed.
func TestAdversarialFailureBudget(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	var lookups atomic.Int64
	e := start(t, func(c *gateway.Config) {
		c.AuthFailureBurst = 3
		c.AuthFailureRefill = time.Second
		c.Clock = clock.Now
		c.Issuers[0].Keys = countingSource{c.Issuers[0].Keys, &lookups}
	})
	good := access(t, e.id, "usr_shopper", "shop", gateway.DefaultAudience)
	const (
		a   = "192.0.2.1:4000"
		b   = "192.0.2.2:4000"
		c   = "192.0.2.3:4000"
		v6a = "[2001:db8::1]:4000"
		v6b = "[2001:db8::2]:4000"     // a's /64
		v6c = "[2001:db8:0:1::1]:4000" // another /64
		bal = pointsv1connect.PointsServiceGetBalanceProcedure
	)
	login := identityv1connect.IdentityServiceLoginProcedure
	type step struct {
		advance    time.Duration
		addr, proc string
		tok        string // "forged": a fresh forgery each time
		plain      bool
		status     int
		retryAfter string // of a refusal for the budget
	}
	ok := func(addr, tok string) step { return step{addr: addr, proc: bal, tok: tok, status: http.StatusOK} }
	refused := func(addr, tok string) step {
		return step{addr: addr, proc: bal, tok: tok, status: http.StatusUnauthorized}
	}
	spent := func(addr, tok string) step {
		return step{addr: addr, proc: bal, tok: tok, status: http.StatusTooManyRequests, retryAfter: "1"}
	}
	steps := []step{
		ok(a, good), ok(a, good), ok(a, good), ok(a, good), ok(a, good), // successes spend nothing
		refused(a, "forged"), refused(a, "forged"), refused(a, "forged"), // the budget: 3
		spent(a, "forged"),
		spent(a, good), // refused before its token is looked at, valid or not
		{addr: a, proc: bal, tok: "forged", plain: true, status: http.StatusTooManyRequests, retryAfter: "1"},
		{addr: a, proc: login, status: http.StatusOK}, // anonymous procedures pass
		refused(b, "forged"), ok(b, good), // another client keeps its own budget
		{advance: time.Second, addr: a, proc: bal, tok: "forged", status: http.StatusUnauthorized}, // one back a second
		spent(a, "forged"),
		{advance: time.Second, addr: a, proc: bal, tok: good, status: http.StatusOK},
		ok(a, good),
		// Requests without a token spend nothing.
		refused(c, ""), refused(c, ""), refused(c, ""), refused(c, ""),
		refused(c, "forged"), refused(c, "forged"), refused(c, "forged"), spent(c, "forged"),
		// An IPv6 client is its /64.
		refused(v6a, "forged"), refused(v6a, "forged"), refused(v6a, "forged"),
		spent(v6b, good), ok(v6c, good),
	}
	for i, s := range steps {
		clock.advance(s.advance)
		tok := s.tok
		if tok == "forged" {
			tok = forge(good)
		}
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, s.proc, strings.NewReader("{}"))
		req.RemoteAddr = s.addr
		if s.plain {
			req.Header.Set("Content-Type", "text/plain")
		} else {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Connect-Protocol-Version", "1")
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		before := lookups.Load()
		rec := httptest.NewRecorder()
		e.gw.ServeHTTP(rec, req)
		got := readAnswer(t, rec.Code, rec.Header(), rec.Body, s.plain)
		if rec.Code != s.status {
			t.Fatalf("step %d (%s %s): HTTP %d %v %q, want HTTP %d", i, s.addr, s.tok, rec.Code, got.code, got.message, s.status)
		}
		if s.status != http.StatusTooManyRequests {
			continue
		}
		if got.code != connect.CodeResourceExhausted || rec.Header().Get("Retry-After") != s.retryAfter {
			t.Fatalf("step %d: %v, Retry-After %q; want resource_exhausted, Retry-After %q", i, got.code, rec.Header().Get("Retry-After"), s.retryAfter)
		}
		if lookups.Load() != before {
			t.Fatalf("step %d: a client over its budget had its token checked", i)
		}
	}
	if strings.Contains(e.logs.String(), good) {
		t.Fatal("a token was logged")
	}
}

// TestAdversarialBudgetClosesConnections: a client that has spent its
// budget of failed authentications costs almost nothing more. Its refusal
// closes the connection (Connection: close over HTTP/1.1, GOAWAY over
// HTTP/2), and its next connections are closed when accepted, before any
// HTTP is read, until its budget refills; another address is served
// meanwhile. Through Server on a loopback listener, with a fake clock:
// the deadlines only guard against a hang.
func TestAdversarialBudgetClosesConnections(t *testing.T) {
	t.Parallel()
	const (
		a = "127.0.0.1"
		b = "127.0.0.2" // on Linux the whole of 127.0.0.0/8 is loopback
	)
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	e := start(t, func(c *gateway.Config) {
		c.AuthFailureBurst = 2
		c.AuthFailureRefill = time.Second
		c.Clock = clock.Now
	})
	ln, err := e.gw.Listen(a + ":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := e.gw.Server()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	addr := ln.Addr().String()
	good := access(t, e.id, "usr_shopper", "shop", gateway.DefaultAudience)

	// HTTP/1.1: the refusal for the budget closes the connection.
	c1 := dialHTTP1(t, a, addr)
	for i := range 2 {
		if res := c1.getBalance(t, forge(good)); res.StatusCode != http.StatusUnauthorized || res.Close {
			t.Fatalf("forged token %d: HTTP %d, Connection: close %v; want 401, kept open", i, res.StatusCode, res.Close)
		}
	}
	res := c1.getBalance(t, good)
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != "1" || !res.Close {
		t.Fatalf("over the budget: HTTP %d, Retry-After %q, Connection: close %v; want 429, 1, true",
			res.StatusCode, res.Header.Get("Retry-After"), res.Close)
	}
	c1.wantClosed(t, "the connection refused for the budget")

	// The next connection is closed at accept: no HTTP response at all. It
	// may be reset before Dial even returns.
	if c2, err := tryHTTP1(t, a, addr); err == nil {
		_, _ = io.WriteString(c2, getBalance(good)) // fails if the reset came first
		c2.wantClosed(t, "a new connection of a client over its budget")
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatal(err)
	}

	// Another address keeps its own budget and its connections.
	if probe, err := net.Listen("tcp", b+":0"); err != nil {
		t.Logf("no other address to test from: %v", err)
	} else {
		_ = probe.Close()
		cb := dialHTTP1(t, b, addr)
		if res := cb.getBalance(t, forge(good)); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("another address: HTTP %d, want 401", res.StatusCode)
		}
		if res := cb.getBalance(t, good); res.StatusCode != http.StatusOK || res.Close {
			t.Fatalf("another address: HTTP %d, Connection: close %v; want 200, kept open", res.StatusCode, res.Close)
		}
	}

	// Refilled, the client is served again, and keeps its connection.
	clock.advance(time.Second)
	c3 := dialHTTP1(t, a, addr)
	for range 2 {
		if res := c3.getBalance(t, good); res.StatusCode != http.StatusOK || res.Close {
			t.Fatalf("refilled: HTTP %d, Connection: close %v; want 200, kept open", res.StatusCode, res.Close)
		}
	}

	// HTTP/2 without TLS: the refusal for the budget ends the connection
	// (GOAWAY, then close), and the next one is closed at accept.
	ended := make(chan struct{})
	var once sync.Once
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(a)}}
	tr := &http.Transport{Protocols: new(http.Protocols), DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &endConn{Conn: conn, ended: func() { once.Do(func() { close(ended) }) }}, nil
	}}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	h2c := pointsv1connect.NewPointsServiceClient(&http.Client{Transport: tr}, "http://"+addr)
	if _, err := h2c.GetBalance(t.Context(), withBearer(&pointsv1.GetBalanceRequest{}, forge(good))); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("h2c, forged token: %v; want unauthenticated", err)
	}
	if _, err := h2c.GetBalance(t.Context(), withBearer(&pointsv1.GetBalanceRequest{}, good)); connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("h2c, over the budget: %v; want resource_exhausted", err)
	}
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("h2c: the connection refused for the budget was not closed")
	}
	if _, err := h2c.GetBalance(t.Context(), withBearer(&pointsv1.GetBalanceRequest{}, good)); err == nil || connect.CodeOf(err) == connect.CodeResourceExhausted {
		t.Fatalf("h2c, a new connection over the budget: %v; want it closed at accept, unanswered", err)
	}
}

// http1Conn is a raw HTTP/1.1 connection from a chosen loopback address.
type http1Conn struct {
	net.Conn
	r *bufio.Reader
}

// dialHTTP1 connects from the address from to addr.
func dialHTTP1(t *testing.T, from, addr string) *http1Conn {
	t.Helper()
	c, err := tryHTTP1(t, from, addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tryHTTP1 is dialHTTP1, returning its failure.
func tryHTTP1(t *testing.T, from, addr string) (*http1Conn, error) {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	conn, err := d.DialContext(t.Context(), "tcp", addr)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil { // a hang guard
		t.Fatal(err)
	}
	return &http1Conn{Conn: conn, r: bufio.NewReader(conn)}, nil
}

// getBalance sends GetBalance (Connect, JSON) with tok and reads the
// answer, its body drained.
func (c *http1Conn) getBalance(t *testing.T, tok string) *http.Response {
	t.Helper()
	if _, err := io.WriteString(c, getBalance(tok)); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(c.r, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return res
}

// getBalance is a GetBalance request with tok, Connect and JSON over
// HTTP/1.1.
func getBalance(tok string) string {
	return "POST " + pointsv1connect.PointsServiceGetBalanceProcedure + " HTTP/1.1\r\nHost: gateway\r\n" +
		"Content-Type: application/json\r\nConnect-Protocol-Version: 1\r\nAuthorization: Bearer " + tok +
		"\r\nContent-Length: 2\r\n\r\n{}"
}

// wantClosed checks that the server closed the connection (end of stream
// or reset) without sending anything more.
func (c *http1Conn) wantClosed(t *testing.T, what string) {
	t.Helper()
	got, err := io.ReadAll(c.r)
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		t.Fatalf("%s: kept open", what)
	}
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("%s: %v", what, err)
	}
	if len(got) != 0 {
		t.Fatalf("%s: answered %q", what, got)
	}
}

// endConn calls ended once a read fails: the peer closed the connection,
// or the client did.
type endConn struct {
	net.Conn
	ended func()
}

func (c *endConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.ended()
	}
	return n, err
}

// TestAdversarialForeign (issue 16): what a foreign provider's access
// token may make of a transaction token. A provider grants no admin unless
// its ScopeMap says so; its subjects are qualified by its issuer, so that
// its "usr_admin" is not the local admin and two providers' "alice" are
// two users; a token a client got for itself names the client, never a
// user; the local identity issuer is unchanged.
func TestAdversarialForeign(t *testing.T) {
	t.Parallel()
	plain, mapped := newFakeProvider(t), newFakeProvider(t)
	e := start(t, func(c *gateway.Config) {
		c.AuthFailureBurst = -1
		c.Issuers = append(c.Issuers,
			gateway.Issuer{Issuer: plain.srv.URL},
			gateway.Issuer{Issuer: mapped.srv.URL, Profile: &gateway.Profile{
				ScopeMap: map[string][]string{"shop-user": {"shop"}, "shop-admin": {"shop", "admin"}},
			}},
		)
	})
	mint := func(p *fakeProvider, sub, client, scope string) string {
		raw, _, err := token.Issue(t.Context(), issuer(t, p.srv.URL, p.a), token.Access, token.AccessClaims{
			Registered: token.Registered{Subject: sub, Audience: []string{gateway.DefaultAudience}}, ClientID: client, Scope: scope,
		})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	for _, tc := range []struct {
		name      string
		tok       string
		admin     bool
		want      connect.Code
		sub       string
		scope     string
		iss       string
		principal string
	}{
		{name: "foreign user", tok: mint(plain, "alice", "web", "shop"), want: codeOK,
			sub: gateway.ForeignSubject(plain.srv.URL, "alice"), scope: "shop", iss: plain.srv.URL, principal: gateway.PrincipalUser},
		{name: "foreign admin scope dropped without a map", tok: mint(plain, "alice", "web", "shop admin"), want: codeOK,
			sub: gateway.ForeignSubject(plain.srv.URL, "alice"), scope: "shop", iss: plain.srv.URL, principal: gateway.PrincipalUser},
		{name: "foreign admin scope refused at an admin RPC", tok: mint(plain, "alice", "web", "shop admin"), admin: true, want: connect.CodePermissionDenied},
		{name: "foreign usr_admin is not the local admin", tok: mint(plain, "usr_admin", "web", "shop"), want: codeOK,
			sub: gateway.ForeignSubject(plain.srv.URL, "usr_admin"), scope: "shop", iss: plain.srv.URL, principal: gateway.PrincipalUser},
		{name: "the same sub at another provider is another user", tok: mint(mapped, "alice", "web", "shop-user"), want: codeOK,
			sub: gateway.ForeignSubject(mapped.srv.URL, "alice"), scope: "shop", iss: mapped.srv.URL, principal: gateway.PrincipalUser},
		{name: "mapped admin role reaches an admin RPC", tok: mint(mapped, "root", "web", "shop-admin"), admin: true, want: codeOK,
			sub: gateway.ForeignSubject(mapped.srv.URL, "root"), scope: "shop admin", iss: mapped.srv.URL, principal: gateway.PrincipalUser},
		{name: "unmapped admin scope of a mapped provider refused", tok: mint(mapped, "root", "web", "admin"), admin: true, want: connect.CodePermissionDenied},
		{name: "unmapped scopes grant nothing", tok: mint(mapped, "root", "web", "admin shop openid"), want: codeOK,
			sub: gateway.ForeignSubject(mapped.srv.URL, "root"), scope: "", iss: mapped.srv.URL, principal: gateway.PrincipalUser},
		{name: "client credentials: sub is the client id", tok: mint(plain, "batch-job", "batch-job", "shop"), want: codeOK,
			sub: gateway.ForeignClient(plain.srv.URL, "batch-job"), scope: "shop", iss: plain.srv.URL, principal: gateway.PrincipalClient},
		{name: "local admin unchanged", tok: access(t, e.id, "usr_admin", "shop admin", gateway.DefaultAudience), admin: true, want: codeOK,
			sub: "usr_admin", scope: "shop admin", iss: idIssuer, principal: gateway.PrincipalUser},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.admin {
				_, err = e.pointsClient().GrantPoints(t.Context(), withBearer(&pointsv1.GrantPointsRequest{}, tc.tok))
			} else {
				_, err = e.pointsClient().GetBalance(t.Context(), withBearer(&pointsv1.GetBalanceRequest{}, tc.tok))
			}
			if (tc.want == codeOK) != (err == nil) || (err != nil && connect.CodeOf(err) != tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err != nil {
				return
			}
			c, err := token.Verify(t.Context(), e.txnVerifier, token.Transaction, e.points.seen().txn)
			if err != nil {
				t.Fatal(err)
			}
			if c.Subject != tc.sub || c.Scope != tc.scope || c.Context[gateway.ContextIssuer] != tc.iss || c.Context[gateway.ContextPrincipal] != tc.principal {
				t.Fatalf("transaction token sub %q scope %q tctx %v; want %q %q iss %q principal %q", c.Subject, c.Scope, c.Context, tc.sub, tc.scope, tc.iss, tc.principal)
			}
		})
	}
}

// rsaSet is a static key source of RSA keys, as a foreign provider's
// JWKS would give.
type rsaSet map[string]*keys.PublicKey

func (s rsaSet) Key(_ context.Context, kid string) (*keys.PublicKey, error) {
	if k, ok := s[kid]; ok {
		return k, nil
	}
	return nil, keys.ErrKeyNotFound
}

// TestAdversarialForeignTokens (issue 16): a foreign provider's RS256
// tokens through the gateway, as real providers write them, and the
// header parameters no provider may use, answered as every invalid token
// is: unauthenticated with the one invalid_token message.
func TestAdversarialForeignTokens(t *testing.T) {
	t.Parallel()
	const iss = "https://idp.example"
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := keys.NewRSAPublicKey("rsa-1", &priv.PublicKey, keys.RS256)
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, func(c *gateway.Config) {
		c.AuthFailureBurst = -1
		c.Issuers = append(c.Issuers, gateway.Issuer{Issuer: iss, Keys: rsaSet{"rsa-1": pub},
			Profile: &gateway.Profile{AccessProfile: token.AccessProfile{MaxLifetime: 24 * time.Hour}}})
	})
	sign := func(header, claims string) string {
		b := base64.RawURLEncoding.EncodeToString
		input := b([]byte(header)) + "." + b([]byte(claims))
		sum := sha256.Sum256([]byte(input))
		sig, err := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		return input + "." + b(sig)
	}
	now := time.Now().Unix()
	claims := func(life int64, extra string) string {
		return fmt.Sprintf(`{"iss":%q,"sub":"alice","aud":"tokenrelay-api","iat":%d,"exp":%d,"client_id":"web","scope":"shop admin"%s}`, iss, now, now+life, extra)
	}
	for _, tc := range []struct {
		name, header, claims string
		want                 connect.Code
	}{
		{"RS256 at+jwt", `{"alg":"RS256","kid":"rsa-1","typ":"at+jwt"}`, claims(600, ""), codeOK},
		{"x5t and a private header, AT+JWT", `{"alg":"RS256","kid":"rsa-1","typ":"AT+JWT","x5t":"abc","x-ver":{"v":2}}`, claims(600, ""), codeOK},
		{"24 h (Auth0), an EXP claim", `{"alg":"RS256","kid":"rsa-1","typ":"at+jwt"}`, claims(86400, `,"EXP":1`), codeOK},
		{"24 h and a minute", `{"alg":"RS256","kid":"rsa-1","typ":"at+jwt"}`, claims(86460, ""), connect.CodeUnauthenticated},
		{"typ JWT not opted in", `{"alg":"RS256","kid":"rsa-1","typ":"JWT"}`, claims(600, ""), connect.CodeUnauthenticated},
		{"jku", `{"alg":"RS256","kid":"rsa-1","typ":"at+jwt","jku":"https://evil.example/jwks"}`, claims(600, ""), connect.CodeUnauthenticated},
		{"embedded jwk", `{"alg":"RS256","kid":"rsa-1","typ":"at+jwt","jwk":{"kty":"RSA"}}`, claims(600, ""), connect.CodeUnauthenticated},
		{"x5c", `{"alg":"RS256","kid":"rsa-1","typ":"at+jwt","x5c":["MIIB"]}`, claims(600, ""), connect.CodeUnauthenticated},
		{"crit", `{"alg":"RS256","kid":"rsa-1","typ":"at+jwt","crit":["x-ver"],"x-ver":1}`, claims(600, ""), connect.CodeUnauthenticated},
		{"sub usr_admin is not the local admin", `{"alg":"RS256","kid":"rsa-1","typ":"at+jwt"}`, strings.Replace(claims(600, ""), `"alice"`, `"usr_admin"`, 1), codeOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := sign(tc.header, tc.claims)
			_, err := e.pointsClient().GetBalance(t.Context(), withBearer(&pointsv1.GetBalanceRequest{}, tok))
			if tc.want == codeOK {
				if err != nil {
					t.Fatalf("GetBalance: %v", err)
				}
				c, err := token.Verify(t.Context(), e.txnVerifier, token.Transaction, e.points.seen().txn)
				if err != nil {
					t.Fatal(err)
				}
				// Never admin: no ScopeMap grants it; never a local user.
				if c.Scope != "shop" || !strings.HasPrefix(c.Subject, iss+"#") {
					t.Fatalf("transaction token sub %q scope %q", c.Subject, c.Scope)
				}
				return
			}
			var cerr *connect.Error
			if !errors.As(err, &cerr) || cerr.Code() != tc.want || cerr.Message() != "access token invalid or expired" {
				t.Fatalf("err = %v, want %v with the one invalid-token message", err, tc.want)
			}
		})
	}
}
