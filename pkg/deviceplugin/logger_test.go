package deviceplugin

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string // "" no error; "parse" ErrParse; else a part of the message
	}{
		{args: []string{"--log-format=json"}},
		{args: []string{"--no-such-flag"}, want: "parse"},
		{args: []string{"--log-format=json", "extra"}, want: `unexpected argument "extra"`},
	} {
		fs := flag.NewFlagSet("d", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.String("log-format", "text", "")
		err := ParseArgs(fs, tt.args)
		switch {
		case tt.want == "" && err != nil,
			tt.want == "parse" && !errors.Is(err, ErrParse),
			tt.want != "" && tt.want != "parse" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("ParseArgs(%q) = %v, want %q", tt.args, err, tt.want)
		}
	}
	if _, err := NewLogger("yaml", io.Discard); err == nil {
		t.Error("NewLogger took the format yaml")
	}
}
