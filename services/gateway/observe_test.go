package gateway

import (
	"encoding/binary"
	"strings"
	"testing"

	"connectrpc.com/connect"
)

// TestEnvelopesAnySplit: the end envelope of a stream is found however the
// body is cut into writes, after messages and an empty envelope.
func TestEnvelopesAnySplit(t *testing.T) {
	envelope := func(flags byte, payload string) []byte {
		b := []byte{flags, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
		return append(b, payload...)
	}
	end := `{"error":{"code":"permission_denied","message":"` + strings.Repeat("m", maxErrorBody) + `"}}`
	var body []byte
	body = append(body, envelope(0, "first message")...)
	body = append(body, envelope(0, "")...)
	body = append(body, envelope(0, "second")...)
	body = append(body, envelope(flagConnectEnd, end)...)
	for size := 1; size <= len(body); size++ {
		e := envelopes{end: flagConnectEnd}
		for b := body; len(b) > 0; b = b[min(size, len(b)):] {
			e.write(b[:min(size, len(b))])
		}
		if got := string(e.payload("")); !e.found || got != end[:maxErrorBody] {
			t.Fatalf("writes of %d bytes: found %v, payload %q", size, e.found, got)
		}
		// The message was cut at the bound; its code is read all the same.
		if code := connect.CodeOf(connectEnd(e.payload(""))); code != connect.CodePermissionDenied {
			t.Fatalf("writes of %d bytes: code %v", size, code)
		}
	}
	var e envelopes
	e.end = flagConnectEnd
	e.write(envelope(0, "no end yet"))
	if e.found || e.payload("") != nil {
		t.Fatal("an end envelope found in a stream without one")
	}
}

// TestConnectEnd: the outcome of each Connect end-of-stream message.
func TestConnectEnd(t *testing.T) {
	for msg, want := range map[string]connect.Code{
		`{}`:                       0,
		`{"metadata":{"a":["b"]}}`: 0,
		`{"metadata":{"a":["b"]},"error":{"code":"aborted"}}`: connect.CodeAborted,
		`{"error":{"message":"m","code":"not_found"}}`:        connect.CodeNotFound,
		`{"error":{"message":"m"}}`:                           connect.CodeUnknown,
		`{"error":{"code":"no_such_code"}}`:                   connect.CodeUnknown,
		`{"error":{"code":"unavailable","message":"cut`:       connect.CodeUnavailable,
		`{"error":{"message":"cut`:                            connect.CodeUnknown,
		`not json`:                                            connect.CodeUnknown,
		``:                                                    connect.CodeUnknown,
	} {
		err := connectEnd([]byte(msg))
		if got := connect.CodeOf(err); (err == nil) != (want == 0) || err != nil && got != want {
			t.Errorf("%s: outcome %v, want code %v", msg, err, want)
		}
	}
}
