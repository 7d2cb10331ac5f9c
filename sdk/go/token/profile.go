package token

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Bounds of an AccessProfile.
const (
	// MaxForeignLifetime bounds AccessProfile.MaxLifetime: 24 hours, the
	// default lifetime of an Auth0 access token.
	MaxForeignLifetime = 24 * time.Hour
	// MaxForeignLeeway bounds AccessProfile.Leeway: 5 minutes, the clock
	// skew most OpenID Connect libraries allow.
	MaxForeignLeeway = 5 * time.Minute
	// maxScopes bounds the scopes read from a foreign token.
	maxScopes = 64
)

// AccessProfile says how the access tokens of one foreign issuer (an
// OpenID Connect provider outside tokenrelay) are verified: real providers
// differ from RFC 9068 and from one another in what they put where. Pass
// it to Trust with Profile, next to Accept(Access, audience) and the
// Algorithms the provider signs with (keys.RS256, keys.PS256, keys.ES256,
// keys.EdDSA). The zero value is RFC 9068's profile.
//
// What a profile allows, and tokenrelay's own issuers may not (RFC 8725
// 3.11-3.12 ask each verifier to be as strict as its issuers allow):
// header parameters besides alg, kid and typ that are not a key source,
// a key or an extension (x5t, private parameters: RFC 7515 4 says to
// ignore what is not understood; jku, x5u, jwk, x5c, crit, b64, cty, enc
// and zip are refused from everyone), the typ values of Types, RSA
// signatures, claim names in another letter case than a registered one
// (names are case-sensitive: "EXP" is an unknown claim), no jti, the
// subject and client in other claims, and a longer lifetime and leeway.
type AccessProfile struct {
	// Types are the typ header values accepted, compared as media types:
	// case-insensitively, with or without "application/". Default
	// ["at+jwt"] (RFC 9068 2.1). "JWT" is for providers that do not
	// type their access tokens (Keycloak, Entra ID v1, Okta's org
	// server); it cannot be told apart from an ID token by its header,
	// so the audience must then be one no ID token carries (an API
	// identifier, never a client id). "" accepts a token without typ (as
	// Okta's custom authorization servers send), under the same
	// condition. Another tokenrelay kind's typ is refused.
	Types []string
	// MaxLifetime bounds exp - iat. Default Access.MaxLifetime() (15
	// minutes); at most MaxForeignLifetime.
	MaxLifetime time.Duration
	// Leeway, when positive, replaces the verifier's leeway for this
	// issuer's tokens; at most MaxForeignLeeway.
	Leeway time.Duration
	// ScopeClaim is the path of the claim that holds the scopes: one
	// claim name (["scope"], ["scp"], ["permissions"]) or the names of
	// nested objects down to it (["realm_access", "roles"]). Its value is
	// a space-separated string or an array of strings; a token without
	// it has no scope. Default ["scope"]. AccessClaims.Scope receives the
	// scopes space-separated.
	ScopeClaim []string
	// SubjectClaim names the claim that identifies the end user, a
	// string. Default "sub". AccessClaims.Subject receives it; "" when
	// the token has none (a client's own token).
	SubjectClaim string
	// ClientIDClaim names the claim that identifies the OAuth client, a
	// string. Default "client_id" (RFC 9068); "azp" (Keycloak, Entra ID
	// v2, Google), "appid" (Entra ID v1), "cid" (Okta).
	// AccessClaims.ClientID receives it. A token must carry a subject or
	// a client id.
	ClientIDClaim string
}

// profile is an AccessProfile with its defaults applied.
type profile struct {
	types                  []string
	maxLifetime, leeway0   time.Duration
	scope                  []string
	subjectClaim, clientID string
}

// Profile verifies the issuer's access tokens by the AccessProfile of a
// foreign issuer instead of tokenrelay's own, strict rules. Only for an
// issuer that is trusted for Access alone; it makes the RSA Algorithms
// available. The issuer's claims are read from where the profile says,
// and AccessClaims holds them as if the token followed RFC 9068.
func Profile(ap AccessProfile) PolicyOption {
	return func(p *policy) error {
		pr := &profile{
			types:        slices.Clone(ap.Types),
			maxLifetime:  ap.MaxLifetime,
			leeway0:      ap.Leeway,
			scope:        slices.Clone(ap.ScopeClaim),
			subjectClaim: ap.SubjectClaim,
			clientID:     ap.ClientIDClaim,
		}
		if len(pr.types) == 0 {
			pr.types = []string{Access.typ}
		}
		for _, t := range pr.types {
			for _, k := range Kinds() {
				if k.Typ() != Access.typ && typIs(t, k.Typ()) {
					return fmt.Errorf("%w: typ %q is tokenrelay's %s", ErrConfig, t, k)
				}
			}
		}
		switch {
		case pr.maxLifetime == 0:
			pr.maxLifetime = Access.maxLifetime
		case pr.maxLifetime < 0 || pr.maxLifetime > MaxForeignLifetime:
			return fmt.Errorf("%w: Profile MaxLifetime %v not in (0, %v]", ErrConfig, pr.maxLifetime, MaxForeignLifetime)
		}
		if pr.leeway0 < 0 || pr.leeway0 > MaxForeignLeeway {
			return fmt.Errorf("%w: Profile Leeway %v not in [0, %v]", ErrConfig, pr.leeway0, MaxForeignLeeway)
		}
		if len(pr.scope) == 0 {
			pr.scope = []string{"scope"}
		}
		if slices.Contains(pr.scope, "") {
			return fmt.Errorf("%w: empty name in Profile ScopeClaim", ErrConfig)
		}
		pr.subjectClaim = orDefault(pr.subjectClaim, "sub")
		pr.clientID = orDefault(pr.clientID, "client_id")
		p.profile = pr
		return nil
	}
}

func (pr *profile) acceptsType(typ string) bool {
	return slices.ContainsFunc(pr.types, func(t string) bool { return typIs(typ, t) })
}

// leeway returns the profile's leeway, or def.
func (pr *profile) leeway(def time.Duration) time.Duration {
	if pr.leeway0 > 0 {
		return pr.leeway0
	}
	return def
}

// apply reads the subject, the client id and the scopes of a genuine
// foreign access token from the claims set pb, where the profile says,
// into c (an *AccessClaims).
func (pr *profile) apply(pb []byte, c any) error {
	ac, ok := c.(*AccessClaims)
	if !ok {
		return fmt.Errorf("%w: a Profile verifies access tokens only", ErrConfig)
	}
	if len(ac.Audience) == 0 || slices.Contains(ac.Audience, "") {
		return fmt.Errorf("%w: claim aud required", ErrClaims)
	}
	if pr.subjectClaim != "sub" {
		s, err := claimString(pb, pr.subjectClaim)
		if err != nil {
			return err
		}
		ac.Subject = s
	}
	if pr.clientID != "client_id" {
		s, err := claimString(pb, pr.clientID)
		if err != nil {
			return err
		}
		ac.ClientID = s
	}
	if ac.Subject == "" && ac.ClientID == "" {
		return fmt.Errorf("%w: neither claim %s nor %s", ErrClaims, pr.subjectClaim, pr.clientID)
	}
	scopes, err := claimScopes(pb, pr.scope)
	if err != nil {
		return err
	}
	ac.Scope = strings.Join(scopes, " ")
	return nil
}

// claimString returns the string claim name of the claims set pb, "" when
// it is absent.
func claimString(pb []byte, name string) (string, error) {
	d, found, err := claimAt(pb, []string{name})
	if err != nil || !found {
		return "", err
	}
	s, err := d.string()
	if err != nil {
		return "", fmt.Errorf("claim %s: %w", name, err)
	}
	return s, nil
}

// claimScopes returns the scopes at path in the claims set pb: a
// space-separated string or an array of strings without spaces.
func claimScopes(pb []byte, path []string) ([]string, error) {
	d, found, err := claimAt(pb, path)
	if err != nil || !found {
		return nil, err
	}
	name := strings.Join(path, ".")
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '"' {
		s, err := d.string()
		if err != nil {
			return nil, fmt.Errorf("claim %s: %w", name, err)
		}
		out := strings.Fields(s)
		if len(out) > maxScopes {
			return nil, fmt.Errorf("%w: claim %s: more than %d scopes", ErrTooLarge, name, maxScopes)
		}
		return out, nil
	}
	out, err := d.strings(maxScopes)
	if err != nil {
		return nil, fmt.Errorf("claim %s: %w", name, err)
	}
	for _, s := range out {
		if s == "" || strings.ContainsAny(s, " \t\r\n") {
			return nil, fmt.Errorf("%w: claim %s: a scope empty or with a space", ErrClaims, name)
		}
	}
	return out, nil
}

// claimAt returns a decoder at the value of the member at path (a name in
// each nested object) of the claims set pb, which decodeClaims already
// found to be one valid JSON object with no duplicate name at its top.
// Nested duplicates along the path are refused (ErrDuplicateName), so
// that two parsers cannot read two different scopes out of one token; an
// object missing along the path means the claim is absent; anything but
// an object there is ErrClaims.
func claimAt(pb []byte, path []string) (*decoder, bool, error) {
	d := &decoder{b: pb, s: string(pb)}
	for depth, name := range path {
		if err := d.open('{'); err != nil {
			return nil, false, fmt.Errorf("claim %s: %w", strings.Join(path[:depth], "."), err)
		}
		at := -1
		for first := true; ; {
			n, ok, err := d.member(&first)
			if err != nil {
				return nil, false, err
			}
			if !ok {
				break
			}
			if string(n) == name {
				if at >= 0 {
					return nil, false, fmt.Errorf("%w: claim %s repeated", ErrDuplicateName, strings.Join(path[:depth+1], "."))
				}
				at = d.i
			}
			if err := d.skip(); err != nil {
				return nil, false, err
			}
		}
		if at < 0 {
			return nil, false, nil
		}
		d.i = at
	}
	return d, true, nil
}
