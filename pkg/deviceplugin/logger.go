package deviceplugin

import (
	"errors"
	"flag"
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

// ErrParse is a command line that the flag package refused and has said why
// about on the flag set's output: the daemons exit 2 without saying it again.
var ErrParse = errors.New("bad command line")

// ParseArgs parses a daemon's command line: ErrParse for what fs refuses, an
// error naming it for an argument left over.
func ParseArgs(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return ErrParse
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}
