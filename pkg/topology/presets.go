package topology

import "fmt"

// Preset is a named guest shape. The 24 presets are upstream ktstr's
// gauntlet presets (its guide's running-tests/gauntlet page), by the
// same names, so a variant named .../smt-2llc means the same shape in
// both.
type Preset struct {
	Name  string
	Shape Shape
	About string
}

var presets = []Preset{
	{"tiny-1llc", Shape{1, 1, 4, 1}, "single LLC"},
	{"tiny-2llc", Shape{1, 2, 2, 1}, "smallest multi-LLC"},
	{"odd-3llc", Shape{1, 3, 3, 1}, "odd CPU count"},
	{"odd-5llc", Shape{1, 5, 3, 1}, "prime LLC count"},
	{"odd-7llc", Shape{1, 7, 2, 1}, "prime LLC count"},
	{"smt-2llc", Shape{1, 2, 2, 2}, "SMT"},
	{"smt-3llc", Shape{1, 3, 2, 2}, "SMT, 3 LLCs"},
	{"medium-4llc", Shape{1, 4, 4, 2}, "medium"},
	{"medium-8llc", Shape{1, 8, 4, 2}, "medium, many LLCs"},
	{"large-4llc", Shape{1, 4, 16, 2}, "large, few LLCs"},
	{"large-8llc", Shape{1, 8, 8, 2}, "large, many LLCs"},
	{"near-max-llc", Shape{1, 15, 8, 2}, "near the most LLCs"},
	{"max-cpu", Shape{1, 14, 9, 2}, "near KVM's vCPU limit"},
	{"medium-4llc-nosmt", Shape{1, 4, 8, 1}, "medium, no SMT"},
	{"medium-8llc-nosmt", Shape{1, 8, 8, 1}, "medium, many LLCs, no SMT"},
	{"large-4llc-nosmt", Shape{1, 4, 32, 1}, "large, no SMT"},
	{"large-8llc-nosmt", Shape{1, 8, 16, 1}, "large, many LLCs, no SMT"},
	{"near-max-llc-nosmt", Shape{1, 15, 16, 1}, "near the most LLCs, no SMT"},
	{"max-cpu-nosmt", Shape{1, 14, 18, 1}, "near KVM's vCPU limit, no SMT"},
	{"numa2-4llc", Shape{2, 4, 4, 1}, "2 NUMA nodes"},
	{"numa2-8llc", Shape{2, 8, 8, 2}, "2 NUMA nodes, SMT"},
	{"numa2-8llc-nosmt", Shape{2, 8, 16, 1}, "2 NUMA nodes, no SMT"},
	{"numa4-8llc", Shape{4, 8, 4, 1}, "4 NUMA nodes"},
	{"numa4-12llc", Shape{4, 12, 8, 2}, "4 NUMA nodes, SMT"},
}

// Presets returns the named presets in upstream's order (a copy).
func Presets() []Preset { return append([]Preset(nil), presets...) }

// LookupPreset returns the named preset.
func LookupPreset(name string) (Preset, error) {
	for _, p := range presets {
		if p.Name == name {
			return p, nil
		}
	}
	return Preset{}, fmt.Errorf("no topology preset %q (ktstr-gauntlet --list-presets lists them; or give a shape NnNlNcNt)", name)
}
