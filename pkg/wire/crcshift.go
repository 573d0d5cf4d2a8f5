package wire

import "hash/crc32"

// CRC32C arithmetic that lets the Decoder check a frame of any length in
// constant time once the bytes have been summed once (see Decoder.prefix).
//
// For the standard (pre- and post-inverted) CRC32C, the CRC of a
// concatenation obeys crc(A‖B) = crc(A)·x^(8·|B|) mod P  ⊕  crc(B), the
// identity zlib's crc32_combine rests on. Multiplying by x^(8n) modulo the
// reflected polynomial is done with a table of x^(8·d·16^k).

const castagnoliReflected = 0x82F63B78

// multModP multiplies a and b, polynomials over GF(2) in the reflected
// representation (bit 31 is x^0), modulo the Castagnoli polynomial.
func multModP(a, b uint32) uint32 {
	var p uint32
	for m := uint32(1) << 31; a != 0 && m != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
			a &^= m
		}
		if b&1 != 0 {
			b = b>>1 ^ castagnoliReflected
		} else {
			b >>= 1
		}
	}
	return p
}

// xPow[k][d] is x^(8·d·16^k) mod P, for payload lengths below 16^7.
var xPow = func() (t [7][16]uint32) {
	one := uint32(1) << 31  // x^0
	base := uint32(1) << 23 // x^8
	for k := range t {
		t[k][0] = one
		for d := 1; d < 16; d++ {
			t[k][d] = multModP(t[k][d-1], base)
		}
		base = multModP(t[k][15], base) // x^(8·16^(k+1))
	}
	return
}()

// crcShift returns c·x^(8n) mod P: the CRC of A‖B is crcShift(crc(A), |B|)
// XOR crc(B).
func crcShift(c uint32, n int) uint32 {
	for k := 0; n > 0 && c != 0; k++ {
		if d := n & 15; d != 0 {
			c = multModP(xPow[k][d], c)
		}
		n >>= 4
	}
	return c
}

// crcUpdate continues a standard CRC32C over p.
func crcUpdate(c uint32, p []byte) uint32 { return crc32.Update(c, castagnoli, p) }
