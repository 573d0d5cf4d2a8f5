package vmm

import (
	"sync"

	"github.com/ktstr-go/ktstr/pkg/acpi"
)

// acpiPM is the PM1a register block, a device at acpi.PM1aEvtPort: status
// (write 1 to clear; nothing ever sets a bit), enable and control, which
// read back what was written, so ACPICA sees its enable bits stick (else
// it logs "No response from Global Lock hardware").
type acpiPM struct {
	mu              sync.Mutex
	enable, control uint16
	powerOff        func() // S5 written: the guest powers off
}

// Write handles a write to the PM1a ports; SLP_TYP 5 with SLP_EN in the
// control register is the guest powering off.
func (p *acpiPM) Write(off uint64, d []byte) {
	p.mu.Lock()
	for i, b := range d {
		switch o := off + uint64(i); o {
		case 2, 3:
			p.enable = p.enable&^(0xFF<<(8*(o-2))) | uint16(b)<<(8*(o-2))
		case 4, 5:
			p.control = p.control&^(0xFF<<(8*(o-4))) | uint16(b)<<(8*(o-4))
		}
	}
	ctl := p.control
	p.control &^= 1 << 13 // SLP_EN reads as 0
	p.mu.Unlock()
	if off <= 4 && off+uint64(len(d)) > 4 && acpi.IsPowerOff(ctl) && p.powerOff != nil {
		p.powerOff()
	}
}

// Read fills d from the PM1a ports.
func (p *acpiPM) Read(off uint64, d []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range d {
		d[i] = 0
		switch o := off + uint64(i); o {
		case 2, 3:
			d[i] = byte(p.enable >> (8 * (o - 2)))
		case 4, 5:
			d[i] = byte(p.control >> (8 * (o - 4)))
		}
	}
}

// acpiPowerOff ends the run on an ACPI S5 write. The writing vCPU stops
// at once: Linux goes on (to "Attempted to kill init" and a panic) if the
// write returns.
func (m *machine) acpiPowerOff() {
	m.finish(ReasonPoweroff, "guest powered off through ACPI (S5)")
	m.stopped.Store(true)
}
