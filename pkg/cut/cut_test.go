package cut

import (
	"strings"
	"testing"
)

// TestValue: short values pass as they are; long ones, or ones that quote long
// (control bytes, invalid UTF-8), are cut with "…" so that they quote to a short
// line.
func TestValue(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"short", "net1", "net1"},
		{"40 bytes", strings.Repeat("a", 40), strings.Repeat("a", 40)},
		{"41 bytes", strings.Repeat("a", 41), strings.Repeat("a", 40) + "…"},
		{"control bytes", strings.Repeat("\x01", 20), strings.Repeat("\x01", 11) + "…"},
		{"invalid UTF-8", strings.Repeat("\xff", 13), strings.Repeat("\xff", 11) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Value(tt.in); got != tt.want {
				t.Errorf("Value(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if q := Quote(tt.in); len(q) > 52 || strings.ContainsAny(q, "\r\n") {
				t.Errorf("Quote(%q) = %q: more than one short line", tt.in, q)
			}
		})
	}
}
