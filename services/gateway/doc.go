// Package gateway is tokenrelay's single public origin: an http.Handler in
// front of every service, for browsers, buf curl and generated clients,
// over Connect, gRPC and gRPC-Web.
//
// For every RPC it
//
//  1. answers CORS for the configured origins (preflights included) and
//     refuses oversized headers and bodies (ResourceExhausted);
//  2. drops any client-supplied Txn-Token and Workload-Token header: a
//     client can never supply either;
//  3. routes by service name, refusing CapabilityService always and any
//     service without a route (NotFound, before any other check);
//  4. verifies the access token (Authorization: Bearer, token.Access,
//     RFC 9068) against the configured issuers, except for the anonymous
//     procedures (Login and Refresh): no, bad, expired, wrongly signed,
//     wrong-audience or unknown-issuer tokens are Unauthenticated;
//  5. refuses the admin procedures (GrantCoupon, GrantPoints,
//     AddPaymentMethod) without the "admin" scope (PermissionDenied);
//  6. mints one transaction token (token.Transaction) with its own key
//     ring: txn random, sub the access token's sub ("anonymous" for the
//     anonymous procedures), scope the access token's scope, tctx
//     {"tenant": Config.Tenant}, req_wl Config.Name, aud Config.TrustDomain,
//     lifetime at most 5 minutes; the access token itself goes no further;
//  7. passes the request on: in process to an http.Handler (the embedded
//     default), or by URL through httputil.ReverseProxy with HTTP/2
//     (h2c for http:// upstreams, so gRPC works), streaming responses
//     flushed as they come. A route may name several upstream URLs
//     (replicas of one service): requests take them in turn (round
//     robin), and a request whose upstream refuses the connection, so
//     that nothing was sent, is retried on the next one (failover).
//
// Errors the gateway writes itself are Connect, gRPC or gRPC-Web errors as
// the request's protocol needs (connect.ErrorWriter). Logs carry the txn
// and never a token.
//
// # Issuers
//
// An Issuer with Keys (a keys.Source in process, such as the embedded
// identity service's ring) is trusted directly. An Issuer without Keys is
// an OpenID Connect provider: New fetches <issuer>/.well-known/openid-configuration,
// requires its "issuer" to equal the configured one exactly, and verifies
// tokens with the keys at its jwks_uri through a jwks.Cache (refreshed by
// Run). The provider must issue RFC 9068 access tokens (typ at+jwt) signed
// with EdDSA or ES256, with the configured audience, a client_id and a jti:
// the SDK's token engine accepts nothing weaker.
//
// # Files
//
// One concern a file, in the order a request meets them:
//
//   - gateway.go: the Gateway type, New, ServeHTTP (the steps above in
//     order), Run, Close and Server.
//   - config.go: Config, Issuer, Route, their defaults and validation
//     (ErrConfig).
//   - cors.go: CORS answers and preflights (step 1).
//   - frame.go: the header and body limits and the envelope check of
//     gRPC, gRPC-Web and Connect streaming bodies (step 1).
//   - proxy.go: the routing table, the reverse proxy and the replica
//     balancer with its failover (steps 3 and 7).
//   - authenticate.go: the access-token verifier, scope limits per issuer,
//     the admin check and the minting of the transaction token (steps 4
//     to 6).
//   - oidc.go: OpenID Connect discovery of an Issuer without Keys
//     (ErrDiscovery).
//   - errors.go: the errors the gateway answers with, written in the
//     request's protocol (Connect, gRPC or gRPC-Web, else plain text).
//   - observe.go: what the upstream answered, for the log line and
//     Config.Observe.
package gateway
