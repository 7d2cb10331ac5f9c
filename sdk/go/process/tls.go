package process

import (
	"flag"
	"fmt"
	"log/slog"

	"github.com/tokenrelay/tokenrelay/sdk/go/server"
)

// Environment variables of the flags TLSConfig registers.
const (
	EnvTLSCert = "TOKENRELAY_TLS_CERT"
	EnvTLSKey  = "TOKENRELAY_TLS_KEY"
)

// TLSConfig is the certificate of a public origin (gatewayd, tokenrelayd):
// with both files it serves HTTPS (HTTP/2 and HTTP/1.1 by ALPN, TLS 1.2 at
// least), reloading them on SIGHUP or when they change
// (server.CertReloader); with neither, plain HTTP/1.1 and h2c.
type TLSConfig struct {
	// CertFile holds the certificate, PEM, the leaf first and then any
	// intermediates (-tls-cert, TOKENRELAY_TLS_CERT).
	CertFile string
	// KeyFile holds its private key, PEM; keep it readable by the process
	// alone (-tls-key, TOKENRELAY_TLS_KEY).
	KeyFile string
}

// Flags registers -tls-cert and -tls-key.
func (c *TLSConfig) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.CertFile, "tls-cert", Env(EnvTLSCert, ""),
		"serve HTTPS with the certificate chain (PEM) in `file`, reloaded on SIGHUP or change; with -tls-key (env "+EnvTLSCert+")")
	fs.StringVar(&c.KeyFile, "tls-key", Env(EnvTLSKey, ""),
		"private key (PEM) of -tls-cert in `file` (env "+EnvTLSKey+")")
}

// Reloader returns the reloader of the two files, which log its reloads
// to log; nil when neither is set. One file without the other, or a pair
// that cannot serve, is an error naming it.
func (c TLSConfig) Reloader(log *slog.Logger) (*server.CertReloader, error) {
	switch {
	case c.CertFile == "" && c.KeyFile == "":
		return nil, nil
	case c.KeyFile == "":
		return nil, fmt.Errorf("-tls-key (%s) is required with -tls-cert", EnvTLSKey)
	case c.CertFile == "":
		return nil, fmt.Errorf("-tls-cert (%s) is required with -tls-key", EnvTLSCert)
	}
	return server.NewCertReloader(c.CertFile, c.KeyFile, server.WithCertLogger(log))
}
