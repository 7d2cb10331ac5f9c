package embedded_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGoClientExample runs the README's Go client program exactly as
// written against a fresh system: a whole checkout with sdk/go/client.
func TestGoClientExample(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "<!-- go-client-example:start -->\n```go\n")
	if ok {
		block, _, ok = strings.Cut(block, "```\n<!-- go-client-example:end -->")
	}
	if !ok {
		t.Fatal("README.md has no Go client example")
	}
	prog := filepath.Join(t.TempDir(), "checkout.go")
	if err := os.WriteFile(prog, []byte(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sys := start(t, t.TempDir())
	defer stop(t, sys)
	// From the repository root: the program resolves the workspace's
	// modules, as it does in a clone.
	cmd := exec.CommandContext(t.Context(), "go", "run", prog, "-url", sys.URL())
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the example failed: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "ord_") || !strings.HasSuffix(last, " ORDER_STATUS_COMPLETED") {
		t.Fatalf("the example's last line is not a completed order:\n%s", out)
	}
}
