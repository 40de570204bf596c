package vf

import (
	"strconv"
	"strings"
)

// PortSpeedMbps is the speed of one physical port that the model name implies, in
// Mbps: 100000 for the 100G T6 boards (T62100, T61100, T64100), 25000 for T6225 and
// T6425, 40000 for the T580 family (and the "40G" custom boards), and for T7 the
// number after the port digit (T7250: 50000, T72200: 200000); 10000 for every other
// board (T4, T520, T540, T6210-BT) and for unknown ones. A port netdev's speed file,
// when it reads, is the better source.
func (p Product) PortSpeedMbps() int {
	m := strings.ToUpper(p.Model)
	if p.Chip == T7 {
		if g := t7Gbps(m); g > 0 {
			return g * 1000
		}
		return 10000
	}
	switch {
	case strings.Contains(m, "100"):
		return 100000
	case strings.Contains(m, "225"), strings.Contains(m, "425"):
		return 25000
	case strings.Contains(m, "T58"), strings.Contains(m, "40G"):
		return 40000
	}
	return 10000
}

// t7Gbps reads T<gen><ports><Gbps> ("T72200", "S7210-BT"); 0 when the name has no
// such digits.
func t7Gbps(model string) int {
	m := strings.TrimPrefix(model, "CUSTOM ")
	m = strings.TrimLeft(m, "TS")
	if len(m) < 3 || m[0] != '7' || m[1] < '1' || m[1] > '9' {
		return 0
	}
	digits := m[2:]
	if i := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		digits = digits[:i]
	}
	g, err := strconv.Atoi(digits)
	if err != nil {
		return 0
	}
	return g
}
