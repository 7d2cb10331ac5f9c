package process

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenrelay/tokenrelay/sdk/go/metrics"
	"github.com/tokenrelay/tokenrelay/sdk/go/server"
)

// Environment variables of the retention flags.
const (
	EnvRetention  = "TOKENRELAY_RETENTION"
	EnvPurgeEvery = "TOKENRELAY_PURGE_EVERY"
)

// Defaults and bounds of a Retention.
const (
	// DefaultRetention keeps a finished record 30 days.
	DefaultRetention = 30 * 24 * time.Hour
	// MinRetention is the shortest retention accepted (but 0, which keeps
	// everything): longer than any leeway a verifier allows past a token's
	// exp (30 s at most), so no token whose records are purged can still be
	// used. Production wants days: a purged record no longer answers
	// retries of its request.
	MinRetention = time.Minute
	// DefaultPurgeEvery runs the purge every 10 minutes.
	DefaultPurgeEvery = 10 * time.Minute
	// MinPurgeEvery bounds how often the purge may run.
	MinPurgeEvery = time.Second
)

// PurgedRowsTotal counts the rows a process's purge deleted (or, for
// "steps.sealed_token", emptied), by service and table.
const PurgedRowsTotal = "tokenrelay_purged_rows_total"

// Retention is how long a process keeps the records it no longer needs,
// and how often it purges them: its flags, and the background task that
// purges.
type Retention struct {
	// Keep is how long a finished record is kept after its last change
	// (-retention, TOKENRELAY_RETENTION, default DefaultRetention, 30 days;
	// 0 keeps every record; else at least MinRetention). What "finished"
	// means is each service's: a domain's confirmation once its token
	// expired and its exercise is final, an unplaced checkout once
	// expired, an Identity session once expired or revoked.
	Keep time.Duration
	// Every is how often the purge runs, in every replica (-purge-every,
	// TOKENRELAY_PURGE_EVERY, default DefaultPurgeEvery, 10m; at least
	// MinPurgeEvery). Replicas purging at once is safe: each purge deletes
	// bounded batches, each row once.
	Every time.Duration
}

// Flags registers -retention and -purge-every.
func (r *Retention) Flags(fs *flag.FlagSet) {
	fs.DurationVar(&r.Keep, "retention", EnvDuration(EnvRetention, DefaultRetention),
		"how long a finished record (expired token's confirmation, unplaced checkout, ended session) is kept after its last change; 0 keeps everything (env "+EnvRetention+")")
	fs.DurationVar(&r.Every, "purge-every", EnvDuration(EnvPurgeEvery, DefaultPurgeEvery),
		"how often this process purges what is past its retention (env "+EnvPurgeEvery+")")
}

// ErrRetention reports a Retention out of its bounds.
var ErrRetention = errors.New("process: invalid retention")

// Validate checks r: Keep 0 or at least MinRetention, Every at least
// MinPurgeEvery.
func (r Retention) Validate() error {
	return ValidateRetention("-retention", r.Keep, r.Every)
}

// ValidateRetention checks a retention flag (name, for the message), 0 or
// at least MinRetention, and -purge-every, at least MinPurgeEvery: the
// check of every retention flag a binary adds.
func ValidateRetention(name string, keep, every time.Duration) error {
	switch {
	case keep < 0 || (keep > 0 && keep < MinRetention):
		return fmt.Errorf("%w: %s %v: want 0 (keep everything) or at least %v", ErrRetention, name, keep, MinRetention)
	case every < MinPurgeEvery:
		return fmt.Errorf("%w: -purge-every %v: want at least %v", ErrRetention, every, MinPurgeEvery)
	}
	return nil
}

// PurgeFunc is a service's purge (its face's Purge method): it deletes
// what is past retention at now (0: keep what the retention governs) and
// returns the rows deleted by table, also when it fails part way.
type PurgeFunc func(ctx context.Context, now time.Time, retention time.Duration) (map[string]int64, error)

// Task returns the server.Task that runs purge for service: at start, then
// every r.Every, with the wall clock and r.Keep, until ctx ends. A failed
// purge is logged at WARN and tried again at the next tick (the database
// may be away); it never stops the process. Every row purged is counted in
// m as PurgedRowsTotal{service, table} (m may be shared by several
// services, as in the embedded process), and a purge that deleted anything
// is logged at INFO.
func (r Retention) Task(log *slog.Logger, m *metrics.Registry, service string, purge PurgeFunc) server.Task {
	counter := purgedRows(m)
	return func(ctx context.Context) error {
		t := time.NewTicker(r.Every)
		defer t.Stop()
		for {
			start := time.Now()
			rows, err := purge(ctx, start, r.Keep)
			var attrs []any
			for table, n := range rows {
				if n > 0 {
					counter.WithLabelValues(service, table).Add(float64(n))
					attrs = append(attrs, table, n)
				}
			}
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case err != nil:
				log.WarnContext(ctx, "purge failed; retried at the next tick", append(attrs, "err", err)...)
			case len(attrs) > 0:
				log.InfoContext(ctx, "purged", append(attrs, "took", time.Since(start).Round(time.Millisecond))...)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
			}
		}
	}
}

// purgedRows returns m's PurgedRowsTotal counter, registering it on first
// use: several services of one process share it.
func purgedRows(m *metrics.Registry) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: PurgedRowsTotal,
		Help: "Rows the retention purge deleted (steps.sealed_token: tokens emptied), by service and table.",
	}, []string{"service", "table"})
	if err := m.Prometheus().Register(c); err != nil {
		if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing
			}
		}
		panic(err) // another collector under the name: a programming error
	}
	return c
}
