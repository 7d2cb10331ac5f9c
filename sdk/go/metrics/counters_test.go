package metrics_test

import (
	"io"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/metrics"
)

// scrape returns what the registry serves at metrics.Path.
func scrape(t *testing.T, m *metrics.Registry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Mux().ServeHTTP(rec, httptest.NewRequest("GET", metrics.Path, nil))
	body, _ := io.ReadAll(rec.Body)
	return string(body)
}

func TestProcessCounters(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	completed, failed := int64(3), int64(1)
	m.SagaOutcomes(func() (int64, int64) { return completed, failed })
	m.JWKSFetches(func() (int64, int64) { return 7, 2 })
	completed++ // read at scrape time, not at registration
	body := scrape(t, m)
	for _, want := range []string{
		`tokenrelay_saga_outcomes_total{outcome="completed"} 4`,
		`tokenrelay_saga_outcomes_total{outcome="failed"} 1`,
		`tokenrelay_jwks_fetches_total{result="ok"} 7`,
		`tokenrelay_jwks_fetches_total{result="failed"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s:\n%s", want, body)
		}
	}
}

func TestSignaturesMetric(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	read := func() (sign, verify int64) {
		body := scrape(t, m)
		for op, dst := range map[string]*int64{"sign": &sign, "verify": &verify} {
			match := regexp.MustCompile(`(?m)^` + metrics.SignaturesTotal + `\{op="` + op + `"\} (\d+)$`).FindStringSubmatch(body)
			if match == nil {
				t.Fatalf("metrics lack %s{op=%q}:\n%s", metrics.SignaturesTotal, op, body)
			}
			*dst, _ = strconv.ParseInt(match[1], 10, 64)
		}
		return sign, verify
	}
	// Other tests of the package sign in parallel: the scrape lies between
	// two reads of the process-wide counters.
	s0, v0 := keys.Counts()
	sign, verify := read()
	s1, v1 := keys.Counts()
	if sign < s0 || sign > s1 || verify < v0 || verify > v1 {
		t.Errorf("scraped sign %d verify %d; keys.Counts was %d/%d before and %d/%d after", sign, verify, s0, v0, s1, v1)
	}
}
