package version

import (
	"runtime/debug"
	"testing"
)

func TestFill(t *testing.T) {
	vcs := &debug.BuildInfo{Settings: []debug.BuildSetting{
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
		{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"},
		{Key: "vcs.modified", Value: "false"},
	}}
	stamped := Info{Version: "v1.2.0", Commit: "fedcba9876543210fedcba9876543210fedcba98", Date: "2026-02-03T04:05:06Z"}
	for _, c := range []struct {
		name string
		in   Info
		bi   *debug.BuildInfo
		want Info
	}{
		{"stamped wins over the checkout", stamped, vcs, stamped},
		{"unstamped takes the checkout's", Info{Version: "dev"}, vcs, Info{"dev", "0123456789abcdef0123456789abcdef01234567", "2026-01-02T03:04:05Z"}},
		{"only the date stamped", Info{Version: "v1", Date: "2026-02-03T04:05:06Z"}, vcs, Info{"v1", "0123456789abcdef0123456789abcdef01234567", "2026-02-03T04:05:06Z"}},
		{"no build info", Info{Version: "dev"}, nil, Info{"dev", "unknown", "unknown"}},
		{"build info without a checkout", Info{Version: "", Commit: " "}, &debug.BuildInfo{}, Info{"unknown", "unknown", "unknown"}},
	} {
		if got := fill(c.in, c.bi); got != c.want {
			t.Errorf("%s: fill(%+v) = %+v, want %+v", c.name, c.in, got, c.want)
		}
	}
}

func TestLine(t *testing.T) {
	old := [3]string{Version, Commit, Date}
	t.Cleanup(func() { Version, Commit, Date = old[0], old[1], old[2] })
	Version, Commit, Date = "v0.3.1", "abc", "2026-03-04T05:06:07Z"
	if got, want := Line("chelsio-vf"), "chelsio-vf v0.3.1 (commit abc, built 2026-03-04T05:06:07Z)"; got != want {
		t.Errorf("Line = %q, want %q", got, want)
	}
}
