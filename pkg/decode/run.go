package decode

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/ktstr-go/ktstr/pkg/verdict"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// Filter selects message types. The zero value selects every type.
type Filter struct {
	set  *[1 << 10]uint64
	spec string
}

// ParseFilter builds a Filter from --type values: each is a comma
// separated list of type names (phase, output, user_0x8001, ...), numbers
// (decimal or 0x hex), or "user" for the whole user range.
func ParseFilter(specs []string) (Filter, error) {
	var f Filter
	for _, spec := range specs {
		for _, s := range strings.Split(spec, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if f.set == nil {
				f.set = new([1 << 10]uint64)
			}
			if s == "user" {
				for t := int(wire.TypeUserMin); t <= int(wire.TypeUserMax); t++ {
					f.set[t>>6] |= 1 << (t & 63)
				}
				continue
			}
			t, err := parseType(s)
			if err != nil {
				return Filter{}, err
			}
			f.set[t>>6] |= 1 << (t & 63)
		}
	}
	if f.set != nil {
		f.spec = strings.Join(specs, ",")
	}
	return f, nil
}

func parseType(s string) (wire.Type, error) {
	t, err := wire.ParseType(s)
	if err != nil {
		return 0, fmt.Errorf("%w: use a name such as phase or output, a number such as 6 or 0x8001, or user", err)
	}
	return t, nil
}

// Match reports whether the filter selects t.
func (f Filter) Match(t wire.Type) bool {
	return f.set == nil || f.set[t>>6]&(1<<(t&63)) != 0
}

// Options control Run.
type Options struct {
	Format       Format
	Filter       Filter
	Quiet        bool // print no frame records (diagnostics still print)
	Stats        bool // print Stats after the stream
	Summary      bool // print the Summary (and the verdict line) after the stream
	Verdict      bool // judge the run (Stats.Verdict) and print the verdict line
	Strict       bool // any corruption, truncation or bad payload makes Run fail with ErrCorrupt
	LineBuffered bool // write out every record as soon as it is made
	// Diag, when set, also gets every diagnostic and payload error as one
	// line prefixed with DiagPrefix (for stderr). Leave it nil when it
	// would show the same lines as out, e.g. both are the same terminal.
	Diag       io.Writer
	DiagPrefix string
}

// ErrCorrupt is returned (wrapped) by Run with Options.Strict when the
// stream held corruption, a truncated frame or a bad payload.
var ErrCorrupt = errors.New("stream is corrupt")

// ReadError and WriteError tell the input's failures from the output's.
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return "read input: " + e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

type WriteError struct{ Err error }

func (e *WriteError) Error() string { return "write output: " + e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }

const flushAt = 256 << 10

// sink accumulates records and writes them out in large writes.
type sink struct {
	w   io.Writer
	buf []byte
	err error
}

func (s *sink) flush() error {
	if len(s.buf) > 0 && s.err == nil {
		if _, err := s.w.Write(s.buf); err != nil {
			s.err = &WriteError{err}
		}
	}
	s.buf = s.buf[:0]
	return s.err
}

// flushingReader writes out pending records before every read, so a
// record never waits in the buffer while the decoder waits for input:
// frames stream out as they complete, and a fast input still gets one
// large write per large read.
type flushingReader struct {
	r io.Reader
	s *sink
}

func (fr *flushingReader) Read(p []byte) (int, error) {
	if err := fr.s.flush(); err != nil {
		return 0, err
	}
	n, err := fr.r.Read(p)
	if err != nil && err != io.EOF {
		err = &ReadError{err}
	}
	return n, err
}

// Run decodes the stream in, writes records to out as o says and returns
// what it counted. Errors: *ReadError, *WriteError, or (with o.Strict)
// one wrapping ErrCorrupt after the whole stream has been shown.
func Run(in io.Reader, out io.Writer, o Options) (*Stats, error) {
	s := &sink{w: out, buf: make([]byte, 0, 4096)}
	r := &Renderer{Format: o.Format}
	st := &Stats{}
	var sum *Summary
	if o.Summary {
		sum = &Summary{}
	}
	var judge *verdict.Judge
	if o.Summary || o.Verdict {
		judge = &verdict.Judge{}
	}
	dec := wire.NewDecoder(&flushingReader{in, s})
	var line []byte
	diag := func(off int64, err error) {
		if o.Diag == nil {
			return
		}
		line = append(line[:0], o.DiagPrefix...)
		if off >= 0 {
			line = fmt.Appendf(line, "frame at byte %d: ", off)
		}
		line = append(line, err.Error()...)
		line = append(line, '\n')
		o.Diag.Write(line)
	}
	for {
		f, err := dec.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if !wire.IsCorruption(err) {
				st.BytesRead = dec.Offset()
				if s.err != nil {
					return st, s.err
				}
				var re *ReadError
				if !errors.As(err, &re) {
					err = &ReadError{err}
				}
				return st, err
			}
			st.diag(err)
			if judge != nil {
				judge.Corrupt(err)
			}
			s.buf = r.AppendDiag(s.buf, err)
			diag(-1, err)
		} else {
			st.frame(f)
			var perr error
			if !o.Quiet && o.Filter.Match(f.Type) {
				s.buf, perr = r.Append(s.buf, f)
			} else {
				r.Seen(f)
				perr = CheckPayload(f.Type, f.Payload)
			}
			if perr != nil {
				st.PayloadErrors++
				diag(f.Offset, perr)
			}
			if judge != nil {
				if perr != nil {
					judge.PayloadError(f, perr)
				} else {
					judge.Frame(f)
				}
			}
			if sum != nil {
				sum.frame(f)
			}
		}
		if o.LineBuffered || len(s.buf) >= flushAt {
			if err := s.flush(); err != nil {
				return st, err
			}
		}
	}
	st.BytesRead = dec.Offset()
	if o.Summary {
		if o.Format == JSON {
			s.buf = sum.AppendJSON(s.buf)
		} else {
			s.buf = sum.AppendText(s.buf)
		}
	}
	if o.Stats {
		if o.Format == JSON {
			s.buf = st.AppendJSON(s.buf)
		} else {
			s.buf = st.AppendText(s.buf)
		}
	}
	if judge != nil {
		v := judge.Verdict(st.BytesRead)
		st.Verdict = &v
		if o.Format == JSON {
			s.buf = v.AppendJSON(s.buf)
		} else {
			s.buf = v.AppendText(s.buf)
		}
	}
	if err := s.flush(); err != nil {
		return st, err
	}
	if o.Strict && st.Corrupt() {
		return st, fmt.Errorf("%w: %d corrupt regions (%d bytes skipped), %d truncated frames, %d bad payloads",
			ErrCorrupt, st.CorruptRegions, st.BytesSkipped, st.Truncated, st.PayloadErrors)
	}
	return st, nil
}
