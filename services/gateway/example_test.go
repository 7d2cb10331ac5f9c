package gateway_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1/identityv1connect"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1/pointsv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/services/gateway"
)

// The embedded default: the identity service's ring is the in-process key
// source of its access tokens, and every service sits on one shared mux.
// Scaled out, a Route names a URL instead, and an Issuer without Keys is an
// OpenID Connect provider discovered from its issuer URL.
func ExampleNew() {
	ctx := context.Background()
	gatewayKeys, _ := keys.NewRing()  // keys.OpenRing(dataDir + "/keys/gateway") in production
	identityKeys, _ := keys.NewRing() // the identity service's Config.Keys
	services := http.NewServeMux()    // identity.Register(services), points.Register(services), ...

	gw, err := gateway.New(ctx, gateway.Config{
		Keys:   gatewayKeys,
		Logger: slog.New(authn.NewLogHandler(slog.NewJSONHandler(os.Stderr, nil))),
		Issuers: []gateway.Issuer{
			{Issuer: "http://127.0.0.1:8080", Keys: identityKeys}, // identity.DefaultIssuer
			// {Issuer: "https://login.example.com", Audience: "tokenrelay-api", Scopes: []string{"shop"}},
		},
		Routes: []gateway.Route{
			{Service: identityv1connect.IdentityServiceName, Handler: services},
			{Service: pointsv1connect.PointsServiceName, Handler: services},
			// {Service: pointsv1connect.PointsServiceName, URL: "http://points.internal:8083"},
		},
		AllowedOrigins: []string{"http://127.0.0.1:8080", "http://localhost:5173"},
		Fallback:       services, // discovery document, web checkout
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer gw.Close()
	srv := gw.Server() // then srv.Serve on gw.Listen("127.0.0.1:8080")
	fmt.Println(gw.Name(), gw.TrustDomain(), srv.MaxHeaderBytes)
	// Output: gateway tokenrelay 65536
}
