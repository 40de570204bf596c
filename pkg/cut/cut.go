package cut

import "strconv"

// Quote returns s quoted (strconv.Quote) after Value has cut it.
func Quote(s string) string { return strconv.Quote(Value(s)) }

// Value cuts s for a message that quotes it: at most 40 bytes, and fewer when
// they would quote to more than 48 characters (a control or invalid byte quotes
// as four), with "…" when cut.
func Value(s string) string {
	if len(s) <= 40 && len(strconv.Quote(s)) <= 50 {
		return s
	}
	n := min(len(s), 40)
	for n > 0 && len(strconv.Quote(s[:n])) > 48 {
		n--
	}
	return s[:n] + "…"
}
