package decode

import (
	"fmt"
	"io"
	"os"
)

// OpenInputs opens every named file up front (so a bad name fails before
// any output) and returns one reader over their concatenation; "-" or no
// names means stdin. Byte offsets in diagnostics count from the start of
// the concatenation. close closes the files.
func OpenInputs(names []string, stdin io.Reader) (r io.Reader, close func(), err error) {
	if len(names) == 0 {
		return stdin, func() {}, nil
	}
	var files []*os.File
	readers := make([]io.Reader, 0, len(names))
	close = func() {
		for _, f := range files {
			f.Close()
		}
	}
	for _, n := range names {
		if n == "-" {
			readers = append(readers, stdin)
			continue
		}
		f, err := os.Open(n)
		if err != nil {
			close()
			return nil, nil, fmt.Errorf("open input: %w", err)
		}
		if fi, err := f.Stat(); err == nil && fi.IsDir() {
			close()
			f.Close()
			return nil, nil, fmt.Errorf("open input: %s is a directory, not a stream file", n)
		}
		files = append(files, f)
		readers = append(readers, f)
	}
	if len(readers) == 1 {
		return readers[0], close, nil
	}
	return io.MultiReader(readers...), close, nil
}

// SameFile reports whether a and b are the same open file (for example
// stdout and stderr both on one terminal), so diagnostics that already
// appear in the output need not be repeated on stderr.
func SameFile(a, b *os.File) bool {
	fa, err1 := a.Stat()
	fb, err2 := b.Stat()
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}
