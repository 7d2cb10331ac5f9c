package adapters

import "time"

// SetSimTimeout sets how long p keeps Authorize of the timeout card waiting
// when the caller's context has no earlier deadline (SimTimeout by
// default). A test sets it far beyond its own deadline, so that only that
// deadline can end the wait, or short, to see the simulation's own bound
// end it; either way no clock is raced.
func SetSimTimeout(p *SimProcessor, d time.Duration) { p.timeout = d }
