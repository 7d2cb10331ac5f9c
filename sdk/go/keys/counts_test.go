package keys

import "testing"

func TestCounts(t *testing.T) {
	// Not parallel: other tests of this package sign and verify too, so
	// only the increase made here is certain, and only without them.
	k, err := GenerateKey(EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	s0, v0 := Counts()
	sig, err := k.Sign("a.b")
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Public().Verify("a.b", sig); err != nil {
		t.Fatal(err)
	}
	_ = k.Public().Verify("a.c", sig) // a failed check counts too
	s1, v1 := Counts()
	if s1-s0 < 1 || v1-v0 < 2 {
		t.Fatalf("counts moved by %d signs and %d verifies, want at least 1 and 2", s1-s0, v1-v0)
	}
}
