package keys_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
)

// TestRotateAfterWindow (issue 20): a rotation is refused while the next
// key was published less than the window ago (two rotations in one second
// above all), says when it may run, changes nothing, and succeeds once the
// window has passed; Rotate itself still forces it.
func TestRotateAfterWindow(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	r, err := keys.OpenRing(filepath.Join(t.TempDir(), "ring"), keys.WithRingClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	before, _ := r.SigningKey()
	next := r.PublicKeys()[1].KID()
	clk.Add(keys.DefaultPublishWindow - time.Second)
	err = r.RotateAfter(keys.DefaultPublishWindow)
	if !errors.Is(err, keys.ErrRotateTooSoon) || !strings.Contains(err.Error(), next) ||
		!strings.Contains(err.Error(), "59m59s ago") || !strings.Contains(err.Error(), "2027-01-15T09:00:00Z") {
		t.Fatalf("RotateAfter inside the window: %v", err)
	}
	if k, _ := r.SigningKey(); k.KID() != before.KID() {
		t.Fatal("a refused rotation changed the current key")
	}
	clk.Add(time.Second)
	if err := r.RotateAfter(keys.DefaultPublishWindow); err != nil {
		t.Fatalf("RotateAfter once the window passed: %v", err)
	}
	if k, _ := r.SigningKey(); k.KID() != next {
		t.Fatal("the next key was not promoted")
	}
	// The key made by that rotation was published just now.
	clk.Add(time.Second)
	if err := r.RotateAfter(keys.DefaultPublishWindow); !errors.Is(err, keys.ErrRotateTooSoon) {
		t.Fatalf("second rotation a second later: %v", err)
	}
	if err := r.Rotate(); err != nil {
		t.Fatalf("forced rotation: %v", err)
	}
}
