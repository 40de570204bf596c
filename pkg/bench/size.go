package bench

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// DefaultSizes are the seed's I/O sizes: every power of two from 64 B to 512 KB.
func DefaultSizes() []int {
	var s []int
	for n := 64; n <= 512<<10; n *= 2 {
		s = append(s, n)
	}
	return s
}

// MaxSize is the largest I/O size a run accepts (16 MiB).
const MaxSize = 16 << 20

// ParseBytes parses a byte count: a number with an optional K, M or G suffix
// (powers of 1024, as iperf's -l and -w), e.g. "64", "512K", "1M".
func ParseBytes(s string) (int, error) {
	t := strings.TrimSpace(s)
	mult := 1
	if t != "" {
		switch t[len(t)-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		}
		if mult != 1 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.Atoi(t)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a positive byte count (e.g. 64, 512K, 1M)", s)
	}
	if n > (1<<31)/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}

// ParseSizes parses a comma-separated list of I/O sizes ("64,128,1K,512K").
func ParseSizes(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("bad size list: empty")
	}
	var out []int
	seen := map[int]bool{}
	for f := range strings.SplitSeq(s, ",") {
		n, err := ParseBytes(f)
		if err != nil {
			return nil, fmt.Errorf("bad size list: %w", err)
		}
		if n > MaxSize {
			return nil, fmt.Errorf("bad size list: %s is above the largest I/O size, %s", f, SizeLabel(MaxSize))
		}
		if seen[n] {
			return nil, fmt.Errorf("bad size list: %s appears twice", SizeLabel(n))
		}
		seen[n] = true
		out = append(out, n)
	}
	return out, nil
}

// SizeLabel is a size as the seed's figure labels it: 64, 128, …, 1K, …, 512K, 1M.
func SizeLabel(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + "M"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + "K"
	}
	return strconv.Itoa(n)
}
