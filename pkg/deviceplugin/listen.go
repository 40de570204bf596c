package deviceplugin

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// listenUnix listens on a new unix socket at path that only its owner can connect
// to (mode 0600), whatever the umask. bind creates the file with the umask's mode,
// so the mode is set between bind and listen, while every connect is still refused;
// the umask itself is left alone, since it is the whole process's. As with
// net.Listen, closing the listener removes the file.
func listenUnix(path string) (_ net.Listener, retErr error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("create socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close() // the listener holds its own descriptor
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return nil, fmt.Errorf("bind: %w", err)
	}
	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr, os.Remove(path))
		}
	}()
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, err
	}
	if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	l, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("listener of the socket: %w", err)
	}
	if ul, ok := l.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(true)
	}
	return l, nil
}
