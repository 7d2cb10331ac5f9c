// Package adapters holds Payments' outside world: the store on SQL (SQLite,
// the embedded default, and PostgreSQL through one set of statements, with
// dialect-specific DDL in migrations/) and the built-in simulated payment
// processor.
//
// # Simulated processor
//
// [SimProcessor] implements domain.Processor without moving money, so that
// the checkout runs end to end with no account anywhere. It is deterministic:
// what it does depends only on the card number it was handed at Tokenize,
// using these test numbers (all pass the Luhn check):
//
//	card number       brand  Authorize                    Capture
//	4242424242424242  visa   hold placed                  captured
//	4000000000000002  visa   ErrDeclined                  –
//	4000000000000341  visa   hold placed                  ErrCaptureFailed, every time
//	4000000000009995  visa   waits for ctx (at most       –
//	                         SimTimeout), then
//	                         ErrProcessorUnavailable
//	any other valid   any    hold placed                  captured
//
// Void and Refund always succeed on a hold in the right state. Holds never
// lapse, unlike a real processor's.
//
// It keeps no card number: Tokenize stores a random reference (card_...) with
// the card's behaviour (and its brand and last four digits, which tell a
// retry from a key reused for another card), and Authorize copies that
// behaviour onto the hold. Its cards and holds live in two tables (migration
// set [SimMigrationSet]) of a database that must not be the store's (see
// [NewSimProcessor]), so a restart loses no hold, and several Payments
// replicas share one simulation.
//
// Like a real processor, every call is idempotent: Tokenize and Authorize by
// their key, Capture, Void and Refund by the authorization id, each moving
// the hold authorized → captured → refunded or authorized → voided at most
// once.
package adapters
