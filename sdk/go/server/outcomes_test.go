package server_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokenrelay/tokenrelay/sdk/go/server"
)

func TestProcessCounters(t *testing.T) {
	t.Parallel()
	m := server.NewMetrics()
	completed, failed := int64(3), int64(1)
	m.SagaOutcomes(func() (int64, int64) { return completed, failed })
	m.JWKSFetches(func() (int64, int64) { return 7, 2 })
	completed++ // read at scrape time, not at registration
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", server.MetricsPath, nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`tokenrelay_saga_outcomes_total{outcome="completed"} 4`,
		`tokenrelay_saga_outcomes_total{outcome="failed"} 1`,
		`tokenrelay_jwks_fetches_total{result="ok"} 7`,
		`tokenrelay_jwks_fetches_total{result="failed"} 2`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s:\n%s", want, body)
		}
	}
}
