package httpsse

import (
	"testing"
	"unicode/utf8"
)

// FuzzValidUTF8 checks validUTF8 against utf8.Valid.
func FuzzValidUTF8(f *testing.F) {
	for _, s := range []string{"", "abc", "caf\xc3\xa9 abcdefgh", "\xE2\x82\xFFabcdefghij", "abcdefg\xed\xa0\x80xyz", "abcdefgh\xf4\x90\x80\x80", "日本語テキストabcdefgh🚀", "abcdefghi\xc3"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if validUTF8(b) != utf8.Valid(b) {
			t.Fatalf("validUTF8(%q) = %v", b, validUTF8(b))
		}
	})
}
