package cni

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/cut"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// DefaultDataDir holds the plugin's state when the NetConf names no dataDir.
const DefaultDataDir = cnistore.DefaultDir

// MaxNetConf is the largest network config ADD takes: the attachment's state
// records it (IPAM DEL gets it again) beside the result, and the whole record must
// stay within what the store reads back (a larger one is a cnistore.TooLargeError).
const MaxNetConf = 256 << 10

// MTU bounds of a cxgb4vf netdev (hardware maximum 9600).
const (
	MinMTU = 81
	MaxMTU = 9600
)

// NetConf is the plugin's network configuration: the generic CNI keys, every
// sriov-cni key, and mtu and dataDir. Unknown keys are refused, except inside
// ipam, args and runtimeConfig, which belong to other parties.
type NetConf struct {
	CNIVersion   string          `json:"cniVersion"`
	CNIVersions  []string        `json:"cniVersions,omitempty"`
	Name         string          `json:"name"`
	Type         string          `json:"type"`
	Capabilities map[string]bool `json:"capabilities,omitempty"`
	IPAM         json.RawMessage `json:"ipam,omitempty"`
	DNS          types.DNS       `json:"dns,omitzero"`
	Args         json.RawMessage `json:"args,omitempty"`
	PrevResult   json.RawMessage `json:"prevResult,omitempty"`
	Runtime      json.RawMessage `json:"runtimeConfig,omitempty"`
	// GC: attachments to keep. libcni sends both keys.
	ValidAttachments []types.GCAttachment `json:"cni.dev/valid-attachments,omitempty"`
	Attachments      []types.GCAttachment `json:"cni.dev/attachments,omitempty"`
	// Multus adds these to the delegate's config (sriov-dp's "disableGC" etc. are
	// list-level keys and never reach a plugin).
	DisableCheck bool `json:"disableCheck,omitempty"`
	DisableGC    bool `json:"disableGC,omitempty"`

	DeviceID  string  `json:"deviceID,omitempty"` // VF PCI address (Multus)
	PCIBusID  string  `json:"pciBusID,omitempty"` // VF PCI address (Multus, host-device)
	VLAN      *int    `json:"vlan,omitempty"`
	VLANQoS   *int    `json:"vlanQoS,omitempty"`
	VLANProto *string `json:"vlanProto,omitempty"`
	MAC       string  `json:"mac,omitempty"`
	SpoofChk  *string `json:"spoofchk,omitempty"`
	Trust     *string `json:"trust,omitempty"`
	LinkState string  `json:"link_state,omitempty"`
	MinTxRate *int    `json:"min_tx_rate,omitempty"`
	MaxTxRate *int    `json:"max_tx_rate,omitempty"`
	MTU       *int    `json:"mtu,omitempty"`
	DataDir   string  `json:"dataDir,omitempty"`
	LogLevel  string  `json:"logLevel,omitempty"`
	LogFile   string  `json:"logFile,omitempty"`

	// Derived by Load.
	IPAMType string               `json:"-"`
	RC       RuntimeConfig        `json:"-"`
	VF       vf.PCIAddr           `json:"-"` // zero when no deviceID was given
	PodMAC   net.HardwareAddr     `json:"-"` // runtimeConfig.mac > CNI_ARGS MAC > mac
	State    vf.LinkState         `json:"-"`
	Raw      []byte               `json:"-"` // stdin as received, forwarded to IPAM
	Valid    []types.GCAttachment `json:"-"` // union of the GC keys
}

// RuntimeConfig is what the runtime passes for capabilities the NAD declares.
type RuntimeConfig struct {
	DeviceID string `json:"deviceID,omitempty"`
	MAC      string `json:"mac,omitempty"`
}

// HasPFSettings reports whether the NetConf asks for any setting that goes through
// the PF's management netdev. Without one, the plugin never reads the PF's VF list.
func (c *NetConf) HasPFSettings() bool {
	return c.VLAN != nil || c.MaxTxRate != nil || c.LinkState != "" || c.PodMAC != nil
}

// configError is a refused NetConf: code 7 with one sentence naming the key.
func configError(format string, args ...any) error {
	return withCode(CodeInvalidConfig, fmt.Errorf(format, args...))
}

// pluginType is the plugin's own "type": the name it is installed under in CNI_PATH.
const pluginType = "chelsio-sriov"

// ipamConf is what the plugin reads of "ipam": the rest is the IPAM plugin's.
type ipamConf struct {
	Type string `json:"type"`
}

// Load decodes and validates the NetConf from stdin, with CNI_ARGS (for MAC=).
// Nothing is touched on the node: every refusal happens here.
func Load(stdin []byte, cniArgs string) (*NetConf, error) {
	if err := checkKeys(stdin, netConfKeys()); err != nil {
		return nil, err
	}
	c := &NetConf{Raw: stdin}
	dec := json.NewDecoder(bytes.NewReader(stdin))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		var ute *json.UnmarshalTypeError
		switch {
		case errors.As(err, &ute):
			return nil, withCode(CodeDecoding, fmt.Errorf("decode network config: key %q: want %s, got JSON %s", cut.Value(ute.Field), ute.Type, cut.Value(ute.Value)))
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			key := cut.Value(strings.TrimPrefix(err.Error(), "json: unknown field "))
			return nil, configError("unknown key %s in the network config (see the chelsio-sriov README for the keys it takes)", key)
		}
		return nil, withCode(CodeDecoding, fmt.Errorf("decode network config: %w", err))
	}
	if len(c.IPAM) > 0 && string(c.IPAM) != "null" {
		var ip ipamConf
		if err := json.Unmarshal(c.IPAM, &ip); err != nil {
			return nil, withCode(CodeDecoding, fmt.Errorf("decode network config: key \"ipam\": %w", err))
		}
		if ip.Type == "" {
			return nil, configError("\"ipam\" has no \"type\": name the IPAM plugin, e.g. \"host-local\"")
		}
		if strings.ContainsAny(ip.Type, "/\\\x00") {
			return nil, configError("\"ipam\" type %q is not a plugin name: want the file name of an IPAM plugin in CNI_PATH, e.g. \"host-local\"", ip.Type)
		}
		if p := fileNameProblem(ip.Type); p != "" {
			return nil, configError("\"ipam\" type %q %s: want the file name of an IPAM plugin in CNI_PATH", cut.Value(ip.Type), p)
		}
		if ip.Type == pluginType || ip.Type == c.Type {
			// Run as its own IPAM, the plugin would wait a minute for the VF lock that
			// it holds itself.
			return nil, configError("\"ipam\" type %q is this plugin itself: name an IPAM plugin, e.g. \"host-local\"", cut.Value(ip.Type))
		}
		c.IPAMType = ip.Type
	}
	if len(c.Runtime) > 0 && string(c.Runtime) != "null" {
		if err := json.Unmarshal(c.Runtime, &c.RC); err != nil {
			return nil, withCode(CodeDecoding, fmt.Errorf("decode network config: key \"runtimeConfig\": %w", err))
		}
	}
	c.Valid = append(append([]types.GCAttachment(nil), c.ValidAttachments...), c.Attachments...)
	if err := c.validate(cniArgs); err != nil {
		return nil, err
	}
	return c, nil
}

// validate checks every key and derives VF, State, PodMAC and the default
// DataDir; the first refusal found is returned.
func (c *NetConf) validate(cniArgs string) error {
	for _, check := range []func() error{
		c.checkNetwork,
		c.resolveVF,
		c.checkVLAN,
		c.checkVFSettings,
		func() error { return c.resolveMAC(cniArgs) },
		c.checkFiles,
	} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// checkNetwork checks cniVersion and the network's name.
func (c *NetConf) checkNetwork() error {
	if c.CNIVersion != "" {
		ok, err := version.GreaterThanOrEqualTo(c.CNIVersion, "0.3.0")
		if err != nil || !ok {
			return withCode(CodeIncompatibleVersion, fmt.Errorf("\"cniVersion\" %q: chelsio-sriov supports 0.3.0 to 1.1.0", c.CNIVersion))
		}
	}
	if c.Name != "" && !networkNameRE.MatchString(c.Name) {
		return configError("\"name\" %q is not a network name: want letters, digits, '_', '.' and '-', starting with a letter or digit (IPAM plugins make a directory of it)", cut.Value(c.Name))
	}
	return nil
}

// resolveVF sets VF from deviceID, else pciBusID, else runtimeConfig.deviceID.
// Each one given must be a PCI address, even when another wins.
func (c *NetConf) resolveVF() error {
	for _, cand := range []struct{ key, val string }{{"deviceID", c.DeviceID}, {"pciBusID", c.PCIBusID}, {"runtimeConfig.deviceID", c.RC.DeviceID}} {
		if cand.val == "" {
			continue
		}
		a, err := vf.ParsePCIAddr(cand.val)
		if err != nil {
			return configError("%q: %v", cand.key, err)
		}
		if a.IsZero() {
			// The zero address stands for "no VF" everywhere else, and is the host
			// bridge's on every machine.
			return configError("%q %s is the PCI host bridge's address, never a VF's", cand.key, a)
		}
		if c.VF.IsZero() {
			c.VF = a
		}
	}
	return nil
}

// checkVLAN checks vlan, and vlanQoS and vlanProto, of which cxgb4 takes only the
// defaults.
func (c *NetConf) checkVLAN() error {
	if c.VLAN != nil && (*c.VLAN < 0 || *c.VLAN > 4094) {
		return configError("\"vlan\" %d is out of range: want 0-4094 (0 clears the VLAN)", *c.VLAN)
	}
	if c.VLANQoS != nil {
		if *c.VLANQoS < 0 || *c.VLANQoS > 7 {
			return configError("\"vlanQoS\" %d is out of range 0-7, and cxgb4 takes only 0: remove the key or set it to 0", *c.VLANQoS)
		}
		if *c.VLANQoS != 0 {
			return configError("\"vlanQoS\" %d: cxgb4 cannot set a VF's VLAN priority; remove the key or set it to 0", *c.VLANQoS)
		}
	}
	if c.VLANProto != nil {
		switch strings.ToLower(*c.VLANProto) {
		case "802.1q":
		case "802.1ad":
			return configError("\"vlanProto\" 802.1ad: cxgb4 supports only 802.1q VF VLANs")
		default:
			return configError("\"vlanProto\" %q: want \"802.1q\"", cut.Value(*c.VLANProto))
		}
	}
	return nil
}

// checkVFSettings checks spoofchk, trust, link_state (setting State), the rates
// and mtu against what cxgb4 and a Chelsio VF take.
func (c *NetConf) checkVFSettings() error {
	for _, b := range []struct {
		key string
		val *string
	}{{"spoofchk", c.SpoofChk}, {"trust", c.Trust}} {
		if b.val == nil {
			continue
		}
		switch strings.ToLower(*b.val) {
		case "off":
		case "on":
			return configError("%q on: cxgb4 does not implement it (a Chelsio VF always behaves as %s off); remove the key or set \"off\"", b.key, b.key)
		default:
			return configError("%q %q: want \"on\" or \"off\"", b.key, cut.Value(*b.val))
		}
	}
	if c.LinkState != "" {
		s, err := vf.ParseLinkState(c.LinkState)
		if err != nil {
			return configError("\"link_state\" %q: want auto, enable or disable", cut.Value(c.LinkState))
		}
		c.State = s
	}
	if c.MinTxRate != nil && *c.MinTxRate != 0 {
		return configError("\"min_tx_rate\" %d: cxgb4 has no minimum VF rate; remove the key or set it to 0", *c.MinTxRate)
	}
	if c.MaxTxRate != nil && *c.MaxTxRate < 0 {
		return configError("\"max_tx_rate\" %d is negative: want Mbps, 0 for unlimited", *c.MaxTxRate)
	}
	if c.MTU != nil && (*c.MTU < MinMTU || *c.MTU > MaxMTU) {
		return configError("\"mtu\" %d is out of range: a Chelsio VF takes %d-%d", *c.MTU, MinMTU, MaxMTU)
	}
	return nil
}

// resolveMAC sets PodMAC from runtimeConfig.mac, else CNI_ARGS MAC=, else mac.
func (c *NetConf) resolveMAC(cniArgs string) error {
	macKey, mac := "mac", c.MAC
	if m := argValue(cniArgs, "MAC"); m != "" {
		macKey, mac = "CNI_ARGS MAC", m
	}
	if c.RC.MAC != "" {
		macKey, mac = "runtimeConfig.mac", c.RC.MAC
	}
	if mac == "" {
		return nil
	}
	hw, err := net.ParseMAC(mac)
	if err == nil {
		err = vf.ValidateMAC(hw)
	}
	if err != nil {
		return configError("%q %q is not a usable MAC: want a unicast, non-zero 6-byte address like 0a:58:c6:33:64:01", macKey, cut.Value(mac))
	}
	c.PodMAC = hw
	return nil
}

// checkFiles checks dataDir (DefaultDataDir when not given), logFile and logLevel.
// Where the paths lead is checked when they are opened.
func (c *NetConf) checkFiles() error {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if err := checkAbsPath("dataDir", c.DataDir); err != nil {
		return err
	}
	if c.DataDir == "/" {
		return configError("\"dataDir\" \"/\" is the root directory: name a directory of chelsio-sriov's own")
	}
	if c.LogFile != "" {
		if err := checkAbsPath("logFile", c.LogFile); err != nil {
			return err
		}
		if strings.HasSuffix(c.LogFile, "/") {
			return configError("\"logFile\" %q names a directory: want the path of a file", cut.Value(c.LogFile))
		}
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return configError("\"logLevel\" %q: want error, warning, info or debug", cut.Value(c.LogLevel))
	}
	return nil
}

// checkAbsPath refuses relative paths, "..", NUL bytes and other control
// characters, over-long values and components longer than a file name can be.
// Where the path leads (links, owners, modes) is checked when it is opened.
func checkAbsPath(key, p string) error {
	switch {
	case len(p) > 512:
		return configError("%q is longer than 512 bytes", key)
	case strings.ContainsRune(p, 0):
		return configError("%q contains a NUL byte", key)
	case strings.IndexFunc(p, unicode.IsControl) >= 0:
		return configError("%q %q contains a control character", key, cut.Value(p))
	case !utf8.ValidString(p):
		return configError("%q %q is not valid UTF-8", key, cut.Value(p))
	case !filepath.IsAbs(p):
		return configError("%q %q is not an absolute path", key, cut.Value(p))
	case filepath.Clean(p) != p && filepath.Clean(p)+"/" != p:
		return configError("%q %q is not a clean path (no \"..\", \".\" or \"//\")", key, cut.Value(p))
	}
	for _, comp := range strings.Split(p, "/") {
		if len(comp) > 255 {
			return configError("%q has a component of %d bytes: a file name has at most 255", key, len(comp))
		}
	}
	return nil
}

// networkNameRE is the CNI specification's rule for a network name.
var networkNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)

// fileNameProblem says what keeps s from being the name of a file in a directory
// (an IPAM plugin in CNI_PATH); "" when nothing does.
func fileNameProblem(s string) string {
	switch {
	case s == "." || s == "..":
		return "is not a file name"
	case len(s) > 255:
		return fmt.Sprintf("is %d bytes long: a file name has at most 255", len(s))
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return "contains a control character"
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	}
	return ""
}

// argValue returns the value of key in CNI_ARGS ("K=V;K2=V2"); a key given twice
// (Multus can repeat IgnoreUnknown) is fine, the last one wins.
func argValue(args, key string) string {
	v := ""
	for _, kv := range strings.Split(args, ";") {
		k, val, ok := strings.Cut(kv, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), key) {
			v = strings.TrimSpace(val)
		}
	}
	return v
}
