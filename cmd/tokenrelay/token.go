package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability/sealed"
	"github.com/tokenrelay/tokenrelay/sdk/go/jwks"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// maxTokenInput bounds what is read as a token: the largest token a
// verifier can be configured to read, token.MaxTokenSizeLimit.
const maxTokenInput = token.MaxTokenSizeLimit

// kindNames lists the --kind values: the names of token.Kinds.
func kindNames() []string {
	var names []string
	for _, k := range token.Kinds() {
		names = append(names, k.Name())
	}
	return names
}

// kindByName returns the kind --kind names.
func kindByName(name string) (token.AnyKind, bool) {
	i := slices.IndexFunc(token.Kinds(), func(k token.AnyKind) bool { return k.Name() == name })
	if i < 0 {
		return nil, false
	}
	return token.Kinds()[i], true
}

func tokenInspectCommand() command {
	return command{
		name:    "token inspect",
		args:    "[TOKEN|-]",
		summary: "decode a token WITHOUT verifying it: header, claims and a summary",
		details: `Reads the compact JWS from the argument, or from standard input when the
argument is "-" or absent (a leading "Bearer " is dropped). Prints the header
and the claims as indented JSON, then a summary: the kind (by typ), issuer,
subject, audience, times relative to now, jti or txn, capabilities and
settlement, constraints (sealed ones only as "SEALED for <issuer>" with their
JWE algorithms and key version: they are never opened), and warnings for what
a tokenrelay verifier would refuse.

Nothing is checked: not the signature, not the issuer, not the expiry. The
output says NOT VERIFIED; use "tokenrelay token verify" to trust a token.`,
		setup: func(fs *flag.FlagSet) func(*env, []string) error {
			return func(e *env, args []string) error {
				raw, err := readToken(e, args)
				if err != nil {
					return err
				}
				d, err := decodeToken(raw)
				if err != nil {
					return err
				}
				w := e.stdout
				fmt.Fprintln(w, "NOT VERIFIED: decoded only; the signature, issuer, audience and expiry were not checked.")
				fmt.Fprintln(w)
				d.print(w, e.now())
				fmt.Fprintln(w)
				fmt.Fprintln(w, `NOT VERIFIED. To trust this token, run "tokenrelay token verify".`)
				return nil
			}
		},
	}
}

func tokenVerifyCommand() command {
	return command{
		name:    "token verify",
		args:    "[TOKEN|-]",
		summary: "verify a token with the tokenrelay engine, against a JWKS URL or a key ring",
		details: `Verifies the token exactly as a tokenrelay service would (token.Verify):
signature with the issuer's key found by kid in --jwks or --keys only,
allowed algorithm, typ of --kind, iss equal to --issuer, aud containing
--audience, exp/iat/nbf with 10 s leeway, the kind's lifetime bound and
required claims, and for confirmation tokens the capability namespace.

Prints "valid" and the claims, or "invalid:" and the check that failed
(exit status 1). One-time use (jti replay) is not checked: that needs the
consuming service's database.

Examples:
  tokenrelay token verify --jwks http://127.0.0.1:8080/.well-known/jwks/coupons.json \
      --issuer coupons --kind confirmation --audience order-processing "$COUPON"
  tokenrelay token verify --keys .data/keys/coupons --issuer coupons \
      --kind confirmation --audience order-processing - <token.txt`,
		setup: func(fs *flag.FlagSet) func(*env, []string) error {
			jwksURL := fs.String("jwks", "", "`URL` of the issuer's JWK Set (e.g. http://127.0.0.1:8080/.well-known/jwks/coupons.json)")
			keysDir := fs.String("keys", "", "the issuer's local key ring directory `DIR` (e.g. .data/keys/coupons), instead of --jwks")
			issuer := fs.String("issuer", "", "the issuer `NAME` the token's iss must equal (required)")
			kind := fs.String("kind", "", "token kind: "+strings.Join(kindNames(), ", ")+" (required)")
			audience := fs.String("audience", "", "the audience `AUD` the token's aud must contain (required)")
			namespace := fs.String("namespace", "", "capability namespace the issuer may grant (confirmation tokens; default the issuer name)")
			algs := fs.String("alg", keys.EdDSA, "accepted algorithms, comma-separated: "+strings.Join(token.SupportedAlgorithms(), ", "))
			timeout := fs.Duration("timeout", 10*time.Second, "JWKS fetch timeout")
			return func(e *env, args []string) error {
				switch {
				case (*jwksURL == "") == (*keysDir == ""):
					return usagef("give exactly one of --jwks and --keys")
				case *issuer == "":
					return usagef("--issuer is required")
				case *audience == "":
					return usagef("--audience is required")
				}
				k, ok := kindByName(*kind)
				if !ok {
					return usagef("--kind must be one of %s", strings.Join(kindNames(), ", "))
				}
				raw, err := readToken(e, args)
				if err != nil {
					return err
				}
				var src keys.Source
				if *keysDir != "" {
					ring, err := openExistingRing(*keysDir)
					if err != nil {
						return err
					}
					src = ring
				} else {
					cache, err := jwks.New(jwks.WithFetchTimeout(*timeout))
					if err != nil {
						return err
					}
					defer cache.Close()
					if src, err = cache.Add(*issuer, *jwksURL); err != nil {
						return usagef("--jwks: %v", err)
					}
				}
				policy := []token.PolicyOption{token.Algorithms(strings.Split(*algs, ",")...), token.Accept(k, *audience)}
				if k.CarriesCapabilities() {
					ns := *namespace
					if ns == "" {
						ns = *issuer
					}
					policy = append(policy, token.Namespace(ns))
				}
				v, err := token.NewVerifier(token.Trust(*issuer, src, policy...))
				if err != nil {
					return usagef("%v", err)
				}
				defer v.Close()
				if _, err := token.VerifyAny(e.ctx, v, k, raw); err != nil {
					check := failedCheck(err)
					fmt.Fprintf(e.stdout, "invalid: %s\n", check)
					if detail := err.Error(); detail != check {
						fmt.Fprintf(e.stdout, "  detail: %s\n", detail)
					}
					return errReported
				}
				d, err := decodeToken(raw)
				if err != nil { // cannot happen for a token that verified
					return err
				}
				fmt.Fprintf(e.stdout, "valid: a %s of issuer %s for audience %s, signed by key %s\n\n",
					k, printable(*issuer), printable(*audience), printable(d.str(d.headerMap, "kid")))
				d.print(e.stdout, e.now())
				return nil
			}
		},
	}
}

// failedCheck names the check a verification error reports: the text of the
// sentinel it wraps (token.Sentinel).
func failedCheck(err error) string {
	if s := token.Sentinel(err); s != nil {
		return s.Error()
	}
	return err.Error()
}

// openExistingRing opens the key ring in dir, refusing a directory without
// one: keys.OpenRing would create a fresh ring there.
func openExistingRing(dir string, opts ...keys.RingOption) (*keys.Ring, error) {
	if _, err := os.Stat(filepath.Join(dir, keys.RingFile)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no key ring in %s (no %s there)", dir, keys.RingFile)
		}
		return nil, err
	}
	return keys.OpenRing(dir, opts...)
}

// readToken reads the one token argument, or standard input for "-" or no
// argument. Its errors never contain the input.
func readToken(e *env, args []string) (string, error) {
	var raw string
	switch {
	case len(args) > 1:
		return "", usagef("want one token, got %d arguments", len(args))
	case len(args) == 1 && args[0] != "-":
		raw = args[0]
	default:
		b, err := io.ReadAll(io.LimitReader(e.stdin, maxTokenInput+1))
		if err != nil {
			return "", fmt.Errorf("read standard input: %w", err)
		}
		raw = string(b)
	}
	raw = strings.TrimSpace(raw)
	if len(raw) > 7 && strings.EqualFold(raw[:7], "bearer ") {
		raw = strings.TrimSpace(raw[7:])
	}
	switch {
	case raw == "":
		return "", errors.New("no token given (pass it as the argument, or on standard input)")
	case len(raw) > maxTokenInput:
		return "", fmt.Errorf("input exceeds %d bytes; no tokenrelay token is that large", maxTokenInput)
	}
	return raw, nil
}

// decoded is a compact JWS taken apart, trusting nothing.
type decoded struct {
	header, claims       []byte // the JSON as carried
	headerMap, claimsMap map[string]any
	headerDup, claimsDup []string // member names that appear more than once
	signature            int      // signature length in bytes
	warnings             []string
}

// decodeToken splits and decodes raw. Its errors say which part is wrong
// and never quote the input.
func decodeToken(raw string) (*decoded, error) {
	parts := strings.Split(raw, ".")
	switch n := len(parts); {
	case n == 5:
		return nil, errors.New("not a signed token: five segments make an encrypted token (JWE), which only its recipient can read")
	case n != 3:
		return nil, fmt.Errorf("not a compact JWS: want three base64url segments separated by dots, got %d segment(s)", n)
	}
	d := &decoded{}
	var err error
	var padded bool
	if d.header, padded, err = decodeSegment(parts[0]); err != nil {
		return nil, fmt.Errorf("header segment: %w", err)
	}
	if d.claims, _, err = decodeSegment(parts[1]); err != nil {
		return nil, fmt.Errorf("claims segment: %w", err)
	}
	sig, _, err := decodeSegment(parts[2])
	if err != nil {
		return nil, fmt.Errorf("signature segment: %w", err)
	}
	d.signature = len(sig)
	if d.headerMap, d.headerDup, err = decodeObject(d.header); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	if d.claimsMap, d.claimsDup, err = decodeObject(d.claims); err != nil {
		return nil, fmt.Errorf("claims: %w", err)
	}
	if padded || strings.Contains(raw, "=") {
		d.warn("a segment is base64 padded; verifiers refuse padding")
	}
	d.checkPolicy()
	return d, nil
}

func decodeSegment(s string) (b []byte, padded bool, err error) {
	if s == "" {
		return nil, false, errors.New("empty")
	}
	if b, err = base64.RawURLEncoding.DecodeString(s); err == nil {
		return b, false, nil
	}
	if b, err = base64.URLEncoding.DecodeString(s); err == nil {
		return b, true, nil
	}
	return nil, false, errors.New("not base64url")
}

// decodeObject decodes one JSON object, numbers kept exact, and lists the
// member names that appear more than once (encoding/json keeps the last;
// a tokenrelay verifier refuses the token).
func decodeObject(b []byte) (map[string]any, []string, error) {
	if !json.Valid(b) {
		return nil, nil, errors.New("not valid JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, nil, errors.New("not a JSON object")
	}
	m := map[string]any{}
	var dups []string
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, nil, errors.New("not valid JSON")
		}
		name, _ := t.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, nil, errors.New("not valid JSON")
		}
		if _, seen := m[name]; seen && !slices.Contains(dups, name) {
			dups = append(dups, name)
		}
		m[name] = v
	}
	return m, dups, nil
}

func (d *decoded) warn(format string, a ...any) {
	d.warnings = append(d.warnings, fmt.Sprintf(format, a...))
}

// checkPolicy notes what a tokenrelay verifier would refuse whatever the
// signature: not a complete verification, a help for reading the token.
func (d *decoded) checkPolicy() {
	for _, n := range d.headerDup {
		d.warn("header parameter %q appears more than once", printable(n))
	}
	for _, n := range d.claimsDup {
		d.warn("claim %q appears more than once", printable(n))
	}
	allowed, refused := token.HeaderParameters(), token.RefusedHeaderParameters()
	var never, own []string
	for name := range d.headerMap {
		switch {
		case slices.ContainsFunc(refused, func(r string) bool { return strings.EqualFold(r, name) }):
			never = append(never, printable(name))
		case !slices.Contains(allowed, name):
			own = append(own, printable(name))
		}
	}
	sort.Strings(never)
	sort.Strings(own)
	if len(never) > 0 {
		d.warn("header parameters other than %s are refused: %s", andList(allowed), strings.Join(never, ", "))
	}
	if len(own) > 0 {
		d.warn("header parameters other than %s are refused from tokenrelay's own issuers, ignored in a foreign provider's access token: %s",
			andList(allowed), strings.Join(own, ", "))
	}
	alg := d.str(d.headerMap, "alg")
	rsa := alg == keys.RS256 || alg == keys.PS256
	switch {
	case rsa:
		d.warn("alg %s is accepted only in the access tokens of a foreign OpenID Connect provider trusted with a profile", alg)
	case !slices.Contains(token.SupportedAlgorithms(), alg):
		d.warn("alg %q is never accepted (only %s; %s and %s from a foreign provider)", printable(alg),
			andList(token.SupportedAlgorithms()), keys.RS256, keys.PS256)
	}
	if d.str(d.headerMap, "kid") == "" {
		d.warn("no kid: no verifier can find the key")
	}
	if _, ok := d.kind(); !ok {
		d.warn("typ %q is not a tokenrelay kind", printable(d.str(d.headerMap, "typ")))
	}
	if _, ok := d.claimsMap["exp"]; !ok {
		d.warn("no exp: every tokenrelay token must expire")
	}
	switch {
	case rsa && (d.signature < keys.MinRSABits/8 || d.signature > keys.MaxRSABits/8):
		d.warn("the signature is %d bytes, not the %d to %d of an RSA key of %d to %d bits", d.signature,
			keys.MinRSABits/8, keys.MaxRSABits/8, keys.MinRSABits, keys.MaxRSABits)
	case !rsa && d.signature != token.SignatureSize:
		d.warn("the signature is %d bytes, not the %d of EdDSA or ES256", d.signature, token.SignatureSize)
	}
}

// andList joins names as "a, b and c".
func andList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// kind names the token's kind by its typ (token.KindOf).
func (d *decoded) kind() (string, bool) {
	k, ok := token.KindOf(d.str(d.headerMap, "typ"))
	if !ok {
		return "unknown", false
	}
	return k.String() + " (" + k.Typ() + ")", true
}

// str returns m[name] as a string, "" when absent or of another type.
func (d *decoded) str(m map[string]any, name string) string {
	s, _ := m[name].(string)
	return s
}

// print writes the header and claims as indented JSON and the summary.
func (d *decoded) print(w io.Writer, now time.Time) {
	fmt.Fprintln(w, "Header:")
	writeJSON(w, d.header)
	fmt.Fprintln(w, "Claims:")
	writeJSON(w, d.claims)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Summary:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(label, value string) {
		if value != "" {
			fmt.Fprintf(tw, "  %s\t%s\n", label, value)
		}
	}
	kind, _ := d.kind()
	row("kind", kind)
	row("algorithm", printable(d.str(d.headerMap, "alg")))
	row("key id (kid)", printable(d.str(d.headerMap, "kid")))
	c := d.claimsMap
	row("issuer (iss)", d.text("iss"))
	row("subject (sub)", d.text("sub"))
	row("audience (aud)", d.text("aud"))
	row("issued (iat)", d.time("iat", now))
	row("not before (nbf)", d.time("nbf", now))
	row("expires (exp)", d.time("exp", now))
	if iat, ok1 := d.unix("iat"); ok1 {
		if exp, ok2 := d.unix("exp"); ok2 {
			row("lifetime", human(time.Duration(exp-iat)*time.Second))
		}
	}
	row("token id (jti)", d.text("jti"))
	row("transaction (txn)", d.text("txn"))
	row("checkout", d.text("order_processing_id"))
	row("capabilities", d.text("capabilities"))
	if s, ok := c["settlement"].(map[string]any); ok {
		row("settlement", fmt.Sprintf("%v %s (minor units)", s["amount_minor"], printable(fmt.Sprint(s["currency"]))))
	} else {
		row("settlement", d.text("settlement"))
	}
	if _, ok := c["amount_minor"]; ok {
		row("total", fmt.Sprintf("%s %s (minor units)", d.text("amount_minor"), d.text("currency")))
	}
	row("constraints", d.constraints())
	row("scope", d.text("scope"))
	row("client (client_id)", d.text("client_id"))
	row("context (tctx)", d.text("tctx"))
	row("requested by (req_wl)", d.text("req_wl"))
	row("signature", fmt.Sprintf("%d bytes", d.signature))
	tw.Flush()
	if exp, ok := d.unix("exp"); ok && now.After(time.Unix(exp, 0)) {
		d.warnings = append(d.warnings, "expired: no verifier accepts it any more")
	}
	if len(d.warnings) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Warnings:")
		for _, msg := range d.warnings {
			fmt.Fprintf(w, "  - %s\n", msg)
		}
	}
}

// constraints renders the constraints claim for the summary: sealed ones
// (package sealed) by their JWE header alone, never opened; others as
// text.
func (d *decoded) constraints() string {
	m, ok := d.claimsMap["constraints"].(map[string]any)
	if !ok || len(m) != 1 {
		return d.text("constraints")
	}
	v, ok := m[sealed.Member].(string)
	if !ok {
		return d.text("constraints")
	}
	h, err := sealed.Describe(map[string]string{sealed.Member: v})
	if err != nil {
		d.warn("constraints look sealed but no issuer opens them: %s", printable(err.Error()))
		return "sealed, malformed (" + printable(fmt.Sprint(len(v))) + " bytes)"
	}
	iss := d.text("iss")
	if iss == "" {
		iss = "its issuer"
	}
	return fmt.Sprintf("SEALED for %s alone (JWE %s + %s, key version %d, %d bytes; not opened)", iss, h.Alg, h.Enc, h.Version, h.Size)
}

// text renders a claim for the summary: strings as they are, lists joined
// by commas, objects as compact JSON, everything made printable.
func (d *decoded) text(name string) string {
	v, ok := d.claimsMap[name]
	if !ok {
		return ""
	}
	switch v := v.(type) {
	case string:
		return printable(v)
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = printable(fmt.Sprint(e))
		}
		return strings.Join(parts, ", ")
	case map[string]any:
		b, _ := json.Marshal(v)
		return printable(string(b))
	default:
		return printable(fmt.Sprint(v))
	}
}

// unix returns a NumericDate claim in seconds.
func (d *decoded) unix(name string) (int64, bool) {
	n, ok := d.claimsMap[name].(json.Number)
	if !ok {
		return 0, false
	}
	i, err := n.Int64()
	return i, err == nil
}

// time renders a NumericDate claim as RFC 3339 and relative to now.
func (d *decoded) time(name string, now time.Time) string {
	if _, ok := d.claimsMap[name]; !ok {
		return ""
	}
	sec, ok := d.unix(name)
	if !ok {
		return d.text(name) + " (not a NumericDate in whole seconds)"
	}
	t := time.Unix(sec, 0).UTC()
	delta := t.Sub(now).Round(time.Second)
	var rel string
	switch {
	case name == "exp" && delta < 0:
		rel = "expired " + human(-delta) + " ago"
	case name == "exp":
		rel = "expires in " + human(delta)
	case delta <= 0:
		rel = human(-delta) + " ago"
	default:
		rel = "in " + human(delta) + ", in the future"
	}
	return t.Format(time.RFC3339) + " (" + rel + ")"
}

// human formats a duration to the second, briefly: 42s, 3m12s, 5h3m, 2d4h.
func human(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		m, s := int(d/time.Minute), int(d%time.Minute/time.Second)
		if s == 0 {
			return fmt.Sprintf("%dm", m)
		}
		return fmt.Sprintf("%dm%ds", m, s)
	case d < 48*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	default:
		return fmt.Sprintf("%dd%dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
	}
}

// writeJSON indents a JSON document that decodeObject accepted, escaping
// every character a terminal could act on.
func writeJSON(w io.Writer, b []byte) {
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		buf.Reset()
		buf.Write(b)
	}
	fmt.Fprintln(w, escapeUnprintable(buf.String()))
}

// escapeUnprintable replaces control and format characters (and invalid
// UTF-8) by JSON \u escapes, so that a hostile token cannot drive the
// terminal. Inside JSON they can only occur in strings, where the escape is
// the same value.
func escapeUnprintable(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\ufffd`)
		case r == '\n' || r == ' ' || unicode.IsPrint(r):
			b.WriteString(s[i : i+size])
		case r > 0xffff:
			r1, r2 := utf16Surrogates(r)
			fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += size
	}
	return b.String()
}

func utf16Surrogates(r rune) (rune, rune) {
	r -= 0x10000
	return 0xd800 + (r>>10)&0x3ff, 0xdc00 + r&0x3ff
}

// printable makes untrusted text safe to print on one line: unprintable
// characters become Go escapes, and it is cut at 200 bytes.
func printable(s string) string {
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	clean := true
	for _, r := range s {
		if !unicode.IsPrint(r) || r == utf8.RuneError {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	q := fmt.Sprintf("%+q", s)
	return q[1 : len(q)-1]
}
