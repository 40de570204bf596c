package bench

import (
	"fmt"
	"syscall"
)

// bufControl returns a net.Dialer/net.ListenConfig Control function that sets
// SO_SNDBUF and SO_RCVBUF to window bytes before connect or listen, as `iperf -w`
// does (the kernel doubles the value for bookkeeping; a listener's accepted
// connections inherit it, so the window scale is negotiated for it). window 0
// leaves the kernel's autotuning alone.
func bufControl(window int) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		if window <= 0 {
			return nil
		}
		var serr error
		err := c.Control(func(fd uintptr) {
			for _, opt := range []int{syscall.SO_SNDBUF, syscall.SO_RCVBUF} {
				if e := syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, window); e != nil && serr == nil {
					serr = fmt.Errorf("set socket buffer to %d bytes: %w", window, e)
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}
