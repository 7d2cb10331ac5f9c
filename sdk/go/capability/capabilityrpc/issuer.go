package capabilityrpc

import (
	"context"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// TokenIssuer signs confirmation tokens with a domain's token.Issuer, for
// the kind's default lifetime (2 minutes), audience capability.Audience; it
// implements capability.Issuer.
type TokenIssuer struct {
	Issuer *token.Issuer
}

var _ capability.Issuer = TokenIssuer{}

// IssueConfirmation implements capability.Issuer.
func (ti TokenIssuer) IssueConfirmation(ctx context.Context, d capability.Draft) (capability.Issued, error) {
	claims := token.ConfirmationClaims{
		Registered:        token.Registered{Subject: d.Subject, Audience: []string{capability.Audience}},
		OrderProcessingID: d.CheckoutID,
		Capabilities:      []string{d.Capability},
		Constraints:       d.Constraints,
		Settlement:        token.Settlement{AmountMinor: d.Settlement.AmountMinor, Currency: d.Settlement.Currency},
	}
	raw, c, err := token.Issue(ctx, ti.Issuer, token.Confirmation, claims)
	if err != nil {
		return capability.Issued{}, err
	}
	return capability.Issued{Token: raw, JTI: c.ID, ExpiresAt: c.ExpiresAt}, nil
}
