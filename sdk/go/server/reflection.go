package server

import (
	"net/http"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
)

// Reflection service names, for a gateway that must route or serve them.
const (
	ReflectionV1Name      = "grpc.reflection.v1.ServerReflection"
	ReflectionV1AlphaName = "grpc.reflection.v1alpha.ServerReflection"
)

// MountReflection serves gRPC server reflection, v1 and v1alpha (older
// grpcurl and buf versions ask for it), on mux for services, the fully
// qualified names of the services the server offers, such as
// couponsv1connect.CouponsServiceName. Descriptors come from the files
// linked into the binary (protoregistry.GlobalFiles), so a service's
// generated package must be imported, as its handler does.
//
// Reflection needs no token: it describes the API, whose .proto files are
// public, and nothing else. opts are the handler options of the reflection
// service (the metrics interceptor).
func MountReflection(mux *http.ServeMux, services []string, opts ...connect.HandlerOption) {
	r := grpcreflect.NewStaticReflector(services...)
	mux.Handle(grpcreflect.NewHandlerV1(r, opts...))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(r, opts...))
}
