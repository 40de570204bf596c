package vf

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
)

// PCIAddr is a PCI function address, domain:bus:device.function.
type PCIAddr struct {
	Domain   uint32 // 16 bits, 20 on VMD domains
	Bus      uint8
	Device   uint8 // 0-31
	Function uint8 // 0-7
}

// ParsePCIAddr parses "0000:81:01.0" (also "81:01.0", domain 0). Hex digits may be
// of either case. Anything else, path separators and NUL bytes included, is an error
// that quotes the input, so a PCI address can be used in file names once parsed.
func ParsePCIAddr(s string) (PCIAddr, error) {
	bad := func() (PCIAddr, error) {
		q := s
		if len(q) > 32 {
			q = q[:32] + "…"
		}
		return PCIAddr{}, fmt.Errorf("invalid PCI address %q: want domain:bus:device.function, e.g. 0000:81:01.0", q)
	}
	if len(s) > 13 {
		return bad()
	}
	parts := strings.Split(s, ":")
	var dom string
	switch len(parts) {
	case 2:
		dom = "0000"
	case 3:
		dom = parts[0]
		parts = parts[1:]
	default:
		return bad()
	}
	devfn := strings.Split(parts[1], ".")
	if len(devfn) != 2 || len(dom) < 4 || len(dom) > 5 || len(parts[0]) != 2 || len(devfn[0]) != 2 || len(devfn[1]) != 1 {
		return bad()
	}
	d, err1 := parseHex(dom, 20)
	b, err2 := parseHex(parts[0], 8)
	dv, err3 := parseHex(devfn[0], 8)
	fn, err4 := parseHex(devfn[1], 8)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || dv > 31 || fn > 7 {
		return bad()
	}
	return PCIAddr{Domain: uint32(d), Bus: uint8(b), Device: uint8(dv), Function: uint8(fn)}, nil
}

func parseHex(s string, bits int) (uint64, error) {
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return 0, strconv.ErrSyntax
		}
	}
	return strconv.ParseUint(s, 16, bits)
}

// MustParsePCIAddr is ParsePCIAddr for constants in tests and tables; it panics on
// a bad address.
func MustParsePCIAddr(s string) PCIAddr {
	a, err := ParsePCIAddr(s)
	if err != nil {
		panic(err)
	}
	return a
}

// String returns the canonical sysfs form, "0000:81:01.0".
func (a PCIAddr) String() string {
	return fmt.Sprintf("%04x:%02x:%02x.%x", a.Domain, a.Bus, a.Device, a.Function)
}

// Slot returns "0000:81:00", the part shared by the functions of one adapter.
func (a PCIAddr) Slot() string {
	return fmt.Sprintf("%04x:%02x:%02x", a.Domain, a.Bus, a.Device)
}

// IsZero reports whether a is the zero address.
func (a PCIAddr) IsZero() bool { return a == PCIAddr{} }

// MarshalText implements encoding.TextMarshaler.
func (a PCIAddr) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *PCIAddr) UnmarshalText(b []byte) error {
	p, err := ParsePCIAddr(string(b))
	if err != nil {
		return err
	}
	*a = p
	return nil
}

// Compare orders addresses by domain, bus, device, function.
func (a PCIAddr) Compare(b PCIAddr) int {
	switch {
	case a.Domain != b.Domain:
		return cmp.Compare(a.Domain, b.Domain)
	case a.Bus != b.Bus:
		return cmp.Compare(a.Bus, b.Bus)
	case a.Device != b.Device:
		return cmp.Compare(a.Device, b.Device)
	}
	return cmp.Compare(a.Function, b.Function)
}
