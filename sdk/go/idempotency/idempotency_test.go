package idempotency

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, field, header, want string
		required                  bool
		err                       error
	}{
		{name: "none"},
		{name: "field", field: "k-1", want: "k-1"},
		{name: "header", header: "k-2", want: "k-2"},
		{name: "both agree", field: "k", header: "k", want: "k"},
		{name: "both differ", field: "a", header: "b", err: ErrInvalid},
		{name: "too long", field: strings.Repeat("a", MaxLen+1), err: ErrInvalid},
		{name: "longest", field: strings.Repeat("a", MaxLen), want: strings.Repeat("a", MaxLen)},
		{name: "space", field: "a b", err: ErrInvalid},
		{name: "control", field: "a\x00", err: ErrInvalid},
		{name: "non-ascii", field: "clé", err: ErrInvalid},
		{name: "required missing", required: true, err: ErrInvalid},
		{name: "required present", field: "x", required: true, want: "x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			if tc.header != "" {
				h.Set(Header, tc.header)
			}
			get := Key
			if tc.required {
				get = Require
			}
			got, err := get(tc.field, h)
			if !errors.Is(err, tc.err) || got != tc.want && err == nil {
				t.Fatalf("got %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
		})
	}
}
