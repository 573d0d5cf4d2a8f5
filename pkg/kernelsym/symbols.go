package kernelsym

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Symbols the monitor needs. Those marked optional may be absent.
var wantedSymbols = []string{
	"linux_banner", "page_offset_base", "__per_cpu_offset", "runqueues",
	"init_top_pgt", "__pgtable_l5_enabled", "phys_base", "nr_cpu_ids",
	"kernel_config_data", "kernel_config_data_end", "_text",
	// sched_ext, 6.12 names (optional)
	"scx_ops_enable_state_var", "scx_ops", "scx_watchdog_timeout",
	"scx_exit_kind", "scx_exit_info", "scx_watchdog_timestamp", "jiffies",
	// newer kernels (optional)
	"scx_root",
}

// Required are the symbols without which guest memory cannot be read.
var Required = []string{"linux_banner", "page_offset_base", "__per_cpu_offset", "runqueues", "init_top_pgt", "phys_base", "nr_cpu_ids"}

// Symbols maps symbol names to link-time addresses.
type Symbols map[string]uint64

// Addr returns a symbol's address and whether it is known.
func (s Symbols) Addr(name string) (uint64, bool) {
	a, ok := s[name]
	return a, ok
}

func wanted() map[string]bool {
	w := make(map[string]bool, len(wantedSymbols))
	for _, n := range wantedSymbols {
		w[n] = true
	}
	return w
}

// ParseSystemMap reads the wanted symbols from a System.map ("ADDR TYPE
// NAME" lines). Malformed lines are an error naming the line.
func ParseSystemMap(r io.Reader) (Symbols, error) {
	w := wanted()
	syms := Symbols{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<16)
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) < 3 {
			return nil, fmt.Errorf("System.map line %d: want ADDRESS TYPE NAME", line)
		}
		if !w[f[2]] {
			continue
		}
		a, err := strconv.ParseUint(f[0], 16, 64)
		if err != nil {
			return nil, fmt.Errorf("System.map line %d: bad address %q", line, f[0])
		}
		syms[f[2]] = a
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read System.map: %w", err)
	}
	return syms, nil
}

// elfSymbols reads the wanted symbols from the ELF symbol table.
func elfSymbols(f *elf.File) (Symbols, error) {
	all, err := f.Symbols()
	if err != nil {
		return nil, err
	}
	w := wanted()
	syms := Symbols{}
	for _, s := range all {
		if w[s.Name] {
			if _, dup := syms[s.Name]; !dup {
				syms[s.Name] = s.Value
			}
		}
	}
	return syms, nil
}

// elfBytes returns n bytes of the loaded image at link address addr.
func elfBytes(f *elf.File, addr, n uint64) ([]byte, error) {
	for _, s := range f.Sections {
		if s.Type != elf.SHT_PROGBITS || s.Flags&elf.SHF_ALLOC == 0 {
			continue
		}
		if addr < s.Addr || addr-s.Addr >= s.Size {
			continue
		}
		n = min(n, s.Size-(addr-s.Addr))
		b := make([]byte, n)
		if _, err := s.ReadAt(b, int64(addr-s.Addr)); err != nil {
			return nil, fmt.Errorf("read section %s: %w", s.Name, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("address %#x is in no loaded section", addr)
}

// ParseIKConfig extracts the kernel configuration from the bytes of
// kernel_config_data (a gzip stream, which older kernels precede with
// "IKCFG_ST" inside the symbol) and returns its CONFIG_ options as a map
// (values with quotes stripped).
func ParseIKConfig(blob []byte) (map[string]string, error) {
	if i := bytes.Index(blob, []byte("IKCFG_ST")); i >= 0 {
		blob = blob[i+8:]
	}
	if !bytes.HasPrefix(blob, []byte{0x1f, 0x8b}) {
		return nil, errors.New("kernel_config_data holds no gzip stream")
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob))
	if err != nil {
		return nil, fmt.Errorf("embedded kernel config: %w", err)
	}
	// A kernel .config is a few hundred KiB; cap what a corrupt blob can make us hold.
	text, err := io.ReadAll(io.LimitReader(zr, 8<<20))
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("embedded kernel config: %w", err)
	}
	return ParseConfig(text), nil
}

// ParseConfig parses .config text into CONFIG_ options.
func ParseConfig(text []byte) map[string]string {
	cfg := map[string]string{}
	for _, l := range strings.Split(string(text), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
		if !ok || !strings.HasPrefix(k, "CONFIG_") {
			continue
		}
		cfg[k] = strings.Trim(v, `"`)
	}
	return cfg
}

func readSystemMap(path string) (Symbols, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open System.map: %w", err)
	}
	defer f.Close()
	return ParseSystemMap(f)
}
