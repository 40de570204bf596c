package uevent

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cut"
)

// MaxSize bounds one message. The kernel's uevent environment is at most 2048 bytes
// (UEVENT_BUFFER_SIZE), and its header a device path; anything larger is not one.
const MaxSize = 8192

// Message is one uevent. Env holds every KEY=VALUE of the message, ACTION, DEVPATH,
// SUBSYSTEM and SEQNUM included.
type Message struct {
	Action  string
	DevPath string
	Env     map[string]string
}

// Subsystem is the message's SUBSYSTEM ("pci", "net").
func (m *Message) Subsystem() string { return m.Env["SUBSYSTEM"] }

// Seq is the message's SEQNUM.
func (m *Message) Seq() uint64 {
	n, _ := strconv.ParseUint(m.Env["SEQNUM"], 10, 64)
	return n
}

// Parse reads one message in the kernel's form: the header ACTION@DEVPATH, then
// KEY=VALUE fields, each ended by a NUL byte. It refuses anything else: a message
// over MaxSize or not ended by NUL, an empty field, a key outside [A-Z0-9_] or given
// twice, a header that disagrees with ACTION or DEVPATH, no SUBSYSTEM, a SEQNUM that
// is not a number. libudev's messages ("libudev\0…", group 2) are refused too.
func Parse(b []byte) (*Message, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("uevent of %d bytes: at most %d", len(b), MaxSize)
	}
	if len(b) == 0 || b[len(b)-1] != 0 {
		return nil, errors.New("uevent not ended by a NUL byte")
	}
	fields := bytes.Split(b[:len(b)-1], []byte{0})
	action, devpath, ok := strings.Cut(string(fields[0]), "@")
	if !ok || !isAction(action) || !strings.HasPrefix(devpath, "/") {
		return nil, fmt.Errorf("uevent header %s: want ACTION@/DEVPATH", cut.Quote(string(fields[0])))
	}
	m := &Message{Action: action, DevPath: devpath, Env: make(map[string]string, len(fields)-1)}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(string(f), "=")
		if !ok || !isKey(k) {
			return nil, fmt.Errorf("uevent field %s: want KEY=VALUE", cut.Quote(string(f)))
		}
		if _, dup := m.Env[k]; dup {
			return nil, fmt.Errorf("uevent key %s given twice", k)
		}
		m.Env[k] = v
	}
	switch {
	case m.Env["ACTION"] != action:
		return nil, fmt.Errorf("uevent ACTION %s differs from its header's %q", cut.Quote(m.Env["ACTION"]), action)
	case m.Env["DEVPATH"] != devpath:
		return nil, fmt.Errorf("uevent DEVPATH %s differs from its header's", cut.Quote(m.Env["DEVPATH"]))
	case m.Env["SUBSYSTEM"] == "":
		return nil, errors.New("uevent without SUBSYSTEM")
	}
	if _, err := strconv.ParseUint(m.Env["SEQNUM"], 10, 64); err != nil {
		return nil, fmt.Errorf("uevent SEQNUM %s: want a number", cut.Quote(m.Env["SEQNUM"]))
	}
	return m, nil
}

// Marshal writes the message in the kernel's form: the header, ACTION, DEVPATH,
// SUBSYSTEM, the other keys in sorted order, SEQNUM last.
func (m *Message) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString(m.Action + "@" + m.DevPath + "\x00")
	first := []string{"ACTION", "DEVPATH", "SUBSYSTEM"}
	env := map[string]string{"ACTION": m.Action, "DEVPATH": m.DevPath}
	for k, v := range m.Env {
		env[k] = v
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		if !slices.Contains(first, k) && k != "SEQNUM" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range slices.Concat(first, keys, []string{"SEQNUM"}) {
		if v, ok := env[k]; ok {
			b.WriteString(k + "=" + v + "\x00")
		}
	}
	return b.Bytes()
}

// isAction reports whether s can be an action: lower-case letters, as the kernel's
// add, remove, change, move, online, offline, bind and unbind.
func isAction(s string) bool {
	if s == "" || len(s) > 16 {
		return false
	}
	for _, c := range s {
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

func isKey(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}
