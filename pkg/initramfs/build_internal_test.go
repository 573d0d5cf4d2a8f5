package initramfs

import (
	"bytes"
	"testing"
)

func TestSpoolSpillsToFile(t *testing.T) {
	var s spool
	want := bytes.Repeat([]byte("0123456789abcdef"), (spoolMemory/16)+1000)
	for i := 0; i < len(want); i += 1 << 20 {
		if _, err := s.Write(want[i:min(len(want), i+1<<20)]); err != nil {
			t.Fatal(err)
		}
	}
	if s.file == nil {
		t.Fatal("spool did not spill to a file past its memory limit")
	}
	var got bytes.Buffer
	if err := s.copyTo(&got); err != nil {
		t.Fatal(err)
	}
	s.close()
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("spool returned %d bytes, want %d", got.Len(), len(want))
	}
}

func TestChunksDependOnSizesOnly(t *testing.T) {
	var es []Entry
	for i := 0; i < 10; i++ {
		es = append(es, Entry{Kind: KindFile, Data: make([]byte, 3<<20)})
	}
	if n := len(chunks(es, Zstd)); n != 4 { // 9+9+9+3 MiB
		t.Fatalf("%d chunks, want 4", n)
	}
	if n := len(chunks(es, None)); n != 1 {
		t.Fatalf("uncompressed part split into %d", n)
	}
	if n := len(chunks(es[:5], Zstd)); n != 1 { // 15 MiB: under the threshold
		t.Fatalf("small part split into %d", n)
	}
}
