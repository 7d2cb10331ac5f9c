package gen_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	orderprocessingv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1/orderprocessingv1connect"
	typev1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/type/v1"
)

// catalog is a minimal OrderProcessingService: enough of it to exercise a
// unary RPC, a server stream and an error through the generated code.
type catalog struct {
	orderprocessingv1connect.UnimplementedOrderProcessingServiceHandler
	products []*orderprocessingv1.Product
}

func (c *catalog) ListProducts(_ context.Context, _ *connect.Request[orderprocessingv1.ListProductsRequest]) (*connect.Response[orderprocessingv1.ListProductsResponse], error) {
	return connect.NewResponse(&orderprocessingv1.ListProductsResponse{Products: c.products}), nil
}

func (c *catalog) WatchOrder(_ context.Context, req *connect.Request[orderprocessingv1.WatchOrderRequest], stream *connect.ServerStream[orderprocessingv1.WatchOrderResponse]) error {
	if req.Msg.GetOrderId() == "" {
		return connect.NewError(connect.CodeInvalidArgument, errors.New("order_id is required"))
	}
	for v, status := range []orderprocessingv1.OrderStatus{
		orderprocessingv1.OrderStatus_ORDER_STATUS_PENDING,
		orderprocessingv1.OrderStatus_ORDER_STATUS_IN_PROGRESS,
		orderprocessingv1.OrderStatus_ORDER_STATUS_COMPLETED,
	} {
		order := &orderprocessingv1.Order{Id: req.Msg.GetOrderId(), Status: status, Version: int64(v + 1)}
		if err := stream.Send(&orderprocessingv1.WatchOrderResponse{Order: order}); err != nil {
			return err
		}
	}
	return nil
}

func TestGeneratedCodeRoundTrip(t *testing.T) {
	t.Parallel()
	want := []*orderprocessingv1.Product{{
		Sku:       "TEA-GREEN-100G",
		Name:      "Green tea",
		UnitPrice: &typev1.Money{AmountMinor: 1250, Currency: "EUR"},
	}}
	mux := http.NewServeMux()
	mux.Handle(orderprocessingv1connect.NewOrderProcessingServiceHandler(&catalog{products: want}))
	server := httptest.NewUnstartedServer(mux)
	server.EnableHTTP2 = true // gRPC needs HTTP/2
	server.StartTLS()
	t.Cleanup(server.Close)

	protocols := []struct {
		name string
		opts []connect.ClientOption
	}{
		{"connect", nil},
		{"connect+json", []connect.ClientOption{connect.WithProtoJSON()}},
		{"grpc", []connect.ClientOption{connect.WithGRPC()}},
		{"grpc-web", []connect.ClientOption{connect.WithGRPCWeb()}},
	}
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			client := orderprocessingv1connect.NewOrderProcessingServiceClient(server.Client(), server.URL, p.opts...)

			res, err := client.ListProducts(ctx, connect.NewRequest(&orderprocessingv1.ListProductsRequest{}))
			if err != nil {
				t.Fatalf("ListProducts: %v", err)
			}
			if got := res.Msg.GetProducts(); len(got) != 1 || !proto.Equal(got[0], want[0]) {
				t.Fatalf("ListProducts = %v, want %v", got, want)
			}

			stream, err := client.WatchOrder(ctx, connect.NewRequest(&orderprocessingv1.WatchOrderRequest{OrderId: "ord_1"}))
			if err != nil {
				t.Fatalf("WatchOrder: %v", err)
			}
			var versions []int64
			for stream.Receive() {
				versions = append(versions, stream.Msg().GetOrder().GetVersion())
			}
			if err := stream.Err(); err != nil {
				t.Fatalf("WatchOrder stream: %v", err)
			}
			if len(versions) != 3 || versions[0] != 1 || versions[2] != 3 {
				t.Fatalf("WatchOrder versions = %v, want [1 2 3]", versions)
			}

			// Errors cross the wire as codes, on both protocols.
			bad, err := client.WatchOrder(ctx, connect.NewRequest(&orderprocessingv1.WatchOrderRequest{}))
			if err == nil {
				for bad.Receive() {
					t.Fatal("WatchOrder without order_id sent a message")
				}
				err = bad.Err()
			}
			if got := connect.CodeOf(err); got != connect.CodeInvalidArgument {
				t.Fatalf("WatchOrder without order_id: code %v (%v), want invalid_argument", got, err)
			}

			_, err = client.GetOrder(ctx, connect.NewRequest(&orderprocessingv1.GetOrderRequest{OrderId: "ord_1"}))
			if got := connect.CodeOf(err); got != connect.CodeUnimplemented {
				t.Fatalf("GetOrder on the unimplemented handler: code %v, want unimplemented", got)
			}
		})
	}
}
