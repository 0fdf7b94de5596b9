// Package g711 converts between 16-bit linear PCM and the two G.711 companding laws
// (ITU-T G.711): µ-law (PCMU, RTP payload type 0) and A-law (PCMA, payload type 8).
//
// Decoding and transcoding are table lookups, fit for the packet path; encoding is
// computed and meant for prompts and tones prepared ahead of time.
package g711

// Silence in each law: the code that decodes to (nearly) zero.
const (
	ULawSilence byte = 0xFF
	ALawSilence byte = 0xD5
)

// Law is a G.711 companding law.
type Law uint8

// The laws. The zero value is no law.
const (
	None Law = iota
	ULaw     // PCMU
	ALaw     // PCMA
)

func (l Law) String() string {
	switch l {
	case ULaw:
		return "PCMU"
	case ALaw:
		return "PCMA"
	}
	return "none"
}

// PayloadType is the law's static RTP payload type (RFC 3551 §6).
func (l Law) PayloadType() uint8 {
	if l == ALaw {
		return 8
	}
	return 0
}

// Silence is the law's silence code.
func (l Law) Silence() byte {
	if l == ALaw {
		return ALawSilence
	}
	return ULawSilence
}

// Tables filled at start.
var (
	ULawToLinear [256]int16
	ALawToLinear [256]int16
	ULawToALaw   [256]byte
	ALawToULaw   [256]byte
)

func init() {
	for i := range 256 {
		ULawToLinear[i] = decodeULaw(byte(i))
		ALawToLinear[i] = decodeALaw(byte(i))
	}
	for i := range 256 {
		ULawToALaw[i] = EncodeALaw(ULawToLinear[i])
		ALawToULaw[i] = EncodeULaw(ALawToLinear[i])
	}
}

const (
	ulawBias = 0x84
	ulawClip = 32635
)

// EncodeULaw compands one linear sample to µ-law.
func EncodeULaw(s int16) byte {
	v := int32(s)
	sign := byte(0)
	if v < 0 {
		v, sign = -v, 0x80
	}
	if v > ulawClip {
		v = ulawClip
	}
	v += ulawBias
	exp := byte(7)
	for mask := int32(0x4000); v&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := byte(v>>(exp+3)) & 0x0F
	return ^(sign | exp<<4 | mant)
}

func decodeULaw(u byte) int16 {
	u = ^u
	exp := (u >> 4) & 7
	mant := int32(u & 0x0F)
	v := ((mant << 3) + ulawBias) << exp
	v -= ulawBias
	if u&0x80 != 0 {
		return int16(-v)
	}
	return int16(v)
}

// EncodeALaw compands one linear sample to A-law.
func EncodeALaw(s int16) byte {
	v := int32(s)
	mask := byte(0xD5) // positive: sign bit set, then even bits inverted
	if v < 0 {
		v = -v - 1
		mask = 0x55
	}
	if v > 32767 {
		v = 32767
	}
	var a byte
	if v < 256 {
		a = byte(v >> 4)
	} else {
		exp := byte(7)
		for m := int32(0x4000); v&m == 0 && exp > 1; m >>= 1 {
			exp--
		}
		a = exp<<4 | byte(v>>(exp+3))&0x0F
	}
	return a ^ mask
}

func decodeALaw(a byte) int16 {
	a ^= 0x55
	t := int32(a&0x0F) << 4
	seg := (a & 0x70) >> 4
	switch seg {
	case 0:
		t += 8
	case 1:
		t += 0x108
	default:
		t += 0x108
		t <<= seg - 1
	}
	if a&0x80 != 0 {
		return int16(t)
	}
	return int16(-t)
}

// Decode appends the linear samples of src, in law l, to dst.
func Decode(dst []int16, src []byte, l Law) []int16 {
	tab := &ULawToLinear
	if l == ALaw {
		tab = &ALawToLinear
	}
	for _, b := range src {
		dst = append(dst, tab[b])
	}
	return dst
}

// Encode appends the samples of src companded in law l to dst.
func Encode(dst []byte, src []int16, l Law) []byte {
	enc := EncodeULaw
	if l == ALaw {
		enc = EncodeALaw
	}
	for _, s := range src {
		dst = append(dst, enc(s))
	}
	return dst
}

// Transcode rewrites b in place from law from to law to.
func Transcode(b []byte, from, to Law) {
	var tab *[256]byte
	switch {
	case from == ULaw && to == ALaw:
		tab = &ULawToALaw
	case from == ALaw && to == ULaw:
		tab = &ALawToULaw
	default:
		return
	}
	for i, v := range b {
		b[i] = tab[v]
	}
}
