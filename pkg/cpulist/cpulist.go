package cpulist

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// MaxID bounds every number and range the parser accepts. Linux's
// NR_CPUS tops out at 8192; the bound keeps a hostile or corrupt list
// ("0-4000000000") from allocating without limit.
const MaxID = 1 << 16

// Parse parses a kernel cpu-list ("0-3,8,10-11"; also the stride form
// "0-15:2/4" that bitmap_parselist accepts) into a sorted, duplicate-free
// slice. Surrounding white space and a trailing newline are ignored; an
// empty string is the empty set.
func Parse(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	seen := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		if err := parseRange(strings.TrimSpace(part), seen); err != nil {
			return nil, fmt.Errorf("cpu list %q: %w", clip(s), err)
		}
	}
	out := make([]int, 0, len(seen))
	for c := range seen {
		out = append(out, c)
	}
	sort.Ints(out)
	return out, nil
}

func parseRange(p string, seen map[int]bool) error {
	if p == "" {
		return fmt.Errorf("empty element")
	}
	rng, stride, hasStride := strings.Cut(p, ":")
	loS, hiS, isRange := strings.Cut(rng, "-")
	lo, err := num(loS)
	if err != nil {
		return err
	}
	hi := lo
	if isRange {
		if hi, err = num(hiS); err != nil {
			return err
		}
		if hi < lo {
			return fmt.Errorf("range %q runs backwards", p)
		}
	}
	used, group := 1, 1
	if hasStride {
		if !isRange {
			return fmt.Errorf("stride %q without a range", p)
		}
		uS, gS, ok := strings.Cut(stride, "/")
		if !ok {
			return fmt.Errorf("stride %q: want used/group", p)
		}
		if used, err = num(uS); err != nil {
			return err
		}
		if group, err = num(gS); err != nil {
			return err
		}
		if used == 0 || group == 0 || used > group {
			return fmt.Errorf("stride %q: want 0 < used <= group", p)
		}
	}
	for base := lo; base <= hi; base += group {
		for c := base; c < base+used && c <= hi; c++ {
			seen[c] = true
		}
	}
	return nil
}

func num(s string) (int, error) {
	if s == "" || len(s) > 6 {
		return 0, fmt.Errorf("bad number %q", s)
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("bad number %q", s)
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > MaxID {
		return 0, fmt.Errorf("number %q out of range (max %d)", s, MaxID)
	}
	return n, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// Format writes ids (any order, duplicates allowed) in the kernel's
// list form (as bitmap_print_list does): sorted, every run of consecutive
// numbers as "a-b" (a pair too: "0-1"), singles alone. The empty set
// formats as "".
func Format(ids []int) string {
	s := Normalize(ids)
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j+1 < len(s) && s[j+1] == s[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(s[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(s[j]))
		}
		i = j + 1
	}
	return b.String()
}

// Normalize returns ids sorted with duplicates removed, in a new slice.
func Normalize(ids []int) []int {
	s := append([]int(nil), ids...)
	sort.Ints(s)
	out := s[:0]
	for i, c := range s {
		if i == 0 || c != s[i-1] {
			out = append(out, c)
		}
	}
	return out
}
