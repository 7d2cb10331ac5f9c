package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	capabilityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1"
	orderprocessingv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1/orderprocessingv1connect"
)

// auditServer answers GetTokenAudit for the bearer "admin-token" alone,
// with two events of the order asked for; unreachable names issuers it
// says it could not ask.
type auditServer struct {
	orderprocessingv1connect.UnimplementedOrderProcessingServiceHandler
	unreachable []string
	asked       *orderprocessingv1.GetTokenAuditRequest
}

func (s *auditServer) GetTokenAudit(_ context.Context, req *connect.Request[orderprocessingv1.GetTokenAuditRequest]) (*connect.Response[orderprocessingv1.GetTokenAuditResponse], error) {
	if req.Header().Get("Authorization") != "Bearer admin-token" {
		return nil, connect.NewError(connect.CodePermissionDenied, errors.New("the token audit trail is for admins"))
	}
	s.asked = req.Msg
	at := time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC)
	return connect.NewResponse(&orderprocessingv1.GetTokenAuditResponse{Events: []*capabilityv1.AuditEvent{
		{Service: "coupons", Seq: 7, At: timestamppb.New(at), Action: "issued", Kind: "confirmation", Issuer: "coupons", Jti: "jti-1",
			Subject: "usr_1", Txn: "txn-1", ExpiresAt: timestamppb.New(at.Add(time.Minute)), Hash: "ab"},
		{Service: "order-processing", Seq: 3, At: timestamppb.New(at.Add(time.Second)), Action: "refused", Issuer: "coupons",
			Jti: "jti-1", OrderId: req.Msg.GetOrderId(), Subject: "usr_2", Check: "replayed", Hash: "cd"},
	}, UnreachableIssuers: s.unreachable}), nil
}

func runAudit(t *testing.T, srv *auditServer, token string, args ...string) (int, string, string) {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(orderprocessingv1connect.NewOrderProcessingServiceHandler(srv))
	hs := httptest.NewServer(mux)
	defer hs.Close()
	var stdout, stderr bytes.Buffer
	code := runEnv(&env{ctx: t.Context(), stdout: &stdout, stderr: &stderr, now: time.Now,
		getenv: func(k string) string {
			if k == EnvAccessToken {
				return token
			}
			return ""
		}}, append(args, "--url", hs.URL))
	return code, stdout.String(), stderr.String()
}

func TestAuditCommands(t *testing.T) {
	srv := &auditServer{}
	code, out, errOut := runAudit(t, srv, "admin-token", "audit", "order", "ord_1")
	if code != exitOK || errOut != "" {
		t.Fatalf("audit order: %d, %q", code, errOut)
	}
	if srv.asked.GetOrderId() != "ord_1" {
		t.Errorf("asked %v", srv.asked)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "AT ") ||
		!strings.Contains(lines[1], "2026-12-03T15:00:00.000Z  coupons") || !strings.Contains(lines[1], "issued") ||
		!strings.Contains(lines[0], "KIND") || !strings.Contains(lines[1], "confirmation") ||
		!strings.Contains(lines[2], "refused") || !strings.Contains(lines[2], "replayed") || !strings.Contains(lines[2], "ord_1") {
		t.Errorf("table:\n%s", out)
	}
	if strings.Contains(out, "admin-token") {
		t.Error("the access token was printed")
	}

	code, out, _ = runAudit(t, srv, "admin-token", "audit", "jti", "jti-1", "--json")
	var doc struct {
		Events []struct {
			Service, Action, JTI string
			ExpiresAt            *time.Time `json:"expires_at"`
		}
		UnreachableIssuers []string `json:"unreachable_issuers"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &doc) != nil || len(doc.Events) != 2 ||
		doc.Events[0].Action != "issued" || doc.Events[0].ExpiresAt == nil || doc.Events[1].ExpiresAt != nil ||
		doc.UnreachableIssuers == nil {
		t.Errorf("audit jti --json: %d\n%s", code, out)
	}
	if srv.asked.GetJti() != "jti-1" {
		t.Errorf("asked %v", srv.asked)
	}
}

func TestAuditFailures(t *testing.T) {
	for _, tc := range []struct {
		name, token string
		unreachable []string
		args        []string
		code        int
		stderr      string
	}{
		{"no token", "", nil, []string{"audit", "order", "ord_1"}, exitFail, "set TOKENRELAY_ACCESS_TOKEN"},
		{"not an admin", "shopper-token", nil, []string{"audit", "order", "ord_1"}, exitFail, "permission_denied"},
		{"an issuer down", "admin-token", []string{"payments"}, []string{"audit", "order", "ord_1"}, exitFail, "could not ask payments"},
		{"no argument", "admin-token", nil, []string{"audit", "jti"}, exitUsage, "one JTI is required"},
		{"two arguments", "admin-token", nil, []string{"audit", "order", "a", "b"}, exitUsage, "one ORDER_ID is required"},
		{"too long", "admin-token", nil, []string{"audit", "jti", strings.Repeat("x", 65)}, exitUsage, "at most 64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runAudit(t, &auditServer{unreachable: tc.unreachable}, tc.token, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.stderr) {
				t.Errorf("exit %d, stderr %q; want %d with %q", code, errOut, tc.code, tc.stderr)
			}
		})
	}
	var stdout, stderr bytes.Buffer
	if code := runEnv(&env{ctx: t.Context(), stdout: &stdout, stderr: &stderr, now: time.Now, getenv: func(string) string { return "t" }},
		[]string{"audit", "order", "ord_1", "--url", "ftp://x"}); code != exitUsage || !strings.Contains(stderr.String(), "--url") {
		t.Errorf("a bad --url: %d %q", code, stderr.String())
	}
}
