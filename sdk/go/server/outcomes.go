package server

import "github.com/prometheus/client_golang/prometheus"

// Names of the metrics the process-level counters are exported under.
const (
	SagaOutcomesMetric = "tokenrelay_saga_outcomes_total"
	JWKSFetchesMetric  = "tokenrelay_jwks_fetches_total"
)

// countPair registers two counters of one metric that differ only by the
// value of label, read from fn at each scrape.
func (m *Metrics) countPair(name, help, label, a, b string, fn func() (int64, int64)) {
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

// SagaOutcomes exports, as tokenrelay_saga_outcomes_total{outcome}, the
// orders the process's saga runner ended completed and failed (for example
// orderprocessing.Service.SagaOutcomes). Call it once.
func (m *Metrics) SagaOutcomes(fn func() (completed, failed int64)) {
	m.countPair(SagaOutcomesMetric, "Orders whose saga ended, by outcome.", "outcome", "completed", "failed", fn)
}

// JWKSFetches exports, as tokenrelay_jwks_fetches_total{result}, the key-set
// fetches of the process's JWKS cache (jwks.Cache.Fetches). Call it once.
func (m *Metrics) JWKSFetches(fn func() (ok, failed int64)) {
	m.countPair(JWKSFetchesMetric, "JWKS fetches of trusted issuers, by result.", "result", "ok", "failed", fn)
}
