package vmm

import (
	"fmt"
	"sort"
)

// Device is one piece of the machine's I/O, on the port I/O bus or the
// MMIO bus: off is the access's offset from the base of the range the
// device was inserted at, data the bytes of the access (1, 2, 4 or 8).
// A read fills all of data. Devices are called from vCPU threads, so they
// lock what they share.
type Device interface {
	Read(off uint64, data []byte)
	Write(off uint64, data []byte)
}

// Bus routes an address to the device whose range holds it (after
// Firecracker's vstate/bus.rs): ranges are sorted and never overlap, and
// an access is the device's if its first byte is in the range.
type Bus struct {
	ranges []busRange
}

type busRange struct {
	base, size uint64
	dev        Device
	name       string
}

// Insert puts dev at [base, base+size). Empty, wrapping and overlapping
// ranges are refused: a machine with two devices on one address is a bug.
func (b *Bus) Insert(name string, dev Device, base, size uint64) error {
	if size == 0 || base+size < base {
		return fmt.Errorf("bus: %s at %#x+%#x: empty or wrapping range", name, base, size)
	}
	i := sort.Search(len(b.ranges), func(i int) bool { return b.ranges[i].base >= base })
	if i > 0 && b.ranges[i-1].base+b.ranges[i-1].size > base {
		return fmt.Errorf("bus: %s at %#x overlaps %s at %#x", name, base, b.ranges[i-1].name, b.ranges[i-1].base)
	}
	if i < len(b.ranges) && base+size > b.ranges[i].base {
		return fmt.Errorf("bus: %s at %#x+%#x overlaps %s at %#x", name, base, size, b.ranges[i].name, b.ranges[i].base)
	}
	b.ranges = append(b.ranges, busRange{})
	copy(b.ranges[i+1:], b.ranges[i:])
	b.ranges[i] = busRange{base: base, size: size, dev: dev, name: name}
	return nil
}

// find returns the range holding addr.
func (b *Bus) find(addr uint64) (*busRange, bool) {
	i := sort.Search(len(b.ranges), func(i int) bool { return b.ranges[i].base > addr })
	if i == 0 {
		return nil, false
	}
	r := &b.ranges[i-1]
	if addr-r.base >= r.size {
		return nil, false
	}
	return r, true
}

// Read passes a read at addr to its device; with none there, the bus
// floats: every byte reads 0xFF.
func (b *Bus) Read(addr uint64, data []byte) {
	if r, ok := b.find(addr); ok {
		r.dev.Read(addr-r.base, data)
		return
	}
	for i := range data {
		data[i] = 0xFF
	}
}

// Write passes a write at addr to its device; with none there it is
// dropped.
func (b *Bus) Write(addr uint64, data []byte) {
	if r, ok := b.find(addr); ok {
		r.dev.Write(addr-r.base, data)
	}
}

// byteDevice adapts a device of byte-wide registers to Device: the first
// byte of an access is the register's, the rest of a read is zero. With
// no read function, reads float (0xFF) as if nothing were there.
type byteDevice struct {
	read  func(off uint64) byte
	write func(off uint64, v byte)
}

func (d byteDevice) Read(off uint64, data []byte) {
	if d.read == nil {
		for i := range data {
			data[i] = 0xFF
		}
		return
	}
	clear(data)
	if len(data) > 0 {
		data[0] = d.read(off)
	}
}

func (d byteDevice) Write(off uint64, data []byte) {
	if d.write != nil && len(data) > 0 {
		d.write(off, data[0])
	}
}
