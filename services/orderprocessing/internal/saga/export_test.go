package saga

// Jitter exports jitter to the tests.
var Jitter = jitter
