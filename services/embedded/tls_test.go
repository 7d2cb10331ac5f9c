package embedded_test

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"

	orderprocessingv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1"
	pointsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/server"
	"github.com/tokenrelay/tokenrelay/sdk/go/server/servertest"
	"github.com/tokenrelay/tokenrelay/services/embedded"
)

// selfSignedCA writes to dir a certificate for 127.0.0.1 and localhost
// (tls.crt, tls.key) issued by a CA of its own, and returns the files and
// a pool that trusts that CA alone.
func selfSignedCA(t *testing.T, dir string) (certFile, keyFile string, roots *x509.CertPool) {
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	return certFile, keyFile, servertest.WriteCert(t, certFile, keyFile).Roots
}

// TestCheckoutOverTLS (issue 20): with a certificate, the public origin is
// https://, speaks HTTP/2 (ALPN h2) to a client that trusts only the
// certificate's CA, and HTTP/1.1 to one that offers nothing else; the
// seeded shopper checks out over Connect and gRPC; the services' own calls
// (OrderProcessing to the domains) go on as without TLS.
func TestCheckoutOverTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile, roots := selfSignedCA(t, t.TempDir())
	cert, err := server.NewCertReloader(certFile, keyFile, server.WithCertLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	sys, err := embedded.Start(t.Context(), embedded.Config{
		Addr: "127.0.0.1:0", DataDir: t.TempDir(), Seed: true, TLS: cert.TLSConfig(),
		Logger: slog.New(authn.NewLogHandler(slog.DiscardHandler)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop(t, sys)
	if !strings.HasPrefix(sys.URL(), "https://127.0.0.1:") {
		t.Fatalf("URL = %s, want https://", sys.URL())
	}
	client := func(protocols func(*http.Protocols)) *http.Client {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: roots}
		tr.Protocols = new(http.Protocols)
		protocols(tr.Protocols)
		return &http.Client{Transport: tr}
	}
	h2 := client(func(p *http.Protocols) { p.SetHTTP2(true) })
	http1 := client(func(p *http.Protocols) { p.SetHTTP1(true) })
	for _, c := range []struct {
		client *http.Client
		major  int
	}{{h2, 2}, {http1, 1}} {
		res, err := c.client.Get(sys.URL() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK || res.ProtoMajor != c.major || (c.major == 2 && res.TLS.NegotiatedProtocol != "h2") {
			t.Fatalf("GET /readyz: %s over %s (ALPN %q), want 200 over HTTP/%d", res.Status, res.Proto, res.TLS.NegotiatedProtocol, c.major)
		}
	}
	if _, err := http.Get(sys.URL() + "/readyz"); err == nil {
		t.Fatal("a client that does not trust the CA was served")
	}

	s := loginWith(t, h2, sys.URL())
	done := s.checkout(t, "WELCOME5", 300, s.card(t, embedded.DemoCard[12:]))
	if done.GetStatus() != orderprocessingv1.OrderStatus_ORDER_STATUS_COMPLETED {
		t.Fatalf("order over TLS ended %v: %v", done.GetStatus(), done)
	}
	grpc := loginWith(t, h2, sys.URL(), connect.WithGRPC())
	if done := grpc.checkout(t, "TEA10", 200, grpc.card(t, embedded.DemoCard[12:])); done.GetStatus() != orderprocessingv1.OrderStatus_ORDER_STATUS_COMPLETED {
		t.Fatalf("order over gRPC and TLS ended %v: %v", done.GetStatus(), done)
	}
	if b := s.balance(t); b != 500 {
		t.Fatalf("balance after two orders = %d, want 500", b)
	}

	// A renewed certificate, moved over the files: new handshakes present
	// it once reloaded, and the connection made before goes on.
	newCert, newKey, newRoots := selfSignedCA(t, t.TempDir())
	for from, to := range map[string]string{newCert: certFile, newKey: keyFile} {
		if err := os.Rename(from, to); err != nil {
			t.Fatal(err)
		}
	}
	if err := cert.Reload(); err != nil {
		t.Fatal(err)
	}
	renewed := client(func(p *http.Protocols) { p.SetHTTP2(true) })
	renewed.Transport.(*http.Transport).TLSClientConfig.RootCAs = newRoots
	if _, err := loginWith(t, renewed, sys.URL()).points.GetBalance(t.Context(), connect.NewRequest(&pointsv1.GetBalanceRequest{})); err != nil {
		t.Fatalf("a client of the new CA: %v", err)
	}
	if b := s.balance(t); b != 500 { // h2, which trusts only the old CA
		t.Fatalf("balance over the old connection = %d", b)
	}
}
