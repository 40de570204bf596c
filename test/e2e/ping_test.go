package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// pingDF sends one ICMP echo request of payload bytes to dst with the
// don't-fragment bit set (as `ping -M do -s <payload>`), from the calling thread's
// network namespace, and waits for the reply. A path MTU below 28+payload fails
// with EMSGSIZE instead of fragmenting.
func pingDF(dst net.IP, payload int, timeout time.Duration) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
	if err != nil {
		return fmt.Errorf("icmp socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO); err != nil {
		return err
	}
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return err
	}
	id := uint16(os.Getpid())
	seq := uint16(time.Now().UnixNano())
	pkt := make([]byte, 8+payload)
	pkt[0] = 8 // echo request
	binary.BigEndian.PutUint16(pkt[4:], id)
	binary.BigEndian.PutUint16(pkt[6:], seq)
	for i := 8; i < len(pkt); i++ {
		pkt[i] = byte(i)
	}
	binary.BigEndian.PutUint16(pkt[2:], icmpChecksum(pkt))
	var sa unix.SockaddrInet4
	copy(sa.Addr[:], dst.To4())
	if err := unix.Sendto(fd, pkt, 0, &sa); err != nil {
		return fmt.Errorf("send %d-byte echo to %s: %w", payload, dst, err)
	}
	buf := make([]byte, 65536)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("receive echo reply from %s: %w", dst, err)
		}
		if n < 20 {
			continue
		}
		ihl := int(buf[0]&0x0f) * 4
		m := buf[ihl:n]
		if len(m) >= 8 && m[0] == 0 && binary.BigEndian.Uint16(m[4:]) == id && binary.BigEndian.Uint16(m[6:]) == seq {
			if len(m)-8 != payload {
				return fmt.Errorf("echo reply from %s carries %d bytes, sent %d", dst, len(m)-8, payload)
			}
			return nil
		}
	}
	return fmt.Errorf("no echo reply from %s within %v", dst, timeout)
}

func icmpChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
