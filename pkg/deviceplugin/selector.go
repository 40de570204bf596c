package deviceplugin

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cut"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// Selector picks VFs: a VF matches when it passes every key that is set (AND
// between keys) and, for each, equals one of the key's values (OR within a list).
// An empty Selector matches every VF. JSON names are sriov-dp's, plus the Chelsio
// keys models, chips, ports and pfs.
type Selector struct {
	Vendors      []uint16     // "vendors": vendor ID, 4 hex digits; Chelsio's 1425 only
	Devices      []uint16     // "devices": VF device ID (0xV8PP), 4 hex digits
	Drivers      []string     // "drivers": cxgb4vf, vfio-pci, or another VF driver
	PCIAddresses []vf.PCIAddr // "pciAddresses": the VF's own address
	RootDevices  []RootDevice // "rootDevices": the parent PF's address, "#ranges" optional
	PFNames      []PFName     // "pfNames": the parent PF's management netdev, "#ranges" optional
	LinkTypes    []string     // "linkTypes": "ether" (every Chelsio VF is Ethernet)
	Models       []string     // "models": product names of the ID table (vf.LookupModel)
	Chips        []vf.Chip    // "chips": T4, T5, T6, T7
	Ports        []int        // "ports": the physical port (vf.VF.Port)
	PFs          []int        // "pfs": the parent PF's number, 0-3
}

// RootDevice is one rootDevices entry: "0000:81:00.0" or "0000:81:00.0#0,2-5".
type RootDevice struct {
	PF  vf.PCIAddr
	VFs VFIndexes // empty: every VF of the PF
}

// PFName is one pfNames entry: "mgmtpf1,0" or "mgmtpf1,0#0-3". On Chelsio a VF's
// parent (PF0-PF3) has no port netdev; its only netdev is the cxgb4 management
// netdev mgmtpf<adapter>,<pf>.
type PFName struct {
	Name string
	VFs  VFIndexes // empty: every VF of the PF
}

// VFRange is the VF indexes First to Last, both included.
type VFRange struct {
	First, Last int
}

// VFIndexes is the "#0,2-5" suffix of a rootDevices or pfNames entry: VF indexes
// (the N of the PF's virtfnN). Empty means every VF.
type VFIndexes []VFRange

// Contains reports whether index is in one of the ranges, or the list is empty.
func (r VFIndexes) Contains(index int) bool {
	if len(r) == 0 {
		return true
	}
	return slices.ContainsFunc(r, func(x VFRange) bool { return x.First <= index && index <= x.Last })
}

// Match reports whether the VF passes every key of the selector (AND between keys,
// OR within a key's list). A VF without a netdev (vfio-pci) counts as Ethernet.
func (s Selector) Match(v *vf.VF) bool {
	if v == nil {
		return false
	}
	return selAny(s.Vendors, func(x uint16) bool { return x == v.VendorID }) &&
		selAny(s.Devices, func(x uint16) bool { return x == v.DeviceID }) &&
		selAny(s.Drivers, func(x string) bool { return x == v.Driver }) &&
		selAny(s.PCIAddresses, func(x vf.PCIAddr) bool { return x == v.Addr }) &&
		selAny(s.RootDevices, func(x RootDevice) bool { return x.PF == v.PF && x.VFs.Contains(v.VFIndex) }) &&
		selAny(s.PFNames, func(x PFName) bool {
			return v.MgmtNetdev != "" && x.Name == v.MgmtNetdev && x.VFs.Contains(v.VFIndex)
		}) &&
		selAny(s.LinkTypes, isEtherLinkType) &&
		selAny(s.Models, func(x string) bool { return v.Model != "" && strings.EqualFold(x, v.Model) }) &&
		selAny(s.Chips, func(x vf.Chip) bool { return x == v.Chip }) &&
		selAny(s.Ports, func(x int) bool { return x == v.Port }) &&
		selAny(s.PFs, func(x int) bool { return x == v.PFNumber })
}

// selAny is true for an unset key (empty list), else when any value matches.
func selAny[T any](list []T, match func(T) bool) bool {
	return len(list) == 0 || slices.ContainsFunc(list, match)
}

// isEtherLinkType reports whether a linkTypes value names Ethernet, the link type
// of every Chelsio VF: "ether" (sysfs and iproute2) or "ETHERNET", in any case.
func isEtherLinkType(t string) bool {
	return strings.EqualFold(t, "ether") || strings.EqualFold(t, "ethernet")
}

// notForChelsio are the sriov-dp selector keys that cannot apply to a Chelsio VF,
// with the reason. An empty list, false or "" is accepted.
var notForChelsio = map[string]string{
	"acpiIndexes":  "a VF has no ACPI index (acpi_index names on-board functions)",
	"ddpProfiles":  "DDP profiles belong to Intel 700-series adapters",
	"pKeys":        "partition keys are InfiniBand, and Chelsio VFs are Ethernet",
	"isRdma":       "a cxgb4vf VF has no RDMA device (Chelsio iWARP, iw_cxgb4, runs on the PF)",
	"needVhostNet": "chelsio-sriov-dp gives pods no /dev/vhost-net or /dev/net/tun",
	"vdpaType":     "Chelsio VFs have no vDPA device",
	"auxTypes":     "there are no Chelsio auxiliary devices",
}

// selectors decodes "selectors": one object, or a non-empty list of objects.
func (c *checker) selectors(where string, raw json.RawMessage) []Selector {
	switch jsonKind(raw) {
	case "object":
		s, _ := c.selector(where+": selectors", raw)
		return []Selector{s}
	case "list":
		elems, ok := c.array(where, "selectors", raw)
		if !ok {
			return nil
		}
		if len(elems) == 0 {
			c.addf(where, "selectors: empty list: give at least one selector, or leave \"selectors\" out to match every Chelsio VF")
			return nil
		}
		out := make([]Selector, 0, len(elems))
		for i, e := range elems {
			s, _ := c.selector(fmt.Sprintf("%s: selectors[%d]", where, i), e)
			out = append(out, s)
		}
		return out
	}
	c.addf(where, "selectors: want an object or a list of objects, got %s", describe(raw))
	return nil
}

// selector decodes one selector object; ok is false when it has any problem.
func (c *checker) selector(where string, raw json.RawMessage) (s Selector, ok bool) {
	before := len(c.problems)
	for _, f := range c.members(where, "", raw, levelSelector) {
		key := f.key
		if reason, bad := notForChelsio[key]; bad {
			c.notApplicable(where, key, f.val, reason)
			continue
		}
		if key == "ports" || key == "pfs" {
			c.numbers(where, key, f.val, &s)
			continue
		}
		vals, ok := c.strList(where, key, f.val)
		if !ok {
			continue
		}
		for i, val := range vals {
			c.value(where, key, fmt.Sprintf("%s[%d] %s", key, i, cut.Quote(val)), val, &s)
		}
	}
	return s, len(c.problems) == before
}

// numbers decodes the "ports" or "pfs" list of a selector into s.
func (c *checker) numbers(where, key string, raw json.RawMessage, s *Selector) {
	ns, ok := c.intList(where, key, raw)
	if !ok {
		return
	}
	for i, n := range ns {
		switch {
		case key == "ports" && n < 0:
			c.addf(where, "ports[%d] %d: want a port number, 0 or more", i, n)
		case key == "pfs" && (n < 0 || n > 3):
			c.addf(where, "pfs[%d] %d: want 0-3 (VFs belong to PF0-PF3)", i, n)
		}
	}
	if key == "ports" {
		s.Ports = ns
	} else {
		s.PFs = ns
	}
}

// value decodes val, element el of the string list key, and adds it to s.
func (c *checker) value(where, key, el, val string, s *Selector) {
	switch key {
	case "vendors":
		keep(&s.Vendors)(c.vendor(where, el, val))
	case "devices":
		keep(&s.Devices)(c.device(where, el, val))
	case "drivers":
		if c.driver(where, el, val) {
			s.Drivers = append(s.Drivers, val)
		}
	case "pciAddresses":
		if a, err := vf.ParsePCIAddr(val); err != nil {
			c.addf(where, "%s: want a VF PCI address, e.g. \"0000:81:01.0\"", el)
		} else {
			s.PCIAddresses = append(s.PCIAddresses, a)
		}
	case "rootDevices":
		keep(&s.RootDevices)(c.rootDevice(where, el, val))
	case "pfNames":
		keep(&s.PFNames)(c.pfName(where, el, val))
	case "linkTypes":
		if isEtherLinkType(val) {
			s.LinkTypes = append(s.LinkTypes, "ether")
		} else {
			c.addf(where, "%s: every Chelsio VF is Ethernet: want \"ether\"", el)
		}
	case "models":
		if p, ok := vf.LookupModel(val); ok {
			s.Models = append(s.Models, p.Model)
		} else {
			c.addf(where, "%s: not a Chelsio model%s (see chelsio-vf list)", el, modelHint(val))
		}
	case "chips":
		switch ch := vf.Chip(strings.ToUpper(val)); ch {
		case vf.T4, vf.T5, vf.T6, vf.T7:
			s.Chips = append(s.Chips, ch)
		default:
			c.addf(where, "%s: want T4, T5, T6 or T7", el)
		}
	}
}

// keep returns what adds a decoded value to list when its decoder accepted it:
// keep(&s.Vendors)(c.vendor(where, el, val)).
func keep[T any](list *[]T) func(v T, ok bool) {
	return func(v T, ok bool) {
		if ok {
			*list = append(*list, v)
		}
	}
}

// notApplicable accepts an empty value of a key that cannot apply to a Chelsio VF
// and reports any other.
func (c *checker) notApplicable(where, key string, raw json.RawMessage, reason string) {
	switch key {
	case "isRdma", "needVhostNet":
		if b, ok := c.boolean(where, key, raw); !ok || !b {
			return
		}
	case "vdpaType":
		if t, ok := c.str(where, key, raw); !ok || t == "" {
			return
		}
	default:
		if elems, ok := c.array(where, key, raw); !ok || len(elems) == 0 {
			return
		}
	}
	c.addf(where, "%s %s cannot apply to a Chelsio VF: %s", key, compactJSON(raw), reason)
}

// hex4 parses exactly 4 hex digits.
func hex4(s string) (uint16, bool) {
	if len(s) != 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 16, 16)
	return uint16(n), err == nil
}

func (c *checker) vendor(where, el, val string) (uint16, bool) {
	id, ok := hex4(val)
	switch {
	case !ok:
		c.addf(where, "%s: want 4 hex digits%s", el, no0x(val, "1425"))
	case id != vf.VendorID:
		c.addf(where, "%s: not Chelsio's vendor ID 1425: chelsio-sriov-dp serves only Chelsio VFs", el)
	default:
		return id, true
	}
	return 0, false
}

func (c *checker) device(where, el, val string) (uint16, bool) {
	id, ok := hex4(val)
	if !ok {
		c.addf(where, "%s: want 4 hex digits%s", el, no0x(val, "680d"))
		return 0, false
	}
	if _, chelsio := vf.ChipOf(id); !chelsio {
		c.addf(where, "%s: not a Chelsio device ID (those begin with 4-7, the chip: T4-T7)", el)
		return 0, false
	}
	if vf.KindOf(id) != vf.FuncVF {
		what := "not a VF ID (a VF's second digit is 8)"
		if p, kind, ok := vf.LookupID(id); ok {
			what = fmt.Sprintf("the %s ID of the %s, not a VF's", kind, p.Model)
		}
		c.addf(where, "%s: %s: the board's VF ID is %04x", el, what, id&0xf0ff|uint16(vf.FuncVF)<<8)
		return 0, false
	}
	return id, true
}

// no0x is the example for a hex ID: val without its 0x when it has one.
func no0x(val, example string) string {
	if h, ok := strings.CutPrefix(strings.ToLower(val), "0x"); ok {
		return fmt.Sprintf(" without 0x (%q)", h)
	}
	return fmt.Sprintf(", e.g. %q", example)
}

// knownDrivers are drivers a Chelsio VF may be bound to, and cxgb4 (the PFs').
// A name close to one of them but not equal is a typo: "vfio_pci" is the
// module, the sysfs driver is "vfio-pci".
var knownDrivers = []string{vf.DriverCxgb4VF, vf.DriverVFIO, "uio_pci_generic", "igb_uio", vf.DriverCxgb4}

func (c *checker) driver(where, el, val string) bool {
	switch {
	case val == "" || strings.ContainsAny(val, "/ \t\n\x00"):
		c.addf(where, "%s: want a driver name, e.g. \"cxgb4vf\"", el)
	case val == vf.DriverCxgb4:
		c.addf(where, "%s: cxgb4 drives the PFs; Chelsio VFs are on cxgb4vf or vfio-pci", el)
	case slices.Contains(knownDrivers, val):
		return true
	default:
		if m := closest(val, knownDrivers); m != "" {
			c.addf(where, "%s: no VF driver is named so (did you mean %q?)", el, m)
			return false
		}
		return true // another driver: user space may bind VFs to anything
	}
	return false
}

func (c *checker) rootDevice(where, el, val string) (RootDevice, bool) {
	addr, ranges, hasRanges := strings.Cut(val, "#")
	a, err := vf.ParsePCIAddr(addr)
	if err != nil {
		c.addf(where, "%s: want the PCI address of a PF0-3, e.g. \"0000:81:00.0\" or \"0000:81:00.0#0-3\"", el)
		return RootDevice{}, false
	}
	if a.Function > 3 {
		c.addf(where, "%s: function %d is not a Chelsio PF0-3, the only functions with VFs (see chelsio-vf list)", el, a.Function)
		return RootDevice{}, false
	}
	vfs, ok := c.vfIndexes(where, el, ranges, hasRanges)
	if !ok {
		return RootDevice{}, false
	}
	return RootDevice{PF: a, VFs: vfs}, true
}

func (c *checker) pfName(where, el, val string) (PFName, bool) {
	name, ranges, hasRanges := strings.Cut(val, "#")
	if strings.HasPrefix(name, "mgmtpf") && !isMgmtName(name) {
		c.addf(where, "%s: want mgmtpf<adapter>,<pf> with pf 0-3, e.g. \"mgmtpf1,0\" (see chelsio-vf list)", el)
		return PFName{}, false
	}
	if !isMgmtName(name) {
		hint := ""
		if name == "" {
			hint = "empty name; "
		}
		c.addf(where, "%s: %son Chelsio a VF's parent PF0-3 has no port netdev, only the cxgb4 management netdev: want mgmtpf<adapter>,<pf>, e.g. \"mgmtpf1,0\" (see chelsio-vf list), or rootDevices by PCI address, which survives reboots", el, hint)
		return PFName{}, false
	}
	vfs, ok := c.vfIndexes(where, el, ranges, hasRanges)
	if !ok {
		return PFName{}, false
	}
	return PFName{Name: name, VFs: vfs}, true
}

// vfIndexes parses the "#0,2-5" part of the rootDevices or pfNames entry el, when
// it has one: every VF when it does not.
func (c *checker) vfIndexes(where, el, ranges string, hasRanges bool) (VFIndexes, bool) {
	if !hasRanges {
		return nil, true
	}
	vfs, err := parseVFIndexes(ranges)
	if err != nil {
		c.addf(where, "%s: %v", el, err)
		return nil, false
	}
	return vfs, true
}

// isMgmtName reports whether name is mgmtpf<adapter>,<pf> with pf 0-3.
func isMgmtName(name string) bool {
	rest, ok := strings.CutPrefix(name, "mgmtpf")
	if !ok {
		return false
	}
	adap, pf, ok := strings.Cut(rest, ",")
	return ok && adap != "" && len(adap) <= 5 && allDigits(adap) && len(pf) == 1 && pf[0] >= '0' && pf[0] <= '3'
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// maxVFIndex is the largest VF index: SR-IOV counts VFs in 16 bits.
const maxVFIndex = 65535

// parseVFIndexes parses the part after '#': comma-separated indexes and ranges,
// "0,2-5".
func parseVFIndexes(s string) (VFIndexes, error) {
	bad := func(why string) (VFIndexes, error) {
		return nil, fmt.Errorf("VF range %s: %s (e.g. \"0,2-5\")", cut.Quote(s), why)
	}
	if s == "" {
		return bad("empty")
	}
	var out VFIndexes
	for part := range strings.SplitSeq(s, ",") {
		what := "" // names the part when it is not the whole
		if part != s {
			what = cut.Quote(part) + " "
		}
		lo, hi, isRange := strings.Cut(part, "-")
		if !isRange {
			hi = lo
		}
		first, ok1 := vfIndex(lo)
		last, ok2 := vfIndex(hi)
		switch {
		case part == "":
			return bad("an empty element")
		case !ok1 || !ok2:
			return bad(fmt.Sprintf("%snot VF indexes 0-%d", what, maxVFIndex))
		case first > last:
			return bad(what + "runs backwards")
		}
		out = append(out, VFRange{First: first, Last: last})
	}
	return out, nil
}

func vfIndex(s string) (int, bool) {
	if s == "" || len(s) > 5 || !allDigits(s) {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n <= maxVFIndex
}

// modelHint suggests models of the ID table for an unknown one: the three shortest
// that begin with it ("T62100" → "T62100-CR", …), else the closest name.
func modelHint(val string) string {
	var names, prefixed []string
	for _, p := range vf.Products() {
		if slices.Contains(names, p.Model) {
			continue
		}
		names = append(names, p.Model)
		if val != "" && strings.HasPrefix(strings.ToLower(p.Model), strings.ToLower(val)) {
			prefixed = append(prefixed, p.Model)
		}
	}
	if len(prefixed) == 0 {
		return didYouMean(val, names)
	}
	slices.SortStableFunc(prefixed, func(a, b string) int { return len(a) - len(b) })
	quoted := make([]string, 0, 3)
	for _, m := range prefixed[:min(3, len(prefixed))] {
		quoted = append(quoted, strconv.Quote(m))
	}
	return " (did you mean " + strings.Join(quoted, " or ") + "?)"
}
