package authn_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"connectrpc.com/connect"

	orderprocessingv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1/orderprocessingv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
)

// seen records the Authorization header of each call.
type seen struct {
	orderprocessingv1connect.UnimplementedOrderProcessingServiceHandler
	got chan string
}

func (s *seen) ListProducts(_ context.Context, req *connect.Request[orderprocessingv1.ListProductsRequest]) (*connect.Response[orderprocessingv1.ListProductsResponse], error) {
	s.got <- req.Header().Get("Authorization")
	return connect.NewResponse(&orderprocessingv1.ListProductsResponse{}), nil
}

func (s *seen) WatchOrder(_ context.Context, req *connect.Request[orderprocessingv1.WatchOrderRequest], _ *connect.ServerStream[orderprocessingv1.WatchOrderResponse]) error {
	s.got <- req.Header().Get("Authorization")
	return nil
}

func TestBearerInterceptor(t *testing.T) {
	t.Parallel()
	h := &seen{got: make(chan string, 2)}
	mux := http.NewServeMux()
	mux.Handle(orderprocessingv1connect.NewOrderProcessingServiceHandler(h))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c := orderprocessingv1connect.NewOrderProcessingServiceClient(http.DefaultClient, srv.URL,
		connect.WithInterceptors(authn.NewBearerInterceptor("at-123")))
	if _, err := c.ListProducts(t.Context(), connect.NewRequest(&orderprocessingv1.ListProductsRequest{})); err != nil {
		t.Fatal(err)
	}
	stream, err := c.WatchOrder(t.Context(), connect.NewRequest(&orderprocessingv1.WatchOrderRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	for stream.Receive() {
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	for _, call := range []string{"unary", "stream"} {
		if got := <-h.got; got != "Bearer at-123" {
			t.Errorf("%s call sent Authorization %q", call, got)
		}
	}
}
