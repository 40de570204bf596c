package cni

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"syscall"
)

// parseLevel maps sriov-cni's logLevel values to slog levels; "" is info.
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "warning", "warn":
		return slog.LevelWarn, nil
	case "error", "panic":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown log level %q", s)
}

// openLog returns the logger of one invocation: logFile (appended, 0600, never
// through a symbolic link) or stderr. It never writes to stdout, which carries
// only the result.
func openLog(c *NetConf, stderr io.Writer) (*slog.Logger, func()) {
	lvl, _ := parseLevel(c.LogLevel)
	w, closeFn := stderr, func() {}
	if c.LogFile != "" {
		f, err := os.OpenFile(c.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
		if err != nil {
			fmt.Fprintf(stderr, "chelsio-sriov: logFile %s: %v; logging to stderr\n", c.LogFile, err)
		} else {
			w, closeFn = f, func() { _ = f.Close() }
		}
	}
	if w == nil {
		w = io.Discard
	}
	h := slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl})
	return slog.New(h).With("plugin", "chelsio-sriov"), closeFn
}
