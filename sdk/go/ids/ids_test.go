package ids

import "testing"

func TestNewIsValidAndUnique(t *testing.T) {
	t.Parallel()
	seen := make(map[string]bool)
	for range 1000 {
		id := New("ord")
		if !Valid("ord", id) {
			t.Fatalf("New(%q) = %q, not Valid", "ord", id)
		}
		if seen[id] {
			t.Fatalf("New returned %q twice", id)
		}
		seen[id] = true
	}
	if jti := New(""); !Valid("", jti) || len(jti) != 26 {
		t.Fatalf("New(\"\") = %q", jti)
	}
}

func TestValidRefuses(t *testing.T) {
	t.Parallel()
	good := New("op")
	for _, tc := range []struct{ prefix, id string }{
		{"op", ""},
		{"op", "op_"},
		{"op", "ord" + good[2:]},
		{"op", good + "a"},
		{"op", good[:len(good)-1]},
		{"op", good[:len(good)-1] + "A"},
		{"op", good[:len(good)-1] + "1"},
		{"op", good[:len(good)-1] + "é"},
		{"", good},
	} {
		if Valid(tc.prefix, tc.id) {
			t.Errorf("Valid(%q, %q) = true", tc.prefix, tc.id)
		}
	}
}
