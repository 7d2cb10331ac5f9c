//go:build !linux

package server

import "net"

// rawAccept: elsewhere a filtered listener accepts through net.
const rawAccept = false

func listenRaw(string, func(net.Addr) bool) (net.Listener, error) {
	panic("server: no raw listener on this system")
}
