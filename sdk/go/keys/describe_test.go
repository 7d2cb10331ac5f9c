package keys_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
)

func TestDescribe(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	r, err := keys.OpenRing(filepath.Join(t.TempDir(), "ring"), keys.WithRingClock(clk.Now), keys.WithRetention(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	before := r.Describe()
	if len(before) != 2 || before[0].Role != keys.RoleCurrent || before[1].Role != keys.RoleNext {
		t.Fatalf("new ring: %+v", before)
	}
	cur, _ := r.SigningKey()
	if before[0].KID != cur.KID() || before[0].Algorithm != keys.EdDSA || !before[0].Created.Equal(clk.Now()) ||
		!before[0].RetireUntil.IsZero() {
		t.Fatalf("current: %+v", before[0])
	}
	clk.Add(time.Minute)
	if err := r.Rotate(); err != nil {
		t.Fatal(err)
	}
	after := r.Describe()
	want := []struct{ kid, role string }{
		{before[1].KID, keys.RoleCurrent}, {"", keys.RoleNext}, {before[0].KID, keys.RoleRetired},
	}
	if len(after) != len(want) {
		t.Fatalf("after rotate: %+v", after)
	}
	for i, w := range want {
		if after[i].Role != w.role || (w.kid != "" && after[i].KID != w.kid) {
			t.Fatalf("after rotate, key %d = %+v, want %s %s", i, after[i], w.role, w.kid)
		}
	}
	if got := after[2].RetireUntil; !got.Equal(clk.Now().Add(time.Hour)) {
		t.Fatalf("retired until %v", got)
	}
	clk.Add(time.Hour + time.Second)
	if n := len(r.Describe()); n != 2 {
		t.Fatalf("after retention: %d keys, want the retired one pruned", n)
	}
}
