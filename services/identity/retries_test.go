package identity_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	identityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1/identityv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn/authntest"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilitytest"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/services/identity"
)

// retries is how many times TestConcurrentRetries sends each request at once.
const retries = 50

// startReplicas serves n instances of Identity over db, as scaled out: one
// world, signing ring, vault and clock, a server each.
func startReplicas(t *testing.T, db *sqldb.DB, n int) []*env {
	t.Helper()
	w := authntest.New(t)
	ring, err := keys.NewRing()
	if err != nil {
		t.Fatal(err)
	}
	vk, err := vault.New(map[uint32][]byte{1: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Now()}
	out := make([]*env, n)
	for i := range out {
		logs := &syncBuffer{}
		svc, err := identity.New(t.Context(), identity.ForTest(identity.Config{
			DB: db, Vault: vk, Logger: slog.New(authn.NewLogHandler(slog.NewJSONHandler(logs, nil))),
			Keys: ring, Issuer: "https://id.tokenrelay.test",
			Gateway: capability.Peer{Issuer: authntest.GatewayName, Keys: w.GatewayKeys}, TrustDomain: authntest.TrustDomain,
			Users: identity.DemoUsers(),
		}, clk.Now))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(svc.Close)
		mux := http.NewServeMux()
		svc.Register(mux)
		srv := httptest.NewUnstartedServer(mux)
		srv.EnableHTTP2 = true
		srv.StartTLS()
		t.Cleanup(srv.Close)
		out[i] = &env{world: w, keys: ring, svc: svc, url: srv.URL, clock: clk, logs: logs,
			client: identityv1connect.NewIdentityServiceClient(srv.Client(), srv.URL)}
	}
	return out
}

// text is a response as a comparable string: retries of one request must
// get equal responses.
func text(m proto.Message) string { return prototext.MarshalOptions{}.Format(m) }

// count runs a COUNT(*) query on db.
func count(t *testing.T, db *sqldb.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.SQL().QueryRowContext(t.Context(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestConcurrentRetries sends each RPC that takes an idempotency key (Login,
// Refresh, Logout) retries times at once with one key, on SQLite and,
// through two replicas over one database, on PostgreSQL: every call gets the
// one stored result, and the effect happens once (one session, one
// rotation, one revocation).
func TestConcurrentRetries(t *testing.T) {
	t.Parallel()
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			db, n := sqldbtest.SQLite(t), 1
			if store == "postgres" {
				db, n = sqldbtest.Postgres(t), 2
			}
			es := startReplicas(t, db, n)
			e := es[0]
			on := func(i int) *env { return es[i%len(es)] }
			sessions := func(t *testing.T) int {
				t.Helper()
				return count(t, db, `SELECT COUNT(*) FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.username = $1`, "shopper")
			}

			t.Run("Login", func(t *testing.T) {
				before := sessions(t)
				h := e.anon(t, "")
				msg := &identityv1.LoginRequest{Username: "shopper", Password: identity.DemoShopperPassword, IdempotencyKey: "login-1"}
				capabilitytest.Same(t, "Login", capabilitytest.Concurrently(retries, func(i int) (string, error) {
					res, err := on(i).client.Login(t.Context(), req(h, msg))
					if err != nil {
						return "", err
					}
					return text(res.Msg), nil
				}))
				if c := sessions(t) - before; c != 1 {
					t.Fatalf("%d sessions opened, want 1", c)
				}
			})

			s0, err := e.login(t, "shopper", identity.DemoShopperPassword)
			if err != nil {
				t.Fatal(err)
			}
			t.Run("Refresh", func(t *testing.T) {
				h := e.anon(t, "")
				msg := &identityv1.RefreshRequest{RefreshToken: s0.GetRefreshToken(), IdempotencyKey: "refresh-1"}
				got := capabilitytest.Same(t, "Refresh", capabilitytest.Concurrently(retries, func(i int) (string, error) {
					res, err := on(i).client.Refresh(t.Context(), req(h, msg))
					if err != nil {
						return "", err
					}
					return res.Msg.GetSession().GetRefreshToken() + "\n" + text(res.Msg), nil
				}))
				if c := count(t, db, `SELECT COUNT(*) FROM refresh_tokens t JOIN refresh_tokens s0 ON s0.session_id = t.session_id
					WHERE s0.used_at IS NOT NULL AND s0.idempotency_key = $1`, "refresh-1"); c != 2 {
					t.Fatalf("the session has %d refresh tokens, want 2: one rotation", c)
				}
				next, _, _ := strings.Cut(got, "\n")
				if _, err := e.refresh(t, next, ""); err != nil {
					t.Fatalf("the one new token: %v", err)
				}
			})

			s1, err := e.login(t, "shopper", identity.DemoShopperPassword)
			if err != nil {
				t.Fatal(err)
			}
			t.Run("Logout", func(t *testing.T) {
				h := e.world.As(t, "usr_x", "shop")
				h.Set("Idempotency-Key", "logout-1")
				msg := &identityv1.LogoutRequest{RefreshToken: s1.GetRefreshToken()}
				capabilitytest.Same(t, "Logout", capabilitytest.Concurrently(retries, func(i int) (string, error) {
					res, err := on(i).client.Logout(t.Context(), req(h, msg))
					if err != nil {
						return "", err
					}
					return "ok " + text(res.Msg), nil
				}))
				if c := count(t, db, `SELECT COUNT(*) FROM sessions WHERE revoke_reason = 'logout'`); c != 1 {
					t.Fatalf("%d sessions ended by logout, want 1", c)
				}
				if _, err := e.refresh(t, s1.GetRefreshToken(), ""); err == nil {
					t.Fatal("refresh after logout succeeded")
				}
			})
		})
	}
}
