// Package client is tokenrelay's Go client SDK, for programs that act for a
// user through the gateway (tools, load drivers, tests), as the TypeScript
// SDK (sdk/ts) is for the browser: the generated clients of the public
// services over one set of interceptors that keep a session.
//
//	c := client.New("http://127.0.0.1:8080")
//	if _, err := c.Login(ctx, "shopper", password); err != nil { ... }
//	started, err := c.Orders.StartCheckout(ctx, connect.NewRequest(&orderprocessingv1.StartCheckoutRequest{...}))
//	// The checkout token is carried into Confirm calls that leave it empty.
//	if e := client.AsError(err); e != nil && e.Kind == client.KindRefused { ... }
//
// The interceptors, outermost first:
//
//  1. Idempotency: every mutating unary call gets an Idempotency-Key header
//     (the request's idempotency_key field when set, else a random UUID), so
//     that every retry below reuses it.
//  2. Checkout token: StartCheckout's answer is remembered; the Coupons,
//     Points and Payments requests whose checkout_token is empty get it;
//     PlaceOrder or CancelCheckout of that checkout forgets it.
//  3. Retries: a call that may safely be repeated (no side effects, or
//     carrying an idempotency key) is retried on Unavailable, up to
//     WithRetries more times with delays doubling from WithRetryDelay up
//     to WithMaxRetryDelay.
//  4. Session: the access token is sent as Authorization: Bearer; it is
//     refreshed before it expires (WithRefreshAhead), and once more when the
//     gateway refuses it with a Bearer challenge. However many calls need a
//     refresh at once, one Refresh call is made (single flight), and they
//     all get its outcome: a refused refresh ends the session for every one
//     of them (ErrSessionEnded), while an unavailable identity service keeps
//     it. A server stream (WatchOrder) refused before its first message is
//     opened again once, as a unary call is sent again.
//
// Errors stay the generated clients' *connect.Error; AsError gives the Kind
// to switch on, as the TypeScript SDK's RpcError.kind. A Client is safe for
// concurrent use.
package client

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1/couponsv1connect"
	identityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1/identityv1connect"
	orderprocessingv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1/orderprocessingv1connect"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/payments/v1/paymentsv1connect"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1/pointsv1connect"
)

// IdempotencyKeyHeader carries the idempotency key of a mutating call.
const IdempotencyKeyHeader = "Idempotency-Key"

// Defaults of the options.
const (
	DefaultRetries       = 2
	DefaultRetryDelay    = 250 * time.Millisecond
	DefaultMaxRetryDelay = 5 * time.Second
	DefaultRefreshAhead  = 30 * time.Second
	// refreshTimeout bounds one Refresh call, made for every caller
	// waiting on it whatever their own contexts.
	refreshTimeout = 30 * time.Second
)

// Session is what the client keeps of a login.
type Session struct {
	// AccessToken is sent as Authorization: Bearer.
	AccessToken string
	// AccessTokenExpiresAt is when it expires, on the local clock: its
	// lifetime (exp - iat) counted from when it was received, so that a
	// machine whose clock is off still refreshes in time.
	AccessTokenExpiresAt time.Time
	// RefreshToken is rotated on every refresh.
	RefreshToken          string
	RefreshTokenExpiresAt time.Time
	// User is the logged-in user.
	User User
}

// User is the logged-in user, as Login answered.
type User struct {
	ID, Username, DisplayName string
	Scopes                    []string
}

// Option configures New.
type Option func(*options)

type options struct {
	http         connect.HTTPClient
	connect      []connect.ClientOption
	retries      int // negative: until the call's context ends
	retryDelay   time.Duration
	maxDelay     time.Duration
	refreshAhead time.Duration
	now          func() time.Time
}

// WithHTTPClient sets the HTTP client. Default http.DefaultClient; give one
// that speaks HTTP/2 for gRPC.
func WithHTTPClient(c connect.HTTPClient) Option { return func(o *options) { o.http = c } }

// WithClientOptions adds options to every generated client, such as
// connect.WithGRPC() or further interceptors (run inside the client's).
func WithClientOptions(opts ...connect.ClientOption) Option {
	return func(o *options) { o.connect = append(o.connect, opts...) }
}

// WithRetries sets how many more times a retry-safe call is tried on
// Unavailable. Default DefaultRetries; 0: none; negative: until the call's
// context ends (a tool talking to a deployment that is still starting).
func WithRetries(n int) Option { return func(o *options) { o.retries = n } }

// WithRetryDelay sets the first retry's delay, doubled after each. Default
// DefaultRetryDelay.
func WithRetryDelay(d time.Duration) Option { return func(o *options) { o.retryDelay = max(d, 0) } }

// WithMaxRetryDelay caps the delay between retries. Default
// DefaultMaxRetryDelay.
func WithMaxRetryDelay(d time.Duration) Option { return func(o *options) { o.maxDelay = max(d, 0) } }

// WithRefreshAhead sets how long before the access token expires it is
// refreshed, at most half its lifetime. Default DefaultRefreshAhead.
func WithRefreshAhead(d time.Duration) Option { return func(o *options) { o.refreshAhead = max(d, 0) } }

// WithClock sets the clock the session's expiry is read on. Default
// time.Now.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// Client is the SDK: the public services' generated clients, and the
// session they share.
type Client struct {
	Identity identityv1connect.IdentityServiceClient
	Orders   orderprocessingv1connect.OrderProcessingServiceClient
	Coupons  couponsv1connect.CouponsServiceClient
	Points   pointsv1connect.PointsServiceClient
	Payments paymentsv1connect.PaymentsServiceClient

	opts options

	mu       sync.Mutex
	session  *state
	inflight *flight
	checkout checkout
}

// state is the session and when to refresh it.
type state struct {
	s         Session
	refreshAt time.Time
}

// flight is one Refresh call and its outcome, shared by its waiters.
type flight struct {
	done chan struct{}
	s    Session
	err  error
}

// checkout is the open checkout's id and token.
type checkout struct{ id, token string }

// New returns a client of the gateway at baseURL, not logged in.
func New(baseURL string, opts ...Option) *Client {
	o := options{http: http.DefaultClient, retries: DefaultRetries, retryDelay: DefaultRetryDelay,
		maxDelay: DefaultMaxRetryDelay, refreshAhead: DefaultRefreshAhead, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	c := &Client{opts: o}
	copts := append([]connect.ClientOption{connect.WithInterceptors(interceptor{c})}, o.connect...)
	c.Identity = identityv1connect.NewIdentityServiceClient(o.http, baseURL, copts...)
	c.Orders = orderprocessingv1connect.NewOrderProcessingServiceClient(o.http, baseURL, copts...)
	c.Coupons = couponsv1connect.NewCouponsServiceClient(o.http, baseURL, copts...)
	c.Points = pointsv1connect.NewPointsServiceClient(o.http, baseURL, copts...)
	c.Payments = paymentsv1connect.NewPaymentsServiceClient(o.http, baseURL, copts...)
	return c
}

// Login logs in and keeps the session.
func (c *Client) Login(ctx context.Context, username, password string) (Session, error) {
	res, err := c.Identity.Login(ctx, connect.NewRequest(&identityv1.LoginRequest{Username: username, Password: password}))
	if err != nil {
		return Session{}, err
	}
	st, err := c.localize(res.Msg.GetSession())
	if err != nil {
		return Session{}, err
	}
	c.mu.Lock()
	c.session = &st
	c.mu.Unlock()
	return st.s, nil
}

// Session returns the current session; false when logged out.
func (c *Client) Session() (Session, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.session == nil {
		return Session{}, false
	}
	return c.session.s, true
}

// Logout revokes the refresh token (best effort: its error is returned, but
// the session is forgotten either way; an unrevoked refresh token expires
// on its own).
func (c *Client) Logout(ctx context.Context) error {
	s, ok := c.Session()
	var err error
	if ok {
		_, err = c.Identity.Logout(ctx, connect.NewRequest(&identityv1.LogoutRequest{RefreshToken: s.RefreshToken}))
	}
	c.mu.Lock()
	c.session, c.checkout = nil, checkout{}
	c.mu.Unlock()
	return err
}

// Refresh refreshes the access token now (single flight with any refresh
// in progress). A refused refresh ends the session (ErrSessionEnded).
func (c *Client) Refresh(ctx context.Context) (Session, error) {
	s, ok := c.Session()
	if !ok {
		return Session{}, sessionEnded(nil)
	}
	return c.refreshFrom(ctx, s.AccessToken)
}

// CheckoutToken returns the open checkout's token, "" when none.
func (c *Client) CheckoutToken() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.checkout.token
}

// SetCheckoutToken sets the checkout token carried into the domains' calls,
// such as after resuming a checkout; "" forgets it.
func (c *Client) SetCheckoutToken(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if token == "" {
		c.checkout = checkout{}
		return
	}
	var claims struct {
		ID string `json:"order_processing_id"`
	}
	_ = jwtClaims(token, &claims)
	c.checkout = checkout{id: claims.ID, token: token}
}

// current returns a session good to send: refreshed first when its access
// token is due.
func (c *Client) current(ctx context.Context) (Session, error) {
	c.mu.Lock()
	st := c.session
	c.mu.Unlock()
	if st == nil {
		return Session{}, sessionEnded(nil)
	}
	if !c.opts.now().Before(st.refreshAt) {
		return c.refreshFrom(ctx, st.s.AccessToken)
	}
	return st.s, nil
}

// refreshFrom returns a session whose access token is newer than stale,
// making one Refresh call however many callers ask at once.
func (c *Client) refreshFrom(ctx context.Context, stale string) (Session, error) {
	c.mu.Lock()
	st := c.session
	if st == nil {
		c.mu.Unlock()
		return Session{}, sessionEnded(nil)
	}
	if st.s.AccessToken != stale && c.opts.now().Before(st.refreshAt) {
		c.mu.Unlock()
		return st.s, nil // refreshed meanwhile
	}
	f := c.inflight
	if f == nil {
		f = &flight{done: make(chan struct{})}
		c.inflight = f
		refresh := st.s.RefreshToken
		// Its own context: a caller that gives up must not fail the
		// refresh the others wait for.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
		go func() {
			defer cancel()
			c.doRefresh(rctx, f, refresh)
		}()
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.s, f.err
	case <-ctx.Done():
		return Session{}, connect.NewError(connect.CodeCanceled, ctx.Err())
	}
}

// doRefresh makes the Refresh call of f with refresh token rt. A refusal
// ends the session, an unavailable identity service keeps it; a session
// that changed while the call was out (a Logout, another Login) holds,
// whatever the answer.
func (c *Client) doRefresh(ctx context.Context, f *flight, rt string) {
	defer close(f.done)
	res, err := c.Identity.Refresh(ctx, connect.NewRequest(&identityv1.RefreshRequest{RefreshToken: rt}))
	var st state
	if err == nil {
		st, err = c.localize(res.Msg.GetSession())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inflight = nil
	switch {
	case c.session == nil:
		// Logged out while the call was out.
		f.err = sessionEnded(nil)
	case c.session.s.RefreshToken != rt:
		// Logged in again while the call was out: that session holds,
		// whatever this call's answer.
		f.s = c.session.s
	case err == nil:
		c.session = &st
		f.s = st.s
	case transient(err):
		f.err = err
	default:
		c.session, c.checkout = nil, checkout{}
		f.err = sessionEnded(err)
	}
}

// localize reads a Login or Refresh session, its expiry on the local clock.
func (c *Client) localize(m *identityv1.Session) (state, error) {
	if m.GetAccessToken() == "" || m.GetRefreshToken() == "" {
		return state{}, connect.NewError(connect.CodeInternal, fmt.Errorf("the identity service returned no session"))
	}
	now := c.opts.now()
	s := Session{
		AccessToken: m.GetAccessToken(), AccessTokenExpiresAt: m.GetAccessTokenExpiresAt().AsTime(),
		RefreshToken: m.GetRefreshToken(), RefreshTokenExpiresAt: m.GetRefreshTokenExpiresAt().AsTime(),
		User: User{ID: m.GetUser().GetId(), Username: m.GetUser().GetUsername(), DisplayName: m.GetUser().GetDisplayName(),
			Scopes: m.GetUser().GetScopes()},
	}
	life := s.AccessTokenExpiresAt.Sub(now)
	var claims struct {
		Exp, Iat int64
	}
	if jwtClaims(s.AccessToken, &claims) == nil && claims.Exp > claims.Iat {
		life = time.Duration(claims.Exp-claims.Iat) * time.Second
		s.AccessTokenExpiresAt = now.Add(life)
	}
	return state{s: s, refreshAt: s.AccessTokenExpiresAt.Add(-min(c.opts.refreshAhead, max(life, 0)/2))}, nil
}

// jwtClaims decodes a JWT's claims into v, without verifying anything: the
// client only reads its own tokens' times and ids.
func jwtClaims(jwt string, v any) error {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return fmt.Errorf("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// interceptor is the client's interceptors, in the order of the package
// doc.
type interceptor struct{ c *Client }

var anonymous = map[string]bool{
	identityv1connect.IdentityServiceLoginProcedure:   true,
	identityv1connect.IdentityServiceRefreshProcedure: true,
}

var checkoutServices = map[string]bool{
	"/" + couponsv1connect.CouponsServiceName + "/":   true,
	"/" + pointsv1connect.PointsServiceName + "/":     true,
	"/" + paymentsv1connect.PaymentsServiceName + "/": true,
}

func (i interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		spec := req.Spec()
		msg, _ := req.Any().(proto.Message)
		if spec.IdempotencyLevel != connect.IdempotencyNoSideEffects {
			key := stringField(msg, "idempotency_key")
			switch {
			case key != "":
				req.Header().Set(IdempotencyKeyHeader, key)
			case req.Header().Get(IdempotencyKeyHeader) == "":
				req.Header().Set(IdempotencyKeyHeader, newIdempotencyKey())
			}
		}
		i.c.fillCheckoutToken(spec.Procedure, msg)
		repeatable := spec.IdempotencyLevel == connect.IdempotencyNoSideEffects || req.Header().Get(IdempotencyKeyHeader) != ""
		delay := i.c.opts.retryDelay
		for attempt := 0; ; attempt++ {
			res, err := i.authed(ctx, req, next)
			if err == nil {
				i.c.sawCheckout(spec.Procedure, req.Any(), res.Any())
				return res, nil
			}
			if !repeatable || (i.c.opts.retries >= 0 && attempt >= i.c.opts.retries) || !transient(err) || ctx.Err() != nil {
				return nil, err
			}
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, err
			case <-t.C:
			}
			delay = min(2*delay, i.c.opts.maxDelay)
		}
	}
}

// authed sends req with the session's access token, refreshing it once
// more when the gateway refuses it with a Bearer challenge.
func (i interceptor) authed(ctx context.Context, req connect.AnyRequest, next connect.UnaryFunc) (connect.AnyResponse, error) {
	if anonymous[req.Spec().Procedure] {
		return next(ctx, req)
	}
	s, err := i.c.current(ctx)
	if err != nil {
		return nil, err
	}
	req.Header().Set("Authorization", "Bearer "+s.AccessToken)
	res, err := next(ctx, req)
	if !challenged(err) {
		return res, err
	}
	if s, err = i.c.refreshFrom(ctx, s.AccessToken); err != nil {
		return nil, err
	}
	req.Header().Set("Authorization", "Bearer "+s.AccessToken)
	return next(ctx, req)
}

func (i interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		if anonymous[spec.Procedure] {
			return conn
		}
		s, err := i.c.current(ctx)
		if err != nil {
			return failedConn{StreamingClientConn: conn, err: err}
		}
		conn.RequestHeader().Set("Authorization", "Bearer "+s.AccessToken)
		if spec.StreamType != connect.StreamTypeServer {
			return conn
		}
		return &serverStream{StreamingClientConn: conn, c: i.c, ctx: ctx, spec: spec, next: next, token: s.AccessToken}
	}
}

// serverStream is a server stream that, when the gateway refuses its access
// token with a Bearer challenge before anything arrived, refreshes once and
// opens the stream again with the same request: the refusal comes with the
// first Receive, after the request was sent.
type serverStream struct {
	connect.StreamingClientConn
	c        *Client
	ctx      context.Context
	spec     connect.Spec
	next     connect.StreamingClientFunc
	token    string
	sent     []any
	closed   bool
	answered bool // something was received, or the stream was opened again
}

func (s *serverStream) Send(msg any) error {
	s.sent = append(s.sent, msg)
	return s.StreamingClientConn.Send(msg)
}

func (s *serverStream) CloseRequest() error {
	s.closed = true
	return s.StreamingClientConn.CloseRequest()
}

func (s *serverStream) Receive(msg any) error {
	err := s.StreamingClientConn.Receive(msg)
	if s.answered || !(challenged(err) || connect.CodeOf(err) == connect.CodeUnauthenticated &&
		!errors.Is(err, ErrSessionEnded) && bearerChallenge(s.StreamingClientConn.ResponseHeader().Get("WWW-Authenticate"))) {
		s.answered = true
		return err
	}
	s.answered = true
	fresh, rerr := s.c.refreshFrom(s.ctx, s.token)
	if rerr != nil {
		return rerr
	}
	_ = s.StreamingClientConn.CloseResponse()
	conn := s.next(s.ctx, s.spec)
	for k, v := range s.StreamingClientConn.RequestHeader() {
		conn.RequestHeader()[k] = v
	}
	conn.RequestHeader().Set("Authorization", "Bearer "+fresh.AccessToken)
	s.StreamingClientConn = conn
	for _, m := range s.sent {
		if err := conn.Send(m); err != nil {
			return err
		}
	}
	if s.closed {
		if err := conn.CloseRequest(); err != nil {
			return err
		}
	}
	return conn.Receive(msg)
}

func (i interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// failedConn fails a stream that could not get a session.
type failedConn struct {
	connect.StreamingClientConn
	err error
}

func (f failedConn) Send(any) error    { return f.err }
func (f failedConn) Receive(any) error { return f.err }

// fillCheckoutToken sets the open checkout's token in a domain request whose
// checkout_token is empty.
func (c *Client) fillCheckoutToken(procedure string, msg proto.Message) {
	svc, _, ok := strings.Cut(strings.TrimPrefix(procedure, "/"), "/")
	if !ok || !checkoutServices["/"+svc+"/"] {
		return
	}
	c.mu.Lock()
	tok := c.checkout.token
	c.mu.Unlock()
	if tok == "" || msg == nil {
		return
	}
	m := msg.ProtoReflect()
	if f := m.Descriptor().Fields().ByName("checkout_token"); f != nil && f.Kind() == protoreflect.StringKind && m.Get(f).String() == "" {
		m.Set(f, protoreflect.ValueOfString(tok))
	}
}

// sawCheckout remembers StartCheckout's token and forgets it once its
// checkout is placed or cancelled.
func (c *Client) sawCheckout(procedure string, req, res any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch procedure {
	case orderprocessingv1connect.OrderProcessingServiceStartCheckoutProcedure:
		if r, ok := res.(*orderprocessingv1.StartCheckoutResponse); ok && r.GetCheckoutToken() != "" {
			c.checkout = checkout{id: r.GetCheckout().GetId(), token: r.GetCheckoutToken()}
		}
	case orderprocessingv1connect.OrderProcessingServicePlaceOrderProcedure:
		if r, ok := req.(*orderprocessingv1.PlaceOrderRequest); ok && r.GetCheckoutId() == c.checkout.id {
			c.checkout = checkout{}
		}
	case orderprocessingv1connect.OrderProcessingServiceCancelCheckoutProcedure:
		if r, ok := req.(*orderprocessingv1.CancelCheckoutRequest); ok && r.GetCheckoutId() == c.checkout.id {
			c.checkout = checkout{}
		}
	}
}

// stringField returns msg's string field name, "" when it has none.
func stringField(msg proto.Message, name protoreflect.Name) string {
	if msg == nil {
		return ""
	}
	m := msg.ProtoReflect()
	if f := m.Descriptor().Fields().ByName(name); f != nil && f.Kind() == protoreflect.StringKind {
		return m.Get(f).String()
	}
	return ""
}

// challenged reports the gateway refusing the access token: Unauthenticated
// with a Bearer challenge. One without is about another credential (an
// expired checkout token), which a refresh would not help.
func challenged(err error) bool {
	var ce *connect.Error
	if connect.CodeOf(err) != connect.CodeUnauthenticated || !errors.As(err, &ce) || errors.Is(err, ErrSessionEnded) {
		return false
	}
	return bearerChallenge(ce.Meta().Get("WWW-Authenticate"))
}

// bearerChallenge reports a WWW-Authenticate value of the Bearer scheme.
func bearerChallenge(v string) bool {
	v = strings.TrimSpace(v)
	return len(v) >= 6 && strings.EqualFold(v[:6], "bearer")
}

// transient reports an error worth retrying: the server or network
// unavailable.
func transient(err error) bool { return connect.CodeOf(err) == connect.CodeUnavailable }

// newIdempotencyKey returns a random UUID (version 4) for one logical call.
func newIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
