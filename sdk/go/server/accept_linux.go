package server

import (
	"errors"
	"net"
	"os"
	"syscall"
)

// rawAccept: on Linux Listen accepts a filtered listener's connections
// with accept4 itself (listenRaw).
const rawAccept = true

// rawListener is Listen's filtered listener on Linux: its own listening
// socket, in an os.File so that the runtime's poller waits on it, and
// connections accepted with accept4. A refused connection is reset
// (SO_LINGER 0) and closed as a bare file descriptor: no net.Conn, no
// poller registration, no getsockname or getpeername (accept4 gives the
// peer's address): three system calls. A served one becomes a net.Conn
// (net.FileConn) with keep-alive set.
type rawListener struct {
	file   *os.File
	raw    syscall.RawConn
	addr   net.Addr
	accept func(remote net.Addr) bool
}

// listenRaw listens on addr (TCP) as net.Listen would: SO_REUSEADDR, the
// system's backlog, IPv4 for an IPv4 address, else IPv6 taking IPv4 too.
func listenRaw(addr string, accept func(net.Addr) bool) (net.Listener, error) {
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, err
	}
	family, sa := syscall.AF_INET6, syscall.Sockaddr(&syscall.SockaddrInet6{Port: ta.Port})
	if ip4 := ta.IP.To4(); ip4 != nil {
		family, sa = syscall.AF_INET, &syscall.SockaddrInet4{Port: ta.Port, Addr: [4]byte(ip4)}
	} else if ta.IP != nil {
		sa = &syscall.SockaddrInet6{Port: ta.Port, Addr: [16]byte(ta.IP.To16())}
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, syscall.IPPROTO_TCP)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	err = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	if err == nil && family == syscall.AF_INET6 {
		err = syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, 0)
	}
	if err == nil {
		err = syscall.Bind(fd, sa)
	}
	if err == nil {
		err = syscall.Listen(fd, syscall.SOMAXCONN)
	}
	var bound syscall.Sockaddr
	if err == nil {
		bound, err = syscall.Getsockname(fd)
	}
	if err != nil {
		_ = syscall.Close(fd)
		return nil, &net.OpError{Op: "listen", Net: "tcp", Addr: ta, Err: err}
	}
	l := &rawListener{file: os.NewFile(uintptr(fd), "listener"), addr: tcpAddr(bound), accept: accept}
	if l.raw, err = l.file.SyscallConn(); err != nil {
		_ = l.file.Close()
		return nil, err
	}
	return l, nil
}

func (l *rawListener) Addr() net.Addr { return l.addr }

func (l *rawListener) Close() error { return l.file.Close() }

// Accept accepts the next connection the filter lets through.
func (l *rawListener) Accept() (net.Conn, error) {
	for {
		var fd int
		var sa syscall.Sockaddr
		var aerr error
		err := l.raw.Read(func(lfd uintptr) bool {
			fd, sa, aerr = syscall.Accept4(int(lfd), syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
			return !errors.Is(aerr, syscall.EAGAIN) // false: wait until a connection is pending
		})
		switch {
		case err != nil: // the listener closed
			return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.addr, Err: net.ErrClosed}
		case errors.Is(aerr, syscall.ECONNABORTED) || errors.Is(aerr, syscall.EINTR):
			continue // gone before it was accepted
		case aerr != nil:
			return nil, os.NewSyscallError("accept4", aerr) // EMFILE and the like: Temporary, Serve retries
		}
		if !l.accept(tcpAddr(sa)) {
			_ = syscall.SetsockoptLinger(fd, syscall.SOL_SOCKET, syscall.SO_LINGER, &syscall.Linger{Onoff: 1, Linger: 0})
			_ = syscall.Close(fd)
			continue
		}
		f := os.NewFile(uintptr(fd), "")
		c, err := net.FileConn(f) // a duplicate of fd, registered with the poller
		_ = f.Close()
		if err != nil {
			continue
		}
		return served(c), nil
	}
}

// tcpAddr is the TCP address of a socket address.
func tcpAddr(sa syscall.Sockaddr) net.Addr {
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *syscall.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	}
	return &net.TCPAddr{}
}
