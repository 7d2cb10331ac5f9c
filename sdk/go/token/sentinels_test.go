package token_test

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/rpcerr"
	jose "github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// refusals lists every exported sentinel of package token with the reason
// label metrics count it under (tokenrelay_token_refusals_total{reason}):
// labels never change, dashboards depend on them. ErrConfig, a caller's
// mistake, has none.
var refusals = map[string]struct {
	err    error
	reason string
}{
	"ErrTooLarge":      {jose.ErrTooLarge, "too_large"},
	"ErrMalformed":     {jose.ErrMalformed, "malformed"},
	"ErrDuplicateName": {jose.ErrDuplicateName, "duplicate_name"},
	"ErrHeader":        {jose.ErrHeader, "header"},
	"ErrAlgorithm":     {jose.ErrAlgorithm, "algorithm"},
	"ErrKeyID":         {jose.ErrKeyID, "key_id"},
	"ErrType":          {jose.ErrType, "type"},
	"ErrIssuer":        {jose.ErrIssuer, "issuer"},
	"ErrClaims":        {jose.ErrClaims, "claims"},
	"ErrExpired":       {jose.ErrExpired, "expired"},
	"ErrNotYetValid":   {jose.ErrNotYetValid, "not_yet_valid"},
	"ErrLifetime":      {jose.ErrLifetime, "lifetime"},
	"ErrAudience":      {jose.ErrAudience, "audience"},
	"ErrCapability":    {jose.ErrCapability, "capability"},
	"ErrSignature":     {jose.ErrSignature, "signature"},
	"ErrReplayed":      {jose.ErrReplayed, "replayed"},
	"ErrConfig":        {jose.ErrConfig, ""},
	"ErrInvalid":       {jose.ErrInvalid, ""},
}

// declaredSentinels returns the exported package-level variables named
// Err... of the package's non-test sources: the sentinels as written,
// without reflection, so that a new one cannot be missed.
func declaredSentinels(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var names []string
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, spec := range g.Specs {
				for _, n := range spec.(*ast.ValueSpec).Names {
					if n.IsExported() && strings.HasPrefix(n.Name, "Err") {
						names = append(names, n.Name)
					}
				}
			}
		}
	}
	if len(names) < len(refusals) {
		t.Fatalf("found only %d sentinels in the package source: %v", len(names), names)
	}
	return names
}

// TestEverySentinelHasAReasonAndIsMapped fails when a sentinel of the
// package lacks a reason, is not a token defect (ErrInvalid), or would be
// mapped to Internal by rpcerr.Token: a new sentinel must be added to
// refusals with its label.
func TestEverySentinelHasAReasonAndIsMapped(t *testing.T) {
	t.Parallel()
	declared := declaredSentinels(t)
	for _, name := range declared {
		if _, ok := refusals[name]; !ok {
			t.Errorf("token.%s is not in refusals: add it with its reason label (and declare it with defect)", name)
		}
	}
	for name := range refusals {
		if !slices.Contains(declared, name) {
			t.Errorf("refusals lists token.%s, which the package does not declare", name)
		}
	}
	labels := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(refusals)) {
		r := refusals[name]
		wrapped := fmt.Errorf("some check: %w", r.err)
		if got := jose.Reason(wrapped); got != r.reason {
			t.Errorf("Reason(%s) = %q, want %q", name, got, r.reason)
		}
		if r.reason == "" {
			continue
		}
		if other, dup := labels[r.reason]; dup {
			t.Errorf("%s and %s share the reason %q", name, other, r.reason)
		}
		labels[r.reason] = name
		if !errors.Is(wrapped, jose.ErrInvalid) {
			t.Errorf("%s does not wrap ErrInvalid", name)
		}
		if got := jose.Sentinel(wrapped); got != r.err {
			t.Errorf("Sentinel(%s) = %v", name, got)
		}
		for _, opts := range [][]rpcerr.TokenOption{nil, {rpcerr.AsArgument()}} {
			ce := rpcerr.Token(wrapped, opts...)
			if ce.Code() == connect.CodeInternal || ce.Message() != r.err.Error() || !errors.Is(ce, r.err) {
				t.Errorf("rpcerr.Token(%s, %d options) = %v %q, want a refusal naming the sentinel", name, len(opts), ce.Code(), ce.Message())
			}
		}
	}
	if errors.Is(jose.ErrConfig, jose.ErrInvalid) {
		t.Error("ErrConfig is a caller's mistake, not a token defect")
	}
}

// TestReasonOfKeyLookups covers the key errors Verify returns: an unknown
// kid is a token defect, keys that cannot be fetched are not.
func TestReasonOfKeyLookups(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	raw := f.confirmation(t, "coupons")
	other, err := keys.NewRing()
	if err != nil {
		t.Fatal(err)
	}
	v, err := jose.NewVerifier(jose.WithClock(func() time.Time { return epoch }),
		jose.Trust("coupons", other, jose.Accept(jose.Confirmation, "order-processing"), jose.Namespace("coupons")))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	// Verify refuses an unknown kid as a bad signature (a forger must not
	// tell it apart), keeping the lookup's error for errors.Is.
	_, err = jose.Verify(t.Context(), v, jose.Confirmation, raw)
	if !errors.Is(err, keys.ErrKeyNotFound) || !errors.Is(err, jose.ErrInvalid) || jose.Reason(err) != "signature" || jose.Sentinel(err) != jose.ErrSignature {
		t.Fatalf("unknown kid: err = %v, reason %q", err, jose.Reason(err))
	}
	notFound := fmt.Errorf("source: %w", keys.ErrKeyNotFound)
	if jose.Reason(notFound) != "unknown_key" {
		t.Fatalf("keys.ErrKeyNotFound: reason %q", jose.Reason(notFound))
	}
	unavailable := fmt.Errorf("jwks: %w", keys.ErrUnavailable)
	if errors.Is(unavailable, jose.ErrInvalid) || jose.Reason(unavailable) != "keys_unavailable" || jose.Sentinel(unavailable) != keys.ErrUnavailable {
		t.Fatalf("keys unavailable: reason %q", jose.Reason(unavailable))
	}
	for _, err := range []error{nil, errors.New("disk on fire"), jose.ErrConfig} {
		if jose.Reason(err) != "" || jose.Sentinel(err) != nil {
			t.Errorf("Reason(%v) = %q, Sentinel = %v; want none", err, jose.Reason(err), jose.Sentinel(err))
		}
	}
}
