package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/server"
	"github.com/tokenrelay/tokenrelay/sdk/go/server/servertest"
)

// certFiles returns the paths of a certificate and key in a new directory.
func certFiles(t *testing.T) (certFile, keyFile string) {
	dir := t.TempDir()
	return filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
}

// lockedBuffer is a log destination safe for the server's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// serveTLS serves h with opts through Run on a TLS listener of r until the
// test ends, and returns its https base URL.
func serveTLS(t *testing.T, r *server.CertReloader, h http.Handler, accept func(net.Addr) bool, opts ...server.Option) string {
	t.Helper()
	ln, err := server.Listen("127.0.0.1:0", accept)
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]server.Option{server.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.New(h, opts...), tls.NewListener(ln, r.TLSConfig()), time.Second)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return "https://" + ln.Addr().String()
}

// tlsClient trusts roots alone and speaks the protocols of p.
func tlsClient(roots *x509.CertPool, p func(*http.Protocols)) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: roots}
	t.Protocols = new(http.Protocols)
	p(t.Protocols)
	return &http.Client{Transport: t}
}

func h2Only(p *http.Protocols)    { p.SetHTTP2(true) }
func http1Only(p *http.Protocols) { p.SetHTTP1(true) }

// proto answers the request's protocol.
var proto = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.Proto) })

// getTLS GETs url with c and returns the body and the serial number of the
// certificate the server presented.
func getTLS(t *testing.T, c *http.Client, url string) (string, *big.Int) {
	t.Helper()
	res, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), res.TLS.PeerCertificates[0].SerialNumber
}

// TestTLSServesH2AndHTTP1: over TLS a server speaks HTTP/2 (ALPN h2) and
// HTTP/1.1, with the certificate of the files, TLS 1.2 at least; the
// header limit and the connection filter still hold.
func TestTLSServesH2AndHTTP1(t *testing.T) {
	t.Parallel()
	certFile, keyFile := certFiles(t)
	c := servertest.WriteCert(t, certFile, keyFile)
	r, err := server.NewCertReloader(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	var refuse atomic.Bool
	base := serveTLS(t, r, proto, func(net.Addr) bool { return !refuse.Load() }, server.WithMaxHeaderBytes(1<<10))

	res, err := tlsClient(c.Roots, h2Only).Get(base)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.ProtoMajor != 2 || res.TLS.NegotiatedProtocol != "h2" || res.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("h2 client: %s, ALPN %q, version %x", res.Proto, res.TLS.NegotiatedProtocol, res.TLS.Version)
	}
	if got, serial := getTLS(t, tlsClient(c.Roots, http1Only), base); got != "HTTP/1.1" || serial.Cmp(c.Serial) != 0 {
		t.Fatalf("HTTP/1.1 client: %q, certificate %v, want %v", got, serial, c.Serial)
	}

	old := &tls.Config{RootCAs: c.Roots, MaxVersion: tls.VersionTLS11}
	if conn, err := tls.Dial("tcp", strings.TrimPrefix(base, "https://"), old); err == nil {
		conn.Close()
		t.Fatal("TLS 1.1 handshake accepted")
	}

	req, err := http.NewRequest(http.MethodGet, base, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Big", strings.Repeat("x", 8<<10))
	res, err = tlsClient(c.Roots, http1Only).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("8 KiB header: %s, want 431", res.Status)
	}

	// A refused peer's connection is reset before its handshake.
	refuse.Store(true)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "https://"))
	if err != nil {
		return // reset before Dial returned: refused
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(hangGuard)); err != nil {
		t.Fatal(err)
	}
	err = tls.Client(conn, &tls.Config{RootCAs: c.Roots, ServerName: "localhost"}).Handshake()
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) { // EPIPE: written after the reset
		t.Fatalf("refused peer's handshake: %v, want the connection reset", err)
	}
}

// TestReload: after Reload, a new handshake presents the new certificate
// while a connection made before goes on with the old one; a bad
// replacement (a key of another certificate, a file that is no PEM) is
// refused, keeps the current certificate and leaves no key in the log.
func TestReload(t *testing.T) {
	t.Parallel()
	certFile, keyFile := certFiles(t)
	first := servertest.WriteCert(t, certFile, keyFile)
	var log lockedBuffer
	r, err := server.NewCertReloader(certFile, keyFile, server.WithCertLogger(slog.New(slog.NewJSONHandler(&log, nil))))
	if err != nil {
		t.Fatal(err)
	}
	base := serveTLS(t, r, proto, nil)
	before := tlsClient(first.Roots, h2Only) // keeps its connection
	if _, serial := getTLS(t, before, base); serial.Cmp(first.Serial) != 0 {
		t.Fatalf("first certificate %v, want %v", serial, first.Serial)
	}

	second := servertest.WriteCert(t, certFile, keyFile)
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, serial := getTLS(t, tlsClient(second.Roots, h2Only), base); serial.Cmp(second.Serial) != 0 {
		t.Fatalf("after Reload: certificate %v, want %v", serial, second.Serial)
	}
	// The first client trusts only the first CA: it is served over the
	// connection it made before, not a new handshake.
	if got, serial := getTLS(t, before, base); got != "HTTP/2.0" || serial.Cmp(first.Serial) != 0 {
		t.Fatalf("old connection: %q, certificate %v", got, serial)
	}

	otherCert, otherKey := certFiles(t)
	other := servertest.WriteCert(t, otherCert, otherKey)
	for name, bad := range map[string]func(){
		"key of another certificate": func() { copyFile(t, otherKey, keyFile) },
		"no PEM":                     func() { writeFile(t, certFile, "not a certificate") },
	} {
		bad()
		if err := r.Reload(); err == nil {
			t.Fatalf("%s: Reload = nil", name)
		}
		if _, serial := getTLS(t, tlsClient(second.Roots, h2Only), base); serial.Cmp(second.Serial) != 0 {
			t.Fatalf("%s: certificate %v, want the previous %v", name, serial, second.Serial)
		}
	}
	for _, key := range [][]byte{first.KeyPEM, second.KeyPEM, other.KeyPEM} {
		body := strings.Split(string(key), "\n")[1] // the first line of base64
		if strings.Contains(log.String(), body) || strings.Contains(log.String(), "PRIVATE KEY") {
			t.Fatalf("key material logged:\n%s", log.String())
		}
	}
	if !strings.Contains(log.String(), keyFile) {
		t.Fatalf("the refusals are not logged with the files:\n%s", log.String())
	}
}

// TestReloadTask: Run reloads on the signal, and on a tick when a file's
// modification time or size changed, not otherwise; a bad pair keeps the
// certificate and Run goes on. The bubble's clock makes the ticks
// immediate and synctest.Wait waits for Run to have acted.
func TestReloadTask(t *testing.T) {
	t.Parallel()
	certFile, keyFile := certFiles(t)
	first := servertest.WriteCert(t, certFile, keyFile)
	synctest.Test(t, func(t *testing.T) {
		const every = 10 * time.Second
		hup := make(chan os.Signal)
		r, err := server.NewCertReloader(certFile, keyFile, server.WithCertLogger(slog.New(slog.DiscardHandler)),
			server.WithCertCheckEvery(every), server.WithReloadSignal(hup))
		if err != nil {
			t.Fatal(err)
		}
		serial := func() *big.Int {
			synctest.Wait()
			return r.Certificate().Leaf.SerialNumber
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- r.Run(ctx) }()

		second := servertest.WriteCert(t, certFile, keyFile)
		touch(t, time.Unix(1e9, 0), certFile, keyFile)
		if got := serial(); got.Cmp(first.Serial) != 0 {
			t.Fatalf("reloaded unasked: %v", got)
		}
		hup <- syscall.SIGHUP
		if got := serial(); got.Cmp(second.Serial) != 0 {
			t.Fatalf("after SIGHUP: %v, want %v", got, second.Serial)
		}
		time.Sleep(every) // a tick, files unchanged since the reload
		if got := serial(); got.Cmp(second.Serial) != 0 {
			t.Fatalf("after a tick without change: %v", got)
		}

		third := servertest.WriteCert(t, certFile, keyFile)
		touch(t, time.Unix(2e9, 0), certFile, keyFile)
		time.Sleep(every)
		if got := serial(); got.Cmp(third.Serial) != 0 {
			t.Fatalf("after a tick with new files: %v, want %v", got, third.Serial)
		}

		writeFile(t, keyFile, "not a key")
		time.Sleep(every)
		hup <- syscall.SIGHUP
		if got := serial(); got.Cmp(third.Serial) != 0 {
			t.Fatalf("after a bad key: %v, want the previous %v", got, third.Serial)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
	})
}

// TestNewCertReloaderRefusesBadPair: a pair that cannot serve fails at
// start, naming the file.
func TestNewCertReloaderRefusesBadPair(t *testing.T) {
	t.Parallel()
	certFile, keyFile := certFiles(t)
	if _, err := server.NewCertReloader(certFile, keyFile); err == nil || !strings.Contains(err.Error(), certFile) {
		t.Fatalf("missing files: %v", err)
	}
	servertest.WriteCert(t, certFile, keyFile)
	otherCert, otherKey := certFiles(t)
	servertest.WriteCert(t, otherCert, otherKey)
	if _, err := server.NewCertReloader(certFile, otherKey); err == nil {
		t.Fatal("mismatched key accepted")
	}
}

// touch sets the modification time of files to mtime, so that a change is
// seen whatever the file system's timestamp granularity.
func touch(t *testing.T, mtime time.Time, files ...string) {
	t.Helper()
	for _, f := range files {
		if err := os.Chtimes(f, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, string(b))
}
