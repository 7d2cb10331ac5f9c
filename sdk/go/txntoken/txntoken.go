// Package txntoken is a workload's client of the Txn-Token Service (the IETF
// Transaction Tokens draft's RFC 8693 token exchange, served by the gateway;
// see services/gateway/README.md): batch jobs, queue consumers and
// OrderProcessing's saga get transaction tokens from it when no inbound
// request brought one.
//
// A Client calls TxnTokenService/Exchange over Connect with a workload token
// signed by the workload's own key and bound to the call
// (authn.WithWorkload). The subject of the token is the workload's own
// subject assertion (token.Assertion, made by [Client.Exchange] with the
// same key), or a transaction token to replace ([Client.Replace]). The
// service decides, by its allow-list, whether the workload may ask for that
// subject and those scopes.
package txntoken

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"

	txntokenv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/txntoken/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/txntoken/v1/txntokenv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// Token types of the exchange.
const (
	// TypeTxn is the type of a transaction token.
	TypeTxn = "urn:ietf:params:oauth:token-type:txn_token"
	// TypeJWT is the type of a subject assertion.
	TypeJWT = "urn:ietf:params:oauth:token-type:jwt"
)

// Request is what a workload asks the service for.
type Request struct {
	// Subject is whom the transaction is for: a user id, or the workload
	// itself for its own work. Required.
	Subject string
	// Txn continues a transaction the workload recorded, when the service
	// lets it continue transactions; empty starts a new one.
	Txn string
	// Scopes asked for. At least one.
	Scopes []string
	// Context becomes the token's rctx (the draft's request_context).
	Context map[string]string
	// Details are added to a new transaction's tctx (request_details).
	Details map[string]string
}

// Client asks the Txn-Token Service for transaction tokens as one workload.
// It is safe for concurrent use.
type Client struct {
	rpc         txntokenv1connect.TxnTokenServiceClient
	workload    *token.Issuer
	service     string
	trustDomain string
}

// NewClient returns a client of the service at baseURL whose name (the aud
// of workload tokens, the iss of the tokens it mints) is service, for the
// trust domain trustDomain, signing as the workload is. opts are added to
// the Connect client's.
func NewClient(httpClient connect.HTTPClient, baseURL, service, trustDomain string, is *token.Issuer, opts ...connect.ClientOption) *Client {
	opts = append([]connect.ClientOption{connect.WithInterceptors(authn.NewClientInterceptor(authn.WithWorkload(is, service)))}, opts...)
	return &Client{
		rpc:      txntokenv1connect.NewTxnTokenServiceClient(httpClient, baseURL, opts...),
		workload: is, service: service, trustDomain: trustDomain,
	}
}

// ErrRequest reports a Request that cannot be sent.
var ErrRequest = errors.New("txntoken: invalid request")

// Exchange asks for a transaction token for r.Subject with the workload's
// subject assertion, and returns it. Refusals are the service's Connect
// errors (see txntoken.proto).
func (c *Client) Exchange(ctx context.Context, r Request) (string, error) {
	if r.Subject == "" || len(r.Scopes) == 0 {
		return "", fmt.Errorf("%w: a subject and a scope", ErrRequest)
	}
	assertion, _, err := token.Issue(ctx, c.workload, token.Assertion, token.AssertionClaims{
		Registered: token.Registered{Subject: r.Subject, Audience: []string{c.service}},
		Txn:        r.Txn,
	})
	if err != nil {
		return "", fmt.Errorf("txntoken: subject assertion: %w", err)
	}
	return c.send(ctx, assertion, TypeJWT, r)
}

// Replace asks for a replacement of the transaction token raw with a scope
// within its own: the same txn, subject and context, and the workload added
// to the call chain (req_wl). The service never replaces an expired token.
func (c *Client) Replace(ctx context.Context, raw string, scopes []string) (string, error) {
	if raw == "" || len(scopes) == 0 {
		return "", fmt.Errorf("%w: a token and a scope", ErrRequest)
	}
	return c.send(ctx, raw, TypeTxn, Request{Scopes: scopes})
}

func (c *Client) send(ctx context.Context, subject, typ string, r Request) (string, error) {
	rctx, err := object(r.Context)
	if err != nil {
		return "", err
	}
	details, err := object(r.Details)
	if err != nil {
		return "", err
	}
	scope := strings.Join(r.Scopes, " ")
	res, err := c.rpc.Exchange(ctx, connect.NewRequest(&txntokenv1.ExchangeRequest{
		Audience: c.trustDomain, Scope: scope, SubjectToken: subject, SubjectTokenType: typ,
		RequestContext: rctx, RequestDetails: details,
	}))
	if err != nil {
		return "", err
	}
	return res.Msg.GetAccessToken(), nil
}

func object(m map[string]string) (string, error) {
	if len(m) == 0 {
		return "", nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrRequest, err)
	}
	return string(b), nil
}
