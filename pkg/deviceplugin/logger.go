package deviceplugin

import (
	"fmt"
	"io"
	"log/slog"
)

// NewLogger is the logger of --log-format, text or json, writing to w: the
// daemons of this module share the flag.
func NewLogger(format string, w io.Writer) (*slog.Logger, error) {
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
