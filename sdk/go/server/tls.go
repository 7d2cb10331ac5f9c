package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultCertCheckEvery is how often CertReloader.Run looks at the
// certificate and key files for a change.
const DefaultCertCheckEvery = 10 * time.Second

// CertReloader serves HTTPS with a certificate and key read from two PEM
// files, and reads them again when asked (Reload), on SIGHUP, or when
// either file changes (Run), without dropping a connection: a handshake
// gets the certificate current when it starts, and a connection keeps the
// one it was made with. A pair that cannot serve (unreadable, malformed,
// or a key not the certificate's) is refused and the current certificate
// kept, so that a renewal caught half-written (a new certificate, the old
// key) fails once and succeeds at the next check. Neither the key nor
// anything read from its file is ever logged.
//
// Serve with it by wrapping the listener: tls.NewListener(ln,
// r.TLSConfig()) passed to Run. Server.Serve then negotiates HTTP/2 (ALPN
// h2) and HTTP/1.1 on it, and every Option holds as over plain TCP; the
// filter of a listener made by Listen resets a refused connection before
// its handshake.
type CertReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	every             time.Duration
	hup               <-chan os.Signal
	cert              atomic.Pointer[tls.Certificate]
	mu                sync.Mutex // serializes loads; guards seen
	seen              stamp      // of the files when last read
}

// CertOption configures NewCertReloader.
type CertOption func(*CertReloader)

// WithCertLogger logs each reload, done (with the certificate's names and
// expiry) or refused (with the reason), to log. Default: slog.Default().
func WithCertLogger(log *slog.Logger) CertOption {
	return func(r *CertReloader) { r.log = log }
}

// WithCertCheckEvery sets how often Run looks at the files' modification
// time and size. Default DefaultCertCheckEvery; d <= 0 keeps it.
func WithCertCheckEvery(d time.Duration) CertOption {
	return func(r *CertReloader) {
		if d > 0 {
			r.every = d
		}
	}
}

// WithReloadSignal makes Run reload whenever c delivers, instead of on
// SIGHUP (tests send on c).
func WithReloadSignal(c <-chan os.Signal) CertOption {
	return func(r *CertReloader) { r.hup = c }
}

// NewCertReloader reads the certificate (PEM, the leaf first, then any
// intermediates) of certFile and the private key (PEM) of keyFile, and
// returns a CertReloader serving them, or the reason they cannot serve.
func NewCertReloader(certFile, keyFile string, opts ...CertOption) (*CertReloader, error) {
	r := &CertReloader{certFile: certFile, keyFile: keyFile, log: slog.Default(), every: DefaultCertCheckEvery}
	for _, o := range opts {
		o(r)
	}
	if _, err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

// TLSConfig returns a server configuration presenting the current
// certificate at each handshake: TLS 1.2 at least, HTTP/2 (h2) and
// HTTP/1.1 offered by ALPN.
func (r *CertReloader) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return r.cert.Load(), nil
		},
	}
}

// Certificate returns the certificate served now; its Leaf is parsed.
func (r *CertReloader) Certificate() *tls.Certificate { return r.cert.Load() }

// Reload reads the files again and serves their pair from the next
// handshake on. A pair that cannot serve is logged and returned, and the
// current certificate kept.
func (r *CertReloader) Reload() error {
	leaf, err := r.load()
	if err != nil {
		r.log.Error("TLS certificate not reloaded: keeping the current one", "err", err)
		return err
	}
	r.log.Info("TLS certificate reloaded", "cert", r.certFile, "subject", leaf.Leaf.Subject.String(),
		"dns_names", leaf.Leaf.DNSNames, "not_after", leaf.Leaf.NotAfter)
	return nil
}

// Run reloads the certificate on SIGHUP (or the signal of
// WithReloadSignal), and whenever a check, every DefaultCertCheckEvery
// (WithCertCheckEvery), finds that the modification time or size of
// either file changed since they were last read, until ctx ends: a Task.
// A refused pair is logged (Reload) and Run goes on.
func (r *CertReloader) Run(ctx context.Context) error {
	hup := r.hup
	if hup == nil {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGHUP)
		defer signal.Stop(c)
		hup = c
	}
	tick := time.NewTicker(r.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-hup:
		case <-tick.C:
			if !r.changed() {
				continue
			}
		}
		_ = r.Reload() // logged
	}
}

// load reads and checks the pair and, when it can serve, makes it current.
// The files' stamp is noted either way, so that a bad pair is tried once
// per change, not at every check.
func (r *CertReloader) load() (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = r.stampNow() // before reading: a change while reading is seen next time
	certPEM, err := os.ReadFile(r.certFile)
	if err != nil {
		return nil, fmt.Errorf("server: TLS certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(r.keyFile)
	if err != nil {
		return nil, fmt.Errorf("server: TLS key: %w", err)
	}
	// X509KeyPair's errors describe the input, never quote it.
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("server: TLS certificate %s with key %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert.Store(&cert)
	return &cert, nil
}

// changed reports whether the files' stamp differs from when they were
// last read.
func (r *CertReloader) changed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stampNow() != r.seen
}

// stamp is what a check compares of the two files: modification time and
// size (zero for a file that cannot be read).
type stamp struct {
	certTime, keyTime time.Time
	certSize, keySize int64
}

// stampNow returns the files' stamp now.
func (r *CertReloader) stampNow() stamp {
	var s stamp
	if fi, err := os.Stat(r.certFile); err == nil {
		s.certTime, s.certSize = fi.ModTime(), fi.Size()
	}
	if fi, err := os.Stat(r.keyFile); err == nil {
		s.keyTime, s.keySize = fi.ModTime(), fi.Size()
	}
	return s
}
