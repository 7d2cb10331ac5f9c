package keys

// External oracle: the Wycheproof vectors (C2SP/wycheproof, Apache 2.0, see
// testdata/wycheproof/LICENSE) for Ed25519, ECDSA P-256 with P1363
// signatures (the ES256 encoding), JWS and JWK sets, run through this
// package's keys and verification.
//
// Divergences, all by design and counted below: a JWS the vectors call
// valid is refused when its algorithm is not EdDSA, ES256, RS256 or PS256
// (RS384, PS512, HS*, ES512: the allow-list of RFC 8725 section 3.1 that
// tokenrelay applies, and HMAC never crosses a service boundary), when its
// header has no kid (keys are found only by issuer and kid), or when a
// segment holds a character outside the base64url alphabet (decoded
// strictly, RFC 7515 section 2). No vector the oracle calls invalid may be
// accepted (a PS256 salt of another length than the hash's, a ROCA
// modulus), and no valid EdDSA, ES256, RS256 or PS256 signature may be
// refused.

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

type wycheFile struct {
	TestGroups []struct {
		Type      string          `json:"type"`
		PublicKey json.RawMessage `json:"publicKey"`
		Public    json.RawMessage `json:"public"`
		Private   json.RawMessage `json:"private"`
		Tests     []struct {
			TcID   int      `json:"tcId"`
			Msg    string   `json:"msg"`
			Sig    string   `json:"sig"`
			JWS    any      `json:"jws"`
			Result string   `json:"result"`
			Flags  []string `json:"flags"`
		} `json:"tests"`
	} `json:"testGroups"`
}

func loadWyche(t *testing.T, name string) wycheFile {
	t.Helper()
	b, err := os.ReadFile("testdata/wycheproof/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var f wycheFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWycheproofEd25519(t *testing.T) {
	t.Parallel()
	n := 0
	for _, g := range loadWyche(t, "ed25519_test.json").TestGroups {
		var pk struct{ PK string }
		if err := json.Unmarshal(g.PublicKey, &pk); err != nil {
			t.Fatal(err)
		}
		key, err := NewPublicKey("k", ed25519.PublicKey(unhex(t, pk.PK)))
		if err != nil {
			t.Fatalf("public key: %v", err)
		}
		for _, tc := range g.Tests {
			n++
			err := key.Verify(string(unhex(t, tc.Msg)), unhex(t, tc.Sig))
			if (err == nil) != (tc.Result == "valid") {
				t.Errorf("tcId %d (%v): Verify = %v, oracle says %s", tc.TcID, tc.Flags, err, tc.Result)
			}
		}
	}
	if n != 151 {
		t.Fatalf("ran %d vectors, want 151", n)
	}
}

func TestWycheproofECDSAP256P1363(t *testing.T) {
	t.Parallel()
	n, acceptable := 0, 0
	for _, g := range loadWyche(t, "ecdsa_secp256r1_sha256_p1363_test.json").TestGroups {
		var pk struct{ Uncompressed string }
		if err := json.Unmarshal(g.PublicKey, &pk); err != nil {
			t.Fatal(err)
		}
		ec, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), unhex(t, pk.Uncompressed))
		if err != nil {
			// Points off the curve are part of the vectors: they must not
			// become keys at all, whatever their tests say.
			for _, tc := range g.Tests {
				n++
				if tc.Result == "valid" {
					t.Errorf("tcId %d: a valid vector with an unusable key: %v", tc.TcID, err)
				}
			}
			continue
		}
		key, err := NewPublicKey("k", ec)
		if err != nil {
			t.Fatalf("public key: %v", err)
		}
		for _, tc := range g.Tests {
			n++
			err := key.Verify(string(unhex(t, tc.Msg)), unhex(t, tc.Sig))
			switch tc.Result {
			case "valid", "invalid":
				if (err == nil) != (tc.Result == "valid") {
					t.Errorf("tcId %d (%v): Verify = %v, oracle says %s", tc.TcID, tc.Flags, err, tc.Result)
				}
			default:
				acceptable++
			}
		}
	}
	if n != 262 {
		t.Fatalf("ran %d vectors, want 262", n)
	}
	t.Logf("%d vectors, %d 'acceptable' ones not judged", n, acceptable)
}

// publicSet turns a Wycheproof private JWK or JWK set into a public JWK set:
// the private members dropped, as an issuer would publish it.
func publicSet(t *testing.T, raw json.RawMessage) []byte {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	keys, ok := v["keys"].([]any)
	if !ok {
		keys = []any{v}
	}
	for _, k := range keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
			delete(k.(map[string]any), private)
		}
	}
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// verdict is what tokenrelay does with a compact JWS given an issuer's key
// set: the header's alg must be EdDSA, ES256, RS256 or PS256, its kid must name a key of
// the set of that algorithm, and the signature must verify. reason says why
// it refused.
func verdict(jws string, set []*PublicKey, setErr error) (accepted bool, reason string) {
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		return false, "malformed"
	}
	hb, err := base64.RawURLEncoding.Strict().DecodeString(parts[0])
	if err != nil {
		return false, "malformed"
	}
	var h struct{ Alg, Kid string }
	if json.Unmarshal(hb, &h) != nil {
		return false, "malformed"
	}
	switch h.Alg {
	case EdDSA, ES256, RS256, PS256:
	default:
		return false, "algorithm"
	}
	if setErr != nil {
		return false, "key set"
	}
	if h.Kid == "" {
		return false, "kid"
	}
	for _, k := range set {
		if k.KID() != h.Kid {
			continue
		}
		if k.Algorithm() != h.Alg {
			return false, "algorithm"
		}
		sig, err := base64.RawURLEncoding.Strict().DecodeString(parts[2])
		if err != nil {
			return false, "malformed"
		}
		if k.Verify(parts[0]+"."+parts[1], sig) != nil {
			return false, "signature"
		}
		return true, ""
	}
	return false, "kid"
}

func notBase64URL(r rune) bool {
	return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
}

func TestWycheproofJWS(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"json_web_signature_test.json", "json_web_key_test.json"} {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			byDesign := map[string]int{}
			n := 0
			for _, g := range loadWyche(t, file).TestGroups {
				keyMaterial := g.Public
				if len(keyMaterial) == 0 {
					keyMaterial = g.Private
				}
				set, setErr := ParseJWKS(publicSet(t, keyMaterial))
				for _, tc := range g.Tests {
					n++
					jws, ok := tc.JWS.(string)
					if !ok {
						// JSON serialisation: tokenrelay reads compact JWS only.
						if tc.Result == "valid" {
							byDesign["JSON serialization"]++
						}
						continue
					}
					accepted, reason := verdict(jws, set, setErr)
					switch {
					case accepted && tc.Result != "valid":
						t.Errorf("tcId %d (%v): accepted, oracle says %s", tc.TcID, tc.Flags, tc.Result)
					case !accepted && tc.Result == "valid" && (reason == "algorithm" || reason == "kid"):
						byDesign[reason]++
					case !accepted && tc.Result == "valid" && reason == "malformed" && strings.ContainsFunc(jws, notBase64URL):
						// RFC 7515 section 2: base64url, no other characters;
						// lenient decoders skip them, so a token would have
						// two readings.
						byDesign["strict base64url"]++
					case !accepted && tc.Result == "valid":
						t.Errorf("tcId %d (%v): refused (%s), oracle says valid", tc.TcID, tc.Flags, reason)
					}
				}
			}
			t.Logf("%d vectors; valid ones refused by design: %v", n, byDesign)
		})
	}
}
