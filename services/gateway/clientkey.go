package gateway

import (
	"net"
	"net/netip"
)

// clientKey is the key of a request's peer address (RemoteAddr,
// "host:port") in the budget of failed authentications (see
// Config.AuthFailureBurst and package budget): an IPv4 address, or the /64 of an IPv6 address (what one
// subscriber is routed, and can rotate addresses within). Addresses that
// do not parse (a listener on a Unix socket) share the zero key.
func clientKey(remoteAddr string) netip.Prefix {
	var addr netip.Addr
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		addr = ap.Addr()
	} else if addr, err = netip.ParseAddr(remoteAddr); err != nil {
		return netip.Prefix{}
	}
	return prefixKey(addr)
}

// addrKey is clientKey of a connection's peer address, without formatting
// and parsing it again for TCP.
func addrKey(remote net.Addr) netip.Prefix {
	if tcp, ok := remote.(*net.TCPAddr); ok && tcp != nil {
		if addr, ok := netip.AddrFromSlice(tcp.IP); ok {
			return prefixKey(addr)
		}
		return netip.Prefix{}
	}
	if remote == nil {
		return netip.Prefix{}
	}
	return clientKey(remote.String())
}

// prefixKey is the budget key of addr: itself (unmapped from IPv6), or
// its /64.
func prefixKey(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap().WithZone("")
	bits := 32
	if addr.Is6() {
		bits = 64
	}
	p, _ := addr.Prefix(bits)
	return p
}
