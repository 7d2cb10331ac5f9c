// Package tts is the gateway's Txn-Token Service (IETF OAuth Transaction
// Tokens draft): it issues transaction tokens, signed with the gateway's
// key ring as the gateway, to authenticated workloads that have no inbound
// request for the gateway to mint one from (batch jobs, queue consumers,
// OrderProcessing's saga), by the RFC 8693 token exchange over form posts
// (TokenPath) and the Connect RPC tokenrelay.txntoken.v1.TxnTokenService. See
// services/gateway/README.md, "Txn-Token Service".
//
// It is its own package, apart from package gateway, so that it depends on
// no domain's API: OrderProcessing's tests run the real service.
package tts

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"

	txntokenv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/txntoken/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/txntoken/v1/txntokenv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// Defaults of Config: the gateway's (gateway.DefaultName,
// gateway.DefaultTrustDomain, gateway.DefaultTenant,
// gateway.DefaultTxnLifetime).
const (
	DefaultName        = "gateway"
	DefaultTrustDomain = "tokenrelay"
	DefaultTenant      = "default"
	// MaxLifetime is the longest lifetime of the tokens it mints, the
	// most token.Transaction allows, and the default.
	MaxLifetime = 5 * time.Minute
)

// ErrConfig reports an incomplete or invalid Config.
var ErrConfig = errors.New("tts: invalid Config")

// The token-exchange profile of the Transaction Tokens draft (RFC 8693).
const (
	// TokenPath is where the Txn-Token Service takes its form posts.
	TokenPath = "/txn-token"
	// GrantTokenExchange is the only grant_type of TokenPath.
	GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	// TokenTypeTxn is the requested_token_type and issued_token_type, and
	// the subject_token_type of a transaction token to replace.
	TokenTypeTxn = "urn:ietf:params:oauth:token-type:txn_token"
	// TokenTypeJWT is the subject_token_type of a workload's subject
	// assertion (token.Assertion).
	TokenTypeJWT = "urn:ietf:params:oauth:token-type:jwt"
	// ClientAssertionJWT is the client_assertion_type of a workload
	// authenticating with its workload token (RFC 7523 section 2.2).
	ClientAssertionJWT = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	// AnySubject in Workload.Subjects lets a workload ask for any subject.
	AnySubject = "*"
)

// Limits of an exchange request, in bytes.
const (
	maxFormBytes     = 32 << 10
	maxScopeBytes    = 1 << 10
	maxRequestJSON   = 2 << 10
	maxRequestFields = 32
	// maxCallChain bounds req_wl: a chain of replacements cannot grow a
	// token past its size limit.
	maxCallChain = 512
)

// Workload is one workload the Txn-Token Service knows, and what it may ask
// for.
type Workload struct {
	// Name is the iss of its workload tokens and subject assertions.
	Name string
	// Keys verify them: its ring in process, or its JWKS.
	Keys keys.Source
	// Subjects it may ask transaction tokens for: exact subjects, or
	// AnySubject.
	Subjects []string
	// Scopes it may ask for; a request for any other is refused.
	Scopes []string
	// Continue lets it name, in its subject assertion, the txn of a
	// transaction it recorded (OrderProcessing continuing an order's saga
	// hours later): the token keeps that txn. Others always start a new
	// transaction.
	Continue bool
}

// Config configures the Txn-Token Service. Keys, Logger and at least
// one Workload are required.
type Config struct {
	// Name is the iss of the tokens it mints and the aud of the workload
	// tokens and subject assertions it accepts: the gateway's, so that
	// every service verifies its tokens as the gateway's. Default
	// DefaultName.
	Name string
	// Keys is the gateway's key ring.
	Keys *keys.Ring
	// TrustDomain is the audience every request must name, and the aud of
	// the tokens. Default DefaultTrustDomain.
	TrustDomain string
	// Tenant is the tctx tenant of a new transaction. Default
	// DefaultTenant.
	Tenant string
	// Lifetime of the tokens minted, at most (and by default)
	// MaxLifetime.
	Lifetime time.Duration
	// Workloads is the allow-list. Names must be unique and differ from
	// Name.
	Workloads []Workload
	// Logger gets one line per exchange, with the txn of the token issued
	// (never a token).
	Logger *slog.Logger
	// Clock is the time of verification and issuance. Default time.Now.
	Clock func() time.Time
}

// Service is the Txn-Token Service of the IETF Transaction Tokens draft: it
// issues transaction tokens to authenticated workloads, by the RFC 8693
// token exchange, over form posts at TokenPath and the Connect RPC
// TxnTokenService/Exchange. It is safe for concurrent use.
type Service struct {
	name, trustDomain, tenant string
	lifetime                  time.Duration
	workloads                 map[string]Workload
	issuer                    *token.Issuer
	verifier                  *token.Verifier
	log                       *slog.Logger
	now                       func() time.Time
	handler                   http.Handler
}

// New builds the Txn-Token Service. Close releases it.
func New(cfg Config) (*Service, error) {
	cfg.Name = cmp.Or(cfg.Name, DefaultName)
	cfg.TrustDomain = cmp.Or(cfg.TrustDomain, DefaultTrustDomain)
	cfg.Tenant = cmp.Or(cfg.Tenant, DefaultTenant)
	if cfg.Lifetime <= 0 || cfg.Lifetime > MaxLifetime {
		cfg.Lifetime = MaxLifetime
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Keys == nil || cfg.Logger == nil || len(cfg.Workloads) == 0 {
		return nil, fmt.Errorf("%w: the Txn-Token Service needs Keys, Logger and Workloads", ErrConfig)
	}
	s := &Service{
		name: cfg.Name, trustDomain: cfg.TrustDomain, tenant: cfg.Tenant, lifetime: cfg.Lifetime,
		workloads: map[string]Workload{}, log: cfg.Logger, now: cfg.Clock,
	}
	opts := []token.Option{token.WithClock(cfg.Clock),
		token.Trust(cfg.Name, cfg.Keys, token.Accept(token.Transaction, cfg.TrustDomain))}
	names := make([]string, 0, len(cfg.Workloads))
	for _, w := range cfg.Workloads {
		if w.Name == "" || w.Name == cfg.Name || w.Keys == nil || s.workloads[w.Name].Name != "" || len(w.Scopes) == 0 || len(w.Subjects) == 0 {
			return nil, fmt.Errorf("%w: workload %q: a unique name other than %q, keys, subjects and scopes", ErrConfig, w.Name, cfg.Name)
		}
		s.workloads[w.Name] = w
		names = append(names, w.Name)
		opts = append(opts, token.Trust(w.Name, w.Keys,
			token.Accept(token.Workload, cfg.Name), token.Accept(token.Assertion, cfg.Name)))
	}
	var err error
	if s.issuer, err = token.NewIssuer(cfg.Name, cfg.Keys, token.WithClock(cfg.Clock)); err != nil {
		return nil, err
	}
	if s.verifier, err = token.NewVerifier(opts...); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc(TokenPath, s.serveForm)
	mux.Handle(txntokenv1connect.NewTxnTokenServiceHandler(rpcExchange{s}, connect.WithInterceptors(
		authn.NewServerInterceptor(s.verifier,
			authn.AllowAnonymous(txntokenv1connect.TxnTokenServiceExchangeProcedure),
			authn.RequireWorkload(txntokenv1connect.TxnTokenServiceName, s.verifier, names...)))))
	s.handler = mux
	return s, nil
}

// Close releases the verifier's caches.
func (s *Service) Close() { s.verifier.Close() }

// Paths are the request paths Handler serves: mount it at each.
func (s *Service) Paths() []string {
	return []string{TokenPath, "/" + txntokenv1connect.TxnTokenServiceName + "/"}
}

// Handler serves the form posts at TokenPath and the Connect RPC.
func (s *Service) Handler() http.Handler { return s.handler }

// exchangeError is a refusal of an exchange: its RFC 6749 section 5.2 error
// code, HTTP status and Connect code, and a message that echoes no input.
type exchangeError struct {
	oauth  string
	status int
	code   connect.Code
	msg    string
}

func (e *exchangeError) Error() string { return e.oauth + ": " + e.msg }

func refuse(oauth, msg string) *exchangeError {
	e := &exchangeError{oauth: oauth, status: http.StatusBadRequest, msg: msg}
	switch oauth {
	case "invalid_client":
		e.status, e.code = http.StatusUnauthorized, connect.CodeUnauthenticated
	case "unauthorized_client", "invalid_scope":
		e.code = connect.CodePermissionDenied
	case "invalid_grant":
		e.code = connect.CodeFailedPrecondition
	case "temporarily_unavailable":
		e.status, e.code = http.StatusServiceUnavailable, connect.CodeUnavailable
	case "server_error":
		e.status, e.code = http.StatusInternalServerError, connect.CodeInternal
	default: // invalid_request, invalid_target, unsupported_grant_type
		e.code = connect.CodeInvalidArgument
	}
	return e
}

// tokenRefusal maps a subject token the verifier refused: a defect of the
// token is invalid_grant (expired ones say so: never replaced), keys that
// cannot be read are temporarily_unavailable.
func tokenRefusal(err error) *exchangeError {
	switch {
	case errors.Is(err, token.ErrExpired):
		return refuse("invalid_grant", "subject token expired")
	case errors.Is(err, token.ErrInvalid):
		return refuse("invalid_grant", "subject token invalid")
	}
	return refuse("temporarily_unavailable", "keys unavailable, retry")
}

// exchange runs one token exchange for the authenticated workload and
// returns the token and its claims as signed.
func (s *Service) exchange(ctx context.Context, workload string, req *txntokenv1.ExchangeRequest) (string, token.TransactionClaims, *exchangeError) {
	var zero token.TransactionClaims
	w := s.workloads[workload]
	if req.GetAudience() != s.trustDomain {
		return "", zero, refuse("invalid_target", "audience must be the trust domain")
	}
	scopes, err := parseScope(req.GetScope())
	if err != nil {
		return "", zero, err
	}
	if req.GetSubjectToken() == "" || len(req.GetSubjectToken()) > token.DefaultMaxTokenSize {
		return "", zero, refuse("invalid_request", "subject_token required, at most 8 KiB")
	}
	rctx, err := parseObject("request_context", req.GetRequestContext())
	if err != nil {
		return "", zero, err
	}
	details, err := parseObject("request_details", req.GetRequestDetails())
	if err != nil {
		return "", zero, err
	}
	var c token.TransactionClaims
	switch req.GetSubjectTokenType() {
	case TokenTypeTxn:
		if c, err = s.replace(ctx, workload, req.GetSubjectToken(), scopes, details); err != nil {
			return "", zero, err
		}
	case TokenTypeJWT:
		if c, err = s.assert(ctx, w, req.GetSubjectToken(), details); err != nil {
			return "", zero, err
		}
	default:
		return "", zero, refuse("invalid_request", "subject_token_type must be "+TokenTypeTxn+" or "+TokenTypeJWT)
	}
	if !slices.Contains(w.Subjects, AnySubject) && !slices.Contains(w.Subjects, c.Subject) {
		return "", zero, refuse("unauthorized_client", "this workload may not ask for this subject")
	}
	for _, sc := range scopes {
		if !slices.Contains(w.Scopes, sc) {
			return "", zero, refuse("invalid_scope", "this workload may not ask for this scope")
		}
	}
	c.Scope = strings.Join(scopes, " ")
	if len(rctx) > 0 {
		c.RequestContext = rctx
	}
	c.IssuedAt = s.now()
	c.ExpiresAt = c.IssuedAt.Add(s.lifetime)
	raw, issued, ierr := token.Issue(ctx, s.issuer, token.Transaction, c)
	if ierr != nil {
		s.log.ErrorContext(ctx, "mint transaction token", "workload", workload, "err", ierr)
		return "", zero, refuse("server_error", "internal error")
	}
	return raw, issued, nil
}

// replace returns the claims of a replacement for the transaction token
// raw: the same txn, sub, aud and tctx, a scope within its scope, and the
// call chain extended by workload. An expired token is never replaced.
func (s *Service) replace(ctx context.Context, workload, raw string, scopes []string, details map[string]string) (token.TransactionClaims, *exchangeError) {
	old, err := token.Verify(ctx, s.verifier, token.Transaction, raw)
	if err != nil {
		return old, tokenRefusal(err)
	}
	if len(details) > 0 {
		return old, refuse("invalid_request", "request_details cannot change a transaction's context")
	}
	granted := strings.Fields(old.Scope)
	for _, sc := range scopes {
		if !slices.Contains(granted, sc) {
			return old, refuse("invalid_scope", "a replacement may narrow the scope, never widen it")
		}
	}
	chain := workload
	if old.RequestingWorkload != "" {
		chain = old.RequestingWorkload + "," + workload
	}
	if len(chain) > maxCallChain {
		return old, refuse("invalid_request", "call chain too long")
	}
	return token.TransactionClaims{
		Registered:         token.Registered{Subject: old.Subject, Audience: []string{s.trustDomain}},
		Txn:                old.Txn,
		Context:            old.Context,
		RequestingWorkload: chain,
		RequestContext:     old.RequestContext,
	}, nil
}

// assert returns the claims of a token for the subject of workload w's own
// subject assertion raw: a new transaction, or the one it names when w may
// continue transactions.
func (s *Service) assert(ctx context.Context, w Workload, raw string, details map[string]string) (token.TransactionClaims, *exchangeError) {
	a, err := token.Verify(ctx, s.verifier, token.Assertion, raw)
	if err != nil {
		return token.TransactionClaims{}, tokenRefusal(err)
	}
	if a.Issuer != w.Name {
		return token.TransactionClaims{}, refuse("invalid_grant", "a subject assertion must be the calling workload's own")
	}
	if a.Txn != "" && !w.Continue {
		return token.TransactionClaims{}, refuse("unauthorized_client", "this workload may not continue a transaction")
	}
	if _, ok := details["tenant"]; ok {
		return token.TransactionClaims{}, refuse("invalid_request", "request_details cannot set the tenant")
	}
	tctx := map[string]string{"tenant": s.tenant}
	for k, v := range details {
		tctx[k] = v
	}
	return token.TransactionClaims{
		Registered:         token.Registered{Subject: a.Subject, Audience: []string{s.trustDomain}},
		Txn:                a.Txn,
		Context:            tctx,
		RequestingWorkload: w.Name,
	}, nil
}

// parseScope splits a required scope (RFC 6749 section 3.3: scope-tokens of
// printable ASCII but '"' and '\', separated by spaces), without repeats.
func parseScope(scope string) ([]string, *exchangeError) {
	if scope == "" || len(scope) > maxScopeBytes {
		return nil, refuse("invalid_request", "scope required, at most 1 KiB")
	}
	var out []string
	for _, sc := range strings.Split(scope, " ") {
		if sc == "" || strings.ContainsFunc(sc, func(r rune) bool { return r < 0x21 || r > 0x7e || r == '"' || r == '\\' }) {
			return nil, refuse("invalid_scope", "scope malformed")
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out, nil
}

// parseObject reads an optional JSON object of non-empty string members.
func parseObject(field, v string) (map[string]string, *exchangeError) {
	if v == "" {
		return nil, nil
	}
	bad := refuse("invalid_request", field+" must be a JSON object of strings, at most 2 KiB and 32 members")
	if len(v) > maxRequestJSON || !utf8.ValidString(v) {
		return nil, bad
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(v), &m); err != nil || m == nil || len(m) > maxRequestFields {
		return nil, bad
	}
	for k := range m {
		if k == "" {
			return nil, bad
		}
	}
	return m, nil
}

// issued logs an exchange that issued a token, with the token's txn.
func (s *Service) issued(ctx context.Context, raw string, c token.TransactionClaims, workload, via, subjectType string) {
	ctx = authn.ContextWithTransaction(ctx, raw, c)
	s.log.InfoContext(ctx, "transaction token issued", "workload", workload, "via", via, "sub", c.Subject,
		"scope", c.Scope, "subject_token_type", subjectType, "req_wl", c.RequestingWorkload)
}

// refused logs a refused exchange (never its tokens).
func (s *Service) refused(ctx context.Context, workload, via string, e *exchangeError) {
	s.log.InfoContext(ctx, "transaction token refused", "workload", workload, "via", via, "error", e.oauth, "reason", e.msg)
}

// rpcExchange serves the Connect RPC.
type rpcExchange struct{ s *Service }

// Exchange implements txntokenv1connect.TxnTokenServiceHandler. The
// interceptor authenticated the workload.
func (h rpcExchange) Exchange(ctx context.Context, req *connect.Request[txntokenv1.ExchangeRequest]) (*connect.Response[txntokenv1.ExchangeResponse], error) {
	workload, _ := authn.WorkloadFrom(ctx)
	raw, c, e := h.s.exchange(ctx, workload, req.Msg)
	if e != nil {
		h.s.refused(ctx, workload, "connect", e)
		return nil, connect.NewError(e.code, errors.New(e.Error()))
	}
	h.s.issued(ctx, raw, c, workload, "connect", req.Msg.GetSubjectTokenType())
	return connect.NewResponse(h.s.response(raw, c)), nil
}

func (s *Service) response(raw string, c token.TransactionClaims) *txntokenv1.ExchangeResponse {
	return &txntokenv1.ExchangeResponse{
		AccessToken: raw, IssuedTokenType: TokenTypeTxn, TokenType: "N_A",
		ExpiresIn: int64(c.ExpiresAt.Sub(c.IssuedAt) / time.Second),
	}
}

// serveForm serves the token-exchange form post (RFC 8693 section 2.1):
// the workload authenticates with its workload token as client_assertion
// (RFC 7523), bound to TokenPath and to the request: its req is
// authn.RequestDigest of the ExchangeRequest the form's other parameters
// make. Errors are RFC 6749 section 5.2 JSON.
func (s *Service) serveForm(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	workload, req, e := s.readForm(w, r)
	if e == nil {
		var raw string
		var c token.TransactionClaims
		if raw, c, e = s.exchange(ctx, workload, req); e == nil {
			s.issued(ctx, raw, c, workload, "form", req.GetSubjectTokenType())
			res := s.response(raw, c)
			writeJSON(w, http.StatusOK, map[string]any{
				"access_token": res.GetAccessToken(), "issued_token_type": res.GetIssuedTokenType(),
				"token_type": res.GetTokenType(), "expires_in": res.GetExpiresIn(),
			})
			return
		}
	}
	s.refused(ctx, workload, "form", e)
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_client"`)
	}
	writeJSON(w, e.status, map[string]string{"error": e.oauth, "error_description": e.msg})
}

// readForm parses and authenticates a form post: the workload and the
// exchange it asks for.
func (s *Service) readForm(w http.ResponseWriter, r *http.Request) (string, *txntokenv1.ExchangeRequest, *exchangeError) {
	if r.Method != http.MethodPost {
		return "", nil, refuse("invalid_request", "POST only")
	}
	if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); !strings.EqualFold(strings.TrimSpace(ct), "application/x-www-form-urlencoded") {
		return "", nil, refuse("invalid_request", "send application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return "", nil, refuse("invalid_request", "form unreadable or larger than 32 KiB")
	}
	get := func(name string) (string, bool) {
		v := r.PostForm[name]
		return strings.Join(v, ""), len(v) <= 1
	}
	fields := map[string]string{}
	for _, name := range []string{"grant_type", "requested_token_type", "audience", "scope", "subject_token", "subject_token_type",
		"request_context", "request_details", "client_assertion_type", "client_assertion"} {
		v, once := get(name)
		if !once {
			// RFC 6749 section 3.2: no parameter more than once.
			return "", nil, refuse("invalid_request", "parameter repeated: "+name)
		}
		fields[name] = v
	}
	if len(r.URL.RawQuery) > 0 {
		return "", nil, refuse("invalid_request", "parameters go in the body, not the URL")
	}
	if fields["grant_type"] != GrantTokenExchange {
		return "", nil, refuse("unsupported_grant_type", "grant_type must be "+GrantTokenExchange)
	}
	if fields["requested_token_type"] != TokenTypeTxn {
		return "", nil, refuse("invalid_request", "requested_token_type must be "+TokenTypeTxn)
	}
	req := &txntokenv1.ExchangeRequest{
		Audience: fields["audience"], Scope: fields["scope"],
		SubjectToken: fields["subject_token"], SubjectTokenType: fields["subject_token_type"],
		RequestContext: fields["request_context"], RequestDetails: fields["request_details"],
	}
	if fields["client_assertion_type"] != ClientAssertionJWT || fields["client_assertion"] == "" {
		return "", nil, refuse("invalid_client", "authenticate with client_assertion_type "+ClientAssertionJWT+" and a workload token")
	}
	claims, err := token.Verify(r.Context(), s.verifier, token.Workload, fields["client_assertion"])
	if err != nil {
		if !errors.Is(err, token.ErrInvalid) {
			return "", nil, refuse("temporarily_unavailable", "keys unavailable, retry")
		}
		return "", nil, refuse("invalid_client", "client assertion invalid")
	}
	digest, err := authn.RequestDigest(req)
	if err != nil || claims.Procedure != TokenPath || claims.RequestDigest != digest {
		return "", nil, refuse("invalid_client", "client assertion bound to another request")
	}
	return claims.Issuer, req, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// maxWorkloadsFile bounds a workloads file: 1 MiB.
const maxWorkloadsFile = 1 << 20

// ParseWorkloads reads the allow-list of a deployment whose workloads'
// keys are found by JWKS URL (gatewayd's -workloads-file), in JSON:
//
//	{"workloads": [{"name": "order-processing",
//	  "jwks": "http://127.0.0.1:8084/.well-known/jwks.json",
//	  "subjects": ["*"], "scopes": ["coupons:redeem", "points:spend", "payments:capture"],
//	  "continue": true}]}
//
// jwks is a URL, or several of one key set separated by commas; source
// makes its key source. Unknown members are refused.
func ParseWorkloads(data []byte, source func(name, jwks string) (keys.Source, error)) ([]Workload, error) {
	var doc struct {
		Workloads []struct {
			Name     string   `json:"name"`
			JWKS     string   `json:"jwks"`
			Subjects []string `json:"subjects"`
			Scopes   []string `json:"scopes"`
			Continue bool     `json:"continue"`
		} `json:"workloads"`
	}
	if len(data) > maxWorkloadsFile {
		return nil, fmt.Errorf("%w: workloads file larger than 1 MiB", ErrConfig)
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: workloads file: %w", ErrConfig, err)
	}
	if len(doc.Workloads) == 0 {
		return nil, fmt.Errorf("%w: workloads file lists no workload", ErrConfig)
	}
	out := make([]Workload, 0, len(doc.Workloads))
	for _, w := range doc.Workloads {
		src, err := source(w.Name, w.JWKS)
		if err != nil {
			return nil, fmt.Errorf("%w: workload %q: %w", ErrConfig, w.Name, err)
		}
		out = append(out, Workload{Name: w.Name, Keys: src, Subjects: w.Subjects, Scopes: w.Scopes, Continue: w.Continue})
	}
	return out, nil
}
