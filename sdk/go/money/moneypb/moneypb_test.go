package moneypb_test

import (
	"testing"

	typev1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/type/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/money"
	"github.com/tokenrelay/tokenrelay/sdk/go/money/moneypb"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, m := range []money.Money{{AmountMinor: 1234, Currency: "EUR"}, {}, {AmountMinor: -1, Currency: "x"}} {
		p := moneypb.Proto(m)
		if p.GetAmountMinor() != m.AmountMinor || p.GetCurrency() != m.Currency {
			t.Errorf("Proto(%v) = %v", m, p)
		}
		if got := moneypb.FromProto(p); got != m {
			t.Errorf("FromProto(Proto(%v)) = %v", m, got)
		}
	}
	if got := moneypb.FromProto((*typev1.Money)(nil)); got != (money.Money{}) {
		t.Errorf("FromProto(nil) = %v, want the zero Money", got)
	}
}
