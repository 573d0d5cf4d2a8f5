package hostlock

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Record is what a holder writes into each lock file it holds, one JSON
// line per holder: an exclusive holder overwrites the first recordSlot
// bytes in place (its line padded with spaces: no truncation, so no block
// freeing on every acquisition), shared holders append with O_APPEND (so
// lines never interleave). A record is only believed while /proc/locks shows its pid
// holding that file: lines left behind by dead or finished holders are
// ignored, and a shared holder that finds itself the last one on release
// truncates the file.
type Record struct {
	PID     int       `json:"pid"`
	Mode    string    `json:"mode"`    // "exclusive" or "shared" on this file
	Request string    `json:"request"` // e.g. "--llcs 2", "--cpus 3 --shared"
	CPUs    string    `json:"cpus"`    // the whole reservation's CPUs
	Since   time.Time `json:"since"`
	Command string    `json:"cmd"`
}

const (
	recordSlot = 1024 // an exclusive holder's line is padded to at least this, at offset 0
)

// line encodes r as one JSON line. It is written by hand rather than with
// encoding/json: this runs on every acquisition, and the reflection
// encoder's first use costs ~0.1 ms of ktstr-hostlock's start-up.
// parseRecords reads it back with encoding/json (FuzzRecordLine checks
// the two agree).
func (r Record) line() []byte {
	cmd := r.Command
	if len(cmd) > 200 {
		cmd = cmd[:200] + "..."
	}
	b := make([]byte, 0, 160+len(cmd)+len(r.CPUs))
	b = append(b, `{"pid":`...)
	b = strconv.AppendInt(b, int64(r.PID), 10)
	b = append(b, `,"mode":`...)
	b = appendJSONString(b, r.Mode)
	b = append(b, `,"request":`...)
	b = appendJSONString(b, r.Request)
	b = append(b, `,"cpus":`...)
	b = appendJSONString(b, r.CPUs)
	b = append(b, `,"since":"`...)
	b = r.Since.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","cmd":`...)
	b = appendJSONString(b, cmd)
	return append(b, '}', '\n')
}

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, r := range s { // ranging over a string yields U+FFFD for invalid bytes
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[r>>4], hex[r&0xf])
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, '"')
}

// writeRecord writes r into f: in place at offset 0 when exclusive,
// appended when shared.
func writeRecord(f *os.File, r Record, exclusive bool) error {
	fd := int(f.Fd())
	line := r.line()
	if exclusive {
		// Pad to the slot so a shorter line hides a longer predecessor;
		// a line longer than the slot (a huge CPU list) just covers more.
		slot := bytes.Repeat([]byte{' '}, max(recordSlot, len(line)))
		copy(slot, line[:len(line)-1])
		slot[len(slot)-1] = '\n'
		if _, err := unix.Pwrite(fd, slot, 0); err != nil {
			return fmt.Errorf("%s: %w", f.Name(), err)
		}
		return nil
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, unix.O_RDWR|unix.O_APPEND); err != nil {
		return fmt.Errorf("%s: %w", f.Name(), err)
	}
	if _, err := unix.Write(fd, line); err != nil {
		return fmt.Errorf("%s: %w", f.Name(), err)
	}
	return nil
}

// parseRecords reads holder records from lock-file contents, newest last.
// Lines that do not parse (a torn write, garbage planted by another user)
// are skipped; nothing in them is trusted beyond display.
func parseRecords(data []byte) []Record {
	var out []Record
	for _, line := range bytes.Split(data, []byte{'\n'}) {
		var r Record
		if len(bytes.TrimSpace(line)) > 0 && json.Unmarshal(line, &r) == nil && r.PID > 0 {
			out = append(out, r)
		}
	}
	return out
}

// procLock is one FLOCK line of /proc/locks.
type procLock struct {
	PID          int
	Write        bool // WRITE (exclusive) rather than READ (shared)
	Waiting      bool // a blocked request ("->"), not a held lock
	Major, Minor uint32
	Ino          uint64
}

// readProcLocks parses /proc/locks (or the file at path), keeping flock
// entries only.
func readProcLocks(path string) ([]procLock, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseProcLocks(data), nil
}

// parseProcLocks parses lines such as
//
//	1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF
//	1: -> FLOCK  ADVISORY  WRITE 1236 00:1a:5678 0 EOF
func parseProcLocks(data []byte) []procLock {
	var out []procLock
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		i := 1
		waiting := false
		if len(f) > i && f[i] == "->" {
			waiting, i = true, i+1
		}
		if len(f) < i+5 || f[i] != "FLOCK" {
			continue
		}
		pid, err := strconv.Atoi(f[i+3])
		if err != nil {
			continue
		}
		dev := strings.Split(f[i+4], ":")
		if len(dev) != 3 {
			continue
		}
		maj, err1 := strconv.ParseUint(dev[0], 16, 32)
		min, err2 := strconv.ParseUint(dev[1], 16, 32)
		ino, err3 := strconv.ParseUint(dev[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		out = append(out, procLock{PID: pid, Write: f[i+2] == "WRITE", Waiting: waiting,
			Major: uint32(maj), Minor: uint32(min), Ino: ino})
	}
	return out
}

// devIno identifies a file the way /proc/locks does.
type devIno struct {
	Major, Minor uint32
	Ino          uint64
}

func (p procLock) key() devIno { return devIno{p.Major, p.Minor, p.Ino} }

// mountDev returns the major:minor /proc/self/mountinfo gives for the
// mount holding dir. /proc/locks uses the superblock's device, which
// stat's st_dev does not always match (btrfs subvolumes, overlayfs).
func mountDev(dir string) (devIno, bool) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return devIno{}, false
	}
	best, bestLen := devIno{}, -1
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if !(dir == mp || strings.HasPrefix(dir, strings.TrimSuffix(mp, "/")+"/")) || len(mp) <= bestLen {
			continue
		}
		var maj, min uint32
		if _, err := fmt.Sscanf(f[2], "%d:%d", &maj, &min); err != nil {
			continue
		}
		best, bestLen = devIno{Major: maj, Minor: min}, len(mp)
	}
	return best, bestLen >= 0
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cmdline returns a process's command line with spaces for NULs, or "" if
// it has exited.
func cmdline(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}
