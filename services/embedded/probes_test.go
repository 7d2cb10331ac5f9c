package embedded_test

import (
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/services/embedded"
)

func probe(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestReadyOnlyAfterSeeding: tokenrelayd serves before the demo data is
// seeded (the seeding goes through its own API), but is not ready until the
// seeding completed: a load run that waits for readiness finds the demo
// card. Liveness answers all along.
func TestReadyOnlyAfterSeeding(t *testing.T) {
	t.Parallel()
	urls, gate := make(chan string, 1), make(chan struct{})
	cfg := embedded.WithSeedGate(embedded.Config{
		Addr: "127.0.0.1:0", DataDir: t.TempDir(), Seed: true,
		Logger: slog.New(authn.NewLogHandler(slog.DiscardHandler)),
	}, func(url string) {
		urls <- url
		<-gate
	})
	type started struct {
		sys *embedded.System
		err error
	}
	done := make(chan started, 1)
	go func() {
		sys, err := embedded.Start(t.Context(), cfg)
		done <- started{sys, err}
	}()
	var url string
	select {
	case url = <-urls:
	case s := <-done:
		t.Fatalf("Start returned before seeding: %v", s.err)
	}
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/livez", 200, "ok\n"},
		{"/readyz", 503, "unhealthy: seed\n"},
		{"/healthz", 503, "unhealthy: seed\n"},
	} {
		if code, body := probe(t, url+tc.path); code != tc.code || body != tc.body {
			t.Errorf("while seeding: GET %s = %d %q, want %d %q", tc.path, code, body, tc.code, tc.body)
		}
	}
	close(gate)
	s := <-done
	if s.err != nil {
		t.Fatal(s.err)
	}
	defer stop(t, s.sys)
	for _, path := range []string{"/livez", "/readyz", "/healthz"} {
		if code, body := probe(t, url+path); code != 200 || body != "ok\n" {
			t.Errorf("seeded: GET %s = %d %q, want 200", path, code, body)
		}
	}
	// Ready means seeded: the demo card is there.
	login(t, url).card(t, "4242")
}
