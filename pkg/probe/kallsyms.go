package probe

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Symtab resolves kernel text addresses to "function+0xoffset", from a
// /proc/kallsyms (or System.map) listing.
type Symtab struct {
	addrs []uint64
	names []string
	sizes []uint64 // 0: unknown (kallsyms gives none)
}

// maxSymbols bounds what ParseKallsyms keeps (a 6.12 kernel has ~150k
// text symbols).
const maxSymbols = 1 << 21

// ParseKallsyms reads "ADDRESS TYPE NAME [MODULE]" lines and keeps the
// text symbols (t, T, w, W). Lines it cannot read are skipped; an
// address of 0 (kallsyms hides addresses from the unprivileged) too.
func ParseKallsyms(r io.Reader) (*Symtab, error) {
	var syms []sym
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<16)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || len(f[1]) != 1 || !strings.ContainsAny(f[1], "tTwW") {
			continue
		}
		a, err := strconv.ParseUint(f[0], 16, 64)
		if err != nil || a == 0 {
			continue
		}
		if len(syms) >= maxSymbols {
			return nil, fmt.Errorf("more than %d text symbols", maxSymbols)
		}
		syms = append(syms, sym{a: a, n: f[2]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read kallsyms: %w", err)
	}
	return newSymtab(syms), nil
}

type sym struct {
	a    uint64
	n    string
	size uint64 // 0: unknown
}

func newSymtab(syms []sym) *Symtab {
	st := &Symtab{}
	sort.SliceStable(syms, func(i, j int) bool { return syms[i].a < syms[j].a })
	for _, s := range syms {
		st.addrs = append(st.addrs, s.a)
		st.names = append(st.names, s.n)
		st.sizes = append(st.sizes, s.size)
	}
	return st
}

// with returns a Symtab that also knows extra.
func (s *Symtab) with(extra []sym) *Symtab {
	var all []sym
	if s != nil {
		for i := range s.addrs {
			all = append(all, sym{s.addrs[i], s.names[i], s.sizes[i]})
		}
	}
	return newSymtab(append(all, extra...))
}

// maxOffset: an address further than this past the nearest symbol is
// shown as a number (it lies in no function we know).
const maxOffset = 1 << 20

// Lookup names addr as "function+0xoff", or "0x..." when no symbol covers
// it (past a symbol of known size: a BPF trampoline lies between programs).
func (s *Symtab) Lookup(addr uint64) string {
	if s != nil {
		i := sort.Search(len(s.addrs), func(i int) bool { return s.addrs[i] > addr }) - 1
		if i >= 0 && addr-s.addrs[i] < maxOffset && (s.sizes[i] == 0 || addr-s.addrs[i] < s.sizes[i]) {
			return fmt.Sprintf("%s+0x%x", s.names[i], addr-s.addrs[i])
		}
	}
	return fmt.Sprintf("0x%x", addr)
}
