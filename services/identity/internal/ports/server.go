// Package ports serves Identity over Connect (IdentityService) and plain
// HTTP (the OIDC discovery document). Handlers are thin: proto in, use
// case, errors mapped in one place.
package ports

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	identityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1/identityv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/idempotency"
	"github.com/tokenrelay/tokenrelay/sdk/go/rpcerr"
	"github.com/tokenrelay/tokenrelay/services/identity/internal/app"
	"github.com/tokenrelay/tokenrelay/services/identity/internal/domain"
)

// Server implements identityv1connect.IdentityServiceHandler.
type Server struct {
	app  *app.Service
	errs *rpcerr.Mapper
}

var _ identityv1connect.IdentityServiceHandler = (*Server)(nil)

// NewServer returns the handlers over the use cases.
func NewServer(a *app.Service, log *slog.Logger) *Server {
	return &Server{app: a, errs: rpcerr.New(log,
		rpcerr.Code{Err: domain.ErrInvalidArgument, Code: connect.CodeInvalidArgument},
		rpcerr.Code{Err: domain.ErrInvalidCredentials, Code: connect.CodeUnauthenticated},
		rpcerr.Code{Err: domain.ErrTooManyAttempts, Code: connect.CodeResourceExhausted},
	)}
}

// Error maps a use-case error to a Connect error: the service's one error
// mapping.
func (s *Server) Error(ctx context.Context, err error) *connect.Error { return s.errs.Map(ctx, err) }

// Login implements identityv1connect.IdentityServiceHandler.
func (s *Server) Login(ctx context.Context, req *connect.Request[identityv1.LoginRequest]) (*connect.Response[identityv1.LoginResponse], error) {
	key, err := idempotency.Key(req.Msg.GetIdempotencyKey(), req.Header())
	if err != nil {
		return nil, s.Error(ctx, err)
	}
	out, err := s.app.Login(ctx, req.Msg.GetUsername(), req.Msg.GetPassword(), key)
	if err != nil {
		return nil, s.Error(ctx, err)
	}
	return connect.NewResponse(&identityv1.LoginResponse{Session: sessionProto(out)}), nil
}

// Refresh implements identityv1connect.IdentityServiceHandler.
func (s *Server) Refresh(ctx context.Context, req *connect.Request[identityv1.RefreshRequest]) (*connect.Response[identityv1.RefreshResponse], error) {
	key, err := idempotency.Key(req.Msg.GetIdempotencyKey(), req.Header())
	if err != nil {
		return nil, s.Error(ctx, err)
	}
	out, err := s.app.Refresh(ctx, req.Msg.GetRefreshToken(), key)
	if err != nil {
		return nil, s.Error(ctx, err)
	}
	return connect.NewResponse(&identityv1.RefreshResponse{Session: sessionProto(out)}), nil
}

// Logout implements identityv1connect.IdentityServiceHandler.
func (s *Server) Logout(ctx context.Context, req *connect.Request[identityv1.LogoutRequest]) (*connect.Response[identityv1.LogoutResponse], error) {
	if _, err := idempotency.Key(req.Msg.GetIdempotencyKey(), req.Header()); err != nil {
		return nil, s.Error(ctx, err)
	}
	if err := s.app.Logout(ctx, req.Msg.GetRefreshToken()); err != nil {
		return nil, s.Error(ctx, err)
	}
	return connect.NewResponse(&identityv1.LogoutResponse{}), nil
}

func sessionProto(s app.Session) *identityv1.Session {
	return &identityv1.Session{
		AccessToken:           s.AccessToken,
		AccessTokenExpiresAt:  timestamppb.New(s.AccessTokenExpiresAt),
		RefreshToken:          s.RefreshToken,
		RefreshTokenExpiresAt: timestamppb.New(s.RefreshTokenExpiresAt),
		User: &identityv1.User{
			Id: s.User.ID, Username: s.User.Username, DisplayName: s.User.DisplayName, Scopes: s.User.Scopes,
		},
	}
}

// Discovery is the OpenID Connect discovery document (OpenID Connect
// Discovery 1.0 section 3, RFC 8414): what a resource server needs to
// verify Identity's access tokens.
type Discovery struct {
	Issuer                            string   `json:"issuer"`
	JWKSURI                           string   `json:"jwks_uri"`
	TokenEndpoint                     string   `json:"token_endpoint,omitempty"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
}

// DiscoveryHandler serves d as JSON to GET and HEAD, cacheable for an hour.
func DiscoveryHandler(d Discovery) http.Handler {
	body, _ := json.Marshal(d) // strings and string slices always marshal
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodGet {
			_, _ = w.Write(body)
		}
	})
}
