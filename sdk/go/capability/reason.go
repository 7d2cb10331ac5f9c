package capability

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxReasonLen bounds the reason of a compensation, in characters (Unicode
// code points, not bytes): the CapabilityService handler refuses a longer
// one, every domain's Compensate too, and the orchestrator clips its own
// reasons to it with [ClipReason].
const MaxReasonLen = 200

// Errors of [CheckReason]; test with errors.Is.
var (
	// ErrReasonTooLong reports a reason of more than MaxReasonLen characters.
	ErrReasonTooLong = fmt.Errorf("reason is longer than %d characters", MaxReasonLen)
	// ErrReasonEncoding reports a reason that is not valid UTF-8.
	ErrReasonEncoding = errors.New("reason is not valid UTF-8")
)

// CheckReason returns ErrReasonEncoding or ErrReasonTooLong for a reason a
// compensation must not carry, and nil for one it may (the empty reason
// too). The error's text is written for clients.
func CheckReason(reason string) error {
	switch {
	case !utf8.ValidString(reason):
		return ErrReasonEncoding
	case utf8.RuneCountInString(reason) > MaxReasonLen:
		return ErrReasonTooLong
	}
	return nil
}

// ClipReason returns reason made acceptable to CheckReason: invalid UTF-8
// replaced by U+FFFD, and cut after MaxReasonLen characters (never inside
// one).
func ClipReason(reason string) string {
	reason = strings.ToValidUTF8(reason, "\uFFFD")
	n := 0
	for i := range reason {
		if n == MaxReasonLen {
			return reason[:i]
		}
		n++
	}
	return reason
}
