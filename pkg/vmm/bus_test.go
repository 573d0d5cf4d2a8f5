package vmm

import (
	"bytes"
	"testing"
)

// recorder is a device that records its accesses and reads back a
// pattern of its offset.
type recorder struct {
	reads, writes []uint64
	last          []byte
}

func (r *recorder) Read(off uint64, d []byte) {
	r.reads = append(r.reads, off)
	for i := range d {
		d[i] = byte(off) + byte(i)
	}
}

func (r *recorder) Write(off uint64, d []byte) {
	r.writes = append(r.writes, off)
	r.last = append([]byte(nil), d...)
}

func TestBusInsert(t *testing.T) {
	var b Bus
	if err := b.Insert("a", &recorder{}, 0x100, 0x10); err != nil {
		t.Fatal(err)
	}
	if err := b.Insert("b", &recorder{}, 0x200, 0x10); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		base, size uint64
		ok         bool
	}{
		{"between", 0x110, 0xF0, true},
		{"overlaps a's end", 0x10F, 1, false},
		{"overlaps b's start", 0x1F8, 0x10, false},
		{"inside a", 0x104, 2, false},
		{"covers b", 0x1FF, 0x20, false},
		{"same as a", 0x100, 0x10, false},
		{"empty", 0x300, 0, false},
		{"wraps", ^uint64(0) - 1, 4, false},
		{"ends at 2^64", ^uint64(0), 1, false},
		{"below a", 0, 0x100, true},
	} {
		err := b.Insert(tc.name, &recorder{}, tc.base, tc.size)
		if (err == nil) != tc.ok {
			t.Errorf("%s: Insert(%#x, %#x) = %v, want ok %v", tc.name, tc.base, tc.size, err, tc.ok)
		}
	}
	for i := 1; i < len(b.ranges); i++ {
		p, r := b.ranges[i-1], b.ranges[i]
		if p.base+p.size > r.base {
			t.Fatalf("ranges overlap or are unsorted: %+v %+v", p, r)
		}
	}
}

func TestBusDispatch(t *testing.T) {
	var b Bus
	a, c := &recorder{}, &recorder{}
	b.Insert("a", a, 0x3F8, 8)
	b.Insert("c", c, 0xD000_0000, 0x1000)
	d := make([]byte, 2)
	b.Read(0x3FA, d)
	if !bytes.Equal(d, []byte{2, 3}) || len(a.reads) != 1 || a.reads[0] != 2 {
		t.Errorf("read at 0x3FA: %x, device saw %v", d, a.reads)
	}
	b.Write(0xD000_0070, []byte{1, 2, 3, 4})
	if len(c.writes) != 1 || c.writes[0] != 0x70 || !bytes.Equal(c.last, []byte{1, 2, 3, 4}) {
		t.Errorf("MMIO write: %v %x", c.writes, c.last)
	}
	// Nothing there: reads float, writes vanish.
	for _, addr := range []uint64{0, 0x3F7, 0x400, 0xD000_1000, ^uint64(0)} {
		d := []byte{0, 0, 0, 0}
		b.Read(addr, d)
		if !bytes.Equal(d, []byte{0xFF, 0xFF, 0xFF, 0xFF}) {
			t.Errorf("read of empty %#x = %x", addr, d)
		}
		b.Write(addr, d)
	}
	if len(a.writes) != 0 || len(c.writes) != 1 {
		t.Error("a write to an empty address reached a device")
	}
}

// TestLegacyPorts: the byte-wide devices behind the bus answer as the
// machine answered before the bus: the register in the first byte, zeros
// after it; the reset port floats and resets on bit 2.
func TestLegacyPorts(t *testing.T) {
	m := &machine{ended: make(chan struct{})}
	resets := 0
	kbd := newI8042(func() { resets++ })
	var b Bus
	for _, d := range []struct {
		name       string
		dev        Device
		base, size uint64
	}{
		{"i8042 data", kbd.port(i8042Data), i8042Data, 1},
		{"i8042 command", kbd.port(i8042Command), i8042Command, 1},
		{"RTC", newCMOS().device(), cmosIndex, 2},
		{"reset control", m.resetControl(), resetControl, 1},
	} {
		if err := b.Insert(d.name, d.dev, d.base, d.size); err != nil {
			t.Fatal(err)
		}
	}
	b.Write(i8042Command, []byte{0xAA}) // self test
	st := []byte{9, 9}
	b.Read(i8042Command, st)
	d := []byte{9, 9, 9, 9}
	b.Read(i8042Data, d)
	if st[0]&i8042StatusOBF == 0 || st[1] != 0 || !bytes.Equal(d, []byte{0x55, 0, 0, 0}) {
		t.Errorf("i8042 self test: status %x, data %x", st, d)
	}
	b.Write(cmosIndex, []byte{0x0D})
	r := []byte{9, 9}
	b.Read(cmosIndex+1, r)
	if !bytes.Equal(r, []byte{0x80, 0}) {
		t.Errorf("RTC register D reads %x", r)
	}
	if b.Read(0x61, r); !bytes.Equal(r, []byte{0xFF, 0xFF}) {
		t.Errorf("port 0x61 (nothing there) reads %x", r)
	}
	if b.Read(resetControl, r); !bytes.Equal(r, []byte{0xFF, 0xFF}) {
		t.Errorf("port 0xCF9 reads %x, want nothing there", r)
	}
	b.Write(resetControl, []byte{0x02})
	select {
	case <-m.ended:
		t.Fatal("0xCF9 without bit 2 reset the machine")
	default:
	}
	b.Write(resetControl, []byte{0x06})
	if m.end.reason != ReasonReboot {
		t.Errorf("0xCF9 bit 2: reason %q", m.end.reason)
	}
	b.Write(i8042Command, []byte{i8042Reset})
	if resets != 1 {
		t.Errorf("i8042 reset pulsed %d times", resets)
	}
}
