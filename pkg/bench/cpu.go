package bench

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cpuTimes is the first line of /proc/stat ("cpu  user nice system idle iowait irq
// softirq steal …"), in jiffies.
type cpuTimes struct {
	busy, total uint64
}

// readCPU reads the aggregate CPU line of <proc>/stat.
func readCPU(proc string) (cpuTimes, error) {
	f, err := os.Open(filepath.Join(proc, "stat"))
	if err != nil {
		return cpuTimes{}, fmt.Errorf("read host CPU times: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || fields[0] != "cpu" {
			continue
		}
		var t cpuTimes
		// user nice system idle iowait irq softirq steal; guest and guest_nice are
		// already counted in user and nice.
		for i, s := range fields[1:min(len(fields), 9)] {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return cpuTimes{}, fmt.Errorf("parse %s: cpu field %d %q: %w", f.Name(), i+1, s, err)
			}
			t.total += v
			if i != 3 && i != 4 { // idle, iowait
				t.busy += v
			}
		}
		return t, nil
	}
	if err := sc.Err(); err != nil {
		return cpuTimes{}, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	return cpuTimes{}, fmt.Errorf("parse %s: no aggregate cpu line", f.Name())
}

// percent is the host CPU % between two samples.
func (t cpuTimes) percent(later cpuTimes) float64 {
	if later.total <= t.total {
		return 0
	}
	return 100 * float64(later.busy-t.busy) / float64(later.total-t.total)
}
