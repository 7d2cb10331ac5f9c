package deprules_test

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/tokenrelay/tokenrelay/deprules"
)

// TestWorkspace checks every package of every module of go.work, tests
// included, against Rules.
func TestWorkspace(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}/...").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	patterns := strings.Fields(string(out))
	if len(patterns) < 10 {
		t.Fatalf("go list -m found %d modules, want the whole workspace", len(patterns))
	}
	cmd := exec.Command("go", append([]string{"list", "-e", "-test", "-json=ImportPath,ForTest,Deps,Error"}, patterns...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pkgs []deprules.Package
	for dec := json.NewDecoder(stdout); ; {
		var p struct {
			ImportPath, ForTest string
			Deps                []string
			Error               *struct{ Err string }
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list -json: %v", err)
		}
		if p.Error != nil {
			t.Fatalf("go list: %s: %s", p.ImportPath, p.Error.Err)
		}
		path, _, _ := strings.Cut(p.ImportPath, " ")
		test := p.ForTest != "" || strings.HasSuffix(path, ".test")
		if p.ForTest != "" {
			path = p.ForTest
		}
		pkgs = append(pkgs, deprules.Package{ImportPath: strings.TrimSuffix(path, ".test"), Test: test, Deps: p.Deps})
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, v := range deprules.Check(deprules.Rules(), pkgs) {
		t.Error(v)
	}
	// The rules must be about packages that exist: a rule whose From
	// matches nothing checks nothing.
	for _, r := range deprules.Rules() {
		if !slices.ContainsFunc(pkgs, func(p deprules.Package) bool {
			return slices.ContainsFunc(r.From, func(f string) bool { return deprules.Match(f, p.ImportPath) })
		}) {
			t.Errorf("rule %q matches no package of the workspace", r.Name)
		}
	}
}

// TestCheckFindsViolations runs Rules over made-up packages that break
// each rule once, and over ones that keep them.
func TestCheckFindsViolations(t *testing.T) {
	t.Parallel()
	m := deprules.Module
	tests := []struct {
		name string
		pkg  deprules.Package
		want string // rule name; "" for none
	}{
		{"app imports connect", deprules.Package{ImportPath: m + "/services/coupons/internal/app", Deps: []string{"connectrpc.com/connect"}}, "domain and app layers are pure"},
		{"domain imports generated code", deprules.Package{ImportPath: m + "/services/points/internal/domain", Deps: []string{m + "/gen/go/tokenrelay/points/v1"}}, "domain and app layers are pure"},
		{"app imports pgx", deprules.Package{ImportPath: m + "/services/payments/internal/app", Deps: []string{"github.com/jackc/pgx/v5"}}, "domain and app layers are pure"},
		{"app imports money", deprules.Package{ImportPath: m + "/services/payments/internal/app", Deps: []string{m + "/sdk/go/money"}}, ""},
		{"ports import connect", deprules.Package{ImportPath: m + "/services/coupons/internal/ports", Deps: []string{"connectrpc.com/connect"}}, ""},
		{"token imports connect", deprules.Package{ImportPath: m + "/sdk/go/token", Deps: []string{"connectrpc.com/connect"}}, "the pure SDK imports no transport, generated code or driver"},
		{"capability imports sqlite", deprules.Package{ImportPath: m + "/sdk/go/capability", Deps: []string{"modernc.org/sqlite"}}, "the pure SDK imports no transport, generated code or driver"},
		{"jwks imports metrics", deprules.Package{ImportPath: m + "/sdk/go/jwks", Deps: []string{m + "/sdk/go/metrics"}}, "the SDK never imports the server plumbing"},
		{"process imports server", deprules.Package{ImportPath: m + "/sdk/go/process", Deps: []string{m + "/sdk/go/server"}}, ""},
		{"OrderProcessing test imports a domain", deprules.Package{ImportPath: m + "/services/orderprocessing", Test: true, Deps: []string{m + "/services/points"}}, "OrderProcessing imports no domain"},
		{"OrderProcessing imports a domain API", deprules.Package{ImportPath: m + "/services/orderprocessing/internal/saga", Deps: []string{m + "/gen/go/tokenrelay/payments/v1/paymentsv1connect"}}, "OrderProcessing imports no domain"},
		{"OrderProcessing imports the sealer", deprules.Package{ImportPath: m + "/services/orderprocessing/internal/app", Deps: []string{m + "/sdk/go/capability/sealed"}}, "OrderProcessing never opens sealed constraints"},
		{"OrderProcessing test imports go-jose", deprules.Package{ImportPath: m + "/services/orderprocessing", Test: true, Deps: []string{"github.com/go-jose/go-jose/v4"}}, "OrderProcessing never opens sealed constraints"},
		{"the sealer imports connect", deprules.Package{ImportPath: m + "/sdk/go/capability/sealed", Deps: []string{"connectrpc.com/connect"}}, "the pure SDK imports no transport, generated code or driver"},
		{"a domain imports another", deprules.Package{ImportPath: m + "/services/coupons/internal/ports", Deps: []string{m + "/services/identity"}}, "no service imports another"},
		{"the composition root imports services", deprules.Package{ImportPath: m + "/services/embedded", Deps: []string{m + "/services/coupons", m + "/services/identity"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := deprules.Check(deprules.Rules(), []deprules.Package{tt.pkg})
			switch {
			case tt.want == "" && len(got) > 0:
				t.Errorf("violations %v, want none", got)
			case tt.want != "" && (len(got) != 1 || got[0].Rule != tt.want):
				t.Errorf("violations %v, want one of %q", got, tt.want)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, path string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/bc", false},
		{"a/b/...", "a/b", true},
		{"a/b/...", "a/b/c/d", true},
		{"a/b/...", "a/bc", false},
		{"a/*/c", "a/x/c", true},
		{"a/*/c", "a/x/y/c", false},
		{"a/*/c/...", "a/x/c/d", true},
		{"a/*/c/...", "a/x/d", false},
	}
	for _, tt := range tests {
		if got := deprules.Match(tt.pattern, tt.path); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.path, got, tt.want)
		}
	}
}
