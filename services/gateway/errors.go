package gateway

import (
	"errors"
	"net/http"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
)

// Errors the gateway answers with. Fixed texts: they never echo input.
var (
	errNoService      = errors.New("no such service")
	errMissingToken   = missingToken{}
	errAdminOnly      = errors.New("this procedure needs the admin scope")
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

// fail writes err in the request's protocol, or as plain text to a client
// that speaks none of them.
func (g *Gateway) fail(w http.ResponseWriter, r *http.Request, err error) {
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
	http.Error(w, msg, httpStatus(code))
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
