package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"connectrpc.com/connect"
)

// statusWriter records the status for the log line, and the beginning of
// an error response's body for its Connect code. It passes Flush and Unwrap
// on, so streaming and trailers work through it.
type statusWriter struct {
	http.ResponseWriter
	code int
	body []byte // the first maxErrorBody bytes of a non-200 response
}

// maxErrorBody bounds what statusWriter keeps of an error body: a Connect
// error's JSON code comes first and is short.
const maxErrorBody = 512

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.code = s.status() // a body without WriteHeader is a 200
	if s.code != http.StatusOK && len(s.body) < maxErrorBody {
		s.body = append(s.body, b[:min(len(b), maxErrorBody-len(s.body))]...)
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Flush() {
	s.code = s.status() // a flush without WriteHeader sends a 200
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// status is the status sent, or to be sent: 200 unless WriteHeader said
// otherwise.
func (s *statusWriter) status() int {
	if s.code == 0 {
		return http.StatusOK
	}
	return s.code
}

// errUpstream carries an upstream's code for Config.Observe.
var errUpstream = errors.New("upstream error")

// outcome returns the response's outcome for Config.Observe: the
// grpc-status of a gRPC response (header or trailer), the code of a
// Connect unary error body, or for any other non-200 status a code from
// the HTTP status.
func (s *statusWriter) outcome() error {
	h := s.Header()
	for _, k := range []string{"Grpc-Status", http.TrailerPrefix + "Grpc-Status"} {
		if v := h.Get(k); v != "" {
			n, err := strconv.ParseUint(v, 10, 32)
			switch {
			case err != nil:
				return connect.NewError(connect.CodeUnknown, errUpstream)
			case n == 0:
				return nil
			}
			return connect.NewError(connect.Code(n), errUpstream)
		}
	}
	if s.status() == http.StatusOK {
		return nil
	}
	var body struct {
		Code connect.Code `json:"code"`
	}
	if json.Unmarshal(s.body, &body) == nil && body.Code != 0 {
		return connect.NewError(body.Code, errUpstream)
	}
	return connect.NewError(httpCode(s.status()), errUpstream)
}

// httpCode maps an HTTP status to a Connect code (the gRPC HTTP mapping),
// for an upstream answer without a code of its own.
func httpCode(status int) connect.Code {
	switch status {
	case http.StatusBadRequest:
		return connect.CodeInternal
	case http.StatusUnauthorized:
		return connect.CodeUnauthenticated
	case http.StatusForbidden:
		return connect.CodePermissionDenied
	case http.StatusNotFound:
		return connect.CodeUnimplemented
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return connect.CodeUnavailable
	default:
		return connect.CodeUnknown
	}
}
