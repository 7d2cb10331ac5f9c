package gateway

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"connectrpc.com/connect"
)

// statusWriter records the outcome of a response for the log line and
// Config.Observe: its status, the beginning of an error response's body
// for its Connect code, and for a Connect or gRPC-Web stream (whose status
// is 200 once it started) the end-of-stream message or trailers at the end
// of its body. It passes Flush and Unwrap on, so streaming and trailers
// work through it.
type statusWriter struct {
	http.ResponseWriter
	code   int
	body   []byte // the first maxErrorBody bytes of a non-200 response
	stream *envelopes
	// kind is what the body is, decided at the first write from the
	// Content-Type: 0 before it, then one of the bodyKinds.
	kind bodyKind
}

// maxErrorBody bounds what statusWriter keeps of an error body, and of a
// stream's end message: a Connect error's JSON code comes first and is
// short.
const maxErrorBody = 512

type bodyKind int

const (
	bodyOther   bodyKind = iota + 1
	bodyConnect          // a Connect stream: enveloped, ends with an end-of-stream message
	bodyGRPCWeb          // a binary gRPC-Web response: enveloped, ends with its trailers
)

// Envelope flags (Connect protocol and gRPC-Web): the compressed bit, and
// the marks of a Connect end-of-stream message and of gRPC-Web trailers.
const (
	flagCompressed = 0x01
	flagConnectEnd = 0x02
	flagTrailers   = 0x80
)

// envelopes follows the envelopes of a streamed body as it is written, and
// keeps the payload (bounded) of the last one that carries end flag.
type envelopes struct {
	end    byte
	header [5]byte
	n      int    // header bytes read of the current envelope
	left   uint32 // payload bytes still to come of the current envelope
	flags  byte   // flags of the current envelope
	last   []byte // payload of the last end envelope, at most maxErrorBody bytes
	found  bool   // an end envelope was seen
	lastFl byte   // its flags
}

func (e *envelopes) write(b []byte) {
	for len(b) > 0 {
		if e.left == 0 && e.n < len(e.header) {
			c := copy(e.header[e.n:], b)
			e.n, b = e.n+c, b[c:]
			if e.n < len(e.header) {
				return
			}
			e.flags, e.left = e.header[0], binary.BigEndian.Uint32(e.header[1:])
			if e.flags&e.end != 0 {
				e.found, e.lastFl, e.last = true, e.flags, e.last[:0]
			}
			if e.left == 0 {
				e.n = 0
			}
			continue
		}
		c := int(min(uint32(len(b)), e.left))
		if e.flags&e.end != 0 && len(e.last) < maxErrorBody {
			e.last = append(e.last, b[:min(c, maxErrorBody-len(e.last))]...)
		}
		e.left, b = e.left-uint32(c), b[c:]
		if e.left == 0 {
			e.n = 0
		}
	}
}

// payload is the end envelope's payload, decompressed when its flags say
// so and the response's encoding is gzip; nil when there is none or it
// cannot be read.
func (e *envelopes) payload(encoding string) []byte {
	if !e.found {
		return nil
	}
	if e.lastFl&flagCompressed == 0 {
		return e.last
	}
	if encoding != "gzip" {
		return nil
	}
	r, err := gzip.NewReader(bytes.NewReader(e.last))
	if err != nil {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(r, maxErrorBody))
	return b
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.code = s.status() // a body without WriteHeader is a 200
	if s.kind == 0 {
		s.kind = bodyOther
		switch ct := s.Header().Get("Content-Type"); {
		case strings.HasPrefix(ct, "application/connect+"):
			s.kind, s.stream = bodyConnect, &envelopes{end: flagConnectEnd}
		case ct == "application/grpc-web", strings.HasPrefix(ct, "application/grpc-web+"):
			s.kind, s.stream = bodyGRPCWeb, &envelopes{end: flagTrailers}
		}
	}
	if s.stream != nil {
		s.stream.write(b)
	}
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
// grpc-status of a gRPC response (header or trailer) or of a gRPC-Web
// response (its trailers at the end of the body), the code of a Connect
// stream's end-of-stream message, the code of a Connect unary error body,
// or for any other non-200 status a code from the HTTP status. gRPC-Web
// text (base64) bodies are not read: their outcome is their headers'.
func (s *statusWriter) outcome() error {
	h := s.Header()
	for _, k := range []string{"Grpc-Status", http.TrailerPrefix + "Grpc-Status"} {
		if v := h.Get(k); v != "" {
			return grpcStatus(v)
		}
	}
	switch {
	case s.kind == bodyGRPCWeb && s.stream.found:
		// Trailers are HTTP/1-style header lines.
		r := bufio.NewReader(bytes.NewReader(s.stream.payload(h.Get("Grpc-Encoding"))))
		for {
			line, err := r.ReadString('\n')
			if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "grpc-status") {
				return grpcStatus(strings.TrimSpace(v))
			}
			if err != nil {
				return connect.NewError(connect.CodeUnknown, errUpstream)
			}
		}
	case s.kind == bodyConnect && s.stream.found:
		return connectEnd(s.stream.payload(h.Get("Connect-Content-Encoding")))
	case s.status() == http.StatusOK:
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

// connectEnd is the outcome a Connect end-of-stream message says: nil
// without "error", else the error's code. The message is read as a stream
// of JSON tokens, so that a code before the bound of what was kept is read
// even when a long message after it was cut.
func connectEnd(msg []byte) error {
	dec := json.NewDecoder(bytes.NewReader(msg))
	unknown := connect.NewError(connect.CodeUnknown, errUpstream)
	// object enters an object and calls field with each key, the decoder
	// at its value, until field says it is done.
	object := func(field func(key string) (done bool, err error)) error {
		if t, err := dec.Token(); err != nil || t != json.Delim('{') {
			return unknown
		}
		for dec.More() {
			t, err := dec.Token()
			key, ok := t.(string)
			if err != nil || !ok {
				return unknown
			}
			if done, err := field(key); done || err != nil {
				return err
			}
		}
		return nil
	}
	skip := func() error {
		var v json.RawMessage
		return dec.Decode(&v)
	}
	var outcome error
	err := object(func(key string) (bool, error) {
		if key != "error" {
			return false, skip()
		}
		outcome = unknown
		return true, object(func(key string) (bool, error) {
			if key != "code" {
				return false, skip()
			}
			var code connect.Code
			if err := dec.Decode(&code); err != nil {
				return true, unknown
			}
			outcome = connect.NewError(code, errUpstream)
			return true, nil
		})
	})
	if err != nil && outcome == nil {
		return err
	}
	return outcome
}

// grpcStatus is the outcome a grpc-status value says.
func grpcStatus(v string) error {
	n, err := strconv.ParseUint(v, 10, 32)
	switch {
	case err != nil:
		return connect.NewError(connect.CodeUnknown, errUpstream)
	case n == 0:
		return nil
	}
	return connect.NewError(connect.Code(n), errUpstream)
}

// codeName is the Connect code of an outcome for the log: "ok" for none.
func codeName(err error) string {
	if err == nil {
		return "ok"
	}
	return connect.CodeOf(err).String()
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
