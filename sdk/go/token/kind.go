package token

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Limits on claim collections. They bound the work a verifier does for a
// token that passes the size limit; every legitimate token is far below them.
const (
	maxAudiences   = 16
	maxCapability  = 32
	maxMapMembers  = 32
	maxTopMembers  = 64
	numericDateMax = 253402300799 // 9999-12-31T23:59:59Z
)

// Registered holds the registered claims (RFC 7519 section 4.1) common to all
// kinds. Times have whole-second precision.
type Registered struct {
	// Issuer (iss) names the issuer; it selects the verification policy and
	// the key source. Issue fills it with the Issuer's name.
	Issuer string
	// Subject (sub) is the user or workload the token is about. Required.
	Subject string
	// Audience (aud) lists the intended recipients; a verifier accepts the
	// token only if it contains the audience configured for the issuer and
	// kind. One value is encoded as a JSON string. Required.
	Audience []string
	// ExpiresAt (exp) is required. Issue fills iat plus the kind's default
	// lifetime.
	ExpiresAt time.Time
	// NotBefore (nbf) is optional.
	NotBefore time.Time
	// IssuedAt (iat) is required and bounds the lifetime. Issue fills now.
	IssuedAt time.Time
	// ID (jti) identifies the token for one-time use and logs. Issue fills a
	// random 128-bit value for every kind but Transaction, which uses txn.
	ID string
}

// registeredNames are the claim names of Registered, in field-index order.
var registeredNames = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti"}

// AnyKind is implemented by every Kind; verifier options take it to name a
// kind without its claims type.
type AnyKind interface {
	// Name is the kind's short name, e.g. "confirmation".
	Name() string
	// String describes the kind for people, e.g. "confirmation token".
	String() string
	// Typ is the JWS "typ" header value of the kind, e.g. "confirmation+jwt".
	Typ() string
	// MaxLifetime is the largest exp - iat the kind allows.
	MaxLifetime() time.Duration
	// CarriesCapabilities reports whether tokens of the kind grant
	// capabilities, so that accepting them needs a Namespace.
	CarriesCapabilities() bool
	verifyAny(ctx context.Context, v *Verifier, raw string) (any, error)
}

// Kind describes one kind of token: its typ header, claims type C, maximum
// and default lifetime, required claims and capability claim. The kinds are
// the package variables Access, Transaction, Checkout, Confirmation and
// Workload; a Kind's zero value is not usable.
type Kind[C any] struct {
	name string // short name: "access"
	// foreign: tokens of the kind may come from an issuer outside
	// tokenrelay (an OpenID Connect provider), so that the form stage
	// leaves what such an issuer may do differently (other header
	// parameters, typ, RSA, case variants of claim names) to be judged
	// by the issuer's policy after the signature.
	foreign         bool
	title           string // for people: "access token (RFC 9068)"
	typ             string
	maxLifetime     time.Duration
	defaultLifetime time.Duration
	names           []string // kind-specific claim names, in decode index order
	all             []string // registeredNames followed by names
	reg             func(*C) *Registered
	decode          func(c *C, field int, d *decoder) error
	encode          func(c *C, e *encoder)
	check           func(c *C) error
	fill            func(c *C, id string)
	caps            func(c *C) []string
	clone           func(c C) C
}

// Name returns the kind's short name: "access", "transaction", "checkout",
// "confirmation" or "workload".
func (k Kind[C]) Name() string { return k.name }

// String describes the kind for people, such as "confirmation token".
func (k Kind[C]) String() string { return k.title }

// Typ returns the kind's typ header value.
func (k Kind[C]) Typ() string { return k.typ }

// MaxLifetime returns the largest exp - iat a token of this kind may have.
func (k Kind[C]) MaxLifetime() time.Duration { return k.maxLifetime }

// DefaultLifetime returns the lifetime Issue uses when exp is not set.
func (k Kind[C]) DefaultLifetime() time.Duration { return k.defaultLifetime }

// CarriesCapabilities reports whether tokens of this kind grant
// capabilities (Confirmation does): accepting them needs a Namespace.
func (k Kind[C]) CarriesCapabilities() bool { return k.caps != nil }

func (k Kind[C]) verifyAny(ctx context.Context, v *Verifier, raw string) (any, error) {
	c, err := Verify(ctx, v, k, raw)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func withRegistered(names ...string) []string {
	return append(slices.Clip(registeredNames), names...)
}

// AccessClaims are the claims of an OAuth 2.0 access token in the JWT
// profile of RFC 9068.
type AccessClaims struct {
	Registered
	// ClientID (client_id) is the OAuth client the token was issued to.
	// Required.
	ClientID string
	// Scope (scope) is the space-separated list of granted scopes.
	Scope string
}

// Access is the RFC 9068 access token, typ "at+jwt": at most 15 minutes,
// default 15 minutes. Requires sub, aud, jti and client_id. Verified by the
// gateway only.
var Access = Kind[AccessClaims]{
	name:            "access",
	title:           "access token (RFC 9068)",
	foreign:         true,
	typ:             "at+jwt",
	maxLifetime:     15 * time.Minute,
	defaultLifetime: 15 * time.Minute,
	names:           []string{"client_id", "scope"},
	all:             withRegistered("client_id", "scope"),
	reg:             func(c *AccessClaims) *Registered { return &c.Registered },
	decode: func(c *AccessClaims, f int, d *decoder) (err error) {
		switch f {
		case 0:
			c.ClientID, err = d.string()
		case 1:
			c.Scope, err = d.string()
		}
		return err
	},
	encode: func(c *AccessClaims, e *encoder) {
		e.str("client_id", c.ClientID)
		e.str("scope", c.Scope)
	},
	check: func(c *AccessClaims) error {
		return required(c.ID != "", "jti", c.ClientID != "", "client_id")
	},
	fill:  func(c *AccessClaims, id string) { c.ID = orDefault(c.ID, id) },
	clone: func(c AccessClaims) AccessClaims { c.Audience = slices.Clone(c.Audience); return c },
}

// TransactionClaims are the claims of a transaction token (IETF OAuth
// Transaction Tokens draft): minted by the gateway once per inbound request
// and passed unchanged to every service the request reaches.
type TransactionClaims struct {
	Registered
	// Txn (txn) is the transaction id every log line and span carries. Issue
	// fills a random value. Required.
	Txn string
	// Scope (scope) is the space-separated scope of the transaction.
	Scope string
	// Context (tctx) is the immutable transaction context, such as the
	// tenant. String values only.
	Context map[string]string
	// RequestingWorkload (req_wl) names the workload that requested the
	// token, normally the gateway. A token replaced at the Txn-Token Service
	// keeps the call chain: the workloads that asked, in order, separated
	// by commas ("gateway,order-processing").
	RequestingWorkload string
	// RequestContext (rctx) is the context of the request that asked for
	// the token (the draft's request_context), such as where a batch job
	// runs. String values only; never authorization.
	RequestContext map[string]string
}

// Transaction is the transaction token, typ "txntoken+jwt": at most 5
// minutes, default 5 minutes. aud is the trust domain. Requires sub, aud and
// txn. Verified locally by every service; see WithVerifiedCache.
var Transaction = Kind[TransactionClaims]{
	name:            "transaction",
	title:           "transaction token",
	typ:             "txntoken+jwt",
	maxLifetime:     5 * time.Minute,
	defaultLifetime: 5 * time.Minute,
	names:           []string{"txn", "scope", "tctx", "req_wl", "rctx"},
	all:             withRegistered("txn", "scope", "tctx", "req_wl", "rctx"),
	reg:             func(c *TransactionClaims) *Registered { return &c.Registered },
	decode: func(c *TransactionClaims, f int, d *decoder) (err error) {
		switch f {
		case 0:
			c.Txn, err = d.string()
		case 1:
			c.Scope, err = d.string()
		case 2:
			c.Context, err = d.stringMap(maxMapMembers)
		case 3:
			c.RequestingWorkload, err = d.string()
		case 4:
			c.RequestContext, err = d.stringMap(maxMapMembers)
		}
		return err
	},
	encode: func(c *TransactionClaims, e *encoder) {
		e.str("txn", c.Txn)
		e.str("scope", c.Scope)
		e.strMap("tctx", c.Context)
		e.str("req_wl", c.RequestingWorkload)
		e.strMap("rctx", c.RequestContext)
	},
	check: func(c *TransactionClaims) error { return required(c.Txn != "", "txn") },
	fill:  func(c *TransactionClaims, id string) { c.Txn = orDefault(c.Txn, id) },
	clone: func(c TransactionClaims) TransactionClaims {
		c.Audience = slices.Clone(c.Audience)
		c.Context = maps.Clone(c.Context)
		c.RequestContext = maps.Clone(c.RequestContext)
		return c
	},
}

// CheckoutClaims are the claims of a checkout token: OrderProcessing's
// statement, at StartCheckout, of who checks out what for how much.
type CheckoutClaims struct {
	Registered
	// OrderProcessingID (order_processing_id) is the checkout id, "op_...".
	// Required.
	OrderProcessingID string
	// AmountMinor (amount_minor) is the checkout total in minor units of
	// Currency; at least 0.
	AmountMinor int64
	// Currency (currency) is an ISO 4217 code. Required.
	Currency string
}

// Checkout is the checkout token, typ "checkout+jwt": at most 1 hour,
// default 30 minutes (set exp to the checkout's own expiry). aud lists the
// domain services. Requires sub (the user), aud, jti, order_processing_id and
// currency.
var Checkout = Kind[CheckoutClaims]{
	name:            "checkout",
	title:           "checkout token",
	typ:             "checkout+jwt",
	maxLifetime:     time.Hour,
	defaultLifetime: 30 * time.Minute,
	names:           []string{"order_processing_id", "amount_minor", "currency"},
	all:             withRegistered("order_processing_id", "amount_minor", "currency"),
	reg:             func(c *CheckoutClaims) *Registered { return &c.Registered },
	decode: func(c *CheckoutClaims, f int, d *decoder) (err error) {
		switch f {
		case 0:
			c.OrderProcessingID, err = d.string()
		case 1:
			c.AmountMinor, err = d.int(0, 1<<53)
		case 2:
			c.Currency, err = d.string()
		}
		return err
	},
	encode: func(c *CheckoutClaims, e *encoder) {
		e.str("order_processing_id", c.OrderProcessingID)
		e.int("amount_minor", c.AmountMinor)
		e.str("currency", c.Currency)
	},
	check: func(c *CheckoutClaims) error {
		if err := required(c.ID != "", "jti", c.OrderProcessingID != "", "order_processing_id"); err != nil {
			return err
		}
		return money(c.AmountMinor, c.Currency)
	},
	fill:  func(c *CheckoutClaims, id string) { c.ID = orDefault(c.ID, id) },
	clone: func(c CheckoutClaims) CheckoutClaims { c.Audience = slices.Clone(c.Audience); return c },
}

// Settlement is the one domain-agnostic fact of a confirmation: how much of
// the order it pays for.
type Settlement struct {
	// AmountMinor (amount_minor) is in minor units of Currency; at least 0.
	AmountMinor int64
	// Currency (currency) is an ISO 4217 code.
	Currency string
}

// ConfirmationClaims are the claims of a confirmation token: a domain
// service's signed statement that the user chose something it will honour
// when OrderProcessing exercises the capability.
type ConfirmationClaims struct {
	Registered
	// OrderProcessingID (order_processing_id) binds the token to one
	// checkout. Required.
	OrderProcessingID string
	// Capabilities (capabilities) are "namespace:action" strings, such as
	// "coupons:redeem". Required, at most 32; a verifier accepts only the
	// namespace configured for the issuer.
	Capabilities []string
	// Constraints (constraints) are the issuer's own references and hashes,
	// opaque to the orchestrator (e.g. "amount_sha256").
	Constraints map[string]string
	// Settlement (settlement) is required.
	Settlement Settlement
}

// Confirmation is the confirmation token, typ "confirmation+jwt": at most 5
// minutes, default 2 minutes. aud is "order-processing". Requires sub, aud,
// jti, order_processing_id, capabilities and settlement.
var Confirmation = Kind[ConfirmationClaims]{
	name:            "confirmation",
	title:           "confirmation token",
	typ:             "confirmation+jwt",
	maxLifetime:     5 * time.Minute,
	defaultLifetime: 2 * time.Minute,
	names:           []string{"order_processing_id", "capabilities", "constraints", "settlement"},
	all:             withRegistered("order_processing_id", "capabilities", "constraints", "settlement"),
	reg:             func(c *ConfirmationClaims) *Registered { return &c.Registered },
	decode: func(c *ConfirmationClaims, f int, d *decoder) (err error) {
		switch f {
		case 0:
			c.OrderProcessingID, err = d.string()
		case 1:
			c.Capabilities, err = d.strings(maxCapability)
		case 2:
			c.Constraints, err = d.stringMap(maxMapMembers)
		case 3:
			c.Settlement, err = decodeSettlement(d)
		}
		return err
	},
	encode: func(c *ConfirmationClaims, e *encoder) {
		e.str("order_processing_id", c.OrderProcessingID)
		e.strs("capabilities", c.Capabilities)
		e.strMap("constraints", c.Constraints)
		e.name("settlement")
		e.b = append(e.b, '{')
		inner := encoder{b: e.b}
		inner.int("amount_minor", c.Settlement.AmountMinor)
		inner.str("currency", c.Settlement.Currency)
		e.b = append(inner.b, '}')
		if inner.err != nil {
			e.err = inner.err
		}
	},
	check: func(c *ConfirmationClaims) error {
		if err := required(c.ID != "", "jti", c.OrderProcessingID != "", "order_processing_id", len(c.Capabilities) > 0, "capabilities"); err != nil {
			return err
		}
		for _, cp := range c.Capabilities {
			if cp == "" {
				return fmt.Errorf("%w: claim capabilities: empty capability", ErrClaims)
			}
		}
		return money(c.Settlement.AmountMinor, c.Settlement.Currency)
	},
	fill: func(c *ConfirmationClaims, id string) { c.ID = orDefault(c.ID, id) },
	caps: func(c *ConfirmationClaims) []string { return c.Capabilities },
	clone: func(c ConfirmationClaims) ConfirmationClaims {
		c.Audience = slices.Clone(c.Audience)
		c.Capabilities = slices.Clone(c.Capabilities)
		c.Constraints = maps.Clone(c.Constraints)
		return c
	},
}

func decodeSettlement(d *decoder) (Settlement, error) {
	var s Settlement
	if err := d.open('{'); err != nil {
		return s, err
	}
	var seen [2]bool
	for first := true; ; {
		name, ok, err := d.member(&first)
		if err != nil {
			return s, err
		}
		if !ok {
			break
		}
		var f int
		switch string(name) {
		case "amount_minor":
			f = 0
			s.AmountMinor, err = d.int(0, 1<<53)
		case "currency":
			f = 1
			s.Currency, err = d.string()
		default:
			if foldsTo(name, []string{"amount_minor", "currency"}) {
				return s, ErrDuplicateName
			}
			return s, fmt.Errorf("%w: unknown settlement member", ErrClaims)
		}
		if seen[f] {
			return s, ErrDuplicateName
		}
		seen[f] = true
		if err != nil {
			return s, err
		}
	}
	if !seen[0] || !seen[1] {
		return s, fmt.Errorf("%w: settlement needs amount_minor and currency", ErrClaims)
	}
	return s, nil
}

// WorkloadClaims are the claims of a workload token: a service's proof, made
// with its own key, of who is calling, bound to one call as DPoP (RFC 9449)
// binds a proof to htm and htu. iss is the workload's name, aud the callee.
// authn writes and checks the binding (authn.WithWorkload,
// authn.RequireWorkload): a token captured from one call cannot be presented
// with another.
type WorkloadClaims struct {
	Registered
	// Procedure (proc) is the full Connect procedure of the call, such as
	// "/tokenrelay.capability.v1.CapabilityService/Exercise". Required.
	Procedure string
	// RequestDigest (req) binds the token to the request of the call. For a
	// unary call authn writes the unpadded base64url SHA-256 of the
	// deterministic protobuf encoding of the request message
	// (authn.RequestDigest); for a stream, whose messages are not known when
	// its headers are sent, the fixed value authn.StreamRequest. Required.
	RequestDigest string
}

// Workload is the workload token, typ "wl+jwt": at most 2 minutes, default 1
// minute. Requires sub (Issue fills it with iss), aud, jti, proc and req.
// It is not one-time: the binding to one call (proc, req) is what makes a
// replay harmless; see package authn.
var Workload = Kind[WorkloadClaims]{
	name:            "workload",
	title:           "workload token",
	typ:             "wl+jwt",
	maxLifetime:     2 * time.Minute,
	defaultLifetime: time.Minute,
	names:           []string{"proc", "req"},
	all:             withRegistered("proc", "req"),
	reg:             func(c *WorkloadClaims) *Registered { return &c.Registered },
	decode: func(c *WorkloadClaims, f int, d *decoder) (err error) {
		switch f {
		case 0:
			c.Procedure, err = d.string()
		case 1:
			c.RequestDigest, err = d.string()
		}
		return err
	},
	encode: func(c *WorkloadClaims, e *encoder) {
		e.str("proc", c.Procedure)
		e.str("req", c.RequestDigest)
	},
	check: func(c *WorkloadClaims) error {
		return required(c.ID != "", "jti", c.Procedure != "", "proc", c.RequestDigest != "", "req")
	},
	fill: func(c *WorkloadClaims, id string) {
		c.ID = orDefault(c.ID, id)
		c.Subject = orDefault(c.Subject, c.Issuer)
	},
	clone: func(c WorkloadClaims) WorkloadClaims { c.Audience = slices.Clone(c.Audience); return c },
}

// AssertionClaims are the claims of a subject assertion: a workload's
// signed statement, presented as the subject_token of a token exchange at
// the Txn-Token Service (typ "txn-assertion+jwt", subject_token_type
// urn:ietf:params:oauth:token-type:jwt), of the subject it acts for. iss is
// the workload, aud the Txn-Token Service. The service issues a transaction
// token for sub only when its allow-list lets that workload act for that
// subject.
type AssertionClaims struct {
	Registered
	// Txn (txn), when set, is the transaction the workload continues: one
	// whose token it held and recorded (OrderProcessing continuing an order's
	// saga). Only a workload the Txn-Token Service lets continue
	// transactions may set it; otherwise the service starts a new one.
	Txn string
}

// Assertion is the subject assertion, typ "txn-assertion+jwt": at most 2
// minutes, default 1 minute. Requires sub, aud and jti. It is presented once,
// to the Txn-Token Service, and authorizes nothing anywhere else.
var Assertion = Kind[AssertionClaims]{
	name:            "assertion",
	title:           "subject assertion",
	typ:             "txn-assertion+jwt",
	maxLifetime:     2 * time.Minute,
	defaultLifetime: time.Minute,
	names:           []string{"txn"},
	all:             withRegistered("txn"),
	reg:             func(c *AssertionClaims) *Registered { return &c.Registered },
	decode: func(c *AssertionClaims, f int, d *decoder) (err error) {
		if f == 0 {
			c.Txn, err = d.string()
		}
		return err
	},
	encode: func(c *AssertionClaims, e *encoder) { e.str("txn", c.Txn) },
	check:  func(c *AssertionClaims) error { return required(c.ID != "", "jti") },
	fill:   func(c *AssertionClaims, id string) { c.ID = orDefault(c.ID, id) },
	clone:  func(c AssertionClaims) AssertionClaims { c.Audience = slices.Clone(c.Audience); return c },
}

// required takes (present, name) pairs and reports the first missing claim.
func required(pairs ...any) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if !pairs[i].(bool) {
			return fmt.Errorf("%w: claim %s required", ErrClaims, pairs[i+1])
		}
	}
	return nil
}

func money(amount int64, currency string) error {
	if amount < 0 {
		return fmt.Errorf("%w: claim amount_minor negative", ErrClaims)
	}
	if len(currency) != 3 || !isUpper(currency[0]) || !isUpper(currency[1]) || !isUpper(currency[2]) {
		return fmt.Errorf("%w: claim currency is not an ISO 4217 code", ErrClaims)
	}
	return nil
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
