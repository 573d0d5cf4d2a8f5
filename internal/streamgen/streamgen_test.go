package streamgen

import (
	"bytes"
	"io"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

func TestWriteIsDeterministicAndValid(t *testing.T) {
	var a, b bytes.Buffer
	n, err := Write(&a, 1<<20, 7)
	if err != nil || n != int64(a.Len()) || n < 1<<20 {
		t.Fatalf("wrote %d (%d buffered), err %v", n, a.Len(), err)
	}
	Write(&b, 1<<20, 7)
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("same seed, different streams")
	}
	d := wire.NewDecoder(&a)
	types := map[wire.Type]int{}
	for {
		f, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := wire.Unmarshal(f.Type, f.Payload); err != nil {
			t.Fatalf("%s: %v", f.Type, err)
		}
		types[f.Type]++
	}
	for _, ty := range []wire.Type{wire.TypeOutput, wire.TypeWorkerMetrics, wire.TypeCgroupMetrics, wire.TypeMonitorSample, wire.TypeCheckResult} {
		if types[ty] == 0 {
			t.Errorf("no %s frames", ty)
		}
	}
}
