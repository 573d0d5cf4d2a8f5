package report

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/ktstr-go/ktstr/internal/streamgen"
	"github.com/ktstr-go/ktstr/pkg/runrecord"
)

// BenchmarkLoadVariant loads a run directory with one 32 MiB stream
// (streamgen's mix: outputs, worker and cgroup metrics, monitor samples)
// and renders its HTML page; the page stays small however long the run.
func BenchmarkLoadVariant(b *testing.B) {
	dir := b.TempDir()
	vdir := filepath.Join(dir, "s", "c", "p")
	os.MkdirAll(vdir, 0o755)
	var s bytes.Buffer
	n, err := streamgen.Write(&s, 32<<20, 1)
	if err != nil {
		b.Fatal(err)
	}
	os.WriteFile(filepath.Join(vdir, runrecord.StreamFile), s.Bytes(), 0o644)
	b.SetBytes(n)
	b.ResetTimer()
	var page bytes.Buffer
	for i := 0; i < b.N; i++ {
		run, err := Load(dir)
		if err != nil {
			b.Fatal(err)
		}
		page.Reset()
		if err := WriteHTML(&page, run); err != nil {
			b.Fatal(err)
		}
		if rq := run.Variants[0].RunQueue; rq == nil || len(rq.TimeS) > maxRQSamples {
			b.Fatal("runqueue not bounded")
		}
	}
	b.ReportMetric(float64(page.Len()), "html-bytes")
}
