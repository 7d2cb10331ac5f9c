package authn_test

import (
	"context"
	"testing"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

func TestRequireCaller(t *testing.T) {
	t.Parallel()
	withTxn := func(sub, scope string) context.Context {
		return authn.ContextWithTransaction(context.Background(), "raw",
			token.TransactionClaims{Registered: token.Registered{Subject: sub}, Scope: scope, Txn: "txn_1"})
	}
	for _, tc := range []struct {
		name      string
		ctx       context.Context
		wantSub   string
		wantAdmin bool
		wantCode  connect.Code // 0: no error
	}{
		{"shopper", withTxn("usr_ann", "shop"), "usr_ann", false, 0},
		{"admin", withTxn("usr_adm", "shop admin"), "usr_adm", true, 0},
		{"no transaction token", context.Background(), "", false, connect.CodeUnauthenticated},
		{"no subject", withTxn("", "shop"), "", false, connect.CodeUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := authn.RequireCaller(tc.ctx)
			if tc.wantCode != 0 {
				if connect.CodeOf(err) != tc.wantCode {
					t.Fatalf("err = %v, want code %v", err, tc.wantCode)
				}
				return
			}
			if err != nil || c.Subject != tc.wantSub || c.IsAdmin() != tc.wantAdmin || c.Txn != "txn_1" {
				t.Fatalf("RequireCaller = %+v, %v; want subject %q, admin %v", c, err, tc.wantSub, tc.wantAdmin)
			}
		})
	}
}
