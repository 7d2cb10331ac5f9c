package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
)

// Names of the process-level counters.
const (
	// SagaOutcomesTotal counts the orders whose saga ended, by outcome
	// (completed, failed); see Registry.SagaOutcomes.
	SagaOutcomesTotal = "tokenrelay_saga_outcomes_total"
	// JWKSFetchesTotal counts the key-set fetches of trusted issuers, by
	// result (ok, failed); see Registry.JWKSFetches.
	JWKSFetchesTotal = "tokenrelay_jwks_fetches_total"
	// SignaturesTotal counts the Ed25519/ES256 signatures the process has
	// made (op="sign") and checked (op="verify") since it started, read
	// from keys.Counts at each scrape. A load test multiplies them by the
	// unit costs of signing and verifying to get the cryptographic floor of
	// the work served (bench/load), across every process of a scaled-out
	// deployment.
	SignaturesTotal = "tokenrelay_signatures_total"
)

// countPair registers two counters of one metric that differ only by the
// value of label, read from fn at each scrape.
func (m *Registry) countPair(name, help, label, a, b string, fn func() (int64, int64)) {
	for i, value := range []string{a, b} {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: name, Help: help, ConstLabels: prometheus.Labels{label: value},
		}, func() float64 {
			x, y := fn()
			if i == 0 {
				return float64(x)
			}
			return float64(y)
		}))
	}
}

// SagaOutcomes exports, as SagaOutcomesTotal{outcome}, the orders the
// process's saga runner ended completed and failed (for example
// orderprocessing.Service.SagaOutcomes). Call it once.
func (m *Registry) SagaOutcomes(fn func() (completed, failed int64)) {
	m.countPair(SagaOutcomesTotal, "Orders whose saga ended, by outcome.", "outcome", "completed", "failed", fn)
}

// JWKSFetches exports, as JWKSFetchesTotal{result}, the key-set fetches of
// the process's JWKS cache (jwks.Cache.Fetches). Call it once.
func (m *Registry) JWKSFetches(fn func() (ok, failed int64)) {
	m.countPair(JWKSFetchesTotal, "JWKS fetches of trusted issuers, by result.", "result", "ok", "failed", fn)
}

// registerSignatures exports keys.Counts as SignaturesTotal; New calls it.
func (m *Registry) registerSignatures() {
	m.countPair(SignaturesTotal, "Signatures made (sign) and checked (verify) by this process.", "op", "sign", "verify", keys.Counts)
}
