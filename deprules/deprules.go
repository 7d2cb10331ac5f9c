// Package deprules holds the dependency rules of the tokenrelay workspace
// and the check that enforces them, in the spirit of buf's dependency lint:
// the layering a newcomer reads from the tree is written down here once,
// and `make test` fails when a package breaks it (TestWorkspace).
//
// The rules, each over the transitive dependencies of a package:
//
//   - The domain and app layers of every service (services/*/internal/domain,
//     services/*/internal/app) import no Connect, no generated code and no
//     database driver: only ports (Connect handlers), adapters (stores) and
//     a service's public face do.
//   - The pure SDK (the token engine, keys, money, ids, vault, the
//     capability interfaces and the constraints sealer) imports no Connect, no generated code and no
//     driver, so a domain's use cases can depend on it freely.
//   - The SDK never imports the server plumbing (sdk/go/server, metrics,
//     process, capabilityd): libraries are usable outside a tokenrelay
//     process; only the plumbing and the binaries assemble processes.
//   - OrderProcessing imports no domain service and no domain's API, tests
//     included: it knows the capability protocol only. Nor the sealer of
//     constraints (sdk/go/capability/sealed) or any JOSE library: it never
//     opens the constraints a domain sealed for itself.
//   - No service imports another service, except the composition roots that
//     assemble them (services/embedded, services/scaleout) and the operator
//     command (cmd/tokenrelay), which re-encrypts every service's tables.
//
// Rules name packages by pattern: a path, "prefix/..." for a path and
// everything below it, and "*" for one path element.
package deprules

import (
	"fmt"
	"slices"
	"strings"
)

// Module is the import path prefix of every workspace module.
const Module = "github.com/tokenrelay/tokenrelay"

// Rule forbids packages matching From (less those matching Except) to
// depend, directly or transitively, on any package matching Forbid.
type Rule struct {
	Name   string
	From   []string
	Except []string
	Forbid []string
	// Tests extends the rule to the packages' tests and what they import.
	Tests bool
}

// Package is what the check knows of one package: its import path (for a
// test variant, the path of the package under test) and its transitive
// dependencies.
type Package struct {
	ImportPath string
	Test       bool
	Deps       []string
}

// Violation is one forbidden dependency.
type Violation struct {
	Rule, Package, Dep string
}

func (v Violation) String() string {
	return fmt.Sprintf("%s: %s depends on %s", v.Rule, v.Package, v.Dep)
}

// Match reports whether path matches pattern: "*" matches one path
// element, a trailing "/..." the path before it and everything below.
func Match(pattern, path string) bool {
	if rest, ok := strings.CutSuffix(pattern, "/..."); ok {
		if Match(rest, path) {
			return true
		}
		pe := strings.Split(path, "/")
		n := len(strings.Split(rest, "/"))
		return len(pe) > n && Match(rest, strings.Join(pe[:n], "/"))
	}
	pp, pe := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(pp) != len(pe) {
		return false
	}
	for i := range pp {
		if pp[i] != "*" && pp[i] != pe[i] {
			return false
		}
	}
	return true
}

func matchAny(patterns []string, path string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return Match(p, path) })
}

// Check returns every violation of rules by pkgs, in the order found.
func Check(rules []Rule, pkgs []Package) []Violation {
	var out []Violation
	for _, r := range rules {
		for _, p := range pkgs {
			if (p.Test && !r.Tests) || !matchAny(r.From, p.ImportPath) || matchAny(r.Except, p.ImportPath) {
				continue
			}
			for _, d := range p.Deps {
				if matchAny(r.Forbid, d) {
					out = append(out, Violation{Rule: r.Name, Package: p.ImportPath, Dep: d})
				}
			}
		}
	}
	return out
}

// transport, generated and drivers are what pure layers must not reach.
var (
	transport = []string{"connectrpc.com/...", "google.golang.org/grpc/..."}
	generated = []string{Module + "/gen/..."}
	drivers   = []string{"github.com/jackc/...", "modernc.org/sqlite/..."}
	plumbing  = []string{
		Module + "/sdk/go/server/...", Module + "/sdk/go/metrics/...", Module + "/sdk/go/process/...",
		Module + "/sdk/go/capability/capabilityd/...",
	}
	domains  = []string{"coupons", "points", "payments"}
	services = []string{"coupons", "points", "payments", "orderprocessing", "identity", "gateway", "embedded", "scaleout"}
)

func impure() []string { return slices.Concat(transport, generated, drivers) }

// Rules are the workspace's dependency rules (see the package doc).
func Rules() []Rule {
	rules := []Rule{
		{
			Name:   "domain and app layers are pure",
			From:   []string{Module + "/services/*/internal/domain/...", Module + "/services/*/internal/app/..."},
			Forbid: impure(),
		},
		{
			Name: "the pure SDK imports no transport, generated code or driver",
			From: []string{
				Module + "/sdk/go/token/...", Module + "/sdk/go/keys/...", Module + "/sdk/go/money",
				Module + "/sdk/go/ids/...", Module + "/sdk/go/vault", Module + "/sdk/go/capability",
				Module + "/sdk/go/capability/sealed",
			},
			Forbid: impure(),
		},
		{
			Name:   "the SDK never imports the server plumbing",
			From:   []string{Module + "/sdk/go/..."},
			Except: plumbing,
			Forbid: plumbing,
		},
	}
	op := Rule{Name: "OrderProcessing imports no domain", From: []string{Module + "/services/orderprocessing/..."}, Tests: true}
	for _, d := range domains {
		op.Forbid = append(op.Forbid, Module+"/services/"+d+"/...", Module+"/gen/go/tokenrelay/"+d+"/...")
	}
	rules = append(rules, op, Rule{
		Name:   "OrderProcessing never opens sealed constraints",
		From:   []string{Module + "/services/orderprocessing/..."},
		Forbid: []string{Module + "/sdk/go/capability/sealed", "github.com/go-jose/go-jose/v4/..."},
		Tests:  true,
	})
	for _, s := range services {
		r := Rule{
			Name:   "no service imports another",
			From:   []string{Module + "/services/" + s + "/..."},
			Except: []string{Module + "/services/embedded/...", Module + "/services/scaleout/..."},
		}
		for _, o := range services {
			if o != s {
				r.Forbid = append(r.Forbid, Module+"/services/"+o+"/...")
			}
		}
		rules = append(rules, r)
	}
	return rules
}
