package verdict

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

// Result is the outcome of a run.
type Result string

// The three outcomes.
const (
	Pass Result = "pass"
	Fail Result = "fail"
	None Result = "none" // the stream holds too little evidence to say
)

// Exit codes that tools use for a verdict (ktstr-decode(1), ktstr-run(1)).
const (
	ExitPass = 0
	ExitFail = 1
	ExitNone = 3
)

// ExitCode is the process exit code for r.
func (r Result) ExitCode() int {
	switch r {
	case Pass:
		return ExitPass
	case Fail:
		return ExitFail
	}
	return ExitNone
}

// Word is r as the text verdict line spells it.
func (r Result) Word() string {
	switch r {
	case Pass:
		return "PASS"
	case Fail:
		return "FAIL"
	}
	return "NO VERDICT"
}

// Identity names what ran. Empty fields were not in the stream.
type Identity struct {
	Kernel    string `json:"kernel"`
	Scheduler string `json:"scheduler"`
	Scenario  string `json:"scenario"`
	Topology  string `json:"topology"`
	VMM       string `json:"vmm"`
}

// Verdict is the judge's answer.
type Verdict struct {
	Result  Result   `json:"result"`
	Reason  string   `json:"reason"`  // the first, most important reason
	Reasons []string `json:"reasons"` // every reason found, first = Reason
	Identity
	ChecksPassed int     `json:"checks_passed"`
	ChecksFailed int     `json:"checks_failed"`
	Violations   int     `json:"violations"`
	GuestExit    *int32  `json:"guest_exit"`
	VMExit       string  `json:"vm_exit"` // its reason, "" when absent
	Frames       int64   `json:"frames"`
	Bytes        int64   `json:"bytes"`
	ExitCode     int     `json:"exit_code"`
	WallS        float64 `json:"wall_s,omitempty"` // from vm_exit
}

// maxReasons bounds Reasons: the stream is untrusted.
const maxReasons = 32

// Guest exit codes of ktstr-init (ktstr-init(1)), for the reason line.
var guestExitMeaning = map[int32]string{
	1: "a check failed",
	3: "the scheduler did not attach",
	4: "the scheduler died",
	5: "bad configuration",
	6: "internal error in the guest init",
	7: "no stream port",
}

// Judge collects what a stream says about its run. Feed it every frame
// (Frame) and every corruption report (Corrupt) in stream order, then
// ask for the Verdict. It never allocates in proportion to the stream.
// The zero value is ready to use.
type Judge struct {
	frames, guestFrames int64
	bytes               int64

	vmStart   *wire.VMStart
	vmExit    *wire.VMExit
	ready     *wire.GuestReady
	guestExit *int32

	checksPassed, checksFailed int
	firstFailedCheck           string
	moreFailedChecks           int

	violations     int
	firstViolation string

	schedErr string // the first error exit of the scheduler

	corrupt       int64
	firstCorrupt  int64
	truncatedAt   int64 // -1: none
	truncated     bool
	payloadErrors int64
	firstPayload  string

	lastGuestSeq  uint32
	haveGuestSeq  bool
	seqGaps       int64
	lastGuestTime uint64 // header time of the last guest frame (guest clock)
}

// Frame takes one good (CRC-checked) frame.
func (j *Judge) Frame(f *wire.Frame) {
	host, guestType := j.count(f)
	if !f.Type.Known() {
		return
	}
	// Host-range types count only when a host wrote them: a guest that
	// writes a vm_exit or a violation of its own is not believed.
	if !guestType && !host {
		return
	}
	m, err := wire.Unmarshal(f.Type, f.Payload)
	if err != nil {
		j.payloadError(f, err)
		return
	}
	j.message(m)
}

// count does the accounting every good frame gets.
func (j *Judge) count(f *wire.Frame) (host, guestType bool) {
	j.frames++
	host = f.Flags&wire.FlagHost != 0
	guestType = !f.Type.IsHost()
	if !host {
		// Every frame without the host flag came from the guest's one
		// writer, whatever its type: its seq numbers run on unbroken.
		if j.haveGuestSeq && f.Seq != j.lastGuestSeq+1 && f.Seq != 0 {
			j.seqGaps++
		}
		j.lastGuestSeq, j.haveGuestSeq = f.Seq, true
		if guestType {
			j.guestFrames++
			j.lastGuestTime = f.TimeNS
		}
	}
	return host, guestType
}

func (j *Judge) message(m wire.Message) {
	switch v := m.(type) {
	case wire.GuestReady:
		if j.ready == nil {
			j.ready = &v
		}
	case wire.GuestExit:
		if j.guestExit == nil {
			c := v.Code
			j.guestExit = &c
		}
	case wire.CheckResult:
		if v.Pass {
			j.checksPassed++
		} else {
			j.checksFailed++
			if j.firstFailedCheck == "" {
				j.firstFailedCheck = checkLine(&v)
			} else {
				j.moreFailedChecks++
			}
		}
	case wire.SchedExit:
		if v.Kind >= 1024 && j.schedErr == "" {
			j.schedErr = schedExitLine(&v)
		}
	case wire.Violation:
		j.violations++
		if j.firstViolation == "" {
			j.firstViolation = v.Kind + ": " + v.Message
		}
	case wire.VMStart:
		if j.vmStart == nil { // only the first: later ones are not the VMM's
			j.vmStart = &v
		}
	case wire.VMExit:
		j.vmExit = &v // the VMM writes it last
	}
}

func (j *Judge) payloadError(f *wire.Frame, err error) {
	j.payloadErrors++
	if j.firstPayload == "" {
		j.firstPayload = fmt.Sprintf("at byte %d: %v", f.Offset, err)
	}
}

// PayloadError records a good frame whose payload a stricter validator
// (ktstr-decode's) rejected; the frame itself is not passed to Frame.
func (j *Judge) PayloadError(f *wire.Frame, err error) {
	j.count(f)
	j.payloadError(f, err)
}

// Corrupt takes a decoder corruption report (*wire.CorruptError or
// *wire.TruncatedError); other errors are ignored.
func (j *Judge) Corrupt(err error) {
	var ce *wire.CorruptError
	var te *wire.TruncatedError
	switch {
	case errors.As(err, &te):
		if !j.truncated {
			j.truncated, j.truncatedAt = true, te.Offset
		}
	case errors.As(err, &ce):
		if j.corrupt == 0 {
			j.firstCorrupt = ce.Offset
		}
		j.corrupt++
	}
}

// Verdict judges the stream, whose length in bytes was n.
//
// A run passes only when all of these hold: the guest reported its exit
// with code 0; at least one check ran and every check passed; no monitor
// violation was recorded; the scheduler did not exit with an error kind;
// the VMM's vm_exit says the guest ended by its exit frame and then powered
// off; and the stream is whole (no corrupt region, truncated frame, bad
// payload or gap in the guest's frame sequence).
//
// A definite sign of failure makes the run fail even when the stream is
// incomplete. Otherwise an incomplete stream (empty, cut short, corrupt,
// no vm_exit) gives no verdict.
func (j *Judge) Verdict(n int64) Verdict {
	v := Verdict{Identity: j.identity(), ChecksPassed: j.checksPassed, ChecksFailed: j.checksFailed,
		Violations: j.violations, GuestExit: j.guestExit, Frames: j.frames, Bytes: n}
	if j.vmExit != nil {
		v.VMExit = j.vmExit.Reason
		v.WallS = float64(j.vmExit.WallNS) / 1e9
	}
	var fails []string
	add := func(s string) {
		if len(fails) < maxReasons {
			fails = append(fails, s)
		}
	}
	if j.schedErr != "" {
		add(j.schedErr)
	}
	if j.firstFailedCheck != "" {
		s := j.firstFailedCheck
		if j.moreFailedChecks > 0 {
			s += fmt.Sprintf(" (and %d more failed checks)", j.moreFailedChecks)
		}
		add(s)
	}
	if j.firstViolation != "" {
		s := "monitor violation " + j.firstViolation
		if j.violations > 1 {
			s += fmt.Sprintf(" (and %d more)", j.violations-1)
		}
		add(s)
	}
	if j.guestExit != nil && *j.guestExit != 0 {
		s := fmt.Sprintf("guest exit code %d", *j.guestExit)
		if m := guestExitMeaning[*j.guestExit]; m != "" {
			s += " (" + m + ")"
		}
		add(s)
	}
	// What is missing counts against the run only when the stream is
	// whole; in a damaged stream it may be in the damage.
	whole := !j.truncated && j.corrupt == 0 && j.payloadErrors == 0 && j.seqGaps == 0
	if x := j.vmExit; x != nil {
		switch {
		case !whole && (j.guestFrames == 0 || j.guestExit == nil):
		case j.guestFrames == 0:
			add("the guest sent no frame: " + vmExitLine(x))
		case j.guestExit == nil:
			add(fmt.Sprintf("no guest_exit: the guest stopped answering after %s (its last frame); %s",
				guestTime(j.lastGuestTime), vmExitLine(x)))
		case x.Reason != "guest_exit":
			add("the run did not end by the guest's exit frame: " + vmExitLine(x))
		case x.EndedBy != "" && x.EndedBy != "poweroff" && x.EndedBy != "reboot":
			add("the guest did not power off after its exit frame: " + vmExitLine(x))
		case x.EndedBy == "" && strings.Contains(x.Detail, "did not shut down"):
			add("the guest did not power off after its exit frame: " + vmExitLine(x))
		}
	}
	if whole && j.guestExit != nil && *j.guestExit == 0 && j.checksPassed+j.checksFailed == 0 {
		add("no checks ran: the guest exited 0 without reporting a check")
	}

	var gaps []string
	addGap := func(s string) {
		if len(gaps) < maxReasons {
			gaps = append(gaps, s)
		}
	}
	switch {
	case n == 0:
		addGap("empty stream")
	case j.frames == 0:
		addGap(fmt.Sprintf("no frame in %d bytes", n))
	}
	if j.truncated {
		addGap(fmt.Sprintf("stream truncated at byte %d", j.truncatedAt))
	}
	if j.corrupt > 0 {
		addGap(fmt.Sprintf("%d corrupt region(s), the first at byte %d: frames may be lost", j.corrupt, j.firstCorrupt))
	}
	if j.payloadErrors > 0 {
		addGap(fmt.Sprintf("%d bad payload(s), the first %s", j.payloadErrors, j.firstPayload))
	}
	if j.seqGaps > 0 {
		addGap(fmt.Sprintf("%d gap(s) in the guest's frame sequence: guest frames were lost", j.seqGaps))
	}
	if j.frames > 0 && j.guestFrames == 0 && j.vmExit == nil {
		addGap("no guest frame")
	}
	if j.vmExit == nil && j.frames > 0 {
		if j.guestExit == nil && j.guestFrames > 0 {
			addGap(fmt.Sprintf("no guest_exit and no vm_exit: the stream ended while the guest was running (its last frame at %s)", guestTime(j.lastGuestTime)))
		} else if j.guestFrames > 0 {
			addGap("no vm_exit: the stream ended before the VMM said how the guest ended")
		}
	}

	switch {
	case len(fails) > 0:
		v.Result, v.Reasons = Fail, append(fails, gaps...)
	case len(gaps) > 0:
		v.Result, v.Reasons = None, gaps
	default:
		v.Result = Pass
		v.Reasons = []string{fmt.Sprintf("%d check(s) passed, guest exit 0, %s", j.checksPassed, vmExitLine(j.vmExit))}
	}
	if len(v.Reasons) > maxReasons {
		v.Reasons = v.Reasons[:maxReasons]
	}
	v.Reason = v.Reasons[0]
	v.ExitCode = v.Result.ExitCode()
	return v
}

func (j *Judge) identity() Identity {
	var id Identity
	if r := j.ready; r != nil {
		id.Kernel, id.Scheduler, id.Scenario, id.Topology = r.Kernel, r.Scheduler, r.Scenario, r.Topology
	}
	if s := j.vmStart; s != nil {
		if s.Topology != "" {
			id.Topology = s.Topology // the shape the VMM gave, over the guest's view
		}
		if id.Kernel == "" {
			id.Kernel = s.Kernel
		}
		id.VMM = s.VMM
	}
	return id
}

func guestTime(ns uint64) string { return fmt.Sprintf("%.1f s of guest time", float64(ns)/1e9) }

func vmExitLine(x *wire.VMExit) string {
	if x == nil {
		return "no vm_exit"
	}
	s := fmt.Sprintf("vm_exit %s, exit code %d", x.Reason, x.ExitCode)
	if x.EndedBy != "" {
		s += ", ended by " + x.EndedBy
	}
	if x.Detail != "" {
		s += " (" + x.Detail + ")"
	}
	return s
}

func checkLine(c *wire.CheckResult) string {
	s := fmt.Sprintf("check %s failed: observed %g%s, threshold %g%s", c.Name, c.Observed, c.Unit, c.Threshold, c.Unit)
	if c.Cgroup != "" {
		s += " in cgroup " + c.Cgroup
	}
	if c.Step >= 0 {
		s += fmt.Sprintf(" (step %d)", c.Step)
	}
	if c.Detail != "" {
		s += ": " + c.Detail
	}
	return s
}

func schedExitLine(e *wire.SchedExit) string {
	name := e.KindName
	if name == "" {
		name = "kind " + strconv.Itoa(e.Kind)
	}
	s := "the scheduler exited with " + name
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	if e.Message != "" {
		s += " (" + e.Message + ")"
	}
	return s
}

// AppendText appends the verdict as one line:
//
//	verdict: FAIL kernel=6.12.0 scheduler=scx_qmap scenario=steady topology=1n1l2c1t: the scheduler exited with ...
func (v *Verdict) AppendText(dst []byte) []byte {
	dst = append(dst, "verdict: "...)
	dst = append(dst, v.Result.Word()...)
	for _, kv := range [...][2]string{{"kernel", v.Kernel}, {"scheduler", v.Scheduler}, {"scenario", v.Scenario}, {"topology", v.Topology}} {
		val := kv[1]
		if val == "" {
			val = "?"
		}
		dst = append(dst, ' ')
		dst = append(dst, kv[0]...)
		dst = append(dst, '=')
		if strings.ContainsAny(val, " \t\"\n") {
			dst = strconv.AppendQuote(dst, val)
		} else {
			dst = append(dst, val...)
		}
	}
	dst = append(dst, ": "...)
	dst = appendOneLine(dst, v.Reason)
	return append(dst, '\n')
}

// appendOneLine appends s with control characters escaped: a reason
// quotes guest text and must stay one line.
func appendOneLine(dst []byte, s string) []byte {
	for _, r := range s {
		switch {
		case r == '\n':
			dst = append(dst, `\n`...)
		case r < 0x20 || r == 0x7f:
			dst = fmt.Appendf(dst, `\x%02x`, r)
		default:
			dst = append(dst, string(r)...)
		}
	}
	return dst
}

// AppendJSON appends the verdict as one JSON line {"verdict":{...}}.
func (v *Verdict) AppendJSON(dst []byte) []byte {
	b, _ := json.Marshal(struct {
		Verdict *Verdict `json:"verdict"`
	}{v})
	dst = append(dst, b...)
	return append(dst, '\n')
}

// JudgeStream reads a whole stream from r and judges it. Errors are read
// errors only; corruption is part of the verdict. Each frame the judge
// takes is then handed to every function in also, for a reader that wants
// more of the stream than its verdict (ktstr-report's metrics) without
// reading it twice or judging it by a loop of its own.
func JudgeStream(r io.Reader, also ...func(*wire.Frame)) (Verdict, error) {
	var j Judge
	dec := wire.NewDecoder(r)
	for {
		f, err := dec.Next()
		if err == io.EOF {
			return j.Verdict(dec.Offset()), nil
		}
		if err != nil {
			if !wire.IsCorruption(err) {
				return Verdict{}, err
			}
			j.Corrupt(err)
			continue
		}
		j.Frame(f)
		for _, fn := range also {
			fn(f)
		}
	}
}
