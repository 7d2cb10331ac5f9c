// The differential peer of the token package's tests: npm jose, an
// independent JOSE implementation, verifies a corpus of tokens with the
// same trust as the package's verifier.
//
//   node jose-verify.mjs < corpus.json > verdicts.json
//
// The corpus is {"now": <seconds>, "issuers": {<iss>: {"jwks": {...},
// "algorithms": [...], "tolerance": <seconds>, "accept": {<typ>: <aud>},
// "typ": {<kind typ>: <typ option or "">}}}, "tokens": [{"name", "typ",
// "token"}]}: each token is verified as a token of kind typ, by the issuer
// its (unverified) iss names, as the package's verifier picks it. The
// answer is one verdict per token: {"name", "ok", "code"} with jose's
// error code when it refuses. Nothing is logged.
import { createLocalJWKSet, decodeJwt, jwtVerify } from 'jose';

let input = '';
for await (const chunk of process.stdin) input += chunk;
const corpus = JSON.parse(input);
const currentDate = new Date(corpus.now * 1000);

const verdicts = [];
for (const { name, typ, token } of corpus.tokens) {
  let verdict;
  try {
    const { iss } = decodeJwt(token);
    const is = corpus.issuers[iss];
    if (typeof iss !== 'string' || !is) throw Object.assign(new Error('untrusted issuer'), { code: 'X_UNTRUSTED_ISSUER' });
    const audience = is.accept[typ];
    if (!audience) throw Object.assign(new Error('kind not accepted'), { code: 'X_KIND_NOT_ACCEPTED' });
    const typOption = is.typ[typ] || undefined;
    await jwtVerify(token, createLocalJWKSet(is.jwks), {
      issuer: iss, audience, algorithms: is.algorithms, typ: typOption,
      clockTolerance: is.tolerance, currentDate,
    });
    verdict = { name, ok: true };
  } catch (err) {
    verdict = { name, ok: false, code: err.code || err.name || 'ERR' };
  }
  verdicts.push(verdict);
}
process.stdout.write(JSON.stringify(verdicts));
