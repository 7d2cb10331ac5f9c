package embedded_test

import (
	"log/slog"
	"net/http"
	"testing"

	"connectrpc.com/connect"

	pointsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1/pointsv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/client"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
	"github.com/tokenrelay/tokenrelay/sdk/go/txntoken"
	"github.com/tokenrelay/tokenrelay/services/embedded"
	"github.com/tokenrelay/tokenrelay/services/gateway"
	"github.com/tokenrelay/tokenrelay/services/gateway/tts"
	"github.com/tokenrelay/tokenrelay/services/identity"
)

// TestBatchJobTxnToken (issue 18): a batch job, with no inbound request,
// allowed by embedded.Config.Workloads, gets a transaction token from the
// gateway's Txn-Token Service for a user and reads that user's points
// balance from the Points service directly, which verifies it as any
// transaction token. A workload the service does not know gets none.
func TestBatchJobTxnToken(t *testing.T) {
	t.Parallel()
	ring, err := keys.NewRing()
	if err != nil {
		t.Fatal(err)
	}
	sys, err := embedded.Start(t.Context(), embedded.Config{
		Addr: "127.0.0.1:0", DataDir: t.TempDir(), Seed: true,
		Logger:    slog.New(authn.NewLogHandler(slog.DiscardHandler)),
		Workloads: []tts.Workload{{Name: "nightly-report", Keys: ring, Subjects: []string{tts.AnySubject}, Scopes: []string{"shop"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop(t, sys)
	shopper := client.New(sys.URL())
	s, err := shopper.Login(t.Context(), "shopper", identity.DemoShopperPassword)
	if err != nil {
		t.Fatal(err)
	}

	is, err := token.NewIssuer("nightly-report", ring)
	if err != nil {
		t.Fatal(err)
	}
	job := txntoken.NewClient(http.DefaultClient, sys.URL(), gateway.DefaultName, gateway.DefaultTrustDomain, is)
	raw, err := job.Exchange(t.Context(), txntoken.Request{Subject: s.User.ID, Scopes: []string{"shop"}, Context: map[string]string{"job": "nightly-report"}})
	if err != nil {
		t.Fatal(err)
	}
	points := pointsv1connect.NewPointsServiceClient(http.DefaultClient, embedded.InternalURL(sys)+"/points")
	req := connect.NewRequest(&pointsv1.GetBalanceRequest{})
	req.Header().Set(authn.TxnHeader, raw)
	res, err := points.GetBalance(t.Context(), req)
	if err != nil || res.Msg.GetBalance() != 1000 {
		t.Fatalf("the shopper's balance as the batch job: %v, %v", res, err)
	}

	other, err := keys.NewRing()
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := token.NewIssuer("stranger", other)
	if err != nil {
		t.Fatal(err)
	}
	_, err = txntoken.NewClient(http.DefaultClient, sys.URL(), gateway.DefaultName, gateway.DefaultTrustDomain, stranger).
		Exchange(t.Context(), txntoken.Request{Subject: s.User.ID, Scopes: []string{"shop"}})
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("an unknown workload: %v", err)
	}
}
