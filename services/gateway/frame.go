package gateway

import (
	"bytes"
	"io"
	"net/http"
	"strings"

	"connectrpc.com/connect"
)

// headerSize is the size of the request headers as sent: names, values,
// ": " and CRLF.
func headerSize(h http.Header) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4 // ": " and CRLF
		}
	}
	return n
}

// bufferBody reads the body, refusing more than maxBody bytes, so that an
// oversized request is refused cleanly before it reaches a service. Every
// tokenrelay RPC takes one request message, so the body is small.
func (g *Gateway) bufferBody(r *http.Request) error {
	tooLarge := connect.NewError(connect.CodeResourceExhausted, errBodyTooLarge)
	if r.ContentLength > g.maxBody {
		return tooLarge
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, g.maxBody+1))
	_ = r.Body.Close()
	switch {
	case int64(len(b)) > g.maxBody:
		return tooLarge
	case err != nil:
		return connect.NewError(connect.CodeCanceled, errBodyUnreadable)
	}
	if enveloped(r.Header.Get("Content-Type")) && !wellFramed(b) {
		// Refused here with a clear code: a service's protocol layer would
		// answer a truncated envelope with Internal.
		return connect.NewError(connect.CodeInvalidArgument, errMalformedEnvelope)
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.ContentLength = int64(len(b))
	// A balancer resends the body to the next upstream after a refused
	// connection.
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	return nil
}

// enveloped reports whether a content type frames its messages with the
// 5-byte envelope (flags, big-endian length): gRPC, binary gRPC-Web and
// Connect streaming. gRPC-Web's text form is base64 and not checked here.
func enveloped(contentType string) bool {
	ct, _, _ := strings.Cut(contentType, ";")
	ct = strings.TrimSpace(strings.ToLower(ct))
	switch {
	case strings.HasPrefix(ct, "application/grpc-web-text"):
		return false
	case ct == "application/grpc", strings.HasPrefix(ct, "application/grpc+"),
		ct == "application/grpc-web", strings.HasPrefix(ct, "application/grpc-web+"),
		strings.HasPrefix(ct, "application/connect+"):
		return true
	}
	return false
}

// wellFramed reports whether b is a sequence of complete envelopes.
func wellFramed(b []byte) bool {
	for len(b) > 0 {
		if len(b) < 5 {
			return false
		}
		n := uint64(b[1])<<24 | uint64(b[2])<<16 | uint64(b[3])<<8 | uint64(b[4])
		if n > uint64(len(b)-5) {
			return false
		}
		b = b[5+n:]
	}
	return true
}
