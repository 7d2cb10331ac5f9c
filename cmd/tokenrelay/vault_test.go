package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	couponsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1/couponsv1connect"
	identityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1/identityv1connect"
	orderprocessingv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1/orderprocessingv1connect"
	paymentsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/payments/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/payments/v1/paymentsv1connect"
	pointsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1/pointsv1connect"
	typev1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/type/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/services/coupons"
	"github.com/tokenrelay/tokenrelay/services/embedded"
	"github.com/tokenrelay/tokenrelay/services/identity"
	"github.com/tokenrelay/tokenrelay/services/points"
)

// keySetJSON is one set of vault keys in the JSON output.
type keySetJSON struct {
	Keys     string   `json:"keys"`
	Added    uint32   `json:"added_version"`
	Current  uint32   `json:"current_version"`
	Versions []uint32 `json:"versions"`
	Services []string `json:"services"`
}

type statusJSON struct {
	Keys     []keySetJSON `json:"keys"`
	Services []struct {
		Service   string         `json:"service"`
		Skipped   string         `json:"skipped"`
		Records   int            `json:"records"`
		ByVersion map[string]int `json:"by_version"`
	} `json:"services"`
	Outdated int `json:"outdated"`
}

type reencryptJSON struct {
	Keys     []keySetJSON `json:"keys"`
	Services []struct {
		Service     string `json:"service"`
		Skipped     string `json:"skipped"`
		Reencrypted int    `json:"reencrypted"`
		Error       string `json:"error"`
	} `json:"services"`
	Total int `json:"reencrypted"`
}

func runJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out, errOut, code := runCmd(t, "", append(args, "--json")...)
	if code != exitOK {
		t.Fatalf("%v: exit %d:\n%s%s", args, code, out, errOut)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
}

// recordsUnder returns the sealed records per service, checking that all
// of them are under version want.
func recordsUnder(t *testing.T, st statusJSON, want uint32) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, s := range st.Services {
		if s.Skipped != "" {
			t.Fatalf("%s skipped: %s", s.Service, s.Skipped)
		}
		if n := s.ByVersion[strconv.FormatUint(uint64(want), 10)]; n != s.Records {
			t.Fatalf("%s: %d records, %d under version %d: %v", s.Service, s.Records, n, want, s.ByVersion)
		}
		out[s.Service] = s.Records
	}
	return out
}

func startSystem(t *testing.T, dir string) *embedded.System {
	t.Helper()
	sys, err := embedded.Start(t.Context(), embedded.Config{
		Addr: "127.0.0.1:0", DataDir: dir, Seed: true,
		Logger: slog.New(authn.NewLogHandler(slog.DiscardHandler)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return sys
}

func bearer(tok string) connect.Option {
	return connect.WithInterceptors(authn.NewBearerInterceptor(tok))
}

// login logs the shopper in with an idempotency key, so that Identity keeps
// the result sealed for the retry window.
func login(t *testing.T, url, key string) *identityv1.Session {
	t.Helper()
	res, err := identityv1connect.NewIdentityServiceClient(http.DefaultClient, url).Login(t.Context(),
		connect.NewRequest(&identityv1.LoginRequest{Username: "shopper", Password: identity.DemoShopperPassword, IdempotencyKey: key}))
	if err != nil {
		t.Fatal(err)
	}
	return res.Msg.GetSession()
}

func confirmPoints(t *testing.T, url, access, checkoutToken, key string) string {
	t.Helper()
	res, err := pointsv1connect.NewPointsServiceClient(http.DefaultClient, url, bearer(access)).ConfirmPoints(t.Context(),
		connect.NewRequest(&pointsv1.ConfirmPointsRequest{CheckoutToken: checkoutToken, Points: 300, IdempotencyKey: key}))
	if err != nil {
		t.Fatal(err)
	}
	return res.Msg.GetConfirmationToken()
}

// TestVaultRotateEndToEnd places an order on the embedded system, stops it,
// rotates the vault key, checks that every sealed record of every service
// moved to the new version, and starts the system again to show that each
// service still opens what it sealed.
func TestVaultRotateEndToEnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sys := startSystem(t, dir)
	ctx := t.Context()

	first := login(t, sys.URL(), "login-1")
	access := first.GetAccessToken()
	orders := orderprocessingv1connect.NewOrderProcessingServiceClient(http.DefaultClient, sys.URL(), bearer(access))
	started, err := orders.StartCheckout(ctx, connect.NewRequest(&orderprocessingv1.StartCheckoutRequest{
		Items: []*orderprocessingv1.CartItem{{Sku: "TEA-BLACK-250G", Quantity: 2}, {Sku: "MUG-STONE", Quantity: 1}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	co, cot := started.Msg.GetCheckout(), started.Msg.GetCheckoutToken()
	coupon, err := couponsv1connect.NewCouponsServiceClient(http.DefaultClient, sys.URL(), bearer(access)).ConfirmCoupon(ctx,
		connect.NewRequest(&couponsv1.ConfirmCouponRequest{CheckoutToken: cot, Code: "WELCOME5"}))
	if err != nil {
		t.Fatal(err)
	}
	pointsToken := confirmPoints(t, sys.URL(), access, cot, "points-1")
	pay := paymentsv1connect.NewPaymentsServiceClient(http.DefaultClient, sys.URL(), bearer(access))
	methods, err := pay.ListPaymentMethods(ctx, connect.NewRequest(&paymentsv1.ListPaymentMethodsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	var card string
	for _, pm := range methods.Msg.GetPaymentMethods() {
		if pm.GetLast4() == embedded.DemoCard[12:] {
			card = pm.GetId()
		}
	}
	payment, err := pay.ConfirmPayment(ctx, connect.NewRequest(&paymentsv1.ConfirmPaymentRequest{
		CheckoutToken: cot, PaymentMethodId: card,
		Amount: &typev1.Money{AmountMinor: co.GetTotal().GetAmountMinor() - 500 - 300, Currency: "EUR"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	placed, err := orders.PlaceOrder(ctx, connect.NewRequest(&orderprocessingv1.PlaceOrderRequest{
		CheckoutId: co.GetId(), IdempotencyKey: "place-1",
		ConfirmationTokens: []string{coupon.Msg.GetConfirmationToken(), pointsToken, payment.Msg.GetConfirmationToken()},
	}))
	if err != nil {
		t.Fatal(err)
	}
	orderID := placed.Msg.GetOrder().GetId()
	// waitOrder follows the order's saga with WatchOrder, which sends its
	// state now and then every change, until the saga ends: no polling, and
	// no deadline but the test's own.
	waitOrder := func(orders orderprocessingv1connect.OrderProcessingServiceClient) *orderprocessingv1.Order {
		t.Helper()
		stream, err := orders.WatchOrder(ctx, connect.NewRequest(&orderprocessingv1.WatchOrderRequest{OrderId: orderID}))
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		var last *orderprocessingv1.Order
		for stream.Receive() {
			last = stream.Msg().GetOrder()
			switch last.GetStatus() {
			case orderprocessingv1.OrderStatus_ORDER_STATUS_COMPLETED, orderprocessingv1.OrderStatus_ORDER_STATUS_FAILED:
				return last
			}
		}
		t.Fatalf("WatchOrder ended before the saga did: %v; last state %v", stream.Err(), last)
		return nil
	}
	if o := waitOrder(orders); o.GetStatus() != orderprocessingv1.OrderStatus_ORDER_STATUS_COMPLETED {
		t.Fatalf("order ended %v", o.GetStatus())
	}
	sys.Close()

	// Before: every record under version 1, in every service.
	var before statusJSON
	runJSON(t, &before, "vault", "status", "--data", dir)
	counts := recordsUnder(t, before, 1)
	for svc, min := range map[string]int{"identity": 1, "coupons": 1, "points": 1, "payments": 1, "order-processing": 3} {
		if counts[svc] < min {
			t.Fatalf("%s holds %d sealed records before rotation, want at least %d: %v", svc, counts[svc], min, counts)
		}
	}

	var rotated reencryptJSON
	runJSON(t, &rotated, "vault", "rotate", "--data", dir)
	if len(rotated.Keys) != 1 || rotated.Keys[0].Added != 2 || rotated.Keys[0].Current != 2 || len(rotated.Keys[0].Services) != 5 {
		t.Fatalf("rotate: %+v", rotated)
	}
	total := 0
	for _, s := range rotated.Services {
		if s.Error != "" || s.Skipped != "" || s.Reencrypted != counts[s.Service] {
			t.Fatalf("rotate: %s re-encrypted %d of %d (%s%s)", s.Service, s.Reencrypted, counts[s.Service], s.Skipped, s.Error)
		}
		total += s.Reencrypted
	}
	if rotated.Total != total || len(rotated.Services) != 5 {
		t.Fatalf("rotate: %+v", rotated)
	}

	var after statusJSON
	runJSON(t, &after, "vault", "status", "--data", dir)
	if recordsUnder(t, after, 2); after.Outdated != 0 || after.Keys[0].Current != 2 {
		t.Fatalf("after rotation: %+v", after)
	}
	// Directly: the order's tokens are now version-2 records that open
	// under their record ids with the rotated key directory.
	vk, err := vault.LoadDir(filepath.Join(dir, "vault"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqldb.Open(ctx, "sqlite://"+filepath.Join(dir, "order-processing.db"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.SQL().QueryContext(ctx, `SELECT capability, sealed_token FROM steps WHERE order_id = $1`, orderID)
	if err != nil {
		t.Fatal(err)
	}
	steps := 0
	for rows.Next() {
		var capName, sealed string
		if err := rows.Scan(&capName, &sealed); err != nil {
			t.Fatal(err)
		}
		tok, err := capability.VaultSealer{Keyring: vk}.Open("orders/"+orderID+"/tokens/"+capName, sealed)
		if err != nil || !strings.HasPrefix(sealed, "v2.") || strings.Count(tok, ".") != 2 {
			t.Fatalf("step %s: %.3s..., %v", capName, sealed, err)
		}
		steps++
	}
	rows.Close()
	db.Close()
	if steps != 3 {
		t.Fatalf("%d steps", steps)
	}

	// Started again, every service reads what was re-encrypted.
	sys = startSystem(t, dir)
	again := login(t, sys.URL(), "login-1")
	if again.GetAccessToken() != access || again.GetRefreshToken() != first.GetRefreshToken() {
		t.Fatal("a Login retry with the same key no longer returns the sealed first result")
	}
	// The replayed access token names the first run's issuer URL (a random
	// port): log in afresh to call the other services.
	access = login(t, sys.URL(), "").GetAccessToken()
	if tok := confirmPoints(t, sys.URL(), access, cot, "points-1"); tok != pointsToken {
		t.Fatal("a ConfirmPoints retry with the same key no longer returns the sealed first token")
	}
	orders = orderprocessingv1connect.NewOrderProcessingServiceClient(http.DefaultClient, sys.URL(), bearer(access))
	if o := waitOrder(orders); o.GetStatus() != orderprocessingv1.OrderStatus_ORDER_STATUS_COMPLETED || len(o.GetSteps()) != 3 {
		t.Fatalf("the order after rotation: %v", o)
	}
	sys.Close()

	// Nothing was sealed under an old version since: reencrypt has nothing
	// to do. Another rotation moves every record again, and says so.
	var noop reencryptJSON
	runJSON(t, &noop, "vault", "reencrypt", "--data", dir)
	if noop.Total != 0 || noop.Keys[0].Added != 0 || noop.Keys[0].Current != 2 {
		t.Fatalf("reencrypt after rotation: %+v", noop)
	}
	var now statusJSON
	runJSON(t, &now, "vault", "status", "--data", dir)
	counts = recordsUnder(t, now, 2)
	var second reencryptJSON
	runJSON(t, &second, "vault", "rotate", "--data", dir)
	for _, s := range second.Services {
		if s.Reencrypted != counts[s.Service] {
			t.Fatalf("second rotation: %s re-encrypted %d of %d", s.Service, s.Reencrypted, counts[s.Service])
		}
	}
	if second.Keys[0].Added != 3 || len(second.Keys[0].Versions) != 3 {
		t.Fatalf("second rotation: %+v", second)
	}

	// The text form says the same, for people.
	out, _, code := runCmd(t, "", "vault", "status", "--data", dir)
	if code != exitOK || !strings.Contains(out, "order-processing") || !strings.Contains(out, "v3: ") ||
		!strings.Contains(out, "current version 3 (versions 1, 2, 3)") || !strings.Contains(out, "Every sealed record is under the current key version.") {
		t.Fatalf("vault status:\n%s", out)
	}
}

func TestVaultErrors(t *testing.T) {
	t.Parallel()
	data, empty := t.TempDir(), t.TempDir()
	// An empty file is an empty SQLite database: the keys are checked first.
	if err := os.WriteFile(filepath.Join(data, "identity.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"vault", "rotate", "--data", data}, exitFail, "no vault keys in " + filepath.Join(data, "vault")},
		{[]string{"vault", "rotate", "--data", empty}, exitFail, "no service database found"},
		{[]string{"vault", "status", "--data", data, "--schema", "points=p"}, exitUsage, "--schema needs --postgres-url"},
		{[]string{"vault", "status", "--data", data, "--db", "ledger=x"}, exitUsage, "unknown service"},
		{[]string{"vault", "status", "--postgres-url", "mysql://x", "--data", data}, exitUsage, "want a postgres:// URL"},
		{[]string{"vault", "reencrypt", "--data", data, "--vault-env"}, exitFail, "TOKENRELAY_VAULT_KEYS is empty"},
	}
	for _, tt := range tests {
		out, errOut, code := runCmd(t, "", tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d, want %d with %q:\n%s%s", tt.args, code, tt.code, tt.want, out, errOut)
		}
	}
	// No command created a key.
	if _, err := os.Stat(filepath.Join(data, "vault")); !os.IsNotExist(err) {
		t.Fatalf("a vault directory was created: %v", err)
	}
	// With no database at all, status counts nothing and says why.
	out, errOut, code := runCmd(t, "", "vault", "status", "--data", empty)
	if code != exitOK || strings.Count(out, "skipped: no database file") != 5 {
		t.Fatalf("status without databases: exit %d\n%s%s", code, out, errOut)
	}
}

// TestDataDirMissing (issue 20): a --data that does not exist, or is no
// directory, is an error (exit 1, naming it) for every command that reads
// from it, never an empty deployment; nothing is created there.
func TestDataDirMissing(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "nonexistent")
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"vault", "status", "--data", missing},
		{"vault", "status", "--data", missing, "--json"},
		{"vault", "reencrypt", "--data", missing},
		{"vault", "rotate", "--data", missing},
		{"orders", "stuck", "--data", missing},
		{"orders", "retry", "--data", missing, "ord_1"},
		{"keys", "list", "--data", missing, "--issuer", "coupons"},
		{"keys", "rotate", "--data", missing, "--issuer", "coupons"},
	} {
		out, errOut, code := runCmd(t, "", args...)
		if code != exitFail || !strings.Contains(errOut, "data directory "+missing+" does not exist") {
			t.Errorf("%v: exit %d, want %d naming the directory:\n%s%s", args, code, exitFail, out, errOut)
		}
	}
	if _, errOut, code := runCmd(t, "", "vault", "status", "--data", file); code != exitFail || !strings.Contains(errOut, "is not a directory") {
		t.Errorf("vault status --data FILE: exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatalf("a command created %s: %v", missing, err)
	}
}

// TestVaultRotatePostgres runs vault rotate and status against the
// scaled-out layout: services in schemas of one PostgreSQL database. Points
// runs in its schema; the other services' schemas do not exist and are
// skipped.
func TestVaultRotatePostgres(t *testing.T) {
	t.Parallel()
	pgURL := os.Getenv(sqldbtest.EnvPostgresURL)
	if pgURL == "" {
		pgURL = sqldbtest.DefaultPostgresURL
	}
	ctx := t.Context()
	admin, err := sqldb.Open(ctx, pgURL, sqldb.WithMaxOpenConns(1))
	if err != nil {
		if os.Getenv(sqldbtest.EnvRequirePostgres) == "1" {
			t.Fatalf("PostgreSQL not reachable: %v", err)
		}
		t.Skipf("PostgreSQL not reachable (set %s): %v", sqldbtest.EnvPostgresURL, err)
	}
	defer admin.Close()
	var suffix [6]byte
	rand.Read(suffix[:])
	prefix := "t_cli_" + hex.EncodeToString(suffix[:])
	schema := prefix + "_points"
	t.Cleanup(func() {
		_, _ = admin.SQL().ExecContext(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
	})

	vaultDir := filepath.Join(t.TempDir(), "vault")
	vk, err := vault.LoadDir(vaultDir)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqldb.Open(ctx, pgURL, sqldb.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	migratePoints(t, db, vk)
	insertPointsConfirmations(t, db, vk, "jti-1", "jti-2")

	args := []string{"--vault", vaultDir, "--postgres-url", pgURL, "--schema", "points=" + schema,
		"--schema", "identity=" + prefix + "_identity", "--schema", "coupons=" + prefix + "_coupons",
		"--schema", "payments=" + prefix + "_payments", "--schema", "order-processing=" + prefix + "_orders"}
	var rotated reencryptJSON
	runJSON(t, &rotated, append([]string{"vault", "rotate"}, args...)...)
	for _, s := range rotated.Services {
		switch {
		case s.Service == "points" && (s.Reencrypted != 2 || s.Skipped != "" || s.Error != ""):
			t.Fatalf("points: %+v", s)
		case s.Service != "points" && !strings.HasPrefix(s.Skipped, "no schema"):
			t.Fatalf("%s: %+v", s.Service, s)
		}
	}
	var st statusJSON
	runJSON(t, &st, append([]string{"vault", "status"}, args...)...)
	for _, s := range st.Services {
		if s.Service == "points" && (s.Records != 2 || s.ByVersion["2"] != 2) {
			t.Fatalf("points after rotation: %+v", s)
		}
	}
	// The schemas of the skipped services were not created.
	var n int
	if err := admin.SQL().QueryRowContext(ctx, `SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE $1`, prefix+"%").Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d schemas named %s*, want 1: %v", n, prefix, err)
	}
	// One service by --db: the URL's search_path names the schema.
	u := pgURL + "&search_path=" + schema
	if !strings.Contains(pgURL, "?") {
		u = pgURL + "?search_path=" + schema
	}
	var one reencryptJSON
	runJSON(t, &one, "vault", "reencrypt", "--vault", vaultDir, "--data", t.TempDir(), "--db", "points="+u)
	for _, s := range one.Services {
		if s.Service == "points" && (s.Skipped != "" || s.Error != "" || s.Reencrypted != 0) {
			t.Fatalf("reencrypt by --db: %+v", s)
		}
	}
}

// trust is a domain's trust configuration with throwaway rings.
func trust(t *testing.T) capability.Trust {
	t.Helper()
	ring := func() *keys.Ring {
		r, err := keys.NewRing()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	return capability.Trust{
		Keys: ring(), Gateway: capability.Peer{Issuer: "gateway", Keys: ring()}, TrustDomain: "tokenrelay",
		OrderProcessing: capability.Peer{Issuer: "order-processing", Keys: ring()},
	}
}

// migratePoints creates Points' tables in db, as the service does at start.
func migratePoints(t *testing.T, db *sqldb.DB, vk *vault.Keyring) {
	t.Helper()
	svc, err := points.New(t.Context(), points.Config{DB: db, Vault: vk, Logger: slog.New(slog.DiscardHandler), Trust: trust(t)})
	if err != nil {
		t.Fatal(err)
	}
	svc.Close()
}

// insertPointsConfirmations stores confirmation records sealed with vk
// under their jti, as Points does.
func insertPointsConfirmations(t *testing.T, db *sqldb.DB, vk *vault.Keyring, jtis ...string) {
	t.Helper()
	for _, jti := range jtis {
		sealed, err := capability.VaultSealer{Keyring: vk}.Seal(jti, "token "+jti)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.SQL().ExecContext(t.Context(), `INSERT INTO confirmations (jti, user_id, checkout_id, points, currency, sealed_token, expires_at, created_at)
			VALUES ($1, 'u', 'op_1', 1, 'EUR', $2, $3, $3)`, jti, sealed, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestVaultPerServiceKeys rotates two services that keep their own vault
// keys, as the scaled-out binaries do by default: each key directory gets
// one new version, and each service's records move under its own keys.
func TestVaultPerServiceKeys(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	data := t.TempDir()
	shared, own := filepath.Join(data, "vault"), filepath.Join(data, "coupons-vault")
	sharedKeys, err := vault.LoadDir(shared)
	if err != nil {
		t.Fatal(err)
	}
	ownKeys, err := vault.LoadDir(own)
	if err != nil {
		t.Fatal(err)
	}
	pdb, err := sqldb.Open(ctx, "sqlite://"+filepath.Join(data, "points.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer pdb.Close()
	migratePoints(t, pdb, sharedKeys)
	insertPointsConfirmations(t, pdb, sharedKeys, "p1", "p2")

	cdb, err := sqldb.Open(ctx, "sqlite://"+filepath.Join(data, "coupons.db"))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := coupons.New(ctx, coupons.Config{DB: cdb, Vault: ownKeys, Logger: slog.New(slog.DiscardHandler), Trust: trust(t)})
	if err != nil {
		t.Fatal(err)
	}
	svc.Close()
	cdb.Close()
	// Without the foreign key to a granted coupon: only the sealed column matters here.
	cdb, err = sqldb.Open(ctx, "sqlite://"+filepath.Join(data, "coupons.db")+"?_foreign_keys=0")
	if err != nil {
		t.Fatal(err)
	}
	defer cdb.Close()
	sealed, err := capability.VaultSealer{Keyring: ownKeys}.Seal("c1", "coupon token")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cdb.SQL().ExecContext(ctx, `INSERT INTO confirmations (jti, user_id, checkout_id, coupon_id, code, discount, currency, sealed_token, expires_at, created_at)
		VALUES ('c1', 'u', 'op_1', 'cpn_1', 'WELCOME5', 500, 'EUR', $1, $2, $2)`, sealed, time.Now()); err != nil {
		t.Fatal(err)
	}

	var rotated reencryptJSON
	runJSON(t, &rotated, "vault", "rotate", "--data", data, "--service-vault", "coupons="+own)
	if len(rotated.Keys) != 2 {
		t.Fatalf("key sets: %+v", rotated.Keys)
	}
	for _, ks := range rotated.Keys {
		want := map[string]string{shared: "points", own: "coupons"}[ks.Keys]
		if ks.Added != 2 || len(ks.Services) != 1 || ks.Services[0] != want {
			t.Fatalf("key set %+v, want version 2 added for %s", ks, want)
		}
	}
	got := map[string]int{}
	for _, s := range rotated.Services {
		got[s.Service] = s.Reencrypted
	}
	if got["points"] != 2 || got["coupons"] != 1 || rotated.Total != 3 {
		t.Fatalf("re-encrypted %v", got)
	}
	var stored string
	if err := cdb.SQL().QueryRowContext(ctx, `SELECT sealed_token FROM confirmations WHERE jti = 'c1'`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	reloaded, err := vault.LoadDir(own)
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := (capability.VaultSealer{Keyring: reloaded}).Open("c1", stored); err != nil || tok != "coupon token" || !strings.HasPrefix(stored, "v2.") {
		t.Fatalf("coupons record after rotation: %q, %v", tok, err)
	}
	if _, err := (capability.VaultSealer{Keyring: sharedKeys}).Open("c1", stored); err == nil {
		t.Fatal("the coupons record opens with the other service's keys")
	}
}
