// Package gen is the root of the generated-code module of tokenrelay.
//
// Everything below gen/go is written by `make generate` from proto/ with
// protoc-gen-go and protoc-gen-connect-go (pinned as tool lines in this
// module's go.mod) and must not be edited by hand. Import the generated
// packages under their conventional names, for example
//
//	couponsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1"
//	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1/couponsv1connect"
//
// This package itself holds no code; its test proves that the generated
// handlers and clients work together over the Connect and gRPC protocols.
package gen
