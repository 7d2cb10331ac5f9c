package embedded_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	orderprocessingv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/services/embedded"
)

// lockedBuffer is a log sink safe for every service's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestOrderFollowsItsTxn (issue 18): grep txn=<id> over every service's
// logs shows the whole order, its saga included. The txn of PlaceOrder's
// request is on the gateway's line, OrderProcessing's "order placed", each
// domain's "exercise" line (the saga's calls carry a transaction token of
// that txn from the Txn-Token Service) and the saga's "order completed".
func TestOrderFollowsItsTxn(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	sys, err := embedded.Start(t.Context(), embedded.Config{
		Addr: "127.0.0.1:0", DataDir: t.TempDir(), Seed: true,
		Logger: slog.New(authn.NewLogHandler(slog.NewJSONHandler(logs, nil))),
	})
	if err != nil {
		t.Fatal(err)
	}
	s := login(t, sys.URL())
	done := s.checkout(t, "WELCOME5", 300, s.card(t, embedded.DemoCard[12:]))
	if done.GetStatus() != orderprocessingv1.OrderStatus_ORDER_STATUS_COMPLETED {
		t.Fatalf("order ended %v", done.GetStatus())
	}
	stop(t, sys) // every saga has returned, its lines written

	var records []map[string]any
	for line := range strings.SplitSeq(logs.String(), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		records = append(records, r)
	}
	txn := ""
	for _, r := range records {
		if r["msg"] == "order placed" && r["order"] == done.GetId() {
			txn, _ = r["txn"].(string)
		}
	}
	if txn == "" {
		t.Fatal(`no "order placed" line with a txn`)
	}
	seen := map[string]bool{}
	for _, r := range records {
		if r["txn"] != txn {
			continue
		}
		svc, _ := r["service"].(string)
		seen[svc+" "+r["msg"].(string)] = true
	}
	for _, want := range []string{
		"gateway rpc", "order-processing order placed", "order-processing order completed",
		"coupons exercise", "points exercise", "payments exercise",
		"gateway transaction token issued", // the Txn-Token Service, for each saga call
	} {
		if !seen[want] {
			t.Errorf("no %q line with txn %s; lines with it: %v", want, txn, seen)
		}
	}
}
