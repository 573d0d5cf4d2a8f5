package decode

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

// Format selects how frames are rendered.
type Format int

const (
	// Text is one human-readable line per frame: relative time, origin
	// (G guest, H host), type name, summary.
	Text Format = iota
	// JSON is one JSON object per line with stable field names.
	JSON
)

// Renderer turns frames and decoder diagnostics into records of one
// Format. It keeps the time base of each origin (guest frames and host
// frames come from different clocks), so one Renderer serves one stream.
// The zero value renders Text.
type Renderer struct {
	Format   Format
	base     [2]uint64
	haveBase [2]bool
	compact  bytes.Buffer
}

func origin(f *wire.Frame) int {
	if f.Flags&wire.FlagHost != 0 {
		return 1
	}
	return 0
}

// Seen records f's time as its origin's time base if it is the first
// frame of that origin. Append calls it; call it directly for frames that
// are counted but not rendered, so filtering does not move the base.
func (r *Renderer) Seen(f *wire.Frame) {
	if o := origin(f); !r.haveBase[o] {
		r.base[o], r.haveBase[o] = f.TimeNS, true
	}
}

// Append appends f's record (ending in a newline) to dst. The returned
// error is the payload's layout error, if any: the record then carries the
// payload as base64 and the reason, and the caller decides what it means.
func (r *Renderer) Append(dst []byte, f *wire.Frame) ([]byte, error) {
	r.Seen(f)
	if r.Format == JSON {
		return r.appendJSON(dst, f)
	}
	return r.appendText(dst, f)
}

// AppendDiag appends the record of a decoder diagnostic (a
// *wire.CorruptError or *wire.TruncatedError) to dst.
func (r *Renderer) AppendDiag(dst []byte, err error) []byte {
	if r.Format == Text {
		dst = append(dst, "! "...)
		dst = append(dst, err.Error()...)
		return append(dst, '\n')
	}
	var ce *wire.CorruptError
	var te *wire.TruncatedError
	switch {
	case errors.As(err, &ce):
		dst = append(dst, `{"offset":`...)
		dst = strconv.AppendInt(dst, ce.Offset, 10)
		dst = append(dst, `,"diagnostic":"corrupt","skipped":`...)
		dst = strconv.AppendInt(dst, ce.Skipped, 10)
		dst = append(dst, `,"reason":`...)
		dst = appendJSONStr(dst, ce.Reason)
	case errors.As(err, &te):
		dst = append(dst, `{"offset":`...)
		dst = strconv.AppendInt(dst, te.Offset, 10)
		dst = append(dst, `,"diagnostic":"truncated","have":`...)
		dst = strconv.AppendInt(dst, te.Have, 10)
		dst = append(dst, `,"want":`...)
		dst = strconv.AppendInt(dst, te.Want, 10)
	default:
		dst = append(dst, `{"diagnostic":"error"`...)
	}
	dst = append(dst, `,"error":`...)
	dst = appendJSONStr(dst, err.Error())
	return append(dst, "}\n"...)
}

// isJSONType reports whether t's payload is a JSON object.
func isJSONType(t wire.Type) bool {
	switch t {
	case wire.TypeOutput, wire.TypeGuestExit, wire.TypeLog:
		return false
	}
	return t.Known()
}

// CheckPayload checks payload against the layout of type t: exact binary
// layouts for output and guest_exit, UTF-8 for log, and for the JSON
// types one JSON object with valid UTF-8 whose known fields have their
// types. It is wire.CheckPayload, the definition ktstr-monitor shares.
// Unknown and user types have no layout and always pass.
func CheckPayload(t wire.Type, p []byte) error { return wire.CheckPayload(t, p) }

// typeName is t.String() without allocating for the defined types.
var lowNames = func() (n [0x200]string) {
	for _, t := range wire.Types() {
		n[t] = t.String()
	}
	return
}()

func appendTypeName(dst []byte, t wire.Type) []byte {
	if t < 0x200 && lowNames[t] != "" {
		return append(dst, lowNames[t]...)
	}
	if t.IsUser() {
		dst = append(dst, "user_"...)
	}
	return append(dst, '0', 'x', hexDigits[t>>12&0xf], hexDigits[t>>8&0xf], hexDigits[t>>4&0xf], hexDigits[t&0xf])
}

// programName names an Output frame's program id: scheduler, init,
// payloadN for ProgramPayloadBase+N, programN otherwise.
func programName(p uint32) string {
	switch {
	case p == wire.ProgramScheduler:
		return "scheduler"
	case p == wire.ProgramInit:
		return "init"
	case p >= wire.ProgramPayloadBase:
		return "payload" + strconv.FormatUint(uint64(p-wire.ProgramPayloadBase), 10)
	}
	return "program" + strconv.FormatUint(uint64(p), 10)
}

func streamName(s uint8) string {
	if s == wire.StreamStderr {
		return "stderr"
	}
	return "stdout"
}

func (r *Renderer) appendJSON(dst []byte, f *wire.Frame) ([]byte, error) {
	dst = append(dst, `{"offset":`...)
	dst = strconv.AppendInt(dst, f.Offset, 10)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, uint64(f.Seq), 10)
	dst = append(dst, `,"type":"`...)
	dst = appendTypeName(dst, f.Type)
	dst = append(dst, `","type_id":`...)
	dst = strconv.AppendUint(dst, uint64(f.Type), 10)
	dst = append(dst, `,"flags":`...)
	dst = strconv.AppendUint(dst, uint64(f.Flags), 10)
	if f.Flags&wire.FlagHost != 0 {
		dst = append(dst, `,"host":true,"time_ns":`...)
	} else {
		dst = append(dst, `,"host":false,"time_ns":`...)
	}
	dst = strconv.AppendUint(dst, f.TimeNS, 10)
	dst = append(dst, `,"length":`...)
	dst = strconv.AppendUint(dst, uint64(f.Length), 10)
	mark := len(dst)
	p := f.Payload
	var err error
	switch t := f.Type; {
	case t == wire.TypeOutput:
		if err = CheckPayload(t, p); err != nil {
			break
		}
		dst = append(dst, `,"payload":{"stream":"`...)
		dst = append(dst, streamName(p[0])...)
		dst = append(dst, `","stream_id":`...)
		dst = strconv.AppendUint(dst, uint64(p[0]), 10)
		prog := binary.LittleEndian.Uint32(p[4:])
		dst = append(dst, `,"program":`...)
		dst = strconv.AppendUint(dst, uint64(prog), 10)
		dst = append(dst, `,"program_name":"`...)
		dst = append(dst, programName(prog)...)
		dst = append(dst, `","text":`...)
		var ok bool
		if dst, ok = appendJSONString(dst, p[8:]); !ok {
			dst = dst[:len(dst)-len(`"text":`)]
			dst = append(dst, `"data_b64":"`...)
			dst = base64.StdEncoding.AppendEncode(dst, p[8:])
			dst = append(dst, '"')
		}
		dst = append(dst, '}')
	case t == wire.TypeGuestExit:
		if err = CheckPayload(t, p); err != nil {
			break
		}
		dst = append(dst, `,"payload":{"code":`...)
		dst = strconv.AppendInt(dst, int64(int32(binary.LittleEndian.Uint32(p))), 10)
		dst = append(dst, '}')
	case t == wire.TypeLog:
		dst = append(dst, `,"payload":{"text":`...)
		var ok bool
		if dst, ok = appendJSONString(dst, p); !ok {
			err = &wire.PayloadError{Type: t, Reason: "not UTF-8"}
			break
		}
		dst = append(dst, '}')
	case isJSONType(t):
		if err = wire.CheckPayload(t, p); err != nil {
			break
		}
		dst = append(dst, `,"payload":`...)
		if bytes.IndexByte(p, '\n') >= 0 || bytes.IndexByte(p, '\r') >= 0 {
			// Valid JSON whose whitespace would break the one-object-per-
			// line framing: compact it (rare; our writers never do this).
			r.compact.Reset()
			json.Compact(&r.compact, p)
			dst = append(dst, r.compact.Bytes()...)
		} else {
			dst = append(dst, p...)
		}
	default:
		dst = append(dst, `,"payload_b64":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, p)
		dst = append(dst, '"')
	}
	if err != nil {
		dst = dst[:mark]
		dst = append(dst, `,"payload_b64":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, p)
		dst = append(dst, `","error":`...)
		dst = appendJSONStr(dst, err.Error())
	}
	return append(dst, "}\n"...), err
}

// appendRelTime appends the frame's time relative to its origin's base as
// signed seconds with microseconds, right-aligned in 11 columns.
func (r *Renderer) appendRelTime(dst []byte, f *wire.Frame) []byte {
	d := int64(f.TimeNS - r.base[origin(f)])
	sign := byte('+')
	if d < 0 {
		sign, d = '-', -d
	}
	var tmp [32]byte
	b := append(tmp[:0], sign)
	b = strconv.AppendInt(b, d/1e9, 10)
	b = append(b, '.')
	us := (d % 1e9) / 1e3
	for div := int64(100000); div > 0; div /= 10 {
		b = append(b, byte('0'+us/div%10))
	}
	for i := len(b); i < 11; i++ {
		dst = append(dst, ' ')
	}
	return append(dst, b...)
}

func (r *Renderer) appendText(dst []byte, f *wire.Frame) ([]byte, error) {
	start := len(dst)
	dst = r.appendRelTime(dst, f)
	if f.Flags&wire.FlagHost != 0 {
		dst = append(dst, " H "...)
	} else {
		dst = append(dst, " G "...)
	}
	n := len(dst)
	dst = appendTypeName(dst, f.Type)
	for i := len(dst) - n; i < 14; i++ {
		dst = append(dst, ' ')
	}
	dst = append(dst, ' ')
	if !f.Type.Known() {
		dst = appendHexPreview(dst, f.Payload)
		return append(dst, '\n'), nil
	}
	// Unmarshal checks the payload as CheckPayload does (one parse).
	m, err := wire.Unmarshal(f.Type, f.Payload)
	if err != nil {
		dst = fmt.Appendf(dst, "BAD PAYLOAD (%d bytes): %v", len(f.Payload), err)
		return append(dst, '\n'), err
	}
	if lines, ok := multiLine(m); ok {
		return appendLines(dst, start, lines), nil
	}
	dst = appendSummary(dst, m)
	return append(dst, '\n'), nil
}

// multiLine returns the lines of an output or log message whose text has
// more than one: a scheduler's debug dump or a payload's report is shown
// as the lines it is, each a record of its own that repeats the time,
// origin, type and (for output) program/stream, rather than as one line of
// escaped newlines. A final newline ends the last line; it starts no
// empty one. Within a line, other control bytes stay escaped.
func multiLine(m wire.Message) (lines multi, ok bool) {
	var text []byte
	switch v := m.(type) {
	case wire.Output:
		text = v.Data
		lines.label = programName(v.Program) + "/" + streamName(v.Stream) + ": "
	case wire.Log:
		text = []byte(v.Text)
	default:
		return lines, false
	}
	text = bytes.TrimSuffix(text, []byte{'\n'})
	if bytes.IndexByte(text, '\n') < 0 {
		return lines, false
	}
	lines.text = bytes.Split(text, []byte{'\n'})
	return lines, true
}

type multi struct {
	label string
	text  [][]byte
}

// appendLines appends one record per line of m; the record's prefix (time,
// origin, type column) is what was written from start on.
func appendLines(dst []byte, start int, m multi) []byte {
	prefix := append([]byte(nil), dst[start:]...)
	for i, l := range m.text {
		if i > 0 {
			dst = append(dst, prefix...)
		}
		dst = append(dst, m.label...)
		dst = appendEscaped(dst, l)
		dst = append(dst, '\n')
	}
	return dst
}

func appendHexPreview(dst []byte, p []byte) []byte {
	dst = strconv.AppendInt(dst, int64(len(p)), 10)
	dst = append(dst, " bytes"...)
	if len(p) > 0 {
		dst = append(dst, ' ')
	}
	for i, c := range p {
		if i == 32 {
			dst = append(dst, "..."...)
			break
		}
		dst = append(dst, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return dst
}

// sep appends the space that separates fields unless dst already ends
// in one (as it does right after the type name).
func sep(dst []byte) []byte {
	if len(dst) > 0 && dst[len(dst)-1] != ' ' {
		dst = append(dst, ' ')
	}
	return dst
}

// kv appends " key=value" (see sep), quoting the value when it is empty or holds
// spaces, quotes, '=' or anything that is not printable.
func kv(dst []byte, key, val string) []byte {
	dst = sep(dst)
	dst = append(dst, key...)
	dst = append(dst, '=')
	return appendVal(dst, val)
}

func appendVal(dst []byte, val string) []byte {
	plain := val != ""
	for _, c := range val {
		if c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f || !strconv.IsPrint(c) {
			plain = false
			break
		}
	}
	if plain {
		return append(dst, val...)
	}
	return strconv.AppendQuote(dst, val)
}

func kvOpt(dst []byte, key, val string) []byte {
	if val == "" {
		return dst
	}
	return kv(dst, key, val)
}

func kvInt(dst []byte, key string, v int64) []byte {
	dst = sep(dst)
	dst = append(dst, key...)
	dst = append(dst, '=')
	return strconv.AppendInt(dst, v, 10)
}

// fmtDur renders a duration the way the summaries use it: microseconds
// below a millisecond, whole milliseconds below 100 s, seconds above.
func fmtDur(ns uint64) string {
	switch {
	case ns < 1e6:
		return strconv.FormatUint(ns/1e3, 10) + "us"
	case ns < 100e9:
		return strconv.FormatUint(ns/1e6, 10) + "ms"
	}
	return strconv.FormatFloat(float64(ns)/1e9, 'f', 1, 64) + "s"
}

// fmtMS formats ns as milliseconds with three decimals (set-up phases,
// which are fractions of a millisecond to tens of them).
func fmtMS(ns uint64) string {
	return strconv.FormatFloat(float64(ns)/1e6, 'f', 3, 64) + "ms"
}

func fmtSecs(ns uint64) string {
	return strconv.FormatFloat(float64(ns)/1e9, 'f', 3, 64) + "s"
}

func fmtMem(bytes uint64) string {
	if bytes%(1<<30) == 0 && bytes > 0 {
		return strconv.FormatUint(bytes>>30, 10) + "GiB"
	}
	return strconv.FormatUint(bytes>>20, 10) + "MiB"
}

// cpuList renders CPU numbers as ranges: 0-3,6.
func cpuList(cpus []int) string {
	if len(cpus) == 0 {
		return "none"
	}
	s := append([]int(nil), cpus...)
	sort.Ints(s)
	var b []byte
	for i := 0; i < len(s); {
		j := i
		for j+1 < len(s) && s[j+1] <= s[j]+1 {
			j++
		}
		if len(b) > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(s[i]), 10)
		if s[j] != s[i] {
			b = append(b, '-')
			b = strconv.AppendInt(b, int64(s[j]), 10)
		}
		i = j + 1
	}
	return string(b)
}

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// appendSummary appends the one-line summary of a decoded message.
func appendSummary(dst []byte, m wire.Message) []byte {
	switch v := m.(type) {
	case wire.GuestReady:
		dst = kv(dst, "kernel", v.Kernel)
		dst = kvInt(dst, "cpus", int64(v.CPUs))
		dst = kv(dst, "memory", fmtMem(v.MemoryKiB<<10))
		dst = kv(dst, "init", v.InitVersion)
		dst = kv(dst, "uptime", fmtSecs(v.UptimeNS))
		dst = kvOpt(dst, "cmdline", v.Cmdline)
	case wire.Phase:
		dst = appendVal(dst, v.Phase)
		dst = kvOpt(dst, "detail", v.Detail)
	case wire.Stimulus:
		dst = fmt.Appendf(dst, "step %d", v.Step)
		dst = kvOpt(dst, "name", v.Name)
		dst = kv(dst, "at", fmtDur(v.ElapsedMS*1e6))
		dst = kv(dst, "hold", fmtDur(v.HoldMS*1e6))
		dst = kvInt(dst, "cgroups", int64(v.Cgroups))
		dst = kvInt(dst, "workers", int64(v.Workers))
		for i, op := range v.Ops {
			if i == 0 {
				dst = append(dst, ':')
			} else {
				dst = append(dst, ';')
			}
			dst = append(dst, ' ')
			dst = appendVal(dst, op.Op)
			if op.Cgroup != "" {
				dst = append(dst, ' ')
				dst = appendVal(dst, op.Cgroup)
			}
			if op.Detail != "" {
				dst = append(dst, ' ')
				dst = appendVal(dst, op.Detail)
			}
		}
	case wire.WorkerMetrics:
		dst = fmt.Appendf(dst, "step %d ", v.Step)
		dst = appendVal(dst, v.Cgroup)
		dst = fmt.Appendf(dst, "/w%d", v.Worker)
		dst = kvInt(dst, "pid", int64(v.PID))
		dst = kv(dst, "work", v.Work)
		dst = kv(dst, "iter", strconv.FormatUint(v.Iterations, 10))
		dst = kv(dst, "cpu", fmtDur(v.CPUTimeNS))
		dst = kv(dst, "wall", fmtDur(v.WallNS))
		dst = kv(dst, "gap", fmtDur(v.MaxGapNS))
		dst = kvInt(dst, "gap_cpu", int64(v.MaxGapCPU))
		dst = kv(dst, "cpus", cpuList(v.CPUs))
		dst = kv(dst, "migrations", strconv.FormatUint(v.Migrations, 10))
		if v.WakeSamples > 0 || v.WakeLatP99NS > 0 {
			dst = kv(dst, "wake_p50", fmtDur(v.WakeLatP50NS))
			dst = kv(dst, "wake_p99", fmtDur(v.WakeLatP99NS))
			dst = kv(dst, "wake_max", fmtDur(v.WakeLatMaxNS))
		}
		if len(v.OffCpuset) > 0 {
			dst = kv(dst, "off_cpuset", cpuList(v.OffCpuset))
		}
		if v.ExitCode != nil {
			dst = kvInt(dst, "exit", int64(*v.ExitCode))
		}
		if v.CPUShare != 0 {
			dst = kv(dst, "share", strconv.FormatFloat(v.CPUShare*100, 'f', 1, 64)+"%")
		}
		dst = appendWorkerWorkload(dst, &v)
	case wire.CgroupMetrics:
		dst = appendCgroupLine(dst, &v)
	case wire.Output:
		dst = append(dst, programName(v.Program)...)
		dst = append(dst, '/')
		dst = append(dst, streamName(v.Stream)...)
		dst = append(dst, ": "...)
		dst = appendEscaped(dst, bytes.TrimSuffix(v.Data, []byte{'\n'}))
	case wire.SchedExit:
		dst = appendVal(dst, v.KindName)
		dst = fmt.Appendf(dst, " (%d)", v.Kind)
		dst = kvOpt(dst, "reason", v.Reason)
		dst = kvOpt(dst, "message", v.Message)
		if v.ExitCode != nil {
			dst = kvInt(dst, "exit_code", int64(*v.ExitCode))
		}
		dst = kvOpt(dst, "signal", v.Signal)
	case wire.CheckResult:
		dst = appendCheckLine(dst, &v)
	case wire.GuestExit:
		dst = fmt.Appendf(dst, "code=%d", v.Code)
	case wire.ProbeEvent:
		dst = appendProbeEvent(dst, &v)
	case wire.ProbeMeta:
		dst = appendProbeMeta(dst, &v)
	case wire.Log:
		dst = appendEscaped(dst, bytes.TrimSuffix([]byte(v.Text), []byte{'\n'}))
	case wire.KernelSymbols:
		names := make([]string, 0, len(v.Symbols))
		for n := range v.Symbols {
			names = append(names, n)
		}
		sort.Strings(names)
		dst = fmt.Appendf(dst, "%d symbols", len(names))
		for i, n := range names {
			if i == 4 {
				dst = append(dst, " ..."...)
				break
			}
			dst = kv(dst, n, "0x"+strconv.FormatUint(v.Symbols[n], 16))
		}
	case wire.BPFProgStats:
		dst = appendBPFProgStats(dst, &v)
	case wire.VMStart:
		dst = kv(dst, "vmm", v.VMM)
		dst = kvInt(dst, "pid", int64(v.PID))
		dst = kvInt(dst, "vcpus", int64(v.VCPUs))
		dst = kv(dst, "memory", fmtMem(v.MemorySize))
		dst = kvInt(dst, "regions", int64(len(v.Regions)))
		dst = kvOpt(dst, "topology", v.Topology)
		dst = kvOpt(dst, "memory_path", v.MemoryPath)
		dst = kvOpt(dst, "control_fifo", v.ControlFIFO)
		dst = kvOpt(dst, "kernel", v.Kernel)
		dst = kvOpt(dst, "cmdline", v.Cmdline)
		if v.SetupNS > 0 {
			dst = kv(dst, "setup", fmtMS(v.SetupNS))
		}
	case wire.MonitorSample:
		dst = fmt.Appendf(dst, "seq=%d", v.Seq)
		dst = kv(dst, "elapsed", fmtSecs(v.ElapsedNS))
		dst = kvOpt(dst, "scx", v.ScxState)
		dst = kvOpt(dst, "ops", v.ScxOps)
		nr := make([]string, len(v.CPUs))
		scx := make([]string, len(v.CPUs))
		dsq := make([]string, len(v.CPUs))
		for i, c := range v.CPUs {
			nr[i] = strconv.FormatUint(uint64(c.NrRunning), 10)
			scx[i] = strconv.FormatUint(uint64(c.ScxNrRun), 10)
			dsq[i] = strconv.FormatUint(uint64(c.LocalDSQ), 10)
		}
		dst = kvInt(dst, "cpus", int64(len(v.CPUs)))
		dst = kv(dst, "nr_running", strings.Join(nr, ","))
		dst = kv(dst, "scx_nr_running", strings.Join(scx, ","))
		dst = kv(dst, "local_dsq", strings.Join(dsq, ","))
		var pre []int
		for _, c := range v.CPUs {
			if c.Preempted {
				pre = append(pre, c.CPU)
			}
		}
		if len(pre) > 0 {
			dst = kv(dst, "preempted", cpuList(pre))
		}
		if v.ScxExitKind != 0 || v.ScxExit != "" {
			dst = kv(dst, "scx_exit", v.ScxExit)
			dst = fmt.Appendf(dst, "(%d)", v.ScxExitKind)
		}
	case wire.VMExit:
		dst = kv(dst, "reason", v.Reason)
		dst = kvInt(dst, "exit_code", int64(v.ExitCode))
		dst = kv(dst, "wall", fmtSecs(v.WallNS))
		dst = kvInt(dst, "vcpus", int64(v.VCPUs))
		dst = kvOpt(dst, "detail", v.Detail)
		if len(v.KVMStats) > 0 {
			dst = kvInt(dst, "kvm_stats", int64(len(v.KVMStats)))
		}
	case wire.Violation:
		dst = appendVal(dst, v.Kind)
		if v.CPU >= 0 {
			dst = kvInt(dst, "cpu", int64(v.CPU))
		}
		dst = kv(dst, "elapsed", fmtSecs(v.ElapsedNS))
		keys := make([]string, 0, len(v.Values))
		for k := range v.Values {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			dst = kv(dst, k, fmtFloat(v.Values[k]))
		}
		dst = append(dst, ": "...)
		dst = appendEscaped(dst, []byte(v.Message))
	}
	return dst
}

// appendBPFProgStats shows the scheduler's programs, one
// "name(type insns=N load=+T jited=B)" entry each, after their count and
// the total of verified instructions.
func appendBPFProgStats(dst []byte, v *wire.BPFProgStats) []byte {
	dst = appendVal(dst, v.Scheduler)
	dst = kv(dst, "selected_by", v.SelectedBy)
	dst = kvInt(dst, "programs", int64(len(v.Programs)))
	var total uint64
	for _, p := range v.Programs {
		total += uint64(p.VerifiedInsns)
	}
	dst = kv(dst, "verified_insns", strconv.FormatUint(total, 10))
	for i, p := range v.Programs {
		if i == 0 {
			dst = append(dst, ':')
		} else {
			dst = append(dst, ';')
		}
		dst = append(dst, ' ')
		dst = appendVal(dst, p.Name)
		dst = append(dst, '(')
		dst = appendVal(dst, p.Type)
		dst = kv(dst, "insns", strconv.FormatUint(uint64(p.VerifiedInsns), 10))
		off := "+"
		if p.LoadOffsetNS < 0 {
			off = "-"
		}
		dst = kv(dst, "load", off+fmtDur(uint64(max(p.LoadOffsetNS, -p.LoadOffsetNS))))
		if p.JitedSize != 0 {
			dst = kv(dst, "jited", strconv.FormatUint(uint64(p.JitedSize), 10)+"B")
		}
		if p.RunCount != 0 {
			dst = kv(dst, "runs", strconv.FormatUint(p.RunCount, 10))
			dst = kv(dst, "run_time", fmtDur(p.RunTimeNS))
		}
		dst = append(dst, ')')
	}
	return dst
}

func appendCgroupLine(dst []byte, v *wire.CgroupMetrics) []byte {
	dst = fmt.Appendf(dst, "step %d ", v.Step)
	dst = appendVal(dst, v.Cgroup)
	dst = append(dst, ':')
	dst = kvInt(dst, "workers", int64(v.Workers))
	dst = kvInt(dst, "cpus", int64(v.CPUsUsed))
	dst = kv(dst, "spread", strconv.FormatFloat(v.SpreadPct, 'f', 1, 64)+"%")
	dst = kv(dst, "gap", fmtDur(v.MaxGapNS))
	dst = kv(dst, "migrations", strconv.FormatUint(v.Migrations, 10))
	dst = kv(dst, "iter", strconv.FormatUint(v.Iterations, 10))
	dst = kv(dst, "cpuset", cpuList(v.Cpuset))
	if v.Weight != 0 {
		dst = kvInt(dst, "weight", int64(v.Weight))
	}
	if v.WakeLatP99NS != 0 {
		dst = kv(dst, "wake_p99", fmtDur(v.WakeLatP99NS))
	}
	return appendCgroupWorkload(dst, v)
}

// fmtRate writes an iteration rate with its unit.
func fmtRate(v float64, per string) string {
	return strconv.FormatFloat(v, 'f', -1, 64) + per
}

func fmtRound(v float64, prec int) string {
	return strconv.FormatFloat(v, 'f', prec, 64)
}

// appendWorkerWorkload appends the workload metrics of a worker line, each
// only when the frame carries it (older inits send none).
func appendWorkerWorkload(dst []byte, v *wire.WorkerMetrics) []byte {
	if v.Unit != "" {
		dst = kv(dst, "unit", v.Unit)
	}
	if v.RatePerS != 0 {
		dst = kv(dst, "rate", fmtRate(math.Round(v.RatePerS*10)/10, "/s"))
	}
	if v.RatePerCPUS != 0 {
		dst = kv(dst, "rate_cpu", fmtRate(math.Round(v.RatePerCPUS*10)/10, "/cpu-s"))
	}
	if v.OffCPUNS != 0 {
		dst = kv(dst, "off_cpu", fmtDur(v.OffCPUNS))
	}
	if v.RunDelayNS != 0 || v.Timeslices != 0 {
		dst = kv(dst, "run_delay", fmtDur(v.RunDelayNS))
		dst = kv(dst, "slices", strconv.FormatUint(v.Timeslices, 10))
	}
	if v.MigrationRatio != 0 {
		dst = kv(dst, "mig_ratio", fmtFloat(v.MigrationRatio))
	}
	if v.WakeLatCV != 0 {
		dst = kv(dst, "wake_cv", fmtFloat(v.WakeLatCV))
	}
	return dst
}

// appendCgroupWorkload appends the workload metrics of a cgroup line.
func appendCgroupWorkload(dst []byte, v *wire.CgroupMetrics) []byte {
	if v.OffCPUSpreadPct != 0 {
		dst = kv(dst, "off_cpu_spread", fmtRound(v.OffCPUSpreadPct, 1)+"pt")
	}
	if v.ThroughputCV != 0 {
		dst = kv(dst, "tput_cv", fmtFloat(v.ThroughputCV))
	}
	if v.MinRatePerS != 0 {
		dst = kv(dst, "min_rate", fmtRate(math.Round(v.MinRatePerS*10)/10, "/s"))
	}
	if v.MinRatePerCPUS != 0 {
		dst = kv(dst, "min_rate_cpu", fmtRate(math.Round(v.MinRatePerCPUS*10)/10, "/cpu-s"))
	}
	if v.MigrationRatio != 0 {
		dst = kv(dst, "mig_ratio", fmtFloat(v.MigrationRatio))
	}
	if v.OffCPUNS != 0 {
		dst = kv(dst, "off_cpu", fmtDur(v.OffCPUNS))
	}
	if v.RunDelayNS != 0 {
		dst = kv(dst, "run_delay", fmtDur(v.RunDelayNS))
		dst = kv(dst, "max_run_delay", fmtRound(v.MaxRunDelayPct, 1)+"%")
	}
	if v.WakeSamples != 0 {
		dst = kv(dst, "wake_p50", fmtDur(v.WakeLatP50NS))
		dst = kv(dst, "wake_max", fmtDur(v.WakeLatMaxNS))
		dst = kv(dst, "wake_cv", fmtFloat(v.WakeLatCV))
		dst = kv(dst, "wake_samples", strconv.FormatUint(v.WakeSamples, 10))
	}
	return dst
}

func appendCheckLine(dst []byte, v *wire.CheckResult) []byte {
	if v.Pass {
		dst = append(dst, "PASS "...)
	} else {
		dst = append(dst, "FAIL "...)
	}
	dst = appendVal(dst, v.Name)
	switch v.Unit {
	case "ns", "us", "ms", "s", "%", "":
		dst = kv(dst, "observed", fmtFloat(v.Observed)+v.Unit)
		dst = kv(dst, "threshold", fmtFloat(v.Threshold)+v.Unit)
	default:
		dst = kv(dst, "observed", fmtFloat(v.Observed))
		dst = kv(dst, "threshold", fmtFloat(v.Threshold))
		dst = kv(dst, "unit", v.Unit)
	}
	dst = kvOpt(dst, "cgroup", v.Cgroup)
	dst = kvInt(dst, "step", int64(v.Step))
	if v.Detail != "" {
		dst = append(dst, ": "...)
		dst = appendEscaped(dst, []byte(v.Detail))
	}
	return dst
}
