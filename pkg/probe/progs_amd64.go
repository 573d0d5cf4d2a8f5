//go:build amd64

package probe

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
)

// bpfProgs lists the loaded BPF programs' JITed functions as symbols
// ("bpf:NAME"), and the names of the struct_ops programs among them (a
// sched_ext scheduler's callbacks). A scheduler's programs are gone
// once it has exited, so the Session takes this while it runs.
func bpfProgs(known map[ebpf.ProgramID]bool) (syms []sym, structOps []string, err error) {
	var id ebpf.ProgramID
	for n := 0; n < 4096; n++ {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return syms, structOps, nil
		}
		if err != nil {
			return syms, structOps, fmt.Errorf("list BPF programs: %w", err)
		}
		id = next
		if known[id] {
			continue
		}
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // gone meanwhile
		}
		info, err := p.Info()
		p.Close()
		if err != nil {
			continue
		}
		known[id] = true
		name := info.Name
		if info.Type == ebpf.StructOps {
			structOps = append(structOps, name)
		}
		addrs, _ := info.JitedKsymAddrs()
		lens, _ := info.JitedFuncLens()
		for i, a := range addrs {
			s := sym{a: uint64(a), n: "bpf:" + name}
			if i < len(lens) {
				s.size = uint64(lens[i])
			}
			syms = append(syms, s)
		}
	}
	return syms, structOps, nil
}
