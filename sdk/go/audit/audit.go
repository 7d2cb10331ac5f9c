// Package audit keeps the lifecycle of tokens as a durable, tamper-evident
// record, so that an operator holding a jti (from a log line, a support
// ticket, a refused replay) can ask what happened to that token: who issued
// it, for which checkout, who presented it, whether it was refused and on
// which check, consumed, exercised for which order, compensated.
//
// # Events
//
// An [Event] is one thing that happened to one token in one service: its
// [Action] (issued, accepted, refused, consumed, exercised, compensated,
// purged), the token's (iss, jti), kind, subject, checkout and order, the
// request's txn, for a refusal the check that failed, and the token's exp.
// Never the token itself, nor anything that would let it be used: an event
// of a refusal carries the presenting subject and txn, not what was
// presented.
//
// # Store
//
// [Log] appends events to the table audit_events of the service's own
// database (SQLite or PostgreSQL through sqldb; [Migrate] creates it, or
// [Migrations] with sqldb.MigrationSet([MigrationSet])), inside the
// caller's transaction ([Log.Append]; [Log.AppendAll] for several events
// of one transaction, which move the chain's head once): the event is
// written with the effect it records, or not at all. Events are read by
// token ([Log.ByJTI]), by order ([Log.ByOrder]), by txn ([Log.ByTxn]) and a
// checkout's checkout tokens ([Log.CheckoutTokens]), each indexed, and
// each index partial (only the events that have its key), so that an
// append writes no index page that no read needs (the retention walks the
// primary key, service and sequence number).
//
// # Tamper evidence
//
// Each service's events form one hash chain: an event's hash is the
// SHA-256 of the previous event's hash and the event's canonical encoding
// (every field, in a fixed order; times in Unix milliseconds), and its
// sequence number is the previous one's plus one. The head of each chain
// (last sequence number and hash) is kept apart, in audit_heads, updated in
// the same transaction as each append, which also serializes appends per
// service (a row lock on PostgreSQL, the write lock on SQLite), so replicas
// sharing a database extend one chain. [Log.Verify] recomputes the chain: an
// event edited, deleted from the middle or the end, inserted or reordered
// is reported with [ErrTampered] and its sequence number. This detects
// tampering by anyone who changes rows without recomputing every later
// hash and the head; it is evidence, not prevention: someone who can write
// the database can rewrite the whole chain, so keep [Log.Verify]'s result
// (the head hash) elsewhere to pin it.
//
// # Retention
//
// [Log.Purge] deletes the oldest events, a prefix of the chain, up to the
// last one older than a cutoff, and records the hash of the last deleted
// event as the chain's anchor: [Log.Verify] starts from it, so the events
// kept stay verifiable. The retention is the caller's.
//
// # Status
//
// The domains append through capabilitysql.Ledger (issued, exercised,
// compensated, purged) and the capabilityrpc handler (refused at Exercise
// and Compensate); OrderProcessing in StartCheckout (its checkout tokens
// issued) and PlaceOrder (consumed, refused); each with a [Trail] that
// stamps the service, the time and the request's txn. Refusals are
// recorded within a budget per presenting subject ([Trail.Refused],
// [RefusalBudget]). Admins read it through OrderProcessingService
// GetTokenAudit, which asks each issuer's CapabilityService AuditTrail;
// see ARCHITECTURE.md, "The token audit trail". Services purge their
// events after [RetentionFactor] times their records' retention.
package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"
)

// Action is what happened to a token.
type Action string

// The actions of a token's lifecycle.
const (
	// Issued: the service signed the token.
	Issued Action = "issued"
	// Accepted: the service verified the token presented to it.
	Accepted Action = "accepted"
	// Refused: the service refused the token; Event.Check says why.
	Refused Action = "refused"
	// Consumed: the service recorded the token's one-time use.
	Consumed Action = "consumed"
	// Exercised: the token's issuer applied its effect for an order.
	Exercised Action = "exercised"
	// Compensated: the issuer undid the effect, or voided the token.
	Compensated Action = "compensated"
	// Purged: the service deleted its records of the token (retention).
	Purged Action = "purged"
)

// Valid reports whether a is one of the actions above.
func (a Action) Valid() bool {
	switch a {
	case Issued, Accepted, Refused, Consumed, Exercised, Compensated, Purged:
		return true
	}
	return false
}

// Event is one thing that happened to one token in one service. Service,
// Action and At are required; every other field may be empty where it does
// not apply (a refused token whose claims could not be trusted has no
// trustworthy jti).
type Event struct {
	// Service is the service that recorded the event.
	Service string
	// Seq is the event's position in its service's chain, from 1; set by
	// Log.Append.
	Seq int64
	// At is when it happened, kept to the millisecond.
	At     time.Time
	Action Action
	// Issuer and JTI identify the token.
	Issuer, JTI string
	// Kind is the token's kind (token.AnyKind.Name: "confirmation", ...).
	Kind string
	// Subject is the token's sub; for a refusal, the presenting subject.
	Subject string
	// CheckoutID and OrderID are the checkout ("op_...") and order
	// ("ord_...") the token concerns.
	CheckoutID, OrderID string
	// Txn is the transaction id of the request that caused the event.
	Txn string
	// Check is, for a refusal, the check that failed: "replay",
	// "expired", "signature", "mismatch", ...
	Check string
	// ExpiresAt is the token's exp, when known.
	ExpiresAt time.Time
	// PrevHash and Hash chain the event (hex SHA-256); set by Log.Append.
	PrevHash, Hash string
}

// Errors of the package.
var (
	// ErrTampered reports a chain that does not verify.
	ErrTampered = errors.New("audit: the event chain does not verify")
	// ErrInvalidEvent reports an event without a service, a known action
	// or a time.
	ErrInvalidEvent = errors.New("audit: invalid event")
)

// canonical is the encoding the hash covers: every field but the hashes,
// in a fixed order (encoding/json writes struct fields in declaration
// order), times as Unix milliseconds.
type canonical struct {
	Service    string `json:"service"`
	Seq        int64  `json:"seq"`
	At         int64  `json:"at"`
	Action     Action `json:"action"`
	Issuer     string `json:"iss"`
	JTI        string `json:"jti"`
	Kind       string `json:"kind"`
	Subject    string `json:"sub"`
	CheckoutID string `json:"checkout_id"`
	OrderID    string `json:"order_id"`
	Txn        string `json:"txn"`
	Check      string `json:"check"`
	ExpiresAt  int64  `json:"exp"`
}

// millis is t in Unix milliseconds, 0 for the zero time.
func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// fromMillis is the inverse of millis, in UTC.
func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// Digest returns the hash of e chained after prev: hex SHA-256 of prev, a
// NUL byte and e's canonical encoding. e's own PrevHash and Hash are not
// read.
func (e Event) Digest(prev string) string {
	b, _ := json.Marshal(canonical{ // a struct of strings and integers: cannot fail
		Service: e.Service, Seq: e.Seq, At: millis(e.At), Action: e.Action,
		Issuer: e.Issuer, JTI: e.JTI, Kind: e.Kind, Subject: e.Subject,
		CheckoutID: e.CheckoutID, OrderID: e.OrderID, Txn: e.Txn, Check: e.Check,
		ExpiresAt: millis(e.ExpiresAt),
	})
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write([]byte{0})
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}
