module github.com/tokenrelay/tokenrelay/bench/load

go 1.26.8

replace (
	github.com/tokenrelay/tokenrelay/gen => ../../gen
	github.com/tokenrelay/tokenrelay/sdk/go => ../../sdk/go
)

require (
	connectrpc.com/connect v1.21.1
	github.com/tokenrelay/tokenrelay/gen v0.0.0-00010101000000-000000000000
	github.com/tokenrelay/tokenrelay/sdk/go v0.0.0-00010101000000-000000000000
	golang.org/x/sys v0.49.0
	google.golang.org/protobuf v1.36.12
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/dgraph-io/ristretto/v2 v2.4.2 // indirect
	github.com/dustin/go-humanize v1.1.0 // indirect
	github.com/golang-jwt/jwt/v5 v5.3.1 // indirect
)
