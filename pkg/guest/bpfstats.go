package guest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/cilium/ebpf"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// maxBPFProgs bounds how many programs one bpf_prog_stats frame lists.
const maxBPFProgs = 512

// ProgIDsFromFdinfo returns the BPF program ids among a process's file
// descriptors: the "prog_id:" line of each /proc/PID/fdinfo/N (bpf
// program fds carry one; links carry it too). Sorted, unique.
func ProgIDsFromFdinfo(fdinfoDir string) ([]uint32, error) {
	ents, err := os.ReadDir(fdinfoDir)
	if err != nil {
		return nil, err
	}
	var ids []uint32
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(fdinfoDir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if id, ok := parseFdinfoProgID(b); ok && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// parseFdinfoProgID finds "prog_id:\tN" in one fdinfo file.
func parseFdinfoProgID(b []byte) (uint32, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok || string(bytes.TrimSpace(k)) != "prog_id" {
			continue
		}
		id, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 32)
		if err != nil || id == 0 {
			return 0, false
		}
		return uint32(id), true
	}
	return 0, false
}

// progInfo reads one program's info by id.
func progInfo(id ebpf.ProgramID, schedStartNS int64) (wire.BPFProg, time.Duration, error) {
	p, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return wire.BPFProg{}, 0, err
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		return wire.BPFProg{}, 0, err
	}
	out := wire.BPFProg{ID: uint32(id), Name: info.Name, Type: info.Type.String()}
	out.VerifiedInsns, _ = info.VerifiedInstructions()
	lt, _ := info.LoadTime()
	out.LoadTimeNS = uint64(lt)
	out.LoadOffsetNS = int64(lt) - schedStartNS
	if js, err := info.JitedSize(); err == nil {
		out.JitedSize = js
	}
	if xs, err := info.TranslatedSize(); err == nil && xs > 0 {
		out.XlatedSize = uint32(xs)
	}
	if st, err := p.Stats(); err == nil {
		out.RunTimeNS, out.RunCount = uint64(st.Runtime), st.RunCount
	}
	if maps, ok := info.MapIDs(); ok {
		for _, m := range maps {
			out.MapIDs = append(out.MapIDs, uint32(m))
		}
	}
	return out, lt, nil
}

// CollectBPFProgStats lists the scheduler's BPF programs. It picks the
// programs whose descriptors the scheduler process (pid) holds; when it
// holds none it can show (it exited, or closed them), the programs loaded
// at or after schedStartNS (CLOCK_BOOTTIME) instead, since nothing else
// in the guest loads BPF programs.
func CollectBPFProgStats(name string, pid int, schedStartNS int64) (wire.BPFProgStats, error) {
	st := wire.BPFProgStats{Scheduler: name, Programs: []wire.BPFProg{}}
	ids, _ := ProgIDsFromFdinfo(fmt.Sprintf("/proc/%d/fdinfo", pid))
	if len(ids) > 0 {
		st.SelectedBy = "fd"
		for _, id := range ids {
			if len(st.Programs) == maxBPFProgs {
				break
			}
			p, _, err := progInfo(ebpf.ProgramID(id), schedStartNS)
			if err != nil {
				continue // unloaded meanwhile
			}
			st.Programs = append(st.Programs, p)
		}
		return st, nil
	}
	st.SelectedBy = "load_time"
	var id ebpf.ProgramID
	for len(st.Programs) < maxBPFProgs {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return st, fmt.Errorf("list BPF programs: %w", err)
		}
		id = next
		p, lt, err := progInfo(id, schedStartNS)
		if err != nil || int64(lt) < schedStartNS {
			continue
		}
		st.Programs = append(st.Programs, p)
	}
	return st, nil
}
