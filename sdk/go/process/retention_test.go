package process_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/metrics"
	"github.com/tokenrelay/tokenrelay/sdk/go/process"
)

// TestRetentionFlags (issue 15, item 8): -retention and -purge-every
// default to 30 days and 10 minutes, take their variables, and are
// validated: 0 keeps everything, a retention shorter than a minute or a
// negative one is refused, and so is a purge more often than each second.
func TestRetentionFlags(t *testing.T) {
	for _, tc := range []struct {
		name, env, everyEnv string
		args                []string
		want                process.Retention
		wantErr             bool
	}{
		{"defaults", "", "", nil, process.Retention{Keep: 30 * 24 * time.Hour, Every: 10 * time.Minute}, false},
		{"variables", "72h", "1m", nil, process.Retention{Keep: 72 * time.Hour, Every: time.Minute}, false},
		{"flags win", "72h", "", []string{"-retention=48h", "-purge-every=30s"}, process.Retention{Keep: 48 * time.Hour, Every: 30 * time.Second}, false},
		{"zero keeps everything", "", "", []string{"-retention=0"}, process.Retention{Keep: 0, Every: 10 * time.Minute}, false},
		{"too short", "", "", []string{"-retention=30s"}, process.Retention{Keep: 30 * time.Second, Every: 10 * time.Minute}, true},
		{"negative", "", "", []string{"-retention=-1h"}, process.Retention{Keep: -time.Hour, Every: 10 * time.Minute}, true},
		{"purge too often", "", "", []string{"-purge-every=10ms"}, process.Retention{Keep: 30 * 24 * time.Hour, Every: 10 * time.Millisecond}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(process.EnvRetention, tc.env)
			t.Setenv(process.EnvPurgeEvery, tc.everyEnv)
			var r process.Retention
			fs := flag.NewFlagSet("couponsd", flag.ContinueOnError)
			r.Flags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if r != tc.want {
				t.Fatalf("Retention = %+v, want %+v", r, tc.want)
			}
			if err := r.Validate(); (err != nil) != tc.wantErr || (err != nil && !errors.Is(err, process.ErrRetention)) {
				t.Fatalf("Validate() = %v, want error %v", err, tc.wantErr)
			}
		})
	}
}

// TestRetentionTask: the task purges at start and every Every with the
// configured retention, counts the rows by service and table, survives a
// failed purge (logged, retried at the next tick), and stops cleanly with
// its context. Two services share one registry, as in the embedded
// process.
func TestRetentionTask(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := metrics.New()
		var logs bytes.Buffer
		var mu sync.Mutex
		log := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
		r := process.Retention{Keep: 48 * time.Hour, Every: time.Minute}
		var calls []time.Time
		fail := true
		purge := func(_ context.Context, now time.Time, retention time.Duration) (map[string]int64, error) {
			if retention != r.Keep {
				t.Errorf("purge got retention %v, want %v", retention, r.Keep)
			}
			calls = append(calls, now)
			if fail {
				fail = false
				return map[string]int64{"confirmations": 2}, errors.New("database away")
			}
			return map[string]int64{"confirmations": 3, "exercises": 1}, nil
		}
		other := func(context.Context, time.Time, time.Duration) (map[string]int64, error) {
			return map[string]int64{"confirmations": 5}, nil
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 2)
		go func() { done <- r.Task(log, m, "coupons", purge)(ctx) }()
		go func() { done <- r.Task(log, m, "points", other)(ctx) }()
		time.Sleep(2*time.Minute + time.Second)
		synctest.Wait()
		cancel()
		for range 2 {
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("task stopped with %v, want context.Canceled", err)
			}
		}
		if len(calls) != 3 || calls[1].Sub(calls[0]) != time.Minute {
			t.Fatalf("purge ran at %v; want at start and every minute, 3 times", calls)
		}
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", metrics.Path, nil))
		body, _ := io.ReadAll(rec.Body)
		for _, want := range []string{
			process.PurgedRowsTotal + `{service="coupons",table="confirmations"} 8`,
			process.PurgedRowsTotal + `{service="coupons",table="exercises"} 2`,
			process.PurgedRowsTotal + `{service="points",table="confirmations"} 15`,
		} {
			if !strings.Contains(string(body), want) {
				t.Errorf("metrics lack %s:\n%s", want, body)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if !strings.Contains(logs.String(), "purge failed") || !strings.Contains(logs.String(), "database away") {
			t.Errorf("the failed purge was not logged:\n%s", logs.String())
		}
	})
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
