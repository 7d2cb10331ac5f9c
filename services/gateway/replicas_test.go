package gateway_test

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	orderprocessingv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1/orderprocessingv1connect"
	pointsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1/pointsv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/services/gateway"
)

// replica is one replica of a test PointsService: its balance is its
// number, so that the caller sees which replica answered; 99 recent
// entries asked for is refused.
type replica struct {
	pointsv1connect.UnimplementedPointsServiceHandler
	n int64
}

func (r replica) GetBalance(_ context.Context, req *connect.Request[pointsv1.GetBalanceRequest]) (*connect.Response[pointsv1.GetBalanceResponse], error) {
	if req.Msg.GetRecentEntries() == 99 {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("refused"))
	}
	return connect.NewResponse(&pointsv1.GetBalanceResponse{Balance: r.n}), nil
}

// deadURL returns the URL of a loopback port nothing listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	_ = ln.Close()
	return url
}

type observation struct {
	procedure string
	code      connect.Code // 0: ok
	err       error
}

type observer struct {
	mu  sync.Mutex
	obs []observation
}

func (o *observer) observe(procedure string, err error, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var code connect.Code
	if err != nil {
		code = connect.CodeOf(err)
	}
	o.obs = append(o.obs, observation{procedure, code, err})
}

func (o *observer) last() observation {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.obs[len(o.obs)-1]
}

// TestReplicas: a route with several upstream URLs spreads requests over
// them in turn, skips an upstream that refuses connections (nothing was
// sent, so the request moves on), and keeps serving with one replica left.
func TestReplicas(t *testing.T) {
	t.Parallel()
	gwRing, idRing := ring(t), ring(t)
	one, two := startUpstream(t, replica{n: 1}, gwRing), startUpstream(t, replica{n: 2}, gwRing)
	srv := serve(t, config(gwRing, idRing, gateway.Route{URL: one.URL, URLs: []string{deadURL(t), two.URL}}), false)
	tok := access(t, issuer(t, idIssuer, idRing), "usr_bob", "shop", gateway.DefaultAudience)

	balances := func(t *testing.T, n int, opts ...connect.ClientOption) map[int64]int {
		t.Helper()
		c := pointsClient(srv, opts...)
		seen := map[int64]int{}
		for range n {
			res, err := c.GetBalance(t.Context(), withBearer(&pointsv1.GetBalanceRequest{}, tok))
			if err != nil {
				t.Fatalf("GetBalance: %v", err)
			}
			seen[res.Msg.GetBalance()]++
		}
		return seen
	}
	for proto, opts := range protocols {
		// Three upstreams in turn, the dead one's share failing over to
		// the next: of 6 requests, replica 1 answers 2, replica 2 four.
		if got := balances(t, 6, opts...); got[1] != 2 || got[2] != 4 {
			t.Fatalf("%s: requests per replica %v, want 1:2 2:4", proto, got)
		}
	}
	two.Close()
	if got := balances(t, 4); got[1] != 4 {
		t.Fatalf("after replica 2 stopped: %v, want every request on replica 1", got)
	}
	one.Close()
	wantUnavailable(t, srv, tok, "every replica down")
}

// TestObserve: Config.Observe sees every RPC with its code: the gateway's
// own refusals with the token sentinel, and the upstream's codes over
// Connect and gRPC.
func TestObserve(t *testing.T) {
	t.Parallel()
	gwRing, idRing := ring(t), ring(t)
	up := startUpstream(t, replica{n: 1}, gwRing)
	var o observer
	cfg := config(gwRing, idRing, gateway.Route{URL: up.URL})
	cfg.Observe = o.observe
	srv := serve(t, cfg, true)
	tok := access(t, issuer(t, idIssuer, idRing), "usr_bob", "shop", gateway.DefaultAudience)
	other := access(t, issuer(t, idIssuer, ring(t)), "usr_bob", "shop", gateway.DefaultAudience)
	for proto, opts := range protocols {
		c := pointsClient(srv, opts...)
		for _, tc := range []struct {
			name    string
			tok     string
			entries int32
			want    connect.Code
			wantErr error
		}{
			{"ok", tok, 0, 0, nil},
			{"upstream refusal", tok, 99, connect.CodeFailedPrecondition, nil},
			{"no token", "", 0, connect.CodeUnauthenticated, authn.ErrMissingToken},
			{"foreign key", other, 0, connect.CodeUnauthenticated, keys.ErrKeyNotFound},
		} {
			_, _ = c.GetBalance(t.Context(), withBearer(&pointsv1.GetBalanceRequest{RecentEntries: tc.entries}, tc.tok))
			got := o.last()
			if got.procedure != pointsv1connect.PointsServiceGetBalanceProcedure || got.code != tc.want ||
				(tc.wantErr != nil && !errors.Is(got.err, tc.wantErr)) {
				t.Errorf("%s %s: observed %+v, want code %v wrapping %v", proto, tc.name, got, tc.want, tc.wantErr)
			}
		}
	}
}

// watcher is a test OrderProcessingService whose WatchOrder sends one
// update, then ends the stream with the code named by the order id
// ("ok", or a Connect code such as "permission_denied").
type watcher struct {
	orderprocessingv1connect.UnimplementedOrderProcessingServiceHandler
}

func (watcher) WatchOrder(_ context.Context, req *connect.Request[orderprocessingv1.WatchOrderRequest], stream *connect.ServerStream[orderprocessingv1.WatchOrderResponse]) error {
	if err := stream.Send(&orderprocessingv1.WatchOrderResponse{}); err != nil {
		return err
	}
	if req.Msg.GetOrderId() == "ok" {
		return nil
	}
	var code connect.Code
	if err := code.UnmarshalText([]byte(req.Msg.GetOrderId())); err != nil {
		return err
	}
	return connect.NewError(code, errors.New("refused at the end of the stream"))
}

// TestObserveStreams: a stream's outcome is the code it ended with, not
// the HTTP status (200 for every stream that started): Config.Observe and
// the gateway's rpc log line see it in every protocol, with the Connect
// end-of-stream message and the gRPC-Web trailers read from the body,
// compressed or not.
func TestObserveStreams(t *testing.T) {
	t.Parallel()
	gwRing, idRing := ring(t), ring(t)
	mux := http.NewServeMux()
	mux.Handle(orderprocessingv1connect.NewOrderProcessingServiceHandler(watcher{}))
	// The client may see a stream's end before the gateway's handler has
	// returned: wait for each observation (the log line is written first).
	observed := make(chan observation, 1)
	var o observer
	var logs syncBuffer
	cfg := config(gwRing, idRing, gateway.Route{URL: startUpstream(t, replica{n: 1}, gwRing).URL})
	cfg.Routes = append(cfg.Routes, gateway.Route{Service: orderprocessingv1connect.OrderProcessingServiceName, Handler: mux})
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	cfg.Observe = func(procedure string, err error, d time.Duration) {
		o.observe(procedure, err, d)
		observed <- o.last()
	}
	srv := serve(t, cfg, true)
	tok := access(t, issuer(t, idIssuer, idRing), "usr_bob", "shop", gateway.DefaultAudience)
	// The clients accept gzip, so the upstream compresses the end of the
	// stream; these two do not.
	identity := connect.WithAcceptCompression("gzip", nil, nil)
	clients := map[string][]connect.ClientOption{"connect uncompressed": {identity}, "grpc-web uncompressed": {identity, connect.WithGRPCWeb()}}
	maps.Copy(clients, protocols)
	for proto, opts := range clients {
		c := orderprocessingv1connect.NewOrderProcessingServiceClient(srv.Client(), srv.URL, opts...)
		for _, want := range []connect.Code{0, connect.CodePermissionDenied, connect.CodeResourceExhausted} {
			name := "ok"
			if want != 0 {
				name = want.String()
			}
			stream, err := c.WatchOrder(t.Context(), withBearer(&orderprocessingv1.WatchOrderRequest{OrderId: name}, tok))
			if err != nil {
				t.Fatal(err)
			}
			for stream.Receive() {
			}
			if got := connect.CodeOf(stream.Err()); stream.Err() != nil && got != want || stream.Err() == nil && want != 0 {
				t.Fatalf("%s %s: the client got %v", proto, name, stream.Err())
			}
			_ = stream.Close()
			if got := <-observed; got.procedure != orderprocessingv1connect.OrderProcessingServiceWatchOrderProcedure || got.code != want {
				t.Errorf("%s %s: observed %+v, want code %v", proto, name, got, want)
			}
			if line := logs.lastLine(); !strings.Contains(line, `"code":"`+name+`"`) {
				t.Errorf("%s %s: rpc log line %s does not say code %s", proto, name, line, name)
			}
		}
	}
}
