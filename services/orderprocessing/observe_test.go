package orderprocessing_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/sdk/go/audit"
	"github.com/tokenrelay/tokenrelay/sdk/go/metrics"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing"
)

// exposition returns what m serves at metrics.Path.
func exposition(t *testing.T, m *metrics.Registry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", metrics.Path, nil))
	body, _ := io.ReadAll(rec.Body)
	return string(body)
}

// TestPlaceOrderRefusalsCounted (issue 20): every confirmation token
// PlaceOrder refuses is counted in tokenrelay_token_refusals_total by its
// reason: four invalid tokens and a replay. Once as the embedded process
// wires OrderProcessing (Export, but no metrics interceptor: its gateway
// observes the RPCs by code alone), once as orderprocessingd does (Export
// and the interceptor), where each is counted once, not twice.
func TestPlaceOrderRefusalsCounted(t *testing.T) {
	t.Parallel()
	for _, interceptor := range []bool{false, true} {
		name := "embedded"
		if interceptor {
			name = "orderprocessingd"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			m := metrics.New()
			var opts []connect.HandlerOption
			if interceptor {
				opts = append(opts, m.HandlerOption())
			}
			in := w.start(sqldbtest.SQLite(t), opts...)
			in.svc.Export(m)
			co, next := w.checkout(in, "usr_alice"), w.checkout(in, "usr_alice")
			good := w.tokens3("usr_alice", co.GetId())
			c, p, pay := good[0], good[1], good[2]
			past, _ := token.NewIssuer("coupons", w.rings["coupons"], token.WithClock(func() time.Time { return time.Now().Add(-time.Hour) }))
			expired, _, err := token.Issue(t.Context(), past, token.Confirmation, token.ConfirmationClaims{
				Registered: token.Registered{Subject: "usr_alice", Audience: []string{orderprocessing.Name}}, OrderProcessingID: co.GetId(),
				Capabilities: []string{"coupons:redeem"}, Settlement: token.Settlement{AmountMinor: 250, Currency: "EUR"},
			})
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.Split(c, ".")
			tampered := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
			otherAudience := w.confirmation("coupons", "usr_alice", co.GetId(), 250, func(c *token.ConfirmationClaims) { c.Audience = []string{"payments"} })
			for _, bad := range []string{tampered, expired, otherAudience, "garbage"} {
				if _, err := w.place(in, "usr_alice", co.GetId(), []string{bad, p, pay}, "k"); err == nil {
					t.Fatal("an invalid token was accepted")
				}
			}
			if _, err := w.place(in, "usr_alice", co.GetId(), good, "k"); err != nil {
				t.Fatal(err)
			}
			// A replay: the next checkout's tokens carry the jtis of the
			// tokens just used.
			replayed := make([]string, 3)
			for i, issuer := range []string{"coupons", "points", "payments"} {
				amount := map[string]int64{"coupons": 250, "points": 300, "payments": 700}[issuer]
				replayed[i] = w.confirmation(issuer, "usr_alice", next.GetId(), amount, func(cl *token.ConfirmationClaims) { cl.ID = jtiOf(good[i]) })
			}
			if _, err := w.place(in, "usr_alice", next.GetId(), replayed, "k2"); connect.CodeOf(err) != connect.CodeAlreadyExists {
				t.Fatalf("replay: %v, want already_exists", err)
			}
			body := exposition(t, m)
			for _, reason := range []string{"signature", "expired", "audience", "malformed", "replayed"} {
				if want := metrics.RefusalsTotal + `{reason="` + reason + `"} 1`; !strings.Contains(body, want) {
					t.Errorf("metrics lack %s", want)
				}
			}
			if t.Failed() {
				t.Log(body)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for the handlers' and the saga's
// goroutines.
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

func (s *syncBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for line := range strings.SplitSeq(s.b.String(), "\n") {
		var rec map[string]any
		if line == "" {
			continue
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// TestOrderLogged (issue 20): an order placed is logged at INFO with its
// id, checkout, user and the request's txn; its saga's end with the same id,
// the outcome and its duration; no line carries a token. The saga and the
// step metrics are exported.
func TestOrderLogged(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	logs := &syncBuffer{}
	w.logs = slog.NewJSONHandler(logs, nil)
	// Only the saga's own push may end the watch (no poll): the saga logs
	// an order's end before it publishes it.
	w.watchPoll = time.Hour
	in := w.start(sqldbtest.SQLite(t))
	m := metrics.New()
	in.svc.Export(m)
	co := w.checkout(in, "usr_alice")
	toks := w.tokens3("usr_alice", co.GetId())
	o, err := w.place(in, "usr_alice", co.GetId(), toks, "key-1")
	if err != nil {
		t.Fatal(err)
	}
	if end := final(w.await(in, "usr_alice", o.GetId())); end.GetStatus() != completed {
		t.Fatalf("order ended %v", end.GetStatus())
	}
	// A retry with the same key places nothing new, and logs nothing.
	if _, err := w.place(in, "usr_alice", co.GetId(), toks, "key-1"); err != nil {
		t.Fatal(err)
	}
	placed := logs.lines(t, "order placed")
	if len(placed) != 1 {
		t.Fatalf("%d \"order placed\" lines, want 1", len(placed))
	}
	for k, want := range map[string]any{"level": "INFO", "order": o.GetId(), "checkout": co.GetId(), "user": "usr_alice", "total": "1250 EUR"} {
		if placed[0][k] != want {
			t.Errorf("order placed: %s = %v, want %v", k, placed[0][k], want)
		}
	}
	if txn, _ := placed[0]["txn"].(string); txn == "" {
		t.Errorf("order placed has no txn: %v", placed[0])
	}
	// The saga's line was written before the state WatchOrder saw.
	done := logs.lines(t, "order completed")
	if len(done) != 1 || done[0]["order"] != o.GetId() || done[0]["outcome"] != "completed" || done[0]["duration_ms"] == nil {
		t.Fatalf("order completed lines: %v", done)
	}
	logs.mu.Lock()
	all := logs.b.String()
	logs.mu.Unlock()
	for _, tok := range toks {
		if strings.Contains(all, tok[strings.LastIndex(tok, ".")+1:]) {
			t.Fatal("a log line carries a confirmation token")
		}
	}
	body := exposition(t, m)
	for _, want := range []string{
		orderprocessing.SagaCallsTotal + `{call="exercise",capability="payments:capture",outcome="applied"} 1`,
		orderprocessing.SagaCallsTotal + `{call="compensate",capability="coupons:redeem",outcome="refused_for_good"} 0`,
		orderprocessing.SagaInFlight + " ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestRefusalsCappedPerUser: a user presenting forged tokens in a loop gets
// each refused, but only its budget of refusals (audit.DefaultRefusalBurst)
// is written to the audit trail: the moment it is spent is logged once and
// the rest are counted in AuditRefusalsUnrecordedTotal. Another user's
// refusal is still recorded.
func TestRefusalsCappedPerUser(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	logs := &syncBuffer{}
	w.logs = slog.NewJSONHandler(logs, nil)
	db := sqldbtest.SQLite(t)
	in := w.start(db)
	m := metrics.New()
	in.svc.Export(m)
	co := w.checkout(in, "usr_mallory")
	tok := w.confirmation("payments", "usr_mallory", co.GetId(), 1250)
	forged := tok[:strings.LastIndexByte(tok, '.')+1] + "AAAA"
	const tries = audit.DefaultRefusalBurst + 5
	for i := range tries {
		if _, err := w.place(in, "usr_mallory", co.GetId(), []string{forged}, fmt.Sprint("k", i)); err == nil {
			t.Fatal("a forged token accepted")
		}
	}
	other := w.checkout(in, "usr_bob")
	if _, err := w.place(in, "usr_bob", other.GetId(), []string{forged}, "k"); err == nil {
		t.Fatal("a forged token accepted")
	}
	count := func(subject string) int {
		var n int
		if err := db.SQL().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM audit_events WHERE action = 'refused' AND subject = $1`,
			subject).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if got := count("usr_mallory"); got != audit.DefaultRefusalBurst {
		t.Errorf("%d refusals of the looping user recorded, want %d", got, audit.DefaultRefusalBurst)
	}
	if got := count("usr_bob"); got != 1 {
		t.Errorf("%d refusals of another user recorded, want 1", got)
	}
	if n := len(logs.lines(t, "audit: the subject spent its budget of recorded refusals; further refusals are counted, not recorded")); n != 1 {
		t.Errorf("%d lines of the budget spent, want 1", n)
	}
	if want := fmt.Sprintf("%s %d", orderprocessing.AuditRefusalsUnrecordedTotal, tries-audit.DefaultRefusalBurst); !strings.Contains(exposition(t, m), want) {
		t.Errorf("metrics lack %q", want)
	}
}
