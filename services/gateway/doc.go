// Package gateway is tokenrelay's single public origin: an http.Handler in
// front of every service, for browsers, buf curl and generated clients,
// over Connect, gRPC and gRPC-Web.
//
// For every RPC it
//
//  1. answers CORS for the configured origins (preflights included) and
//     refuses oversized headers and bodies (ResourceExhausted);
//  2. drops any client-supplied Txn-Token and Workload-Token header, in
//     any case and with "_" for "-" (Txn_Token): a client can never supply
//     either;
//  3. routes by service name, refusing CapabilityService always and any
//     service without a route (NotFound, before any other check);
//  4. refuses a client that has spent its budget of failed
//     authentications (Config.AuthFailureBurst, refilled every
//     Config.AuthFailureRefill) with ResourceExhausted and Retry-After,
//     before reading its body or looking at its token, so that a flood of
//     forged tokens costs no signature verification, and closes the
//     connection (Connection: close; GOAWAY over HTTP/2); anonymous
//     procedures pass (but see AcceptConn below);
//  5. verifies the access token (Authorization: Bearer, token.Access,
//     RFC 9068) against the configured issuers, except for the anonymous
//     procedures (Login and Refresh). Every refusal is Unauthenticated
//     with an RFC 6750 challenge, WWW-Authenticate: Bearer
//     realm="<TrustDomain>": without an error attribute when there is no
//     Bearer credential; error="invalid_request" (HTTP 400 to plain HTTP
//     clients) for more than one credential (two Authorization headers,
//     two credentials in one, a header beside an access_token query
//     parameter) or a token outside the b64token syntax; and
//     error="invalid_token" for a bad, expired, wrongly signed,
//     wrong-audience or unknown-issuer token, with one fixed message
//     whichever check failed (the reason goes to the log and metrics), and
//     one failure taken from the client's budget;
//  6. refuses the admin procedures (GrantCoupon, GrantPoints,
//     AddPaymentMethod) without the "admin" scope: PermissionDenied, with
//     the challenge error="insufficient_scope", scope="admin";
//  7. mints one transaction token (token.Transaction) with its own key
//     ring: txn random, sub the access token's sub, qualified by its
//     issuer for a foreign provider ("anonymous" for the anonymous
//     procedures; see Issuers), scope the scopes its issuer may grant,
//     tctx {"tenant": Config.Tenant, "iss": ..., "principal": "user" or
//     "client"}, req_wl Config.Name, aud Config.TrustDomain, lifetime at
//     most 5 minutes; the access token itself goes no further;
//  8. passes the request on: in process to an http.Handler (the embedded
//     default), or by URL through httputil.ReverseProxy with HTTP/2
//     (h2c for http:// upstreams, so gRPC works), streaming responses
//     flushed as they come. A route may name several upstream URLs
//     (replicas of one service): requests take them in turn (round
//     robin), and a request whose upstream refuses the connection, so
//     that nothing was sent, is retried on the next one (failover).
//
// Errors the gateway writes itself are Connect, gRPC or gRPC-Web errors as
// the request's protocol needs (connect.ErrorWriter), with their
// WWW-Authenticate or Retry-After as response headers in every protocol
// (HTTP/2 forbids WWW-Authenticate in the trailers where gRPC puts an
// error's metadata). Logs carry the txn and never a token.
//
// # Failed authentications
//
// A client is its TCP peer address (the gateway reads no
// X-Forwarded-For), an IPv6 client its /64. Its budget is a token bucket
// (golang.org/x/time/rate) of Config.AuthFailureBurst failures (default
// 20), one more every Config.AuthFailureRefill (default 200 ms, 5 a
// second); only refused access tokens take from it, never a success, a
// request without a token or an invalid_request. The defaults leave a
// legitimate client far more than it needs (a browser whose tabs share an
// expired token fails once a tab, then refreshes) and hold an address
// that sends only forged tokens to 5 signature verifications a second
// (about 0.4 ms of CPU), instead of one per request. Budgets are kept for
// at most Config.AuthFailureClients clients (default 65,536, about 14 MiB),
// the least recently active forgotten first; a client forgotten starts
// again with a full budget. Per-address budgets do not stop a flood from
// many addresses: that is the network's job.
//
// A client that has spent its budget is also refused at the connection:
// the refusal closes its connection, and AcceptConn, the filter of the
// listener Listen makes (server.Listen; gatewayd and the embedded system do
// the same), resets its new connections as they are accepted, before any
// byte is read or TLS handshake made, with no answer at all, until its budget has a failure again (one
// every Config.AuthFailureRefill); so a flooding address costs an accept
// and a reset per attempt instead of an HTTP request. Every connection
// from that address is refused meanwhile, for every procedure, Login and
// Refresh included: a well-behaved client behind the same address (a
// NAT, a proxy) is locked out with the flooder. A server built without
// Server or the filter still refuses at the request, with Connection:
// close.
//
// # Issuers
//
// An Issuer with Keys and no Profile is tokenrelay's own identity service
// (its ring in process, or its JWKS): its access tokens are held to the
// strict rules of every token tokenrelay mints (header alg, kid and typ
// only, typ at+jwt, EdDSA or ES256, 15 minutes at most; RFC 8725
// 3.11-3.12), it may grant every scope, admin included, and its subjects
// reach the services as they are.
//
// Every other Issuer is a foreign OpenID Connect provider, verified by its
// Profile (token.AccessProfile: algorithms, RS256 and PS256 included; typ
// values; audience; lifetime up to 24 h; leeway up to 5 min; where the
// scopes, subject and client id are; unknown non-critical header
// parameters ignored, jku, x5u, jwk, x5c and crit still refused). It
// grants "admin" only through a Profile.ScopeMap that maps one of its
// scopes to it. Its users reach the services as ForeignSubject
// ("<iss>#<sub>") and a client acting for itself (a client-credentials
// token: no sub, or sub = client_id) as ForeignClient
// ("client:<iss>#<client_id>"), so that (iss, sub) is the identity: no two
// providers' users, and no provider's user and a local one, share a
// balance, a card or an order. tctx carries the issuer (ContextIssuer) and
// whether sub is a user or a client (ContextPrincipal).
//
// A provider without Keys is found by discovery:
// <issuer>/.well-known/openid-configuration, whose "issuer" must equal the
// configured one exactly; its tokens are verified with the keys at its
// jwks_uri through a jwks.Cache. New reads each document once; a provider
// whose document cannot be read leaves the gateway running but not ready
// (Ready, ErrNotReady; its tokens are answered Unavailable), and Run
// retries it with exponential backoff from Config.DiscoveryRetry, then
// reads it again every Config.DiscoveryRefresh, following a changed
// jwks_uri. A provider down later keeps being trusted with its last keys.
// ParseIssuers reads providers and their profiles from a JSON file.
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
//     balancer with its failover (steps 3 and 8).
//   - budget.go: the budgets of failed authentications, per client
//     address (an IPv6 client: its /64), bounded to
//     Config.AuthFailureClients clients (step 4).
//   - authenticate.go: the credential rules and RFC 6750 challenges, the
//     access-token verifier, each issuer's scope mapping and subjects, the
//     admin check and the minting of the transaction token (steps 4 to 7),
//     Ready, and AcceptConn, the budget's refusal of connections.
//   - oidc.go: the OpenID Connect discovery document (ErrDiscovery).
//   - provider.go: the providers found by discovery, retried and
//     refreshed by Run (ErrNotReady).
//   - issuers.go: ParseIssuers, the -issuers-file format.
//   - errors.go: the errors the gateway answers with, written in the
//     request's protocol (Connect, gRPC or gRPC-Web, else plain text),
//     with their challenge or Retry-After header.
//   - observe.go: what the upstream answered, for the log line and
//     Config.Observe.
//
// Transaction tokens for work without an inbound request (batch jobs, the
// saga continuing an order's transaction) come from the Txn-Token Service,
// package tts below this one, served beside the gateway with its key ring.
package gateway
