package saga

import (
	"context"
	"fmt"

	"connectrpc.com/connect"

	capabilityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1/capabilityv1connect"
)

// Clients reaches each issuer's CapabilityService over Connect, by issuer
// name. Build each client with authn.NewClientInterceptor(authn.WithWorkload(
// ...)) so that every call carries OrderProcessing's workload token.
type Clients map[string]capabilityv1connect.CapabilityServiceClient

var _ Capabilities = Clients(nil)

func (c Clients) client(issuer string) (capabilityv1connect.CapabilityServiceClient, error) {
	cl, ok := c[issuer]
	if !ok {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("no route to issuer %q", issuer))
	}
	return cl, nil
}

// Exercise implements Capabilities.
func (c Clients) Exercise(ctx context.Context, issuer, token, orderID, key string) (string, error) {
	cl, err := c.client(issuer)
	if err != nil {
		return "", err
	}
	res, err := cl.Exercise(ctx, connect.NewRequest(&capabilityv1.ExerciseRequest{
		ConfirmationToken: token, OrderId: orderID, IdempotencyKey: key,
	}))
	if err != nil {
		return "", err
	}
	return res.Msg.GetExercise().GetReference(), nil
}

// Compensate implements Capabilities.
func (c Clients) Compensate(ctx context.Context, issuer, token, orderID, reason, key string) error {
	cl, err := c.client(issuer)
	if err != nil {
		return err
	}
	_, err = cl.Compensate(ctx, connect.NewRequest(&capabilityv1.CompensateRequest{
		ConfirmationToken: token, OrderId: orderID, Reason: reason, IdempotencyKey: key,
	}))
	return err
}
