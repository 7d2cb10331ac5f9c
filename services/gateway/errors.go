package gateway

import (
	"errors"
	"net/http"
	"slices"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
)

// Errors the gateway answers with. Fixed texts: they never echo input.
var (
	errNoService    = errors.New("no such service")
	errMissingToken = missingToken{}
	// errInvalidRequest refuses a request with more than one credential
	// (RFC 6750 section 2: one method, one token), or a Bearer credential
	// that is no b64token.
	errInvalidRequest = errors.New("send one access token, in one Authorization: Bearer header")
	errAdminOnly      = errors.New("this procedure needs the admin scope")
	// errBudgetSpent refuses a client that has spent its budget of failed
	// authentications (Config.AuthFailureBurst).
	errBudgetSpent    = errors.New("too many failed authentications from this client: retry later")
	errBodyTooLarge   = errors.New("request body too large")
	errBodyUnreadable = errors.New("reading the request body failed")
	errHeaderTooLarge = errors.New("request headers too large")
	errUnavailable    = errors.New("service unavailable")
	errInternal       = errors.New("internal error")
	// errMalformedEnvelope reports a gRPC, gRPC-Web or Connect streaming
	// body whose length-prefixed messages do not add up to the body.
	errMalformedEnvelope = errors.New("malformed request body: its length-prefixed messages do not match its length")
)

// missingToken is the refusal of a request without an access token; it
// wraps authn.ErrMissingToken, so that metrics count it with the other
// missing tokens.
type missingToken struct{}

func (missingToken) Error() string {
	return "missing access token: send Authorization: Bearer <token>"
}
func (missingToken) Unwrap() error { return authn.ErrMissingToken }

// invalidToken is the refusal of an access token, whichever check refused
// it: one fixed text, so that a forger learns nothing from the answer
// (which claims passed, which issuers and keys exist). It wraps the token
// package's sentinel, for the log line and metrics.
type invalidToken struct{ defect error }

func (invalidToken) Error() string   { return "access token invalid or expired" }
func (e invalidToken) Unwrap() error { return e.defect }

// refusal is an error the gateway answers with response headers of its
// own: an RFC 6750 challenge (WWW-Authenticate), Retry-After. fail writes
// them as headers in every protocol: gRPC's error writer would put the
// error's metadata in trailers, where HTTP/2 forbids WWW-Authenticate.
type refusal struct {
	err    *connect.Error
	header http.Header
	// status, when not 0, is the plain HTTP status, in place of the
	// code's: 400 for invalid_request (RFC 6750 section 3.1).
	status int
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// fail writes err in the request's protocol, or as plain text to a client
// that speaks none of them.
func (g *Gateway) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := 0
	if rf, ok := errors.AsType[*refusal](err); ok {
		for k, v := range rf.header {
			w.Header()[k] = slices.Clone(v) // rf.header is shared
		}
		status = rf.status
	}
	if g.errs.IsSupported(r) {
		_ = g.errs.Write(w, r, err)
		return
	}
	var cerr *connect.Error
	code := connect.CodeInternal
	msg := errInternal.Error()
	if errors.As(err, &cerr) {
		code, msg = cerr.Code(), cerr.Message()
		for k, v := range cerr.Meta() {
			w.Header()[k] = v
		}
	}
	if status == 0 {
		status = httpStatus(code)
	}
	http.Error(w, msg, status)
}

// unavailable answers a request no upstream took.
func (g *Gateway) unavailable(w http.ResponseWriter, r *http.Request) {
	g.fail(w, r, connect.NewError(connect.CodeUnavailable, errUnavailable))
}

// httpStatus maps the codes the gateway writes to HTTP statuses (the
// Connect protocol's mapping). Its converse for reading upstream answers,
// httpCode, follows gRPC's mapping, which differs.
func httpStatus(c connect.Code) int {
	switch c {
	case connect.CodeUnauthenticated:
		return http.StatusUnauthorized
	case connect.CodePermissionDenied:
		return http.StatusForbidden
	case connect.CodeNotFound:
		return http.StatusNotFound
	case connect.CodeResourceExhausted:
		return http.StatusTooManyRequests
	case connect.CodeUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}
