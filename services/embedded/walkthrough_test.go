package embedded_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestREADMEWalkthrough runs the README's buf curl checkout exactly as
// written against a fresh system, and checks that the order completed.
func TestREADMEWalkthrough(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "<!-- walkthrough:start -->\n```sh\n")
	if ok {
		block, _, ok = strings.Cut(block, "```\n<!-- walkthrough:end -->")
	}
	if !ok {
		t.Fatal("README.md has no walkthrough block")
	}
	for _, tool := range []string{filepath.Join(root, "node_modules/.bin/buf"), "jq", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is missing: %v", tool, err)
			}
			t.Skipf("skipping: %s is missing (run make install): %v", tool, err)
		}
	}
	// The audit block runs after the walkthrough, with its variables.
	_, audit, ok := strings.Cut(string(readme), "<!-- audit:start -->\n```sh\n")
	if ok {
		audit, _, ok = strings.Cut(audit, "```\n<!-- audit:end -->")
	}
	if !ok {
		t.Fatal("README.md has no audit block")
	}
	block += audit
	sys := start(t, t.TempDir())
	defer stop(t, sys)
	cmd := exec.CommandContext(t.Context(), "bash", "-euo", "pipefail", "-c", block)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "BASE="+sys.URL())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("walkthrough failed: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 2 || lines[0] != `{"amountMinor":"6180","currency":"EUR"}` {
		t.Fatalf("unexpected output:\n%s", out)
	}
	var last struct {
		Status string `json:"status"`
		Steps  []struct {
			Capability string `json:"capability"`
			State      string `json:"state"`
		} `json:"steps"`
	}
	// The last ten lines are the order's token timeline: the checkout
	// token issued, then three confirmation tokens, each issued, consumed
	// and exercised, in that order per token.
	if len(lines) < 12 {
		t.Fatalf("unexpected output:\n%s", out)
	}
	timeline := lines[len(lines)-10:]
	lines = lines[:len(lines)-10]
	seen := map[string][]string{}
	for _, l := range timeline {
		var e struct{ Service, Action, Kind string }
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("timeline line %q: %v\n%s", l, err, out)
		}
		seen[e.Action+" "+e.Kind] = append(seen[e.Action+" "+e.Kind], e.Service)
	}
	for action, want := range map[string]int{"issued checkout": 1, "issued confirmation": 3, "consumed confirmation": 3, "exercised confirmation": 3} {
		if len(seen[action]) != want {
			t.Errorf("timeline has %d %s events, want %d:\n%s", len(seen[action]), action, want, out)
		}
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatalf("last line is not the order: %v\n%s", err, out)
	}
	if last.Status != "ORDER_STATUS_COMPLETED" || len(last.Steps) != 3 {
		t.Fatalf("the walkthrough's order ended %+v\n%s", last, out)
	}
	for _, st := range last.Steps {
		if st.State != "STEP_STATE_APPLIED" {
			t.Fatalf("step %s ended %s", st.Capability, st.State)
		}
	}
}
