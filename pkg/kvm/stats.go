package kvm

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Binary statistics (KVM_GET_STATS_FD) layout, include/uapi/linux/kvm.h:
//
//	struct kvm_stats_header { u32 flags, name_size, num_desc, id_offset, desc_offset, data_offset; }
//	struct kvm_stats_desc   { u32 flags; s16 exponent; u16 size; u32 offset; u32 bucket_size; char name[name_size]; }
const (
	statsHeaderSize = 24
	statsDescFixed  = 16
	statsTypeMask   = 0xF
	statsTypeHistLo = 3 // linear and log histograms are skipped
)

// ReadStats parses a KVM binary statistics file and returns its scalar
// statistics by name. Histograms are skipped. Sizes announced by the file
// are bounded so that a corrupt file cannot make it allocate much.
func ReadStats(r io.ReaderAt) (map[string]uint64, error) {
	var hb [statsHeaderSize]byte
	if _, err := r.ReadAt(hb[:], 0); err != nil {
		return nil, fmt.Errorf("read KVM stats header: %w", err)
	}
	nameSize := binary.LittleEndian.Uint32(hb[4:])
	numDesc := binary.LittleEndian.Uint32(hb[8:])
	descOff := binary.LittleEndian.Uint32(hb[16:])
	dataOff := binary.LittleEndian.Uint32(hb[20:])
	if nameSize == 0 || nameSize > 256 || numDesc > 4096 {
		return nil, fmt.Errorf("implausible KVM stats header (name size %d, %d descriptors)", nameSize, numDesc)
	}
	descSize := statsDescFixed + int(nameSize)
	descs := make([]byte, int(numDesc)*descSize)
	if _, err := r.ReadAt(descs, int64(descOff)); err != nil {
		return nil, fmt.Errorf("read KVM stats descriptors: %w", err)
	}
	out := make(map[string]uint64, numDesc)
	var vb [8]byte
	for i := 0; i < int(numDesc); i++ {
		d := descs[i*descSize : (i+1)*descSize]
		flags := binary.LittleEndian.Uint32(d[0:])
		size := binary.LittleEndian.Uint16(d[6:])
		off := binary.LittleEndian.Uint32(d[8:])
		if flags&statsTypeMask >= statsTypeHistLo || size != 1 {
			continue
		}
		name := d[statsDescFixed:]
		for j, c := range name {
			if c == 0 {
				name = name[:j]
				break
			}
		}
		if _, err := r.ReadAt(vb[:], int64(dataOff)+int64(off)); err != nil {
			return nil, fmt.Errorf("read KVM stat %q: %w", name, err)
		}
		out[string(name)] = binary.LittleEndian.Uint64(vb[:])
	}
	return out, nil
}
