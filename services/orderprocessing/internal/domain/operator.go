package domain

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxOperatorNote bounds an operator's note on a resolved order, in
// characters.
const MaxOperatorNote = 500

// refusedMarker separates an order's failure reason from the list of steps
// whose compensation was refused, so that a retry can restore the reason the
// saga compensated for.
const refusedMarker = "; compensation refused by "

// maxRefusalText bounds each issuer answer quoted in a failure reason, in
// characters: the whole answer stays in the step's LastError.
const maxRefusalText = 120

// Refused returns the steps whose compensation the issuer refused for good.
func (o Order) Refused() []Step {
	var out []Step
	for _, st := range o.Steps {
		if st.State == StepCompensationRefused {
			out = append(out, st)
		}
	}
	return out
}

// NeedsOperatorReason is the failure reason of an order that ends
// OrderNeedsOperator: the reason it was compensated for, then each refused
// step with the issuer's answer, for example
// "payments:capture refused: failed_precondition: card declined;
// compensation refused by coupons:redeem (already_exists: exercised for
// another order)".
func NeedsOperatorReason(reason string, refused []Step) string {
	parts := make([]string, len(refused))
	for i, st := range refused {
		parts[i] = st.Capability + " (" + clip(st.LastError, maxRefusalText) + ")"
	}
	return BaseReason(reason) + refusedMarker + strings.Join(parts, ", ")
}

// BaseReason strips what NeedsOperatorReason added: the reason the order
// was compensated for.
func BaseReason(reason string) string {
	base, _, _ := strings.Cut(reason, refusedMarker)
	return base
}

func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

// RetryRefused is an operator's retry of an order that needs one: every
// refused step goes back to StepCompensating (keeping its attempts and last
// error) and the order back to OrderCompensating with the reason it was
// compensated for, so that the saga of whichever replica claims it next
// compensates those steps again. It returns the steps put back;
// ErrNotStuck when the order is not OrderNeedsOperator.
func (o *Order) RetryRefused() ([]Step, error) {
	if o.Status != OrderNeedsOperator {
		return nil, fmt.Errorf("%w: it is %s", ErrNotStuck, o.Status)
	}
	var out []Step
	for i := range o.Steps {
		if o.Steps[i].State == StepCompensationRefused {
			o.Steps[i].State = StepCompensating
			out = append(out, o.Steps[i])
		}
	}
	o.Status, o.FailureReason = OrderCompensating, BaseReason(o.FailureReason)
	return out, nil
}

// Resolve is an operator's resolution of an order that needs one, after
// settling the refused compensations by hand (with the issuer, outside the
// saga): every refused step becomes StepResolved and the order
// OrderFailed, the note kept in OperatorNote. The failure reason stays as
// it was, naming the refused steps. It returns the steps resolved;
// ErrNotStuck when the order is not OrderNeedsOperator, ErrInvalidArgument
// for an empty note, one longer than MaxOperatorNote characters or one
// that is not UTF-8.
func (o *Order) Resolve(note string) ([]Step, error) {
	switch note = strings.TrimSpace(note); {
	case note == "":
		return nil, fmt.Errorf("%w: a note saying how the order was settled is required", ErrInvalidArgument)
	case !utf8.ValidString(note):
		return nil, fmt.Errorf("%w: the note is not valid UTF-8", ErrInvalidArgument)
	case utf8.RuneCountInString(note) > MaxOperatorNote:
		return nil, fmt.Errorf("%w: the note is longer than %d characters", ErrInvalidArgument, MaxOperatorNote)
	}
	if o.Status != OrderNeedsOperator {
		return nil, fmt.Errorf("%w: it is %s", ErrNotStuck, o.Status)
	}
	var out []Step
	for i := range o.Steps {
		if o.Steps[i].State == StepCompensationRefused {
			o.Steps[i].State = StepResolved
			out = append(out, o.Steps[i])
		}
	}
	o.Status, o.OperatorNote = OrderFailed, note
	return out, nil
}
