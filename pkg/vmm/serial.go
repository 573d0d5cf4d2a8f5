package vmm

import (
	"io"
	"sync"
)

// uart is a 16550A UART as Linux's 8250 driver sees it: transmit is
// instant (THR is always empty), receive holds a small FIFO, interrupts
// go out through raise (an irqfd), edge style as the ISA line is.
type uart struct {
	mu    sync.Mutex
	out   io.Writer
	raise func()

	ier, lcr, mcr, scr byte
	dll, dlm           byte
	fcr                byte
	thrPending         bool // THR-empty interrupt not yet acknowledged
	rx                 []rxChar
}

type rxChar struct {
	c   byte
	brk bool // received with a break condition (LSR.BI)
}

// UART register offsets and bits.
const (
	uartRBR = 0 // THR on write; DLL with DLAB
	uartIER = 1 // DLM with DLAB
	uartIIR = 2 // FCR on write
	uartLCR = 3
	uartMCR = 4
	uartLSR = 5
	uartMSR = 6
	uartSCR = 7

	lcrDLAB     = 0x80
	ierRDI      = 0x01
	ierTHRI     = 0x02
	ierRLSI     = 0x04
	iirNone     = 0x01
	iirTHRI     = 0x02
	iirRDI      = 0x04
	iirRLSI     = 0x06
	iirFIFO     = 0xC0
	lsrDR       = 0x01
	lsrBI       = 0x10
	lsrTHRE     = 0x20
	lsrTEMT     = 0x40
	mcrLoop     = 0x10
	rxFIFOLimit = 64

	COM1Base = 0x3F8
	COM1IRQ  = 4
	COM2Base = 0x2F8
	COM2IRQ  = 3
)

// newUART returns a UART writing transmitted bytes to out and raising
// its interrupt line through raise (nil: no interrupts).
func newUART(out io.Writer, raise func()) *uart {
	if raise == nil {
		raise = func() {}
	}
	return &uart{out: out, raise: raise, dll: 12}
}

func (s *uart) iir() byte {
	id := byte(iirNone)
	switch {
	case s.ier&ierRLSI != 0 && len(s.rx) > 0 && s.rx[0].brk:
		id = iirRLSI
	case s.ier&ierRDI != 0 && len(s.rx) > 0:
		id = iirRDI
	case s.ier&ierTHRI != 0 && s.thrPending:
		id = iirTHRI
	}
	if s.fcr&1 != 0 {
		id |= iirFIFO
	}
	return id
}

// Read handles a guest read of register off.
func (s *uart) Read(off uint16) byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch off {
	case uartRBR:
		if s.lcr&lcrDLAB != 0 {
			return s.dll
		}
		if len(s.rx) == 0 {
			return 0
		}
		c := s.rx[0].c
		s.rx = s.rx[1:]
		if len(s.rx) > 0 && s.ier&(ierRDI|ierRLSI) != 0 {
			s.raiseLocked()
		}
		return c
	case uartIER:
		if s.lcr&lcrDLAB != 0 {
			return s.dlm
		}
		return s.ier
	case uartIIR:
		v := s.iir()
		if v&0x0F == iirTHRI {
			s.thrPending = false
		}
		return v
	case uartLCR:
		return s.lcr
	case uartMCR:
		return s.mcr
	case uartLSR:
		v := byte(lsrTHRE | lsrTEMT)
		if len(s.rx) > 0 {
			v |= lsrDR
			if s.rx[0].brk {
				v |= lsrBI
			}
		}
		return v
	case uartMSR:
		if s.mcr&mcrLoop != 0 {
			m := s.mcr
			var v byte
			if m&0x01 != 0 { // DTR -> DSR
				v |= 0x20
			}
			if m&0x02 != 0 { // RTS -> CTS
				v |= 0x10
			}
			if m&0x04 != 0 { // OUT1 -> RI
				v |= 0x40
			}
			if m&0x08 != 0 { // OUT2 -> DCD
				v |= 0x80
			}
			return v
		}
		return 0xB0 // DCD, DSR, CTS
	case uartSCR:
		return s.scr
	}
	return 0xFF
}

// Write handles a guest write of v to register off.
func (s *uart) Write(off uint16, v byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch off {
	case uartRBR:
		if s.lcr&lcrDLAB != 0 {
			s.dll = v
			return
		}
		if s.mcr&mcrLoop != 0 {
			s.pushLocked(rxChar{c: v})
		} else {
			s.out.Write([]byte{v})
		}
		s.thrPending = true
		if s.ier&ierTHRI != 0 {
			s.raiseLocked()
		}
	case uartIER:
		if s.lcr&lcrDLAB != 0 {
			s.dlm = v
			return
		}
		old := s.ier
		s.ier = v & 0x0F
		if s.ier&ierTHRI != 0 && old&ierTHRI == 0 {
			s.thrPending = true
		}
		if s.iir()&iirNone == 0 {
			s.raiseLocked()
		}
	case uartIIR:
		s.fcr = v
		if v&0x02 != 0 {
			s.rx = nil
		}
	case uartLCR:
		s.lcr = v
	case uartMCR:
		s.mcr = v
	case uartSCR:
		s.scr = v
	}
}

func (s *uart) raiseLocked() { s.raise() }

func (s *uart) pushLocked(c rxChar) {
	if len(s.rx) >= rxFIFOLimit {
		return
	}
	s.rx = append(s.rx, c)
	if s.ier&(ierRDI|ierRLSI) != 0 {
		s.raiseLocked()
	}
}

// Input queues bytes as if received on the line (dropped when the FIFO
// is full, as on hardware).
func (s *uart) Input(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range b {
		s.pushLocked(rxChar{c: c})
	}
}

// SysRq sends a break followed by key: with the UART as the kernel
// console and CONFIG_MAGIC_SYSRQ_SERIAL, Linux runs SysRq key.
func (s *uart) SysRq(key byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pushLocked(rxChar{c: 0, brk: true})
	s.pushLocked(rxChar{c: key})
}
