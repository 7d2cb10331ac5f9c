package embedded_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/reflect/protoreflect"

	couponsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1"
	identityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1/identityv1connect"
	orderprocessingv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1"
	paymentsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/payments/v1"
	pointsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1"
	"github.com/tokenrelay/tokenrelay/services/identity"
)

// publicProcedures lists every RPC of the public services, from their
// descriptors, so a new RPC is covered without editing this test.
func publicProcedures() (unary, streaming []string) {
	for _, fd := range []protoreflect.FileDescriptor{
		identityv1.File_tokenrelay_identity_v1_identity_proto,
		orderprocessingv1.File_tokenrelay_orderprocessing_v1_orderprocessing_proto,
		couponsv1.File_tokenrelay_coupons_v1_coupons_proto,
		pointsv1.File_tokenrelay_points_v1_points_proto,
		paymentsv1.File_tokenrelay_payments_v1_payments_proto,
	} {
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			for j := range sd.Methods().Len() {
				md := sd.Methods().Get(j)
				p := "/" + string(sd.FullName()) + "/" + string(md.Name())
				if md.IsStreamingServer() {
					streaming = append(streaming, p)
				} else {
					unary = append(unary, p)
				}
			}
		}
	}
	return unary, streaming
}

func deepJSON(depth int) []byte {
	return []byte(`{"a":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`)
}

// TestHostileInput sends malformed and oversized Connect and gRPC requests to
// every public RPC, with and without a valid access token: none crashes a
// service or gets a 5xx, and the system still works afterwards.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	sys := start(t, t.TempDir())
	defer stop(t, sys)
	res, err := identityv1connect.NewIdentityServiceClient(http.DefaultClient, sys.URL()).Login(t.Context(),
		connect.NewRequest(&identityv1.LoginRequest{Username: "shopper", Password: identity.DemoShopperPassword}))
	if err != nil {
		t.Fatal(err)
	}
	token := res.Msg.GetSession().GetAccessToken()
	garbage := make([]byte, 4096)
	_, _ = rand.Read(garbage)
	huge := bytes.Repeat([]byte("a"), 2<<20)
	bodies := []struct {
		name, contentType string
		body              []byte
	}{
		{"random bytes as proto", "application/proto", garbage},
		{"random bytes as json", "application/json", garbage},
		{"wrong content type", "text/plain", []byte("hello")},
		{"no content type", "", []byte("{}")},
		{"invalid UTF-8 in JSON", "application/json", []byte("{\"username\": \"\xff\xfe\"}")},
		{"deeply nested JSON", "application/json", deepJSON(100000)},
		{"huge JSON", "application/json", append(append([]byte(`{"username":"`), huge...), '"', '}')},
		{"unknown fields", "application/json", []byte(`{"zzzUnknown": 1, "idempotencyKey": 7}`)},
		{"wrong JSON types", "application/json", []byte(`{"items": "TEA", "points": "many", "checkoutToken": 5}`)},
		{"truncated proto", "application/proto", []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"grpc garbage frame", "application/grpc", append([]byte{0, 0, 0, 0x10, 0}, garbage[:32]...)},
		{"grpc frame longer than body", "application/grpc", []byte{0, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3}},
		{"connect stream garbage", "application/connect+proto", garbage[:64]},
	}
	unary, streaming := publicProcedures()
	client := &http.Client{}
	for _, auth := range []string{"", token} {
		for _, proc := range append(unary, streaming...) {
			for _, b := range bodies {
				name := fmt.Sprintf("%s %s auth=%v", proc, b.name, auth != "")
				req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, sys.URL()+proc, bytes.NewReader(b.body))
				if err != nil {
					t.Fatal(err)
				}
				if b.contentType != "" {
					req.Header.Set("Content-Type", b.contentType)
				}
				if strings.HasPrefix(b.contentType, "application/grpc") {
					req.Header.Set("Te", "trailers")
				}
				if auth != "" {
					req.Header.Set("Authorization", "Bearer "+auth)
				}
				res, err := client.Do(req)
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
				res.Body.Close()
				status := res.StatusCode
				if status >= 500 {
					t.Errorf("%s: HTTP %d %q", name, status, body)
				}
				// gRPC answers 200 with the error in grpc-status; it must
				// not be an internal error either.
				if gs := res.Header.Get("Grpc-Status") + res.Trailer.Get("Grpc-Status"); gs == "13" || gs == "2" {
					t.Errorf("%s: grpc-status %s %s", name, gs, res.Header.Get("Grpc-Message")+res.Trailer.Get("Grpc-Message"))
				}
			}
		}
	}
	for _, path := range []string{"/healthz"} {
		res, err := http.Get(sys.URL() + path)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("after the hostile requests %s: %v %v", path, res, err)
		}
		res.Body.Close()
	}
	s := login(t, sys.URL())
	if s.balance(t) != 1000 {
		t.Fatal("the hostile requests changed the shopper's balance")
	}
}
