package vmm

import (
	"sync"
	"time"
)

// Legacy PC ports.
const (
	i8042Data    = 0x60
	i8042Command = 0x64
	i8042Reset   = 0xFE // i8042 command: pulse the reset line
	cmosIndex    = 0x70 // RTC index; 0x71 is its data port
	resetControl = 0xCF9
)

// serialDevice puts a 16550 on a bus (8 byte-wide registers).
func serialDevice(s *uart) Device {
	return byteDevice{
		read:  func(off uint64) byte { return s.Read(uint16(off)) },
		write: func(off uint64, v byte) { s.Write(uint16(off), v) },
	}
}

// resetControl is port 0xCF9: bit 2 written resets the machine (the run
// ends with reason reboot); it reads as nothing there.
func (m *machine) resetControl() Device {
	return byteDevice{write: func(_ uint64, v byte) {
		if v&0x04 != 0 {
			m.finish(ReasonReboot, "guest reset through port 0xCF9")
		}
	}}
}

// i8042 is the keyboard controller as far as Linux's i8042 driver probes
// it: the command byte (CTR) can be read and written, self tests pass, and
// command 0xFE (pulse the reset line) ends the run. No keyboard is
// attached; answering the probe saves the driver's ten-second timeouts.
type i8042 struct {
	mu      sync.Mutex
	ctr     byte
	out     []byte // output buffer, read through port 0x60
	pending byte   // command waiting for its data byte (0x60 write CTR)
	reset   func()
}

const (
	i8042StatusOBF = 0x01
	i8042StatusSys = 0x04
	i8042StatusCmd = 0x08 // last write was a command
)

func newI8042(reset func()) *i8042 { return &i8042{ctr: 0x44, reset: reset} } // SYS flag, translate

// port is the controller's data (0x60) or command (0x64) port as a
// device.
func (k *i8042) port(p uint16) Device {
	return byteDevice{
		read:  func(uint64) byte { return k.read(p) },
		write: func(_ uint64, v byte) { k.write(p, v) },
	}
}

func (k *i8042) read(port uint16) byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	if port == i8042Command {
		s := byte(i8042StatusSys)
		if len(k.out) > 0 {
			s |= i8042StatusOBF
		}
		return s
	}
	if len(k.out) == 0 {
		return 0
	}
	b := k.out[0]
	k.out = k.out[1:]
	return b
}

func (k *i8042) write(port uint16, v byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	push := func(b byte) {
		if len(k.out) < 16 {
			k.out = append(k.out, b)
		}
	}
	if port == i8042Data {
		if k.pending == 0x60 {
			k.ctr = v
		}
		k.pending = 0
		return // bytes for the (absent) keyboard are dropped
	}
	k.pending = 0
	switch v {
	case 0x20: // read CTR
		push(k.ctr)
	case 0x60, 0xD1, 0xD2, 0xD3, 0xD4: // commands followed by a data byte
		k.pending = v
	case 0xAA: // controller self test
		push(0x55)
	case 0xA9, 0xAB: // aux / keyboard interface test
		push(0x00)
	case i8042Reset:
		if k.reset != nil {
			k.reset()
		}
	}
}

// cmos is a minimal MC146818 RTC: it reports the host's UTC time, never
// an update in progress, and a valid battery. Linux otherwise spends many
// seconds deciding the RTC is broken.
type cmos struct {
	mu    sync.Mutex
	index byte
	ram   [128]byte
	now   func() time.Time
}

func newCMOS() *cmos {
	c := &cmos{now: time.Now}
	c.ram[0x0A] = 0x26 // 32.768 kHz base, 1024 Hz rate, UIP clear
	c.ram[0x0B] = 0x02 // 24-hour mode, BCD
	c.ram[0x0D] = 0x80 // valid RAM and time
	return c
}

// device is the RTC's two ports, index (0x70) and data (0x71).
func (c *cmos) device() Device {
	return byteDevice{
		read:  func(off uint64) byte { return c.read(cmosIndex + uint16(off)) },
		write: func(off uint64, v byte) { c.write(cmosIndex+uint16(off), v) },
	}
}

func bcd(v int) byte { return byte(v/10<<4 | v%10) }

func (c *cmos) read(port uint16) byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if port == 0x70 {
		return c.index
	}
	i := c.index & 0x7F
	t := c.now().UTC()
	switch i {
	case 0x00:
		return bcd(t.Second())
	case 0x02:
		return bcd(t.Minute())
	case 0x04:
		return bcd(t.Hour())
	case 0x06:
		return bcd(int(t.Weekday()) + 1)
	case 0x07:
		return bcd(t.Day())
	case 0x08:
		return bcd(int(t.Month()))
	case 0x09:
		return bcd(t.Year() % 100)
	case 0x32:
		return bcd(t.Year() / 100)
	case 0x0C:
		return 0 // no interrupt flags
	}
	return c.ram[i]
}

func (c *cmos) write(port uint16, v byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if port == 0x70 {
		c.index = v
		return
	}
	i := c.index & 0x7F
	switch i {
	case 0x0A:
		c.ram[i] = v &^ 0x80 // UIP is read-only
	case 0x0C, 0x0D:
	default:
		c.ram[i] = v
	}
}
