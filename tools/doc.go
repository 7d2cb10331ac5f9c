// Package tools pins the Go tools the Makefile builds (staticcheck) in a
// module of their own, outside go.work, so that their dependencies never
// change the versions the workspace's modules build with.
package tools
