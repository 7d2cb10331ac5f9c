package server_test

import (
	"io"
	"net/http/httptest"
	"regexp"
	"strconv"
	"testing"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/server"
)

func TestSignaturesMetric(t *testing.T) {
	t.Parallel()
	m := server.NewMetrics()
	scrape := func() (sign, verify int64) {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", server.MetricsPath, nil))
		body, _ := io.ReadAll(rec.Body)
		for op, dst := range map[string]*int64{"sign": &sign, "verify": &verify} {
			match := regexp.MustCompile(`(?m)^` + server.SignaturesMetric + `\{op="` + op + `"\} (\d+)$`).FindSubmatch(body)
			if match == nil {
				t.Fatalf("metrics lack %s{op=%q}:\n%s", server.SignaturesMetric, op, body)
			}
			*dst, _ = strconv.ParseInt(string(match[1]), 10, 64)
		}
		return sign, verify
	}
	// Other tests of the package sign in parallel: the scrape lies between
	// two reads of the process-wide counters.
	s0, v0 := keys.Counts()
	sign, verify := scrape()
	s1, v1 := keys.Counts()
	if sign < s0 || sign > s1 || verify < v0 || verify > v1 {
		t.Errorf("scraped sign %d verify %d; keys.Counts was %d/%d before and %d/%d after", sign, verify, s0, v0, s1, v1)
	}
}
