package vf

import (
	"fmt"
	"strings"
)

// VendorID is Chelsio's PCI vendor ID.
const VendorID = 0x1425

// Chip is a Chelsio ASIC generation.
type Chip string

// Chelsio generations. The generation is the first hex digit of every device ID.
const (
	T4 Chip = "T4"
	T5 Chip = "T5"
	T6 Chip = "T6"
	T7 Chip = "T7" // not in upstream Linux; VF IDs unconfirmed
)

// FuncKind is the role of a PCI function of a Chelsio adapter, the second hex digit
// of its device ID.
type FuncKind uint8

// Function kinds (device ID bits 11-8).
const (
	FuncPF03    FuncKind = 0x0 // PF0-PF3: SR-IOV control only (cxgb4)
	FuncPF4     FuncKind = 0x4 // PF4: NIC, one netdev per port (cxgb4)
	FuncStorage FuncKind = 0x5 // PF5/PF6: storage (csiostor); 0x6 maps here too
	FuncVF      FuncKind = 0x8 // every VF (cxgb4vf)
)

func (k FuncKind) String() string {
	switch k {
	case FuncPF03:
		return "PF0-3"
	case FuncPF4:
		return "PF4"
	case FuncStorage:
		return "PF5-6"
	case FuncVF:
		return "VF"
	}
	return fmt.Sprintf("function 0x%x", uint8(k))
}

// Product is one Chelsio board as the driver ID tables name it.
type Product struct {
	Chip  Chip
	Code  uint8  // device ID bits 7-0
	Model string // the driver ID-table name, e.g. "T62100-CR"
}

// gen returns the generation digit of the chip.
func (c Chip) gen() uint16 {
	switch c {
	case T4:
		return 4
	case T5:
		return 5
	case T6:
		return 6
	case T7:
		return 7
	}
	return 0
}

func (p Product) id(k FuncKind) uint16 { return p.Chip.gen()<<12 | uint16(k)<<8 | uint16(p.Code) }

// VFID is the device ID of the product's VFs (0xV8PP).
func (p Product) VFID() uint16 { return p.id(FuncVF) }

// PF03ID is the device ID shared by PF0-PF3 (0xV0PP).
func (p Product) PF03ID() uint16 { return p.id(FuncPF03) }

// PF4ID is the device ID of PF4 (0xV4PP).
func (p Product) PF4ID() uint16 { return p.id(FuncPF4) }

// Upstream reports whether upstream Linux binds this product (T4-T6); T7 IDs come
// from Chelsio's own driver only and are unconfirmed.
func (p Product) Upstream() bool { return p.Chip != T7 }

// Ports is the number of physical ports the model name implies: the digit after the
// generation digit (T62100-CR: 2, T540-CR: 4, T6425-CR: 4, T61100-OCP-SO: 1). The
// adapter's PF4 netdevs, when present, are the better source.
func (p Product) Ports() int {
	m := strings.TrimPrefix(p.Model, "Custom ")
	m = strings.TrimLeft(m, "TSBtsb")
	if len(m) >= 2 {
		switch m[1] {
		case '1':
			return 1
		case '4':
			return 4
		}
	}
	return 2
}

// ChipOf returns the generation encoded in a Chelsio device ID, and false when the
// first digit is not 4-7.
func ChipOf(deviceID uint16) (Chip, bool) {
	switch deviceID >> 12 {
	case 4:
		return T4, true
	case 5:
		return T5, true
	case 6:
		return T6, true
	case 7:
		return T7, true
	}
	return "", false
}

// KindOf returns the function kind encoded in a Chelsio device ID.
func KindOf(deviceID uint16) FuncKind {
	k := FuncKind(deviceID >> 8 & 0xf)
	if k == 0x6 {
		return FuncStorage
	}
	return k
}

// IsVFID reports whether a Chelsio device ID is a VF that cxgb4vf handles: function
// nibble 8 and generation T4-T6, or T7 when allowT7 is set. The product table is not
// a gate: an unknown board byte is still a Chelsio VF.
func IsVFID(deviceID uint16, allowT7 bool) bool {
	if KindOf(deviceID) != FuncVF {
		return false
	}
	c, ok := ChipOf(deviceID)
	return ok && (c != T7 || allowT7)
}

// LookupID finds the product of any of its function IDs (VF, PF0-3, PF4, PF5/6) and
// returns it with the function kind. Unknown IDs return false.
func LookupID(deviceID uint16) (Product, FuncKind, bool) {
	c, ok := ChipOf(deviceID)
	if !ok {
		return Product{}, 0, false
	}
	k := KindOf(deviceID)
	if k != FuncPF03 && k != FuncPF4 && k != FuncStorage && k != FuncVF {
		return Product{}, 0, false
	}
	p, ok := productByKey(c, uint8(deviceID))
	return p, k, ok
}

// LookupModel finds a product by model name, ignoring case ("t62100-cr").
func LookupModel(model string) (Product, bool) {
	// Several "Custom" boards share a name; the first (lowest ID) wins.
	for _, p := range products {
		if strings.EqualFold(p.Model, model) {
			return p, true
		}
	}
	return Product{}, false
}

// Products returns every product of the table, upstream ones first in ID order.
func Products() []Product { return append([]Product(nil), products...) }

// productByKey finds the product of a chip and product code. The table is
// searched as it is: a map built at start would cost every short-lived process
// (one CNI call each) more than the few lookups it makes.
func productByKey(c Chip, code uint8) (Product, bool) {
	for _, p := range products {
		if p.Chip == c && p.Code == code {
			return p, true
		}
	}
	return Product{}, false
}

// products is the Chelsio ID table: the upstream cxgb4/cxgb4vf list (T4, T5, T6; the
// driver ID-table comments name the boards, Chelsio Unified Wire names T6) and the T7
// boards of Chelsio's own driver. Device IDs are derived: 0xV0PP, 0xV4PP, 0xV8PP.
var products = []Product{
	// T4
	{T4, 0x00, "T440-dbg"},
	{T4, 0x01, "T420-cr"},
	{T4, 0x02, "T422-cr"},
	{T4, 0x03, "T440-cr"},
	{T4, 0x04, "T420-bch"},
	{T4, 0x05, "T440-bch"},
	{T4, 0x06, "T440-ch"},
	{T4, 0x07, "T420-so"},
	{T4, 0x08, "T420-cx"},
	{T4, 0x09, "T420-bt"},
	{T4, 0x0a, "T404-bt"},
	{T4, 0x0b, "B420-sr"},
	{T4, 0x0c, "B404-bt"},
	{T4, 0x0d, "T480-cr"},
	{T4, 0x0e, "T440-LP-cr"},
	{T4, 0x80, "Custom T480-cr"},
	{T4, 0x81, "Custom T440-cr"},
	{T4, 0x82, "Custom T420-cr"},
	{T4, 0x83, "Custom T420-xaui"},
	{T4, 0x84, "Custom T440-cr"},
	{T4, 0x85, "Custom T420-cr"},
	{T4, 0x86, "Custom T440-bt"},
	{T4, 0x87, "Custom T440-cr"},
	{T4, 0x88, "Custom T440 2-xaui, 2-xfi"},
	// T5
	{T5, 0x00, "T580-dbg"},
	{T5, 0x01, "T520-cr"},
	{T5, 0x02, "T522-cr"},
	{T5, 0x03, "T540-cr"},
	{T5, 0x04, "T520-bch"},
	{T5, 0x05, "T540-bch"},
	{T5, 0x06, "T540-ch"},
	{T5, 0x07, "T520-so"},
	{T5, 0x08, "T520-cx"},
	{T5, 0x09, "T520-bt"},
	{T5, 0x0a, "T504-bt"},
	{T5, 0x0b, "B520-sr"},
	{T5, 0x0c, "B504-bt"},
	{T5, 0x0d, "T580-cr"},
	{T5, 0x0e, "T540-LP-cr"},
	{T5, 0x10, "T580-LP-cr"},
	{T5, 0x11, "T520-LL-cr"},
	{T5, 0x12, "T560-cr"},
	{T5, 0x13, "T580-chr"},
	{T5, 0x14, "T580-so"},
	{T5, 0x15, "T502-bt"},
	{T5, 0x16, "T580-OCP-SO"},
	{T5, 0x17, "T520-OCP-SO"},
	{T5, 0x18, "T540-BT"},
	{T5, 0x19, "T540-LP-BT"},
	{T5, 0x1a, "T540-SO-BT"},
	{T5, 0x1b, "T540-SO-CR"},
	{T5, 0x80, "Custom T540-cr"},
	{T5, 0x81, "Custom T540-LL-cr"},
	{T5, 0x82, "Custom T504-cr"},
	{T5, 0x83, "Custom T540-CR"},
	{T5, 0x84, "Custom T580-cr"},
	{T5, 0x85, "Custom 3x T580-CR"},
	{T5, 0x86, "Custom 2x T580-CR"},
	{T5, 0x87, "Custom T580-CR"},
	{T5, 0x88, "Custom T570-CR"},
	{T5, 0x89, "Custom T520-CR"},
	{T5, 0x90, "Custom T540-CR"},
	{T5, 0x91, "Custom T522-CR"},
	{T5, 0x92, "Custom T520-CR"},
	{T5, 0x93, "Custom SECA"},
	{T5, 0x94, "Custom T540-CR"},
	{T5, 0x95, "Custom T540-CR-SO"},
	{T5, 0x96, "Custom T580-CR"},
	{T5, 0x97, "Custom T520-KR"},
	{T5, 0x98, "Custom 2x40G QSFP"},
	{T5, 0x99, "Custom 2x40G QSFP"},
	{T5, 0x9a, "Custom T520-CR"},
	{T5, 0x9b, "Custom T540-CR LOM"},
	{T5, 0x9c, "Custom T520-CR SFP+ LOM"},
	{T5, 0x9d, "Custom T540-CR SFP+"},
	{T5, 0x9e, "Custom T520-CR"},
	{T5, 0x9f, "Custom T540-CR"},
	{T5, 0xa0, "Custom T540-CR"},
	{T5, 0xa1, "Custom T540-CR"},
	{T5, 0xa2, "Custom T580-KR4"},
	{T5, 0xa3, "Custom T580-KR4"},
	{T5, 0xa4, "Custom 2x T540-CR"},
	{T5, 0xa5, "Custom T522-BT"},
	{T5, 0xa6, "Custom T522-BT-SO"},
	{T5, 0xa7, "Custom T580-CR"},
	{T5, 0xa8, "Custom T580-KR"},
	{T5, 0xa9, "Custom T580-KR"},
	{T5, 0xaa, "Custom T580-CR"},
	{T5, 0xab, "Custom T520-CR"},
	{T5, 0xac, "Custom T540-BT"},
	{T5, 0xad, "Custom T520-CR"},
	{T5, 0xae, "Custom T540-XL-SO"},
	{T5, 0xaf, "Custom T580-KR-SO"},
	{T5, 0xb0, "Custom T520-CR-LOM"},
	// T6
	{T6, 0x01, "T6225-CR"},
	{T6, 0x02, "T6225-SO-CR"},
	{T6, 0x03, "T6425-CR"},
	{T6, 0x04, "T6425-SO-CR"},
	{T6, 0x05, "T6225-OCP-SO"},
	{T6, 0x06, "T62100-OCP-SO"},
	{T6, 0x07, "T62100-LP-CR"},
	{T6, 0x08, "T62100-SO-CR"},
	{T6, 0x09, "T6210-BT"},
	{T6, 0x0d, "T62100-CR"},
	{T6, 0x11, "T6225-LL-CR"},
	{T6, 0x14, "T61100-OCP-SO"},
	{T6, 0x15, "T6201-BT"},
	{T6, 0x80, "Custom T6225-CR"},
	{T6, 0x81, "Custom T62100-CR"},
	{T6, 0x82, "Custom T6225-CR"},
	{T6, 0x83, "Custom T62100-CR"},
	{T6, 0x84, "Custom T64100-CR"},
	{T6, 0x85, "Custom T6240-SO"},
	{T6, 0x86, "Custom T6225-SO-CR"},
	{T6, 0x87, "Custom T6225-CR"},
	{T6, 0x88, "Custom T62100-CR"},
	{T6, 0x89, "Custom T62100-KR"},
	{T6, 0x8a, "Custom T62100-CR"},
	{T6, 0x8b, "Custom T6225-CR"},
	{T6, 0x92, "Custom T62100-CR-LOM"},
	// T7
	{T7, 0x00, "T7-DBG"},
	{T7, 0x01, "T7250"},
	{T7, 0x02, "S7250"},
	{T7, 0x03, "T7450"},
	{T7, 0x04, "S7450"},
	{T7, 0x05, "T72200"},
	{T7, 0x06, "S72200"},
	{T7, 0x07, "T72200-FH"},
	{T7, 0x08, "T71400"},
	{T7, 0x09, "S7210-BT"},
	{T7, 0x0a, "T7450-RC"},
	{T7, 0x0b, "T72200-RC"},
	{T7, 0x0c, "T72200-FH-RC"},
	{T7, 0x0d, "S72200-OCP3"},
	{T7, 0x0e, "S7450-OCP3"},
	{T7, 0x0f, "S7410-BT-OCP3"},
	{T7, 0x10, "S7210-BT-A"},
	{T7, 0x11, "T7_MAYRA_7"},
	{T7, 0x12, "T7-iNIC"},
	{T7, 0x80, "Custom"},
	{T7, 0x81, "Custom XES S7"},
}
