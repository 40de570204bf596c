package uevent

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Group is the multicast group of the kernel's uevents (udev's own messages go to 2).
const Group = 1

// ErrOverrun is returned by Receive when the socket's buffer overflowed and the
// kernel dropped messages: whatever they said is lost.
var ErrOverrun = errors.New("uevent socket overrun: messages were dropped")

// ErrTooLarge is returned by Receive for a message longer than the caller's buffer;
// it was discarded.
var ErrTooLarge = errors.New("uevent message larger than the receive buffer: discarded")

// Conn is a NETLINK_KOBJECT_UEVENT socket. Close unblocks a Receive.
type Conn struct {
	f      *os.File
	rc     syscall.RawConn
	closed atomic.Bool
}

// Listen opens a socket in the calling thread's network namespace that receives the
// kernel's uevents (group 1), with a receive buffer of rcvbuf bytes (0: the system's
// default). The buffer bounds what a burst can queue: beyond it Receive reports
// ErrOverrun.
func Listen(rcvbuf int) (*Conn, error) { return open(Group, rcvbuf) }

// Dial opens a socket in the calling thread's network namespace that sends uevents
// (Send) and receives none. Sending to a multicast group needs CAP_NET_ADMIN.
func Dial() (*Conn, error) { return open(0, 0) }

// ListenAt is Listen in the network namespace at nsPath (/run/netns/NAME,
// /proc/PID/ns/net).
func ListenAt(nsPath string, rcvbuf int) (*Conn, error) {
	return at(nsPath, func() (*Conn, error) { return Listen(rcvbuf) })
}

// DialAt is Dial in the network namespace at nsPath.
func DialAt(nsPath string) (*Conn, error) { return at(nsPath, Dial) }

func open(groups uint32, rcvbuf int) (*Conn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return nil, fmt.Errorf("uevent socket: %w", err)
	}
	if rcvbuf > 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf); err != nil {
			_ = unix.Close(fd)
			return nil, fmt.Errorf("uevent socket: receive buffer: %w", err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("uevent socket: bind to group %d: %w", groups, err)
	}
	f := os.NewFile(uintptr(fd), "uevent")
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("uevent socket: %w", err)
	}
	return &Conn{f: f, rc: rc}, nil
}

// at runs open on a locked thread moved into the namespace at nsPath, then moves the
// thread back. A socket keeps the namespace it was made in.
func at(nsPath string, open func() (*Conn, error)) (*Conn, error) {
	target, err := os.Open(nsPath)
	if err != nil {
		return nil, fmt.Errorf("uevent socket: netns: %w", err)
	}
	defer target.Close()
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("uevent socket: netns: %w", err)
	}
	defer orig.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("uevent socket: enter netns %s: %w", nsPath, err)
	}
	c, err := open()
	if serr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); serr != nil {
		// The thread stays locked, in the wrong namespace: the runtime discards it
		// when this goroutine ends.
		if c != nil {
			_ = c.Close()
		}
		return nil, errors.Join(err, fmt.Errorf("uevent socket: return to the original netns: %w", serr))
	}
	runtime.UnlockOSThread()
	return c, err
}

// Receive reads one message into buf and returns its length and the sender's
// netlink port ID: 0 for the kernel, another number for a user process. It returns
// ErrOverrun after dropped messages, ErrTooLarge for a message longer than buf, and
// os.ErrClosed once Close was called.
func (c *Conn) Receive(buf []byte) (n int, sender uint32, err error) {
	var flags int
	var from unix.Sockaddr
	rerr := c.rc.Read(func(fd uintptr) bool {
		n, _, flags, from, err = unix.Recvmsg(int(fd), buf, nil, 0)
		return !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR)
	})
	switch {
	case rerr != nil && c.closed.Load():
		return 0, 0, os.ErrClosed
	case rerr != nil:
		return 0, 0, fmt.Errorf("uevent socket: receive: %w", rerr)
	case errors.Is(err, unix.ENOBUFS):
		return 0, 0, ErrOverrun
	case err != nil:
		return 0, 0, fmt.Errorf("uevent socket: receive: %w", err)
	case flags&unix.MSG_TRUNC != 0:
		return 0, 0, ErrTooLarge
	}
	sa, ok := from.(*unix.SockaddrNetlink)
	if !ok {
		return 0, 0, errors.New("uevent socket: a message without a netlink sender")
	}
	return n, sa.Pid, nil
}

// Send multicasts m to group 1 of the socket's network namespace, as the kernel
// multicasts its uevents.
func (c *Conn) Send(m *Message) error {
	b := m.Marshal()
	if len(b) > MaxSize {
		return fmt.Errorf("uevent %s@%s: %d bytes, at most %d", m.Action, m.DevPath, len(b), MaxSize)
	}
	var err error
	werr := c.rc.Write(func(fd uintptr) bool {
		err = unix.Sendto(int(fd), b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: Group})
		return !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR)
	})
	if werr != nil {
		return werr
	}
	if err != nil {
		return fmt.Errorf("send uevent %s@%s: %w", m.Action, m.DevPath, err)
	}
	return nil
}

// Close closes the socket.
func (c *Conn) Close() error {
	c.closed.Store(true)
	return c.f.Close()
}
