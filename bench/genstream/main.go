// Command genstream writes a synthetic ktstr stream (internal/streamgen) for
// bench/decode.sh: genstream -size MiB -o FILE.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"

	"github.com/ktstr-go/ktstr/internal/streamgen"
)

func main() {
	size := flag.Int64("size", 200, "stream size in MiB (at least)")
	out := flag.String("o", "", "output file (default stdout)")
	seed := flag.Uint64("seed", 1, "generator seed")
	flag.Parse()
	w := os.Stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintln(os.Stderr, "genstream:", err)
			os.Exit(2)
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	if _, err := streamgen.Write(bw, *size<<20, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "genstream:", err)
		os.Exit(1)
	}
	if err := bw.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "genstream:", err)
		os.Exit(1)
	}
}
