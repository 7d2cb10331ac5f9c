package capability

import "errors"

// The sentinels every domain shares. A domain re-exports them from its
// domain package (next to its own), wraps them with %w to add detail, and
// its ports map them with capabilityrpc.Codes; their text is written for
// clients.
var (
	// ErrInvalidArgument reports a malformed request (InvalidArgument).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotFound reports an unknown record (NotFound).
	ErrNotFound = errors.New("not found")
	// ErrPermissionDenied reports an action on someone else's resource, or
	// an admin action without the admin scope (PermissionDenied).
	ErrPermissionDenied = errors.New("permission denied")
	// ErrIdempotencyConflict reports an idempotency key reused with another
	// request (InvalidArgument).
	ErrIdempotencyConflict = errors.New("idempotency key was used with a different request")
	// ErrMismatch reports a token whose claims disagree with the record the
	// domain keeps for it (PermissionDenied: it is not a token the domain
	// issued so).
	ErrMismatch = errors.New("token does not match the confirmation record")
	// ErrAlreadyExercised reports a confirmation exercised for another order
	// (AlreadyExists).
	ErrAlreadyExercised = errors.New("confirmation already exercised for another order")
	// ErrVoided reports a confirmation compensated before it was exercised;
	// it can never be exercised (FailedPrecondition).
	ErrVoided = errors.New("confirmation was voided")
)
