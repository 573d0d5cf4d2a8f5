package vmm

import (
	"testing"
	"time"
)

func TestI8042Probe(t *testing.T) {
	resets := 0
	k := newI8042(func() { resets++ })
	k.write(i8042Command, 0xAA)
	if k.read(i8042Command)&i8042StatusOBF == 0 || k.read(i8042Data) != 0x55 {
		t.Fatal("self test did not answer 0x55")
	}
	k.write(i8042Command, 0x20)
	ctr := k.read(i8042Data)
	k.write(i8042Command, 0x60)
	k.write(i8042Data, ctr|0x01)
	k.write(i8042Command, 0x20)
	if got := k.read(i8042Data); got != ctr|0x01 {
		t.Fatalf("CTR %#x after write, want %#x", got, ctr|0x01)
	}
	if k.read(i8042Command)&i8042StatusOBF != 0 {
		t.Fatal("output buffer not empty")
	}
	for i := 0; i < 100; i++ {
		k.write(i8042Command, 0x20)
	}
	if len(k.out) > 16 {
		t.Fatalf("output buffer grew to %d", len(k.out))
	}
	k.write(i8042Command, i8042Reset)
	if resets != 1 {
		t.Fatal("0xFE did not reset")
	}
}

func TestCMOS(t *testing.T) {
	c := newCMOS()
	c.now = func() time.Time { return time.Date(2026, 11, 27, 13, 45, 59, 0, time.UTC) }
	get := func(i byte) byte { c.write(0x70, i); return c.read(0x71) }
	want := map[byte]byte{0x00: 0x59, 0x02: 0x45, 0x04: 0x13, 0x07: 0x27, 0x08: 0x11, 0x09: 0x26, 0x32: 0x20}
	for reg, v := range want {
		if got := get(reg); got != v {
			t.Errorf("CMOS reg %#x = %#x, want %#x", reg, got, v)
		}
	}
	if get(0x0A)&0x80 != 0 || get(0x0D)&0x80 == 0 {
		t.Error("UIP set or battery invalid")
	}
	c.write(0x70, 0x0A)
	c.write(0x71, 0xFF)
	if get(0x0A)&0x80 != 0 {
		t.Error("guest could set UIP")
	}
	c.write(0x70, 0x40)
	c.write(0x71, 0x12)
	if get(0x40) != 0x12 || get(0xC0) != 0x12 {
		t.Error("CMOS RAM not kept")
	}
}
