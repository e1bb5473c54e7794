package httpsse

import (
	"net/http"
	"strings"
)

// isEventStream reports whether the response's Content-Type is text/event-stream, decided as
// a browser's EventSource decides it: the Fetch Standard's "extract a MIME type" over all of
// the header's values (the last value that parses wins, */* aside), compared by essence, so
// that parameters, even malformed ones ("text/event-stream;this=is;valid"), do not matter.
func isEventStream(h http.Header) bool {
	essence := ""
	for _, line := range h.Values("Content-Type") {
		for _, v := range splitHeaderValues(line) {
			if e, ok := mimeEssence(v); ok && e != "*/*" {
				essence = e
			}
		}
	}
	return essence == ContentType
}

// mimeEssence returns the lowercase type/subtype of a MIME type, parsed as the MIME Sniffing
// Standard parses one; ok is false when v is not a MIME type. Parameters are not looked at:
// no parameter can make a MIME type fail to parse.
func mimeEssence(v string) (essence string, ok bool) {
	v = strings.Trim(v, httpWhitespace)
	typ, rest, found := strings.Cut(v, "/")
	if !found || !isToken(typ) {
		return "", false
	}
	subtype, _, _ := strings.Cut(rest, ";")
	subtype = strings.TrimRight(subtype, httpWhitespace)
	if !isToken(subtype) {
		return "", false
	}
	return strings.ToLower(typ + "/" + subtype), true
}

// splitHeaderValues splits a header value at the commas that are outside quoted strings,
// trimming spaces and tabs from each part (Fetch's "getting, decoding, and splitting").
func splitHeaderValues(s string) []string {
	var values []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++ // the escaped character, whatever it is
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			values = append(values, strings.Trim(s[start:i], " \t"))
			start = i + 1
		}
	}
	return append(values, strings.Trim(s[start:], " \t"))
}

// httpWhitespace is HTTP whitespace: the characters a MIME type is trimmed of.
const httpWhitespace = " \t\r\n"

// isToken reports whether s is a non-empty sequence of HTTP token code points.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 || !tokenChar[c] {
			return false
		}
	}
	return true
}

// tokenChar marks the ASCII characters allowed in an HTTP token (RFC 9110, section 5.6.2).
var tokenChar = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()
