package process_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/process"
)

// TestTLSConfigBothOrNeither: -tls-cert and -tls-key (or their variables)
// go together: neither serves plain HTTP and h2c, one alone is refused
// naming the other, both are read at once.
func TestTLSConfigBothOrNeither(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.crt")
	for _, tc := range []struct {
		name      string
		cert, key string // the variables
		args      []string
		wantErr   string // "" for none
		wantNil   bool
	}{
		{name: "neither", wantNil: true},
		{name: "cert flag alone", args: []string{"-tls-cert", "a.crt"}, wantErr: "-tls-key (" + process.EnvTLSKey + ") is required with -tls-cert"},
		{name: "key variable alone", key: "a.key", wantErr: "-tls-cert (" + process.EnvTLSCert + ") is required with -tls-key"},
		{name: "both, unreadable", cert: missing, args: []string{"-tls-key", "a.key"}, wantErr: missing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(process.EnvTLSCert, tc.cert)
			t.Setenv(process.EnvTLSKey, tc.key)
			var c process.TLSConfig
			fs := flag.NewFlagSet("d", flag.ContinueOnError)
			c.Flags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			r, err := c.Reloader(slog.New(slog.DiscardHandler))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Reloader: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Reloader: %v, want %q", err, tc.wantErr)
			case tc.wantNil && r != nil:
				t.Fatal("a reloader without files")
			}
		})
	}
}

// TestServeEdgeTLS: with a certificate, ServeEdge serves HTTPS, HTTP/2 by
// ALPN, with the probes in front of the handler.
func TestServeEdgeTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile, client := httptestCert(t)
	c := process.TLSConfig{CertFile: certFile, KeyFile: keyFile}
	cert, err := c.Reloader(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	p := process.Process{Name: "public", Addr: "127.0.0.1:0", ShutdownTimeout: time.Second}
	addrs := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- p.ServeEdge(ctx, slog.New(addrLog{addrs}), http.NotFoundHandler(), process.Edge{Cert: cert})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeEdge: %v", err)
		}
	}()
	var addr string
	select {
	case addr = <-addrs:
	case err := <-done:
		t.Fatalf("ServeEdge: %v", err)
	}
	res, err := client.Get("https://" + addr + "/livez")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.ProtoMajor != 2 {
		t.Fatalf("GET /livez: %s over %s", res.Status, res.Proto)
	}
}

// httptestCert writes the certificate and key of an httptest TLS server
// (for 127.0.0.1) to files, and returns them with an HTTP/2 client that
// trusts that certificate alone.
func httptestCert(t *testing.T) (certFile, keyFile string, client *http.Client) {
	t.Helper()
	ts := httptest.NewUnstartedServer(http.NotFoundHandler())
	ts.EnableHTTP2 = true
	ts.StartTLS()
	t.Cleanup(ts.Close)
	c := ts.TLS.Certificates[0]
	pkcs8, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	for name, block := range map[string]*pem.Block{
		certFile: {Type: "CERTIFICATE", Bytes: c.Certificate[0]},
		keyFile:  {Type: "PRIVATE KEY", Bytes: pkcs8},
	} {
		if err := os.WriteFile(name, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile, ts.Client()
}
