package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"

	capabilityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1"
	orderprocessingv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1/orderprocessingv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
)

// EnvAccessToken holds the admin's access token for the audit commands: an
// environment variable, never a flag, so that it stays out of shell
// history and the process list.
const EnvAccessToken = "TOKENRELAY_ACCESS_TOKEN"

const auditDetails = `Asks the deployment's public origin (--url, the gateway) for
OrderProcessingService.GetTokenAudit, which gathers OrderProcessing's own
audit trail and each issuer's (CapabilityService.AuditTrail). Admins only:
put an admin's access token (IdentityService.Login as a user with scope
admin) in ` + EnvAccessToken + `. Events are printed oldest first: when,
which service recorded it (its chain and sequence number), what happened
(issued, consumed, refused, exercised, compensated, ...), the token's
issuer and jti, the order, the subject, the request's txn and, for a
refusal, the check that failed. Never a token. An issuer that could not be
asked is named on stderr, and the exit status is 1.`

func auditCommand(what, arg, summary, example string, by func(string) *orderprocessingv1.GetTokenAuditRequest) command {
	return command{
		name:    "audit " + what,
		args:    arg,
		summary: summary,
		details: auditDetails + "\n\nExample:\n  " + example,
		setup: func(fs *flag.FlagSet) func(*env, []string) error {
			base := fs.String("url", "http://127.0.0.1:8080", "the public origin `URL` (the gateway)")
			asJSON := fs.Bool("json", false, "print JSON")
			return func(e *env, args []string) error {
				switch {
				case len(args) != 1:
					return usagef("one %s is required", arg)
				case args[0] == "" || len(args[0]) > 64:
					return usagef("%s: at most 64 characters", arg)
				}
				return auditRun(e, *base, *asJSON, by(args[0]))
			}
		},
	}
}

func auditJTICommand() command {
	return auditCommand("jti", "JTI", "a token's history by its jti, across the services that saw it",
		`TOKENRELAY_ACCESS_TOKEN=$ADMIN tokenrelay audit jti 01JF...`,
		func(v string) *orderprocessingv1.GetTokenAuditRequest {
			return &orderprocessingv1.GetTokenAuditRequest{By: &orderprocessingv1.GetTokenAuditRequest_Jti{Jti: v}}
		})
}

func auditOrderCommand() command {
	return auditCommand("order", "ORDER_ID", "an order's token timeline: each of its tokens from issue to exercise or compensation",
		`TOKENRELAY_ACCESS_TOKEN=$ADMIN tokenrelay audit order --url https://shop.example ord_5kq...`,
		func(v string) *orderprocessingv1.GetTokenAuditRequest {
			return &orderprocessingv1.GetTokenAuditRequest{By: &orderprocessingv1.GetTokenAuditRequest_OrderId{OrderId: v}}
		})
}

func auditRun(e *env, base string, asJSON bool, req *orderprocessingv1.GetTokenAuditRequest) error {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("--url: want an http:// or https:// origin")
	}
	tok := e.getenv(EnvAccessToken)
	if tok == "" {
		return fmt.Errorf("no access token: set %s to an admin's access token", EnvAccessToken)
	}
	client := orderprocessingv1connect.NewOrderProcessingServiceClient(http.DefaultClient, strings.TrimSuffix(base, "/"),
		connect.WithInterceptors(authn.NewBearerInterceptor(tok)))
	res, err := client.GetTokenAudit(e.ctx, connect.NewRequest(req))
	if err != nil {
		// The server's message names the failed check, never a token.
		return fmt.Errorf("GetTokenAudit: %s", truncate(err.Error(), 200))
	}
	events, unreachable := res.Msg.GetEvents(), res.Msg.GetUnreachableIssuers()
	if asJSON {
		err = writeJSONValue(e.stdout, auditJSON(events, unreachable))
	} else {
		err = printAudit(e.stdout, events)
	}
	if err != nil {
		return err
	}
	if len(unreachable) > 0 {
		fmt.Fprintf(e.stderr, "tokenrelay audit: could not ask %s: their events are missing\n", safe(strings.Join(unreachable, ", ")))
		return errReported
	}
	return nil
}

// auditEventJSON is an event in the JSON output.
type auditEventJSON struct {
	At         time.Time  `json:"at"`
	Service    string     `json:"service"`
	Seq        int64      `json:"seq"`
	Action     string     `json:"action"`
	Issuer     string     `json:"issuer,omitempty"`
	JTI        string     `json:"jti,omitempty"`
	Kind       string     `json:"kind,omitempty"`
	Subject    string     `json:"subject,omitempty"`
	CheckoutID string     `json:"checkout_id,omitempty"`
	OrderID    string     `json:"order_id,omitempty"`
	Txn        string     `json:"txn,omitempty"`
	Check      string     `json:"check,omitempty"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	Hash       string     `json:"hash"`
}

func auditJSON(events []*capabilityv1.AuditEvent, unreachable []string) any {
	out := struct {
		Events             []auditEventJSON `json:"events"`
		UnreachableIssuers []string         `json:"unreachable_issuers"`
	}{Events: []auditEventJSON{}, UnreachableIssuers: append([]string{}, unreachable...)}
	for _, ev := range events {
		j := auditEventJSON{At: ev.GetAt().AsTime(), Service: ev.GetService(), Seq: ev.GetSeq(), Action: ev.GetAction(),
			Issuer: ev.GetIssuer(), JTI: ev.GetJti(), Kind: ev.GetKind(), Subject: ev.GetSubject(), CheckoutID: ev.GetCheckoutId(),
			OrderID: ev.GetOrderId(), Txn: ev.GetTxn(), Check: ev.GetCheck(), Hash: ev.GetHash()}
		if ev.GetExpiresAt() != nil {
			exp := ev.GetExpiresAt().AsTime()
			j.ExpiresAt = &exp
		}
		out.Events = append(out.Events, j)
	}
	return out
}

// printAudit writes the events as a table, oldest first.
func printAudit(w io.Writer, events []*capabilityv1.AuditEvent) error {
	if len(events) == 0 {
		_, err := fmt.Fprintln(w, "No audit event.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tSERVICE\tSEQ\tACTION\tKIND\tISSUER\tJTI\tORDER\tSUBJECT\tTXN\tCHECK")
	for _, ev := range events {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			ev.GetAt().AsTime().UTC().Format("2006-01-02T15:04:05.000Z"), safe(ev.GetService()), ev.GetSeq(), safe(ev.GetAction()),
			dash(ev.GetKind()), dash(ev.GetIssuer()), dash(ev.GetJti()), dash(ev.GetOrderId()), dash(ev.GetSubject()), dash(ev.GetTxn()), dash(ev.GetCheck()))
	}
	return tw.Flush()
}

// dash is s made safe to print, or "-" for none.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return safe(s)
}
