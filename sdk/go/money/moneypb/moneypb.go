// Package moneypb converts between money.Money and the wire type
// tokenrelay.type.v1.Money. It is the Connect-side half of package money:
// ports and clients import it; domain and app layers, which must not depend
// on generated code (see deprules), use package money alone.
package moneypb

import (
	typev1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/type/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/money"
)

// Proto converts m to the wire type.
func Proto(m money.Money) *typev1.Money {
	return &typev1.Money{AmountMinor: m.AmountMinor, Currency: m.Currency}
}

// FromProto converts a wire Money without validating it (money.Money's
// Validate does, where the caller's rules want it); nil is the zero Money.
func FromProto(p *typev1.Money) money.Money {
	return money.Money{AmountMinor: p.GetAmountMinor(), Currency: p.GetCurrency()}
}
