package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// ParseIssuers reads a file of foreign OpenID Connect providers (gatewayd
// -issuers-file), each discovered at its issuer URL and verified by its
// own Profile:
//
//	{"issuers": [{
//	  "issuer": "https://kc.example.com/realms/shop",  // exactly its iss; required
//	  "audience": "tokenrelay-api",                   // default DefaultAudience
//	  "algorithms": ["RS256"],                        // default ForeignAlgorithms
//	  "types": ["at+jwt", "JWT"],                     // default ["at+jwt"]
//	  "max_lifetime": "1h",                           // default 15m, at most 24h
//	  "leeway": "30s",                                // default the gateway's 10s, at most 5m
//	  "scope_claim": ["realm_access", "roles"],       // default ["scope"]
//	  "subject_claim": "sub",                         // default "sub"
//	  "client_id_claim": "azp",                       // default "client_id"
//	  "scope_map": {"shop-customer": ["shop"], "shop-admin": ["shop", "admin"]},
//	  "scopes": ["shop", "admin"]                     // default: any the map grants
//	}]}
//
// (comments are not JSON: the file has none). Unknown members, a repeated
// issuer and a value of the wrong type are refused (ErrConfig); the
// profile's own limits are checked by New.
func ParseIssuers(data []byte) ([]Issuer, error) {
	var f struct {
		Issuers []struct {
			Issuer        string              `json:"issuer"`
			Audience      string              `json:"audience"`
			Algorithms    []string            `json:"algorithms"`
			Types         []string            `json:"types"`
			MaxLifetime   duration            `json:"max_lifetime"`
			Leeway        duration            `json:"leeway"`
			ScopeClaim    []string            `json:"scope_claim"`
			SubjectClaim  string              `json:"subject_claim"`
			ClientIDClaim string              `json:"client_id_claim"`
			ScopeMap      map[string][]string `json:"scope_map"`
			Scopes        []string            `json:"scopes"`
		} `json:"issuers"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: issuers file: %w", ErrConfig, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: issuers file: data after the object", ErrConfig)
	}
	out := make([]Issuer, 0, len(f.Issuers))
	for i, e := range f.Issuers {
		if e.Issuer == "" {
			return nil, fmt.Errorf("%w: issuers file: entry %d has no issuer", ErrConfig, i)
		}
		out = append(out, Issuer{
			Issuer: e.Issuer, Audience: e.Audience, Algorithms: e.Algorithms, Scopes: e.Scopes,
			Profile: &Profile{
				AccessProfile: token.AccessProfile{
					Types: e.Types, MaxLifetime: time.Duration(e.MaxLifetime), Leeway: time.Duration(e.Leeway),
					ScopeClaim: e.ScopeClaim, SubjectClaim: e.SubjectClaim, ClientIDClaim: e.ClientIDClaim,
				},
				ScopeMap: e.ScopeMap,
			},
		})
	}
	return out, nil
}

// duration is a time.Duration written as in Go ("90s", "1h").
type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"1h\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = duration(v)
	return nil
}
