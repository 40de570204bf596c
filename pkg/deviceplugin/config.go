package deviceplugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cut"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// DefaultResourcePrefix is --resource-prefix's default.
const DefaultResourcePrefix = "chelsio.com"

// Device types of a pool (sriov-dp's deviceType).
const (
	DeviceTypeNetDevice   = "netDevice"
	DeviceTypeAccelerator = "accelerator"
)

// Config is the device plugin's configuration: sriov-network-device-plugin's
// config.json, {"resourceList": [...]}, plus Chelsio selectors.
type Config struct {
	Pools []Pool // in resourceList order: a VF joins the first pool that matches it
}

// Pool is one extended resource: one entry of resourceList.
type Pool struct {
	// ResourceName is the resource's name, ^[a-zA-Z0-9_-]+$, beginning and ending
	// with a letter or digit (kubelet's rule), at most 63 characters.
	ResourceName string
	// ResourcePrefix is the pool's own prefix, or the default given to Parse: a
	// lower-case DNS subdomain of at most 253 characters.
	ResourcePrefix string
	// DeviceType is DeviceTypeNetDevice (the default) or DeviceTypeAccelerator. Both
	// take the same selectors; sriov-dp's auxNetDevice is refused.
	DeviceType string
	// ExcludeTopology leaves the NUMA node out of the devices given to kubelet.
	ExcludeTopology bool
	// Selectors are OR-ed: a VF is in the pool when any of them matches. The object
	// form of "selectors" gives one element; nil (no "selectors") matches every
	// Chelsio VF bound to a driver.
	Selectors []Selector
	// AdditionalInfo maps "*" or a VF PCI address (canonical form, "0000:81:01.0")
	// to key → value pairs for the "extra" of the device's info.
	AdditionalInfo map[string]map[string]string
}

// FullName returns "<prefix>/<name>", the extended resource name.
func (p Pool) FullName() string { return p.ResourcePrefix + "/" + p.ResourceName }

// Match reports whether the VF belongs in the pool: any of its selectors matches, or
// the pool has none. Only Chelsio VFs bound to a driver ever match: sriov-dp skips
// unbound devices, and the CNI plugin refuses them.
func (p Pool) Match(v *vf.VF) bool {
	if v == nil || v.VendorID != vf.VendorID || v.Driver == "" {
		return false
	}
	if len(p.Selectors) == 0 {
		return true
	}
	for i := range p.Selectors {
		if p.Selectors[i].Match(v) {
			return true
		}
	}
	return false
}

// Assign puts each VF in the first pool whose selectors match (sriov-dp's rule) and
// returns, per pool index, its VFs in PCI-address order. VFs that match no pool, and
// repeats of an address already placed, are left out.
func (c *Config) Assign(vfs []*vf.VF) [][]*vf.VF {
	out := make([][]*vf.VF, len(c.Pools))
	placed := make(map[vf.PCIAddr]bool, len(vfs))
	for _, v := range vfs {
		if v == nil || placed[v.Addr] {
			continue
		}
		for i := range c.Pools {
			if c.Pools[i].Match(v) {
				out[i] = append(out[i], v)
				placed[v.Addr] = true
				break
			}
		}
	}
	for _, group := range out {
		slices.SortFunc(group, func(x, y *vf.VF) int { return x.Addr.Compare(y.Addr) })
	}
	return out
}

// Default is the zero-config of docs/contracts.md: every Chelsio VF on cxgb4vf is
// <prefix>/vf, every Chelsio VF on vfio-pci is <prefix>/vf-vfio. An empty prefix is
// DefaultResourcePrefix.
func Default(prefix string) *Config {
	if prefix == "" {
		prefix = DefaultResourcePrefix
	}
	return &Config{Pools: []Pool{
		{ResourceName: "vf", ResourcePrefix: prefix, DeviceType: DeviceTypeNetDevice, Selectors: []Selector{{Drivers: []string{vf.DriverCxgb4VF}}}},
		{ResourceName: "vf-vfio", ResourcePrefix: prefix, DeviceType: DeviceTypeNetDevice, Selectors: []Selector{{Drivers: []string{vf.DriverVFIO}}}},
	}}
}

// Load reads and parses the config file at path. A missing file is the zero-config:
// Default(defaultPrefix) with fromFile false (a bad defaultPrefix is still an
// error). Other read errors, and parse errors, name the path. It never blocks: a
// path that is not a regular file (a named pipe, a device such as /dev/zero, a
// directory), or a file over MaxConfigSize, is an error.
func Load(path, defaultPrefix string) (cfg *Config, fromFile bool, err error) {
	data, err := readConfig(path)
	if errors.Is(err, fs.ErrNotExist) {
		if msg := checkPrefix(defaultPrefix); defaultPrefix != "" && msg != "" {
			return nil, false, &ConfigError{Problems: []string{fmt.Sprintf("default resource prefix %s (--resource-prefix): %s", cut.Quote(defaultPrefix), msg)}}
		}
		return Default(defaultPrefix), false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read config: %w", err)
	}
	cfg, err = Parse(data, defaultPrefix)
	if err != nil {
		return nil, false, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, true, nil
}

// MaxConfigSize bounds the config file: a ConfigMap holds at most 1 MiB.
const MaxConfigSize = 1 << 20

// readConfig reads a config file that must be a regular file of at most
// MaxConfigSize bytes. The file is opened without blocking, so that a named pipe
// put in its place is refused rather than waited on.
func readConfig(path string) ([]byte, error) {
	// Look before opening: opening some devices does something (a watchdog arms).
	// The ConfigMap's file is a link to a regular file: links are followed.
	if st, err := os.Stat(path); err != nil {
		return nil, err
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file but %s", path, fileKind(st.Mode()))
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// And again on what was opened: the path may have changed in between.
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file but %s", path, fileKind(st.Mode()))
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxConfigSize {
		return nil, fmt.Errorf("%s is larger than %d bytes (1 MiB, what a ConfigMap holds)", path, MaxConfigSize)
	}
	return data, nil
}

// fileKind names the type of a file that is not a regular one.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	default:
		return "a special file (" + m.Type().String() + ")"
	}
}

// ConfigError lists every problem Parse found, in document order. Each problem names
// where it is (resourceList[i] and the pool's name, the selector), the key and the
// value. Error joins them on one line.
type ConfigError struct {
	Problems []string
}

// maxProblems bounds ConfigError.Error: a badly broken file gives a readable line.
const maxProblems = 10

func (e *ConfigError) Error() string {
	if len(e.Problems) <= maxProblems {
		return strings.Join(e.Problems, "; ")
	}
	return strings.Join(e.Problems[:maxProblems], "; ") + fmt.Sprintf("; and %d more problems", len(e.Problems)-maxProblems)
}

// Parse decodes config.json strictly. Unknown keys anywhere are errors that name the
// key and the pool and suggest the closest known key; bad values are errors that
// name the key, the pool and the value; keys of sriov-dp that cannot apply to a
// Chelsio VF (acpiIndexes, ddpProfiles, pKeys, isRdma, needVhostNet, vdpaType,
// auxTypes) are errors unless empty or false. Keys are case-sensitive, as sriov-dp
// writes them. defaultPrefix (DefaultResourcePrefix when empty) is the prefix of
// pools that set none. The error is a *ConfigError.
func Parse(data []byte, defaultPrefix string) (*Config, error) {
	if defaultPrefix == "" {
		defaultPrefix = DefaultResourcePrefix
	}
	var c checker
	if msg := checkPrefix(defaultPrefix); msg != "" {
		c.addf("", "default resource prefix %s (--resource-prefix): %s", cut.Quote(defaultPrefix), msg)
	}
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	if len(bytes.TrimSpace(data)) == 0 {
		c.addf("", "the config is empty: want {\"resourceList\": [...]}")
		return nil, c.err()
	}
	var top json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		c.addf("", "%s", syntaxProblem(data, err))
		return nil, c.err()
	}
	var list json.RawMessage
	for _, f := range c.members("", "the config", top, levelTop) {
		list = f.val // resourceList is the only key members lets through
	}
	cfg := &Config{}
	if list != nil {
		cfg.Pools = c.pools(list, defaultPrefix)
	} else if len(c.problems) == 0 {
		c.addf("", "no \"resourceList\": want {\"resourceList\": [...]} with at least one pool (or no config file, for the zero-config pools)")
	}
	if len(c.problems) > 0 {
		return nil, c.err()
	}
	return cfg, nil
}

// pools decodes resourceList and checks that full names, and the env variables
// Allocate derives from them, are unique.
func (c *checker) pools(list json.RawMessage, defaultPrefix string) []Pool {
	elems, ok := c.array("", "resourceList", list)
	if !ok {
		return nil
	}
	if len(elems) == 0 {
		c.addf("", "\"resourceList\" is empty: want at least one pool (or no config file, for the zero-config pools)")
		return nil
	}
	var (
		pools  []Pool
		byName = map[string]string{} // full name → where
		byEnv  = map[string]string{} // env variable → where (full name)
	)
	for i, raw := range elems {
		p, where, ok := c.pool(i, raw, defaultPrefix)
		if !ok {
			continue
		}
		full := p.FullName()
		if other, dup := byName[full]; dup {
			c.addf(where, "resource %s is also %s: resource names must be unique after prefixing", cut.Quote(full), other)
			continue
		}
		env := EnvName(p.ResourcePrefix, p.ResourceName)
		if other, dup := byEnv[env]; dup {
			c.addf(where, "resource %s gives the same Allocate variable %s as %s: rename one", cut.Quote(full), env, other)
			continue
		}
		byName[full] = fmt.Sprintf("resourceList[%d]'s", i)
		byEnv[env] = fmt.Sprintf("resourceList[%d] (%s)", i, full)
		pools = append(pools, p)
	}
	return pools
}

// pool decodes resourceList[i]. ok is false when it has any problem.
func (c *checker) pool(i int, raw json.RawMessage, defaultPrefix string) (p Pool, where string, ok bool) {
	before := len(c.problems)
	where = fmt.Sprintf("resourceList[%d]", i)
	fields, isObj := c.object(where, "", raw)
	if !isObj {
		return p, where, false
	}
	// The pool's name labels every other problem, so it is read first.
	named := false
	for _, f := range fields {
		if f.key != "resourceName" || jsonKind(f.val) == "null" {
			continue
		}
		named = true
		if name, ok := c.str(where, f.key, f.val); ok {
			if msg := checkResourceName(name); msg != "" {
				c.addf(where, "resourceName %s: %s", cut.Quote(name), msg)
			} else {
				p.ResourceName = name
				where = fmt.Sprintf("resourceList[%d] (%s)", i, name)
			}
		}
	}
	if !named {
		c.addf(where, "no \"resourceName\": every pool needs one, e.g. \"chelsio_sriov_netdevice\"")
	}
	p.DeviceType = DeviceTypeNetDevice
	for _, f := range c.reportUnknown(where, "", fields, levelPool) {
		switch f.key {
		case "resourcePrefix":
			if pre, ok := c.str(where, f.key, f.val); ok && pre != "" {
				if msg := checkPrefix(pre); msg != "" {
					c.addf(where, "resourcePrefix %s: %s", cut.Quote(pre), msg)
				} else {
					p.ResourcePrefix = pre
				}
			}
		case "deviceType":
			if t, ok := c.str(where, f.key, f.val); ok && t != "" {
				switch t {
				case DeviceTypeNetDevice, DeviceTypeAccelerator:
					p.DeviceType = t
				case "auxNetDevice":
					c.addf(where, "deviceType %s: there are no Chelsio auxiliary devices; want %q", cut.Quote(t), DeviceTypeNetDevice)
				default:
					c.addf(where, "deviceType %s: want %q or %q%s", cut.Quote(t), DeviceTypeNetDevice, DeviceTypeAccelerator,
						didYouMean(t, []string{DeviceTypeNetDevice, DeviceTypeAccelerator, "auxNetDevice"}))
				}
			}
		case "excludeTopology":
			if b, ok := c.boolean(where, f.key, f.val); ok {
				p.ExcludeTopology = b
			}
		case "selectors":
			p.Selectors = c.selectors(where, f.val)
		case "additionalInfo":
			p.AdditionalInfo = c.additionalInfo(where, f.val)
		}
	}
	if p.ResourcePrefix == "" {
		p.ResourcePrefix = defaultPrefix
		if checkPrefix(defaultPrefix) != "" {
			return p, where, false // reported once, by Parse
		}
	}
	return p, where, len(c.problems) == before
}

// additionalInfo decodes {"*" or PCI address: {key: value}}; addresses are stored in
// canonical form, as VF device IDs are.
func (c *checker) additionalInfo(where string, raw json.RawMessage) map[string]map[string]string {
	fields, ok := c.object(where, "additionalInfo", raw)
	if !ok {
		return nil
	}
	info := map[string]map[string]string{}
	for _, f := range fields {
		key := f.key
		if key != "*" {
			a, err := vf.ParsePCIAddr(key)
			if err != nil {
				c.addf(where, "additionalInfo key %s: want \"*\" or a VF PCI address, e.g. \"0000:81:01.0\"", cut.Quote(key))
				continue
			}
			key = a.String()
		}
		if _, dup := info[key]; dup {
			c.addf(where, "additionalInfo key %s: %s is already there", cut.Quote(f.key), key)
			continue
		}
		sub := "additionalInfo[" + cut.Quote(f.key) + "]"
		kvs, ok := c.object(where, sub, f.val)
		if !ok {
			continue
		}
		m := map[string]string{}
		for _, kv := range kvs {
			if kv.key == "" {
				c.addf(where, "%s: empty key", sub)
				continue
			}
			if s, ok := c.str(where, sub+"["+cut.Quote(kv.key)+"]", kv.val); ok {
				m[kv.key] = s
			}
		}
		info[key] = m
	}
	return info
}

// checkResourceName returns why name cannot be a resource name, or "".
func checkResourceName(name string) string {
	if name == "" {
		return "empty; want letters, digits, '_' and '-', e.g. \"chelsio_sriov_netdevice\""
	}
	for _, r := range name {
		if !isAlnum(r) && r != '_' && r != '-' {
			return fmt.Sprintf("%q is not allowed: want letters, digits, '_' and '-' (sriov-dp's ^[a-zA-Z0-9_-]+$)", r)
		}
	}
	if !isAlnum(rune(name[0])) || !isAlnum(rune(name[len(name)-1])) {
		return "must begin and end with a letter or digit (kubelet refuses the resource otherwise)"
	}
	if len(name) > 63 {
		return fmt.Sprintf("%d characters: kubelet takes at most 63", len(name))
	}
	return ""
}

// checkPrefix returns why prefix cannot be a resource prefix (a DNS subdomain, as
// kubelet requires, outside kubernetes.io), or "".
func checkPrefix(prefix string) string {
	const want = "want a lower-case DNS subdomain, e.g. \"chelsio.com\""
	if len(prefix) > 253 {
		return fmt.Sprintf("%d characters: a DNS subdomain has at most 253", len(prefix))
	}
	for label := range strings.SplitSeq(prefix, ".") {
		if label == "" {
			return "empty label: " + want
		}
		for _, r := range label {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
				return fmt.Sprintf("%q is not allowed: %s", r, want)
			}
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return "a label begins or ends with '-': " + want
		}
	}
	if prefix == "kubernetes.io" || strings.HasSuffix(prefix, ".kubernetes.io") {
		return "kubernetes.io is reserved for Kubernetes' own resources"
	}
	return ""
}

func isAlnum(r rune) bool {
	return (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
}

// checker collects problems with where they are.
type checker struct {
	problems []string
}

func (c *checker) addf(where, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if where != "" {
		msg = where + ": " + msg
	}
	c.problems = append(c.problems, msg)
}

func (c *checker) err() error {
	if len(c.problems) == 0 {
		return nil
	}
	return &ConfigError{Problems: c.problems}
}

// keyLevel is where in the config an object sits, for its known keys.
type keyLevel int

const (
	levelTop keyLevel = iota
	levelPool
	levelSelector
)

var knownKeys = map[keyLevel][]string{
	levelTop:  {"resourceList"},
	levelPool: {"resourceName", "resourcePrefix", "deviceType", "excludeTopology", "selectors", "additionalInfo"},
	levelSelector: {
		"vendors", "devices", "drivers", "pciAddresses", "rootDevices", "pfNames", "linkTypes",
		"models", "chips", "ports", "pfs",
		"acpiIndexes", "ddpProfiles", "pKeys", "isRdma", "needVhostNet", "vdpaType", "auxTypes",
	},
}

// member is one key of a JSON object.
type member struct {
	key string
	val json.RawMessage
}

// object splits raw, which must be a JSON object, into its members in document
// order; duplicate keys are problems and only the first is kept. name is the key
// that holds the object ("" for a pool). ok is false when raw is not an object.
func (c *checker) object(where, name string, raw json.RawMessage) (fields []member, ok bool) {
	if kind := jsonKind(raw); kind != "object" {
		c.addf(where, "%swant an object, got %s", keyColon(name), describe(raw))
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // '{'
		c.addf(where, "%s%v", keyColon(name), err)
		return nil, false
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			c.addf(where, "%s%v", keyColon(name), err)
			return nil, false
		}
		key, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			c.addf(where, "%s%v", keyColon(name), err)
			return nil, false
		}
		if seen[key] {
			c.addf(where, "%skey %s appears twice", keyColon(name), cut.Quote(key))
			continue
		}
		seen[key] = true
		fields = append(fields, member{key, val})
	}
	return fields, true
}

// members is object followed by reportUnknown: it returns only the known members.
func (c *checker) members(where, name string, raw json.RawMessage, level keyLevel) []member {
	fields, ok := c.object(where, name, raw)
	if !ok {
		return nil
	}
	return c.reportUnknown(where, name, fields, level)
}

// reportUnknown reports every member whose key is not known at level and returns
// the others. Members whose value is null count as absent.
func (c *checker) reportUnknown(where, name string, fields []member, level keyLevel) []member {
	var known []member
	for _, f := range fields {
		if !slices.Contains(knownKeys[level], f.key) {
			c.addf(where, "%sunknown key %s%s", keyColon(name), cut.Quote(f.key), unknownKeyHint(f.key, level))
			continue
		}
		if jsonKind(f.val) != "null" {
			known = append(known, f)
		}
	}
	return known
}

// unknownKeyHint suggests the key meant: a close key of the same level, else a
// key of another level (misplaced), else the list of keys of the level.
func unknownKeyHint(key string, level keyLevel) string {
	if s := closest(key, knownKeys[level]); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	where := map[keyLevel]string{
		levelTop:      "a top-level key",
		levelPool:     "a pool key: it goes in a resourceList entry, beside \"selectors\"",
		levelSelector: "a selector key: it goes under \"selectors\"",
	}
	for _, other := range []keyLevel{levelSelector, levelPool, levelTop} {
		if other == level {
			continue
		}
		if s := closest(key, knownKeys[other]); s != "" {
			if s == key {
				return fmt.Sprintf(" (%q is %s)", s, where[other])
			}
			return fmt.Sprintf(" (did you mean %q? it is %s)", s, where[other])
		}
	}
	return " (known keys: " + strings.Join(knownKeys[level], ", ") + ")"
}

// didYouMean is " (did you mean %q?)" for the closest of candidates, or "".
func didYouMean(s string, candidates []string) string {
	if m := closest(s, candidates); m != "" {
		return fmt.Sprintf(" (did you mean %q?)", m)
	}
	return ""
}

// closest returns the candidate nearest to s, ignoring case, when it is near enough
// to be a typo of it: at most 1 edit, or 2 for names of 6 characters or more.
func closest(s string, candidates []string) string {
	best, bestD := "", 3
	ls := strings.ToLower(s)
	for _, cand := range candidates {
		d := editDistance(ls, strings.ToLower(cand))
		limit := 1
		if len(cand) >= 6 {
			limit = 2
		}
		if d <= limit && d < bestD {
			best, bestD = cand, d
		}
	}
	return best
}

// editDistance is the optimal-string-alignment distance: insertions, deletions,
// substitutions and transpositions of adjacent runes each cost 1. Long inputs are
// not compared (their distance is reported as large).
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		return 1 << 30
	}
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

// array decodes raw, which must be a JSON array, into its elements.
func (c *checker) array(where, key string, raw json.RawMessage) ([]json.RawMessage, bool) {
	if jsonKind(raw) != "list" {
		c.addf(where, "%s: want a list, got %s", key, describe(raw))
		return nil, false
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		c.addf(where, "%s: %v", key, err)
		return nil, false
	}
	return elems, true
}

// str decodes a JSON string.
func (c *checker) str(where, key string, raw json.RawMessage) (string, bool) {
	return scalar[string](c, where, key, raw, "string", "a string")
}

// boolean decodes true or false.
func (c *checker) boolean(where, key string, raw json.RawMessage) (bool, bool) {
	return scalar[bool](c, where, key, raw, "true/false", "true or false")
}

// integer decodes a JSON integer.
func (c *checker) integer(where, key string, raw json.RawMessage) (int, bool) {
	return scalar[int](c, where, key, raw, "number", "an integer")
}

// scalar decodes a JSON value of kind (a jsonKind) into a T; want names what is
// wanted in the problem reported for anything else.
func scalar[T any](c *checker, where, key string, raw json.RawMessage, kind, want string) (T, bool) {
	var v T
	if jsonKind(raw) != kind || json.Unmarshal(raw, &v) != nil {
		c.addf(where, "%s: want %s, got %s", key, want, describe(raw))
		var zero T
		return zero, false
	}
	return v, true
}

// strList decodes a list of strings; a lone string gets a hint to bracket it.
func (c *checker) strList(where, key string, raw json.RawMessage) ([]string, bool) {
	return list(c, where, key, raw, "string", "strings", c.str)
}

// intList decodes a list of integers; a lone number gets a hint to bracket it.
func (c *checker) intList(where, key string, raw json.RawMessage) ([]int, bool) {
	return list(c, where, key, raw, "number", "integers", c.integer)
}

// list decodes a list whose elements elem decodes, and is ok when every element
// is. A lone value of kind (a jsonKind) is the list's element written without
// brackets: the problem says to write them. what names the elements.
func list[T any](c *checker, where, key string, raw json.RawMessage, kind, what string, elem func(where, key string, raw json.RawMessage) (T, bool)) ([]T, bool) {
	if jsonKind(raw) == kind {
		c.addf(where, "%s: want a list of %s, got %s (write [%s])", key, what, describe(raw), raw)
		return nil, false
	}
	elems, ok := c.array(where, key, raw)
	if !ok {
		return nil, false
	}
	out := make([]T, 0, len(elems))
	good := true
	for i, e := range elems {
		v, ok := elem(where, fmt.Sprintf("%s[%d]", key, i), e)
		good = good && ok
		out = append(out, v)
	}
	return out, good
}

// keyColon is "key: ", or "" for no key.
func keyColon(key string) string {
	if key == "" {
		return ""
	}
	return key + ": "
}

// jsonKind names the kind of a JSON value from its first byte.
func jsonKind(raw json.RawMessage) string {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "list"
	case '"':
		return "string"
	case 't', 'f':
		return "true/false"
	case 'n':
		return "null"
	}
	return "number"
}

// describe is a value's kind and, when short, the value itself, for messages.
func describe(raw json.RawMessage) string {
	kind := jsonKind(raw)
	switch kind {
	case "object", "list", "null", "nothing":
		return kind
	case "string":
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return "string " + cut.Quote(s)
		}
	}
	return kind + " " + compactJSON(raw)
}

// compactJSON is raw on one line, cut as cut.Value cuts it.
func compactJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return cut.Value(strings.Join(strings.Fields(string(raw)), " "))
	}
	return cut.Value(b.String())
}

// syntaxProblem turns a JSON decoding error into a message with a line and column.
func syntaxProblem(data []byte, err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) && se.Offset > 0 && int(se.Offset) <= len(data) {
		before := data[:se.Offset]
		line := bytes.Count(before, []byte("\n")) + 1
		col := utf8.RuneCount(before[bytes.LastIndexByte(before, '\n')+1:])
		return fmt.Sprintf("not valid JSON: line %d, column %d: %v", line, col, err)
	}
	return fmt.Sprintf("not valid JSON: %v", err)
}
