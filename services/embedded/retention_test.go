package embedded_test

import (
	"bytes"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/process"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/services/embedded"
)

// TestRetentionRefused (issue 15, item 8): a retention shorter than a
// minute is refused before anything starts.
func TestRetentionRefused(t *testing.T) {
	t.Parallel()
	for _, cfg := range []embedded.Config{
		{Retention: 30 * time.Second},
		{PurgeEvery: time.Millisecond},
		{SealedTokenRetention: 10 * time.Second},
	} {
		cfg.Addr, cfg.DataDir = "127.0.0.1:0", t.TempDir()
		cfg.Logger = slog.New(slog.DiscardHandler)
		if sys, err := embedded.Start(t.Context(), cfg); err == nil {
			_ = sys.Close()
			t.Errorf("Start(%+v) succeeded, want the retention refused", cfg)
		}
	}
	_, err := embedded.Start(t.Context(), embedded.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(),
		Logger: slog.New(slog.DiscardHandler), Retention: time.Second})
	if !errors.Is(err, process.ErrRetention) {
		t.Errorf("Start with a 1 s retention: %v, want process.ErrRetention", err)
	}
}

// syncBuffer is a log destination safe for the system's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPurgeTasksRun (issue 15, item 8): the embedded process runs every
// service's purge from the start: an expired consumed jti and an
// abandoned checkout left in OrderProcessing's database from an earlier
// run are gone once the system is up, and the purge is logged.
func TestPurgeTasksRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	quiet := embedded.Config{Addr: "127.0.0.1:0", DataDir: dir, Logger: slog.New(slog.DiscardHandler)}
	sys, err := embedded.Start(t.Context(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	stop(t, sys)
	db, err := sqldb.Open(t.Context(), "sqlite://"+filepath.Join(dir, "order-processing.db"))
	if err != nil {
		t.Fatal(err)
	}
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, q := range []string{
		`INSERT INTO consumed_jtis (iss, jti, expires_at) VALUES ('coupons', 'old-jti', 1577836800)`,
		`INSERT INTO checkouts (id, user_id, lines, total_minor, currency, status, created_at, expires_at)
			VALUES ('op_old', 'usr_x', '[]', 1, 'EUR', 3, $1, $1)`,
	} {
		args := []any{}
		if strings.Contains(q, "$1") {
			args = append(args, old)
		}
		if _, err := db.SQL().ExecContext(t.Context(), q, args...); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	var logs syncBuffer
	cfg := quiet
	cfg.Logger = slog.New(authn.NewLogHandler(slog.NewJSONHandler(&logs, nil)))
	cfg.Retention, cfg.PurgeEvery = time.Hour, time.Second
	sys, err = embedded.Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer stop(t, sys)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), `"msg":"purged"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no purge logged within 30 s:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	line := ""
	for l := range strings.SplitSeq(logs.String(), "\n") {
		if strings.Contains(l, `"msg":"purged"`) {
			line = l
		}
	}
	for _, want := range []string{`"service":"order-processing"`, `"consumed_jtis":1`, `"checkouts":1`} {
		if !strings.Contains(line, want) {
			t.Errorf("purge log %s lacks %s", line, want)
		}
	}
}
