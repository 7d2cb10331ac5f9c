module github.com/tokenrelay/tokenrelay/bench/load

go 1.26.8

replace github.com/tokenrelay/tokenrelay/gen => ../../gen

require (
	connectrpc.com/connect v1.21.1
	github.com/tokenrelay/tokenrelay/gen v0.0.0-00010101000000-000000000000
	google.golang.org/protobuf v1.36.12
)
