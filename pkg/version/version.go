// Package version says what a binary was built from: its version, the commit and
// the commit's time. The build stamps them with the linker, the same way from the
// Makefile and from both images (images/Dockerfile runs make build):
//
//	-X github.com/chelsio-k8s/chelsio-sriov/pkg/version.Version=v1.2.0
//	-X github.com/chelsio-k8s/chelsio-sriov/pkg/version.Commit=<full hash>
//	-X github.com/chelsio-k8s/chelsio-sriov/pkg/version.Date=2026-01-02T03:04:05Z
//
// A binary built without them (go build, go test) reports the commit and time
// that the go command recorded from the checkout, if any.
package version

import (
	"runtime/debug"
	"strings"
)

// Set by the linker; see the package comment.
var (
	Version = "dev"
	Commit  = ""
	Date    = ""
)

// Info is what one binary was built from.
type Info struct {
	Version string // a release tag, or git describe of the checkout; "dev" when unstamped
	Commit  string // the full commit hash; "unknown" when nobody recorded it
	Date    string // the commit's time, UTC, RFC 3339; "unknown" likewise
}

// Get returns the stamped values, with the go command's record of the checkout
// for the ones the build did not stamp.
func Get() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return fill(Info{Version: Version, Commit: Commit, Date: Date}, bi)
}

// fill completes i from the build's VCS settings, then marks what is still
// missing as unknown.
func fill(i Info, bi *debug.BuildInfo) Info {
	if bi != nil {
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && i.Commit == "":
				i.Commit = s.Value
			case s.Key == "vcs.time" && i.Date == "":
				i.Date = s.Value
			}
		}
	}
	for _, f := range []*string{&i.Version, &i.Commit, &i.Date} {
		if strings.TrimSpace(*f) == "" {
			*f = "unknown"
		}
	}
	return i
}

// String is the version with its provenance: "v1.2.0 (commit 3f2a…, built 2026-…Z)".
func (i Info) String() string {
	return i.Version + " (commit " + i.Commit + ", built " + i.Date + ")"
}

// Line is the line a binary prints for --version: its name, then String.
func Line(name string) string {
	return name + " " + Get().String()
}
