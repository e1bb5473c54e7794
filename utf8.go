package httpsse

import (
	"encoding/binary"
	"slices"
	"sync"
	"unicode/utf8"
)

// appendUTF8 appends src to *dst decoded as the Encoding Standard's UTF-8 decoder does: each
// maximal subpart of an invalid sequence becomes one U+FFFD REPLACEMENT CHARACTER.
//
// It appends in place, and the callers reset a buffer with b = b[:0] rather than append to
// b[:0], so that the slice's pointer is written only when the buffer grows: while the GC is
// marking, each pointer written to the heap costs a write barrier, which was a tenth of the
// time spent decoding small events.
func appendUTF8(dst *[]byte, src []byte) {
	if !validUTF8(src) {
		*dst = appendReplacingInvalid(*dst, src)
		return
	}
	n := len(*dst)
	if cap(*dst)-n < len(src) {
		*dst = slices.Grow(*dst, len(src))
	}
	*dst = (*dst)[:n+len(src)] // only the length is written
	copy((*dst)[n:], src)
}

// appendReplacingInvalid is appendUTF8 for src that holds invalid UTF-8.
func appendReplacingInvalid(dst, src []byte) []byte {
	for len(src) > 0 {
		r, size := utf8.DecodeRune(src)
		if r != utf8.RuneError || size > 1 {
			dst = append(dst, src[:size]...)
			src = src[size:]
			continue
		}
		dst = append(dst, "\uFFFD"...)
		src = src[invalidPrefixLen(src):]
	}
	return dst
}

// validUTF8 is utf8.Valid, twice as fast on text that mixes ASCII with other characters
// every few words (the bench module's mixed corpus), where utf8.Valid, and any loop that
// branches on each character, mispredicts its branches. It runs a shift-based DFA (a table
// load and a shift per pair of bytes, no branch) over each block of 32 bytes that holds a
// non-ASCII byte, and skips ASCII blocks. Smaller blocks skip more bytes but mispredict more
// often whether a block is ASCII, which costs more than it saves on such text.
//
// The last 1-31 bytes are tested for ASCII with 8-byte loads that may overlap bytes already
// checked, and run through the DFA only when they hold a non-ASCII byte: short field values
// (an event name, an ID) and the end of each line are most of what a stream of small events
// has to check, and a loop over their bytes one at a time took a third of validUTF8's time.
func validUTF8(p []byte) bool {
	n := len(p)
	if n < 8 {
		return validShortUTF8(p)
	}
	s := uint64(utf8Accept)
	i := 0
	for ; n-i >= 32; i += 32 {
		q := p[i : i+32]
		if (load64(q)|load64(q[8:])|load64(q[16:])|load64(q[24:]))&asciiMask == 0 {
			if s&63 != utf8Accept { // a sequence cut short by ASCII
				return false
			}
		} else {
			utf8PairsOnce.Do(buildUTF8Pairs)
			for j := 0; j < 32; j += 4 {
				s = utf8Step4(s, q[j:])
			}
		}
	}
	if i == n {
		return s&63 == utf8Accept
	}
	ascii := load64(p[n-8:])
	for j := i; j < n-8; j += 8 {
		ascii |= load64(p[j:])
	}
	if ascii&asciiMask == 0 {
		return s&63 == utf8Accept
	}
	utf8PairsOnce.Do(buildUTF8Pairs)
	for ; n-i >= 4; i += 4 {
		s = utf8Step4(s, p[i:])
	}
	for _, c := range p[i:] {
		s = utf8DFA[c] >> (s & 63)
	}
	return s&63 == utf8Accept
}

// validShortUTF8 is validUTF8 for fewer than 8 bytes.
func validShortUTF8(p []byte) bool {
	if len(p) >= 4 && (load32(p)|load32(p[len(p)-4:]))&0x80808080 == 0 {
		return true
	}
	s := uint64(utf8Accept)
	for _, c := range p {
		s = utf8DFA[c] >> (s & 63)
	}
	return s&63 == utf8Accept
}

const asciiMask = 0x8080808080808080

func load64(p []byte) uint64 { return binary.LittleEndian.Uint64(p) }

func load32(p []byte) uint32 { return binary.LittleEndian.Uint32(p) }

// utf8Step4 runs the pair DFA over p[:4] from state s. It is small enough to be inlined.
func utf8Step4(s uint64, p []byte) uint64 {
	_ = p[3]
	s = utf8PairDFA[utf8PairClass[binary.LittleEndian.Uint16(p)]] >> (s & 63)
	return utf8PairDFA[utf8PairClass[binary.LittleEndian.Uint16(p[2:])]] >> (s & 63)
}

// The pair DFA, built on first use: utf8PairDFA[utf8PairClass[b0|b1<<8]] is the row of
// utf8DFA for the bytes b0 then b1. The DFA's speed is bound by its table loads (two per
// byte: the byte and its row) and this makes them one and a half, and halves the shifts.
// utf8PairClass maps each pair of bytes to the pair of their classes (bytes with the same
// row of utf8DFA: 12 classes), so that it takes 64 KiB, not the 512 KiB of a row per pair.
var (
	utf8PairsOnce sync.Once
	utf8PairClass [1 << 16]uint8
	utf8PairDFA   [256]uint64
)

func buildUTF8Pairs() {
	var class [256]uint8
	var rows []uint64 // the row of each class
	for b, row := range utf8DFA {
		c := slices.Index(rows, row)
		if c < 0 {
			c = len(rows)
			rows = append(rows, row)
		}
		class[b] = uint8(c)
	}
	n := len(rows) // 12; n*n must fit in a uint8 index
	for c0, row0 := range rows {
		for c1, row1 := range rows {
			var row uint64
			for s := 0; s <= utf8AfterF4; s += 6 {
				row |= (row1 >> (row0 >> s & 63) & 63) << s
			}
			utf8PairDFA[c0*n+c1] = row
		}
	}
	for b1 := range 256 {
		for b0 := range 256 {
			utf8PairClass[b0|b1<<8] = class[b0]*uint8(n) + class[b1]
		}
	}
}

// The states of the UTF-8 DFA, each a bit offset into a row of utf8DFA: utf8DFA[b] holds,
// at offset s, the state that byte b leads to from state s (6 bits), so that the next state
// is utf8DFA[b] >> s (only the low 6 bits of a state count). The error state is 0, so that
// every transition not set below leads to it, and it leads only to itself.
const (
	_           = 6 * iota // 0: the error state
	utf8Accept             // the start of a character
	utf8Need1              // one more continuation byte, 80-BF
	utf8Need2              // two more
	utf8Need3              // three more
	utf8AfterE0            // after E0: A0-BF, then one more
	utf8AfterED            // after ED: 80-9F (no surrogates), then one more
	utf8AfterF0            // after F0: 90-BF, then two more
	utf8AfterF4            // after F4: 80-8F (up to U+10FFFF), then two more
)

// utf8DFA encodes the well-formed byte sequences of the Unicode Standard, table 3-7.
var utf8DFA = func() (t [256]uint64) {
	set := func(lo, hi byte, from, to uint64) {
		for b := int(lo); b <= int(hi); b++ {
			t[b] |= to << from
		}
	}
	set(0x00, 0x7F, utf8Accept, utf8Accept)
	set(0xC2, 0xDF, utf8Accept, utf8Need1)
	set(0xE0, 0xE0, utf8Accept, utf8AfterE0)
	set(0xE1, 0xEC, utf8Accept, utf8Need2)
	set(0xED, 0xED, utf8Accept, utf8AfterED)
	set(0xEE, 0xEF, utf8Accept, utf8Need2)
	set(0xF0, 0xF0, utf8Accept, utf8AfterF0)
	set(0xF1, 0xF3, utf8Accept, utf8Need3)
	set(0xF4, 0xF4, utf8Accept, utf8AfterF4)
	set(0x80, 0xBF, utf8Need1, utf8Accept)
	set(0x80, 0xBF, utf8Need2, utf8Need1)
	set(0x80, 0xBF, utf8Need3, utf8Need2)
	set(0xA0, 0xBF, utf8AfterE0, utf8Need1)
	set(0x80, 0x9F, utf8AfterED, utf8Need1)
	set(0x90, 0xBF, utf8AfterF0, utf8Need2)
	set(0x80, 0x8F, utf8AfterF4, utf8Need2)
	return t
}()

// invalidPrefixLen returns the length of the maximal subpart at the start of src, which
// holds an invalid UTF-8 sequence: the lead byte and as many following bytes as could still
// have begun a valid sequence (Encoding Standard, "UTF-8 decoder").
func invalidPrefixLen(src []byte) int {
	lo, hi := byte(0x80), byte(0xBF)
	var need int
	switch b := src[0]; {
	case 0xC2 <= b && b <= 0xDF:
		need = 1
	case 0xE0 <= b && b <= 0xEF:
		need = 2
		if b == 0xE0 {
			lo = 0xA0
		} else if b == 0xED {
			hi = 0x9F
		}
	case 0xF0 <= b && b <= 0xF4:
		need = 3
		if b == 0xF0 {
			lo = 0x90
		} else if b == 0xF4 {
			hi = 0x8F
		}
	default:
		return 1
	}
	n := 1
	for ; n <= need && n < len(src); n++ {
		if c := src[n]; c < lo || c > hi {
			return n
		}
		lo, hi = 0x80, 0xBF
	}
	return n
}
