package capabilityrpc

import (
	"context"
	"fmt"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/sealed"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// TokenIssuer signs confirmation tokens with a domain's token.Issuer, for
// the kind's default lifetime (2 minutes), audience capability.Audience; it
// implements capability.Issuer.
//
// With Sealer set, the constraints travel sealed for the domain alone
// (package sealed): the token carries {"jwe": compact JWE} instead, and the
// domain's record keeps them in the clear to check them at Exercise.
type TokenIssuer struct {
	Issuer *token.Issuer
	// Sealer, when set, seals every token's constraints.
	Sealer *sealed.Sealer
}

var _ capability.Issuer = TokenIssuer{}

// IssueConfirmation implements capability.Issuer.
func (ti TokenIssuer) IssueConfirmation(ctx context.Context, d capability.Draft) (capability.Issued, error) {
	constraints := d.Constraints
	if ti.Sealer != nil {
		var err error
		if constraints, err = ti.Sealer.Seal(d.Constraints); err != nil {
			return capability.Issued{}, fmt.Errorf("seal constraints: %w", err)
		}
	}
	claims := token.ConfirmationClaims{
		Registered:        token.Registered{Subject: d.Subject, Audience: []string{capability.Audience}},
		OrderProcessingID: d.CheckoutID,
		Capabilities:      []string{d.Capability},
		Constraints:       constraints,
		Settlement:        token.Settlement{AmountMinor: d.Settlement.AmountMinor, Currency: d.Settlement.Currency},
	}
	raw, c, err := token.Issue(ctx, ti.Issuer, token.Confirmation, claims)
	if err != nil {
		return capability.Issued{}, err
	}
	return capability.Issued{Token: raw, JTI: c.ID, ExpiresAt: c.ExpiresAt}, nil
}
