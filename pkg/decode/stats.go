package decode

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/ktstr-go/ktstr/pkg/verdict"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// TypeCount is what Stats counts for one message type.
type TypeCount struct {
	Frames int64 `json:"frames"`
	Bytes  int64 `json:"bytes"` // header and payload
}

// Stats counts what a stream held. Frames are counted whatever the type
// filter shows.
type Stats struct {
	BytesRead      int64                    // stream bytes consumed
	Frames         int64                    // good frames (CRC checked)
	FrameBytes     int64                    // their bytes, header included
	Types          map[wire.Type]*TypeCount // per type
	CorruptRegions int64                    // skipped regions
	CRCErrors      int64                    // skipped regions that began with a CRC mismatch
	BytesSkipped   int64                    // bytes in skipped regions
	Truncated      int64                    // frames cut off by the end of the stream
	TruncatedBytes int64                    // bytes of those frames that were present
	PayloadErrors  int64                    // good frames whose payload breaks its type's layout
	SeqGaps        int64                    // seq discontinuities per origin (a restart at 0 is not one)
	Verdict        *verdict.Verdict         // the run's verdict, with Options.Verdict or Summary

	lastSeq [2]uint32
	haveSeq [2]bool
	last    wire.Type
	lastTC  *TypeCount
}

// Corrupt reports whether the stream had any corruption, truncation or
// bad payload: what --strict turns into a failure.
func (s *Stats) Corrupt() bool {
	return s.CorruptRegions > 0 || s.Truncated > 0 || s.PayloadErrors > 0
}

func (s *Stats) frame(f *wire.Frame) {
	s.Frames++
	n := int64(wire.HeaderSize) + int64(f.Length)
	s.FrameBytes += n
	tc := s.lastTC
	if tc == nil || s.last != f.Type {
		if s.Types == nil {
			s.Types = make(map[wire.Type]*TypeCount)
		}
		if tc = s.Types[f.Type]; tc == nil {
			tc = &TypeCount{}
			s.Types[f.Type] = tc
		}
		s.last, s.lastTC = f.Type, tc
	}
	tc.Frames++
	tc.Bytes += n
	o := origin(f)
	if s.haveSeq[o] && f.Seq != s.lastSeq[o]+1 && f.Seq != 0 {
		s.SeqGaps++
	}
	s.lastSeq[o], s.haveSeq[o] = f.Seq, true
}

func (s *Stats) diag(err error) {
	var ce *wire.CorruptError
	var te *wire.TruncatedError
	switch {
	case errors.As(err, &ce):
		s.CorruptRegions++
		s.BytesSkipped += ce.Skipped
		if strings.HasPrefix(ce.Reason, "CRC mismatch") {
			s.CRCErrors++
		}
	case errors.As(err, &te):
		s.Truncated++
		s.TruncatedBytes += te.Have
	}
}

func (s *Stats) sortedTypes() []wire.Type {
	ts := make([]wire.Type, 0, len(s.Types))
	for t := range s.Types {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	return ts
}

// AppendText appends the stats as an aligned text block.
func (s *Stats) AppendText(dst []byte) []byte {
	dst = fmt.Appendf(dst, "stats: %d bytes read, %d frames (%d bytes)\n", s.BytesRead, s.Frames, s.FrameBytes)
	dst = fmt.Appendf(dst, "  %-16s %12s %14s\n", "type", "frames", "bytes")
	for _, t := range s.sortedTypes() {
		tc := s.Types[t]
		dst = fmt.Appendf(dst, "  %-16s %12d %14d\n", string(appendTypeName(nil, t)), tc.Frames, tc.Bytes)
	}
	dst = fmt.Appendf(dst, "  corrupt regions %d (CRC errors %d), bytes skipped %d\n", s.CorruptRegions, s.CRCErrors, s.BytesSkipped)
	dst = fmt.Appendf(dst, "  truncated frames %d (%d bytes), payload errors %d, seq gaps %d\n", s.Truncated, s.TruncatedBytes, s.PayloadErrors, s.SeqGaps)
	return dst
}

type jsonTypeCount struct {
	Type   string `json:"type"`
	TypeID uint16 `json:"type_id"`
	TypeCount
}

// AppendJSON appends the stats as one JSON line {"stats":{...}}.
func (s *Stats) AppendJSON(dst []byte) []byte {
	types := make([]jsonTypeCount, 0, len(s.Types))
	for _, t := range s.sortedTypes() {
		types = append(types, jsonTypeCount{string(appendTypeName(nil, t)), uint16(t), *s.Types[t]})
	}
	b, _ := json.Marshal(struct {
		Stats any `json:"stats"`
	}{struct {
		BytesRead      int64           `json:"bytes_read"`
		Frames         int64           `json:"frames"`
		FrameBytes     int64           `json:"frame_bytes"`
		Types          []jsonTypeCount `json:"types"`
		CorruptRegions int64           `json:"corrupt_regions"`
		CRCErrors      int64           `json:"crc_errors"`
		BytesSkipped   int64           `json:"bytes_skipped"`
		Truncated      int64           `json:"truncated"`
		TruncatedBytes int64           `json:"truncated_bytes"`
		PayloadErrors  int64           `json:"payload_errors"`
		SeqGaps        int64           `json:"seq_gaps"`
	}{s.BytesRead, s.Frames, s.FrameBytes, types, s.CorruptRegions, s.CRCErrors, s.BytesSkipped,
		s.Truncated, s.TruncatedBytes, s.PayloadErrors, s.SeqGaps}})
	dst = append(dst, b...)
	return append(dst, '\n')
}

// maxSummaryItems bounds each list a Summary keeps: the stream is
// untrusted and may repeat frames without end.
const maxSummaryItems = 10000

// Summary collects the frames a run's outcome is read from: every
// cgroup_metrics and check_result (up to a bound), scheduler exits, the
// guest's exit code and the VM's exit.
type Summary struct {
	Cgroups    []wire.CgroupMetrics `json:"cgroup_metrics"`
	Checks     []wire.CheckResult   `json:"checks"`
	Passed     int                  `json:"checks_passed"`
	Failed     int                  `json:"checks_failed"`
	SchedExits []wire.SchedExit     `json:"sched_exits"`
	GuestExit  *int32               `json:"guest_exit"`
	VMExit     *wire.VMExit         `json:"vm_exit"`
	Omitted    int64                `json:"omitted"` // items beyond the bound
	// SetupNS and SetupPhases are the VMM's set-up time from the vm_start
	// frame: process start to the first KVM_RUN, and its phases.
	SetupNS     uint64            `json:"setup_ns,omitempty"`
	SetupPhases []wire.SetupPhase `json:"setup_phases,omitempty"`
}

func (s *Summary) frame(f *wire.Frame) {
	switch f.Type {
	case wire.TypeCgroupMetrics, wire.TypeCheckResult, wire.TypeSchedExit, wire.TypeGuestExit, wire.TypeVMExit, wire.TypeVMStart:
	default:
		return
	}
	if CheckPayload(f.Type, f.Payload) != nil {
		return
	}
	m, err := wire.Unmarshal(f.Type, f.Payload)
	if err != nil {
		return
	}
	switch v := m.(type) {
	case wire.CgroupMetrics:
		if len(s.Cgroups) >= maxSummaryItems {
			s.Omitted++
			return
		}
		s.Cgroups = append(s.Cgroups, v)
	case wire.CheckResult:
		if v.Pass {
			s.Passed++
		} else {
			s.Failed++
		}
		if len(s.Checks) >= maxSummaryItems {
			s.Omitted++
			return
		}
		s.Checks = append(s.Checks, v)
	case wire.SchedExit:
		if len(s.SchedExits) >= maxSummaryItems {
			s.Omitted++
			return
		}
		s.SchedExits = append(s.SchedExits, v)
	case wire.GuestExit:
		c := v.Code
		s.GuestExit = &c
	case wire.VMExit:
		s.VMExit = &v
	case wire.VMStart:
		if v.SetupNS > 0 {
			s.SetupNS = v.SetupNS
			s.SetupPhases = v.SetupPhases[:min(len(v.SetupPhases), maxSetupPhases)]
		}
	}
}

// maxSetupPhases bounds the set-up phases a Summary keeps (ktstr-boot has
// a dozen; the frame is untrusted).
const maxSetupPhases = 64

// AppendText appends the summary: a table of cgroup metrics, the check
// results, and how the scheduler, guest and VM ended.
func (s *Summary) AppendText(dst []byte) []byte {
	dst = append(dst, "summary:\n"...)
	if len(s.Cgroups) > 0 {
		w := len("cgroup")
		for i := range s.Cgroups {
			w = max(w, len(s.Cgroups[i].Cgroup))
		}
		dst = fmt.Appendf(dst, "  %4s  %-*s %7s %4s %7s %9s %10s %12s  %s\n",
			"step", w, "cgroup", "workers", "cpus", "spread", "max_gap", "migrations", "iterations", "cpuset")
		for i := range s.Cgroups {
			c := &s.Cgroups[i]
			dst = fmt.Appendf(dst, "  %4d  %-*s %7d %4d %6.1f%% %9s %10d %12d  %s\n",
				c.Step, w, c.Cgroup, c.Workers, c.CPUsUsed, c.SpreadPct, fmtDur(c.MaxGapNS), c.Migrations, c.Iterations, cpuList(c.Cpuset))
		}
	} else {
		dst = append(dst, "  no cgroup metrics\n"...)
	}
	dst = fmt.Appendf(dst, "  checks: %d passed, %d failed\n", s.Passed, s.Failed)
	for i := range s.Checks {
		dst = append(dst, "    "...)
		dst = appendCheckLine(dst, &s.Checks[i])
		dst = append(dst, '\n')
	}
	for i := range s.SchedExits {
		dst = append(dst, "  scheduler exit: "...)
		dst = appendSummary(dst, s.SchedExits[i])
		dst = append(dst, '\n')
	}
	if s.GuestExit != nil {
		dst = append(dst, "  guest exit: code="...)
		dst = strconv.AppendInt(dst, int64(*s.GuestExit), 10)
		dst = append(dst, '\n')
	}
	if s.SetupNS > 0 {
		dst = append(dst, "  setup: "...)
		dst = append(dst, fmtMS(s.SetupNS)...)
		dst = append(dst, " to the first KVM_RUN"...)
		for i, p := range s.SetupPhases {
			if i == 0 {
				dst = append(dst, ':')
			}
			dst = append(dst, ' ')
			dst = appendVal(dst, p.Name)
			dst = append(dst, '=')
			dst = append(dst, fmtMS(p.NS)...)
			if p.Concurrent {
				dst = append(dst, "(concurrent)"...)
			}
		}
		dst = append(dst, '\n')
	}
	if s.VMExit != nil {
		dst = append(dst, "  vm exit: "...)
		dst = appendSummary(dst, *s.VMExit)
		dst = append(dst, '\n')
	}
	if s.Omitted > 0 {
		dst = fmt.Appendf(dst, "  %d more items omitted (over %d per list)\n", s.Omitted, maxSummaryItems)
	}
	return dst
}

// AppendJSON appends the summary as one JSON line {"summary":{...}}.
func (s *Summary) AppendJSON(dst []byte) []byte {
	c := *s
	if c.Cgroups == nil {
		c.Cgroups = []wire.CgroupMetrics{}
	}
	if c.Checks == nil {
		c.Checks = []wire.CheckResult{}
	}
	if c.SchedExits == nil {
		c.SchedExits = []wire.SchedExit{}
	}
	b, _ := json.Marshal(struct {
		Summary *Summary `json:"summary"`
	}{&c})
	dst = append(dst, b...)
	return append(dst, '\n')
}
