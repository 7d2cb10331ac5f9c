package gateway

import "testing"

func TestWellFramed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		body []byte
		want bool
	}{
		{"empty", nil, true},
		{"one message", []byte{0, 0, 0, 0, 2, 'h', 'i'}, true},
		{"two messages", []byte{0, 0, 0, 0, 1, 'a', 2, 0, 0, 0, 0}, true},
		{"short header", []byte{0, 0, 0}, false},
		{"promises more than sent", []byte{0, 0, 0, 0x10, 0, 'x'}, false},
		{"huge length", []byte{0, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3}, false},
		{"trailing bytes", []byte{0, 0, 0, 0, 0, 9}, false},
	} {
		if got := wellFramed(tc.body); got != tc.want {
			t.Errorf("%s: wellFramed = %v, want %v", tc.name, got, tc.want)
		}
	}
	for ct, want := range map[string]bool{
		"application/grpc": true, "application/grpc+proto": true, "application/grpc-web+proto": true,
		"application/connect+json": true, "Application/GRPC; charset=utf-8": true,
		"application/grpc-web-text": false, "application/json": false, "application/proto": false, "": false,
	} {
		if got := enveloped(ct); got != want {
			t.Errorf("enveloped(%q) = %v, want %v", ct, got, want)
		}
	}
}
