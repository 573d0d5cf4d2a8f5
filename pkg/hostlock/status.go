package hostlock

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ktstr-go/ktstr/pkg/cpulist"
	"golang.org/x/sys/unix"
)

// Holder is one process holding (or waiting for) a lock file.
type Holder struct {
	PID     int        `json:"pid"`
	Mode    string     `json:"mode"` // "exclusive" or "shared"
	Since   *time.Time `json:"since,omitempty"`
	Request string     `json:"request,omitempty"`
	CPUs    string     `json:"cpus,omitempty"`
	Command string     `json:"cmd"`
	// Exited is true when the locking process is gone and a command that
	// inherited its lock files keeps the lock held.
	Exited bool `json:"exited,omitempty"`
}

func (h Holder) String() string {
	s := fmt.Sprintf("pid %d", h.PID)
	if h.Command != "" {
		s += " (" + h.Command + ")"
	}
	if h.Exited {
		s += " [exited; its command still holds it]"
	}
	if h.Since != nil {
		s += " since " + h.Since.Local().Format("15:04:05")
	}
	return s
}

// LockStatus is the state of one LLC's or CPU's lock file.
type LockStatus struct {
	Index   int      `json:"index"`          // LLC index or CPU number
	Node    int      `json:"node"`           // NUMA node
	LLC     int      `json:"llc"`            // the LLC (itself for an LLC)
	CPUs    string   `json:"cpus"`           // the LLC's CPUs (the CPU for a CPU)
	State   string   `json:"state"`          // "free", "exclusive" or "shared"
	Holders []Holder `json:"holders"`        // empty when free
	Waiting int      `json:"waiting"`        // blocked requests on this file
	Note    string   `json:"note,omitempty"` // e.g. holders unknown
}

// Status is every LLC and CPU of the topology with its holders, and the
// requests queued.
type Status struct {
	Dir    string       `json:"lock_dir"`
	LLCs   []LockStatus `json:"llcs"`
	CPUs   []LockStatus `json:"cpus"`
	Queued int          `json:"queued"` // requests waiting for their turn
	// Deciding is the request at the head of the queue, when one waits for
	// LLCs or CPUs to be freed.
	Deciding *Holder `json:"deciding,omitempty"`
}

// lockView reads /proc/locks once and answers who holds which lock file.
type lockView struct {
	dir   string
	locks []procLock
	mdev  devIno
	err   error // /proc/locks unreadable: fall back to probing
}

func newLockView(dir string) *lockView {
	v := &lockView{dir: dir}
	v.locks, v.err = readProcLocks("/proc/locks")
	v.mdev, _ = mountDev(dir)
	return v
}

// state returns the holders and the number of blocked waiters of the lock
// file name; missing files are free.
func (v *lockView) state(name string) (state string, holders []Holder, waiting int, note string) {
	path := v.dir + "/" + name
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return "free", []Holder{}, 0, ""
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return "free", []Holder{}, 0, "not a regular file: ktstr-hostlock refuses it"
	}
	recs := readRecords(path)
	if v.err != nil {
		return v.probe(path, recs)
	}
	maj, min := unix.Major(st.Dev), unix.Minor(st.Dev)
	seen := map[Holder]bool{}
	for _, pl := range v.locks {
		if pl.Ino != st.Ino || !(pl.Major == maj && pl.Minor == min || pl.Major == v.mdev.Major && pl.Minor == v.mdev.Minor) {
			continue
		}
		if pl.Waiting {
			waiting++
			continue
		}
		h := Holder{PID: pl.PID, Mode: "shared"}
		if pl.Write {
			h.Mode = "exclusive"
		}
		if seen[h] {
			continue // a --cpus holder takes an LLC once per CPU
		}
		seen[h] = true
		for i := len(recs) - 1; i >= 0; i-- {
			if recs[i].PID == pl.PID {
				r := recs[i]
				h.Since, h.Request, h.CPUs, h.Command = &r.Since, r.Request, r.CPUs, r.Command
				break
			}
		}
		live := cmdline(pl.PID)
		if h.Command == "" {
			h.Command = live
		}
		h.Exited = live == ""
		holders = append(holders, h)
	}
	state = "free"
	if holders == nil {
		holders = []Holder{}
	}
	for _, h := range holders {
		if h.Mode == "exclusive" {
			state = "exclusive"
		} else if state == "free" {
			state = "shared"
		}
	}
	return state, holders, waiting, ""
}

// probe is the fallback when /proc/locks cannot be read: try-locks on a
// separate open file description tell the state; the records, unverified,
// name the holders.
func (v *lockView) probe(path string, recs []Record) (string, []Holder, int, string) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return "unknown", nil, 0, err.Error()
	}
	defer unix.Close(fd)
	state := "free"
	if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) != nil {
		state = "shared"
		if unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB) != nil {
			state = "exclusive"
		}
	}
	hs := []Holder{}
	if state != "free" {
		for _, r := range recs {
			if cmdline(r.PID) != "" {
				r := r
				hs = append(hs, Holder{PID: r.PID, Mode: r.Mode, Since: &r.Since, Request: r.Request, CPUs: r.CPUs, Command: r.Command})
			}
		}
	}
	return state, hs, 0, "holders unverified: /proc/locks unreadable (" + v.err.Error() + ")"
}

func readRecords(path string) []Record {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 256<<10))
	return parseRecords(b)
}

// holdersOf names the holders of the busy units' lock files, for error
// messages: one entry per holder and kind, e.g. "LLC 0-3 held exclusive by
// pid 7 (make) since 10:00:00".
func (l *Locker) holdersOf(busy []*unit) []string {
	v := newLockView(l.Dir)
	type key struct {
		kind string
		pid  int
		mode string
	}
	seen := map[string]bool{}
	idx := map[key][]int{}
	who := map[key]Holder{}
	var order []key
	for _, u := range busy {
		for _, s := range u.steps {
			if seen[s.name] {
				continue
			}
			seen[s.name] = true
			kind, n := splitFile(s.name)
			_, hs, _, _ := v.state(s.name)
			for _, h := range hs {
				k := key{kind, h.PID, h.Mode}
				if _, ok := idx[k]; !ok {
					order = append(order, k)
					who[k] = h
				}
				idx[k] = append(idx[k], n)
			}
		}
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, fmt.Sprintf("%s %s held %s by %s", k.kind, cpulist.Format(idx[k]), k.mode, who[k]))
	}
	return out
}

// splitFile turns "llc-3.lock" into ("LLC", 3).
func splitFile(name string) (string, int) {
	kind, n, _ := strings.Cut(strings.TrimSuffix(name, ".lock"), "-")
	i, _ := strconv.Atoi(n)
	return strings.ToUpper(kind), i
}

// Status reports every LLC and CPU of the topology with its holders. It
// creates nothing and takes no lock (unless /proc/locks is unreadable).
func (l *Locker) Status() *Status {
	v := newLockView(l.Dir)
	s := &Status{Dir: l.Dir, LLCs: []LockStatus{}, CPUs: []LockStatus{}}
	for _, llc := range l.Topo.LLCs {
		ls := LockStatus{Index: llc.Index, Node: llc.Node, LLC: llc.Index, CPUs: cpulist.Format(llc.CPUs)}
		ls.State, ls.Holders, ls.Waiting, ls.Note = v.state(llcFile(llc.Index))
		s.LLCs = append(s.LLCs, ls)
	}
	for _, c := range l.Topo.CPUs {
		ls := LockStatus{Index: c.ID, Node: c.Node, LLC: c.LLC, CPUs: strconv.Itoa(c.ID)}
		ls.State, ls.Holders, ls.Waiting, ls.Note = v.state(cpuFile(c.ID))
		s.CPUs = append(s.CPUs, ls)
	}
	_, qh, qw, _ := v.state(queueFile)
	s.Queued = qw
	if len(qh) > 0 {
		h := qh[0]
		s.Deciding = &h
	}
	return s
}

// WriteJSON writes s as one JSON document.
func (s *Status) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(s)
}

// WriteText writes s for people: one line per LLC, then per CPU.
func (s *Status) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "lock directory %s\n", s.Dir)
	line := func(what string, ls LockStatus, extra string) {
		fmt.Fprintf(&b, "%-8s %-26s %s", what, extra, ls.State)
		for i, h := range ls.Holders {
			sep := ": "
			if i > 0 {
				sep = "; "
			}
			b.WriteString(sep + h.String())
		}
		if ls.Waiting > 0 {
			fmt.Fprintf(&b, " (%d waiting)", ls.Waiting)
		}
		if ls.Note != "" {
			b.WriteString(" [" + ls.Note + "]")
		}
		b.WriteByte('\n')
	}
	for _, ls := range s.LLCs {
		line(fmt.Sprintf("llc %d", ls.Index), ls, fmt.Sprintf("node %d cpus %s", ls.Node, ls.CPUs))
	}
	cpus := append([]LockStatus(nil), s.CPUs...)
	sort.SliceStable(cpus, func(i, j int) bool { return cpus[i].Index < cpus[j].Index })
	for _, ls := range cpus {
		line(fmt.Sprintf("cpu %d", ls.Index), ls, fmt.Sprintf("node %d llc %d", ls.Node, ls.LLC))
	}
	if s.Deciding != nil {
		fmt.Fprintf(&b, "queue: pid %d (%s) is waiting for LLCs or CPUs", s.Deciding.PID, s.Deciding.Command)
		if s.Queued > 0 {
			fmt.Fprintf(&b, "; %d more request(s) queued behind it", s.Queued)
		}
		b.WriteByte('\n')
	} else if s.Queued > 0 {
		fmt.Fprintf(&b, "queue: %d request(s) queued\n", s.Queued)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
