// Package oidctest runs a real OpenID Connect provider for tests: npm
// oidc-provider (installed by `make install` from the root package-lock.json)
// under Node, on a free loopback port, from the script
// services/gateway/testdata/oidc-provider.mjs. It issues RFC 9068 access
// tokens (typ at+jwt) signed with RS256 or ES256, through the client
// credentials grant and the authorization code flow (driven over HTTP
// through the provider's development interactions; no browser), and can be
// taken down, brought back and made to rotate its keys.
//
// When node or the package is missing, Start skips the test saying so, or
// fails it when EnvRequire or sqldbtest.EnvRequirePostgres is "1" (as in
// CI, where .ci/run sets the latter): CI never skips a real provider.
package oidctest

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Environment variables read by Start.
const (
	// EnvRequire, set to "1", turns a missing node or oidc-provider from a
	// skip into a failure.
	EnvRequire = "TOKENRELAY_REQUIRE_OIDC_PROVIDER"
	// envRequireCI is sqldbtest.EnvRequirePostgres, which .ci/run sets:
	// under CI nothing that needs a local dependency may skip.
	envRequireCI = "TOKENRELAY_REQUIRE_POSTGRES"
)

// What the provider serves (see the script).
const (
	// Audience is the aud of every access token.
	Audience = "tokenrelay-api"
	// RS256 and ES256 are the resource indicators whose tokens are signed
	// with that algorithm.
	RS256 = "https://rs256.tokenrelay.test"
	ES256 = "https://es256.tokenrelay.test"
	// BatchClient is the client of the client credentials grant; its
	// tokens have sub "batch" (RFC 9068 section 2.2: the client's own).
	BatchClient = "batch"
	// WebClient is the public client of the authorization code flow.
	WebClient   = "web"
	batchSecret = "batch-secret" // a test fixture, not a secret
	redirectURI = "http://127.0.0.1/cb"
)

// Provider is a running oidc-provider.
type Provider struct {
	// Issuer is its issuer URL, http://127.0.0.1:<port>.
	Issuer string

	mu     sync.Mutex
	stdin  io.WriteCloser
	stdout *bufio.Scanner
}

// Start runs the provider until the end of the test.
func Start(t testing.TB) *Provider {
	t.Helper()
	node, script, err := locate()
	if err != nil {
		msg := fmt.Sprintf("a real OpenID Connect provider is needed: %v (install Node.js and run `make install`)", err)
		if os.Getenv(EnvRequire) == "1" || os.Getenv(envRequireCI) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, node, script, "0")
	cmd.Dir = filepath.Dir(script)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", script, err)
	}
	t.Cleanup(func() {
		_ = stdin.Close() // the script exits at the end of its input
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cancel()
			<-done
		}
		cancel()
	})
	p := &Provider{stdin: stdin, stdout: bufio.NewScanner(out)}
	var hello struct {
		Issuer string `json:"issuer"`
	}
	if err := p.read(&hello); err != nil || hello.Issuer == "" {
		t.Fatalf("oidc-provider did not start: %v\n%s", err, stderr.String())
	}
	p.Issuer = hello.Issuer
	return p
}

// locate finds node and the script, and checks that oidc-provider can be
// imported from the script's directory.
func locate() (node, script string, err error) {
	node, err = exec.LookPath("node")
	if err != nil {
		return "", "", errors.New("node is not on PATH")
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", "", errors.New("cannot find the oidctest source")
	}
	script = filepath.Join(filepath.Dir(file), "..", "testdata", "oidc-provider.mjs")
	if _, err := os.Stat(script); err != nil {
		return "", "", err
	}
	for dir := filepath.Dir(script); ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider", "package.json")); err == nil {
			return node, script, nil
		}
		if filepath.Dir(dir) == dir {
			return "", "", errors.New("npm package oidc-provider is not installed")
		}
	}
}

// read reads the script's next JSON line into v, skipping the notices
// oidc-provider itself prints on standard output.
func (p *Provider) read(v any) error {
	for p.stdout.Scan() {
		if line := p.stdout.Bytes(); len(line) > 0 && line[0] == '{' {
			return json.Unmarshal(line, v)
		}
	}
	if err := p.stdout.Err(); err != nil {
		return err
	}
	return io.ErrUnexpectedEOF
}

// command sends one command and waits for its answer.
func (p *Provider) command(t testing.TB, cmd string) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := io.WriteString(p.stdin, cmd+"\n"); err != nil {
		t.Fatalf("oidc-provider %s: %v", cmd, err)
	}
	var answer struct {
		OK    string `json:"ok"`
		Error string `json:"error"`
	}
	if err := p.read(&answer); err != nil || answer.OK != cmd {
		t.Fatalf("oidc-provider %s: %+v, %v", cmd, answer, err)
	}
}

// Down stops the provider: nothing listens on its port until Up.
func (p *Provider) Down(t testing.TB) { p.command(t, "down") }

// Up makes the provider listen again on its port.
func (p *Provider) Up(t testing.TB) { p.command(t, "up") }

// Rotate makes the provider sign with new keys from now on; the old ones
// stay published.
func (p *Provider) Rotate(t testing.TB) { p.command(t, "rotate") }

// ClientCredentials returns an access token of BatchClient for itself,
// with scope, signed as resource (RS256 or ES256) says.
func (p *Provider) ClientCredentials(t testing.TB, resource, scope string) string {
	t.Helper()
	return p.token(t, http.DefaultClient, url.Values{
		"grant_type": {"client_credentials"}, "client_id": {BatchClient}, "client_secret": {batchSecret},
		"scope": {scope}, "resource": {resource},
	})
}

// AuthorizationCode signs user in through the authorization code flow
// with PKCE, as a browser would, and returns the access token WebClient
// gets for scope (for example "openid shop"), signed as resource says.
func (p *Provider) AuthorizationCode(t testing.TB, resource, user, scope string) string {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	verifier := random(t)
	challenge := sha256.Sum256([]byte(verifier))
	state := random(t)
	next := p.Issuer + "/auth?" + url.Values{
		"client_id": {WebClient}, "response_type": {"code"}, "redirect_uri": {redirectURI}, "scope": {scope},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(challenge[:])}, "code_challenge_method": {"S256"},
		"resource": {resource}, "state": {state},
	}.Encode()
	// Follow the redirects; answer each interaction (login, then
	// consent) until the provider sends the browser back with a code.
	for range 10 {
		res, err := browser.Get(next)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		loc, err := res.Location()
		if err != nil {
			t.Fatalf("GET %s: %s, no redirect", next, res.Status)
		}
		if strings.HasPrefix(loc.String(), redirectURI) {
			q := loc.Query()
			if q.Get("state") != state || q.Get("code") == "" {
				t.Fatalf("redirect back without code or with another state: error %q", q.Get("error"))
			}
			return p.token(t, browser, url.Values{
				"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "code_verifier": {verifier},
				"redirect_uri": {redirectURI}, "client_id": {WebClient},
			})
		}
		next = loc.String()
		if strings.HasPrefix(loc.Path, "/interaction/") {
			next = p.interact(t, browser, loc.String(), user)
		}
	}
	t.Fatal("authorization code flow: too many redirects")
	return ""
}

// interact answers the interaction at uri: the login prompt with user,
// the consent prompt by granting what was asked. It returns where the
// provider sends the browser next.
func (p *Provider) interact(t testing.TB, browser *http.Client, uri, user string) string {
	t.Helper()
	res, err := browser.Get(uri)
	if err != nil {
		t.Fatal(err)
	}
	page, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET interaction: %s %v", res.Status, err)
	}
	form := url.Values{"prompt": {"consent"}}
	if strings.Contains(string(page), `name="prompt" value="login"`) {
		form = url.Values{"prompt": {"login"}, "login": {user}, "password": {"any"}}
	}
	res, err = browser.PostForm(uri, form)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	loc, err := res.Location()
	if err != nil {
		t.Fatalf("POST interaction %s: %s, no redirect", form.Get("prompt"), res.Status)
	}
	return loc.String()
}

// token posts a token request and returns the access token.
func (p *Provider) token(t testing.TB, c *http.Client, form url.Values) string {
	t.Helper()
	res, err := c.PostForm(p.Issuer+"/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&body); err != nil || body.AccessToken == "" {
		// The answer's error, never a token.
		t.Fatalf("token endpoint (%s): %s %s %v", form.Get("grant_type"), body.Error, body.Description, err)
	}
	return body.AccessToken
}

func random(t testing.TB) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// lockedBuffer collects the script's standard error for a failure message.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() < 64<<10 {
		l.b.Write(p)
	}
	return len(p), nil
}

func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }
