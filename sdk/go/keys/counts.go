package keys

import "sync/atomic"

// Process-wide operation counters. They are metrics, not state: like expvar
// or a Prometheus default registry they count every signature this process
// makes and checks, whichever ring or verifier asked, so that a load test
// can compare the cryptographic floor of a checkout (signatures times their
// unit cost) with the CPU it really took.
var signs, verifies atomic.Int64

// Counts returns how many signatures this process has made and checked
// (successfully or not) since it started.
func Counts() (signed, verified int64) { return signs.Load(), verifies.Load() }
