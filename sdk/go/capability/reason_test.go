package capability_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
)

func TestCheckReason(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		reason string
		want   error
	}{
		{"empty", "", nil},
		{"ascii at the limit", strings.Repeat("x", capability.MaxReasonLen), nil},
		{"ascii over the limit", strings.Repeat("x", capability.MaxReasonLen+1), capability.ErrReasonTooLong},
		{"characters, not bytes", strings.Repeat("é", capability.MaxReasonLen), nil},
		{"characters over the limit", strings.Repeat("é", capability.MaxReasonLen+1), capability.ErrReasonTooLong},
		{"invalid UTF-8", "capture failed \xff", capability.ErrReasonEncoding},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := capability.CheckReason(tc.reason); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("CheckReason = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestClipReason(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", capability.MaxReasonLen)
	for _, tc := range []struct {
		name, reason, want string
	}{
		{"short stays", "card declined", "card declined"},
		{"at the limit stays", long, long},
		{"ascii cut at the limit", long + "yz", long},
		{"cut between characters", strings.Repeat("é", capability.MaxReasonLen+5), strings.Repeat("é", capability.MaxReasonLen)},
		{"invalid UTF-8 replaced", "a\xffb", "a\uFFFDb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := capability.ClipReason(tc.reason); got != tc.want {
				t.Fatalf("ClipReason = %q, want %q", got, tc.want)
			}
		})
	}
}

// FuzzClipReason checks that a clipped reason is always accepted, and that
// an acceptable one is left alone.
func FuzzClipReason(f *testing.F) {
	for _, s := range []string{"", "ok", strings.Repeat("ü", 300), "\xff\xfe", strings.Repeat("x", 199) + "€"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := capability.ClipReason(s)
		if err := capability.CheckReason(got); err != nil {
			t.Fatalf("CheckReason(ClipReason(%q)) = %v", s, err)
		}
		if capability.CheckReason(s) == nil && got != s {
			t.Fatalf("ClipReason changed the acceptable %q to %q", s, got)
		}
		if utf8.ValidString(s) && !strings.HasPrefix(s, got) {
			t.Fatalf("ClipReason(%q) = %q is not a prefix", s, got)
		}
	})
}
