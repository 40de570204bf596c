package cni

import (
	"fmt"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cut"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/safepath"
)

// Where a network config may have the plugin write. The plugin runs as root in the
// host's namespaces, and whoever writes a NetworkAttachmentDefinition, often a
// namespace's administrator, chooses its logFile and dataDir: left free, they
// could make it append log lines to any file of the node (a sysctl under
// /proc/sys, a copy of /etc/passwd) or make directories anywhere. A NetConf may
// name a logFile only under AllowedLogDir and a dataDir only under
// AllowedDataDir, or under directories that the node's administrator adds through
// the plugin's environment (EnvLogDirs, EnvDataDirs), which no NetConf can change.
// And whatever the directories, the plugin keeps no file on a pseudo filesystem of
// the kernel (see package safepath).
const (
	// AllowedLogDir is where a NetConf's logFile may be (at any depth).
	AllowedLogDir = "/var/log"
	// AllowedDataDir is where a NetConf's dataDir may be (itself or below it).
	AllowedDataDir = "/var/lib"
	// EnvLogDirs names the environment variable of the plugin's process in which
	// the node's administrator lists more directories for logFile: absolute,
	// clean paths separated by ':'.
	EnvLogDirs = "CHELSIO_SRIOV_LOG_DIRS"
	// EnvDataDirs is EnvLogDirs for dataDir.
	EnvDataDirs = "CHELSIO_SRIOV_DATA_DIRS"
)

// ParseDirList parses the value of the node's setting env (EnvLogDirs or
// EnvDataDirs): directories separated by ':', each absolute and clean (no "..",
// "." or "//", no trailing '/' but in "/" itself). Empty entries are skipped, so
// that "$VAR:/dir" works where VAR is unset. An entry that is not such a
// directory is an error (code 4) naming env and the entry.
func ParseDirList(env, value string) ([]string, error) {
	var dirs []string
	for _, d := range strings.Split(value, ":") {
		if d == "" {
			continue
		}
		if p := dirProblem(d); p != "" {
			return nil, withCode(CodeInvalidEnv, fmt.Errorf("%s: entry %s %s: list absolute, clean directories separated by ':'", env, cut.Quote(d), p))
		}
		dirs = append(dirs, d)
	}
	return dirs, nil
}

// dirProblem says what keeps d from being an absolute, clean directory; "" when
// nothing does.
func dirProblem(d string) string {
	switch {
	case !utf8.ValidString(d):
		return "is not valid UTF-8"
	case strings.IndexFunc(d, unicode.IsControl) >= 0:
		return "contains a control character"
	case !filepath.IsAbs(d):
		return "is not an absolute path"
	case filepath.Clean(d) != d:
		return "is not a clean path (no \"..\", \".\", \"//\" or trailing '/')"
	}
	return ""
}

// within reports whether the clean, absolute path p is the directory dir or below
// it, a whole component at a time: /var/logx is not within /var/log. A trailing
// '/' of p (which checkAbsPath lets a dataDir have) is ignored.
func within(p, dir string) bool {
	if dir == "/" {
		return true
	}
	if p != "/" {
		p = strings.TrimSuffix(p, "/")
	}
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// confine refuses the path that a NetConf names for key unless dir (dataDir
// itself, or logFile's directory) is within one of allowed; env names the node's
// setting that adds to them.
func confine(key, path, dir string, allowed []string, env string) error {
	for _, a := range allowed {
		if within(dir, a) {
			return nil
		}
	}
	return safepath.Setting{Key: key, Path: path}.Refuse("", "is not under the directories a network config may use for %s (%s): the node's administrator can allow more with %s in the plugin's environment", key, strings.Join(allowed, ", "), env)
}

// confineDataDir refuses a dataDir outside p.DataDirs.
func (p *Plugin) confineDataDir(dataDir string) error {
	return confine("dataDir", dataDir, dataDir, p.DataDirs, EnvDataDirs)
}

// confineLogFile refuses a logFile whose directory is outside p.LogDirs; "" (log
// to stderr) is fine.
func (p *Plugin) confineLogFile(logFile string) error {
	if logFile == "" {
		return nil
	}
	return confine("logFile", logFile, filepath.Dir(logFile), p.LogDirs, EnvLogDirs)
}
