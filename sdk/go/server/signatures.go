package server

import "github.com/tokenrelay/tokenrelay/sdk/go/keys"

// SignaturesMetric counts the Ed25519/ES256 signatures the process has made
// (op="sign") and checked (op="verify") since it started, read from
// keys.Counts at each scrape. A load test multiplies them by the unit costs
// of signing and verifying to get the cryptographic floor of the work
// served (bench/load), across every process of a scaled-out deployment.
const SignaturesMetric = "tokenrelay_signatures_total"

// registerSignatures exports keys.Counts as SignaturesMetric; NewMetrics
// calls it.
func (m *Metrics) registerSignatures() {
	m.countPair(SignaturesMetric, "Signatures made (sign) and checked (verify) by this process.", "op", "sign", "verify", keys.Counts)
}
