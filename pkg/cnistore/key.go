package cnistore

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cut"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

var containerIDRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)

// MaxContainerID is the longest CNI_CONTAINERID whose state file name,
// <container>_<ifname>.json with a 15-byte ifname, fits a file name (255 bytes).
const MaxContainerID = 255 - len("_") - MaxIfName - len(".json")

// MaxIfName is the kernel's limit on an interface name (IFNAMSIZ less its NUL).
const MaxIfName = 15

// CheckKey refuses container IDs and ifnames that could leave the directory, make
// a file name the filesystem refuses, or name an interface the kernel would
// rename: the message says which variable and what is wrong with it.
func CheckKey(containerID, ifName string) error {
	if p := containerIDProblem(containerID); p != "" {
		return &KeyError{wrapped{fmt.Errorf("CNI_CONTAINERID %s %s", cut.Quote(containerID), p)}}
	}
	if p := ifNameProblem(ifName); p != "" {
		return &KeyError{wrapped{fmt.Errorf("CNI_IFNAME %s %s", cut.Quote(ifName), p)}}
	}
	return nil
}

// sizeProblem says what is wrong with the length of a key, "" if nothing: empty
// (want says what to give), or longer than most bytes (limit names the limit).
func sizeProblem(key string, most int, want, limit string) string {
	switch {
	case key == "":
		return "is empty: " + want
	case len(key) > most:
		return fmt.Sprintf("is %d bytes long: %s %d", len(key), limit, most)
	}
	return ""
}

func containerIDProblem(id string) string {
	if p := sizeProblem(id, MaxContainerID, "the runtime must give the container's ID", "at most"); p != "" {
		return p
	}
	switch {
	case strings.IndexFunc(id, unicode.IsControl) >= 0:
		return "contains a control character"
	case !containerIDRE.MatchString(id):
		return "is not a container ID: want letters, digits, '_', '.' and '-', starting with a letter or digit"
	}
	return ""
}

func ifNameProblem(name string) string {
	if p := sizeProblem(name, MaxIfName, "want an interface name of 1-15 bytes", "an interface name has at most"); p != "" {
		return p
	}
	switch {
	case name == "." || name == "..":
		return "is not an interface name"
	case name == "all" || name == "default":
		return "is a name the kernel refuses for an interface: it is taken by the per-namespace settings (/proc/sys/net/ipv4/conf/" + name + ")"
	case !utf8.ValidString(name):
		return "is not valid UTF-8"
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "contains a control character"
	case strings.IndexFunc(name, unicode.IsSpace) >= 0:
		return "contains white space, which an interface name cannot"
	case strings.ContainsAny(name, "/:"):
		return "contains '/' or ':', which an interface name cannot"
	case strings.Contains(name, "%"):
		return "contains '%', which the kernel would replace with a number"
	}
	return ""
}

// AttachmentFile is the state file's name of a checked key: <container>_<ifname>.json.
// A container ID may hold '_' and so may an ifname, so that "a_b" with "c" and "a"
// with "b_c" would share a name; neither may hold ':', and so a container ID with
// '_' takes <container>:<ifname>.json instead. The names of all other IDs, every ID
// that runtimes give in practice, are the same as before.
func AttachmentFile(containerID, ifName string) string {
	if strings.Contains(containerID, "_") {
		return containerID + ":" + ifName + ".json"
	}
	return containerID + "_" + ifName + ".json"
}

// checkAddr refuses a PCI address that is not in its canonical form: file names
// are only ever made of the form vf.PCIAddr.String gives.
func checkAddr(addr string) error {
	if a, err := vf.ParsePCIAddr(addr); err != nil || a.String() != addr {
		return fmt.Errorf("state of VF %s: not a canonical PCI address", cut.Quote(addr))
	}
	return nil
}
