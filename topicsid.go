package httpsse

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"hash/fnv"
	"strings"
)

// The Last-Event-ID of a response that [Topics.Serve] serves says how far the client got in
// each of the response's topics, in the one string that EventSource keeps and sends back on
// reconnection:
//
//	~KEY=ID,KEY=ID,...
//
// one KEY=ID per topic of the response. KEY is the topic's name hashed (see topicKey), so the
// form does not grow with long names and the names may come back in any order; ID is the ID
// of the last event of that topic the client received, or of the point it joined the topic
// at, with '%', ',', '=' and every byte outside '!' to '~' escaped as %XX, so that any event
// ID fits. An empty ID stands for a position the client holds but the server could not read
// (an ID that was not of this form): the topic gets the gap event again.
//
// A topic's part of the form is its own event ID, so resuming a topic is the same step as a
// single-topic Route's resumption with that ID (see [Replay]), History included.
const topicsIDMark = '~'

// topicKeyLen is the length of a key: 36 bits of the name's hash, in base64url.
const topicKeyLen = 6

// topicKey returns the key of a topic's name in the Last-Event-ID form: 36 bits of its
// FNV-1a hash, mixed so that names that differ in one byte differ in every bit. Two names of one request with the same key (a chance of one in 2^36
// for a pair) make the ID unreadable, so the response's topics get the gap event.
func topicKey(name string) string {
	h := fnv.New64a()
	h.Write([]byte(name))
	x := h.Sum64()
	// MurmurHash3's finalizer.
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], x)
	return base64.RawURLEncoding.EncodeToString(b[:])[:topicKeyLen]
}

// topicsID is the Last-Event-ID of one response of Topics.Serve, kept up to date as events
// go out: ids[i] is the escaped ID of topic i of the response.
type topicsID struct {
	keys []string
	ids  [][]byte
}

func newTopicsID(names []string) *topicsID {
	c := &topicsID{keys: make([]string, len(names)), ids: make([][]byte, len(names))}
	for i, name := range names {
		c.keys[i] = topicKey(name)
	}
	return c
}

// set records that the client has topic i up to the event with the given ID.
func (c *topicsID) set(i int, id []byte) {
	c.ids[i] = appendEscapedID(c.ids[i][:0], id)
}

// appendTo appends the form to b.
func (c *topicsID) appendTo(b []byte) []byte {
	b = append(b, topicsIDMark)
	for i, key := range c.keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, key...)
		b = append(b, '=')
		b = append(b, c.ids[i]...)
	}
	return b
}

func (c *topicsID) String() string {
	return string(c.appendTo(nil))
}

func appendEscapedID(b, id []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, ch := range id {
		if ch < '!' || ch > '~' || ch == '%' || ch == ',' || ch == '=' {
			b = append(b, '%', hex[ch>>4], hex[ch&15])
		} else {
			b = append(b, ch)
		}
	}
	return b
}

// parseTopicsID reads a Last-Event-ID of the form above into a map from key to event ID.
// It reports false when id is not of that form.
func parseTopicsID(id string) (map[string]string, bool) {
	if len(id) < 1 || id[0] != topicsIDMark {
		return nil, false
	}
	parts := strings.Split(id[1:], ",")
	ids := make(map[string]string, len(parts))
	for _, part := range parts {
		key, escaped, ok := strings.Cut(part, "=")
		if !ok || len(key) != topicKeyLen || strings.Trim(key, base64URL) != "" {
			return nil, false
		}
		if _, dup := ids[key]; dup {
			return nil, false
		}
		v, ok := unescapeID(escaped)
		if !ok {
			return nil, false
		}
		ids[key] = v
	}
	return ids, true
}

const base64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func unescapeID(s string) (string, bool) {
	if !strings.Contains(s, "%") {
		return s, strings.IndexFunc(s, func(r rune) bool { return r < '!' || r > '~' }) < 0
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '%':
			if i+2 >= len(s) {
				return "", false
			}
			hi, lo := unhex(s[i+1]), unhex(s[i+2])
			if hi < 0 || lo < 0 {
				return "", false
			}
			b.WriteByte(byte(hi<<4 | lo))
			i += 2
		case ch < '!' || ch > '~':
			return "", false
		default:
			b.WriteByte(ch)
		}
	}
	return b.String(), true
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}

// eventID returns the value of the last "id" field of block, one event as the encoder wrote
// it ("id: " at the start of a line), and whether it has one. A block of comments alone has
// none.
func eventID(block []byte) ([]byte, bool) {
	// Most often the ID is the event's last line (Replay appends it): look there first.
	last := block[:len(block)-2]
	if i := bytes.LastIndexByte(last, '\n'); bytes.HasPrefix(last[i+1:], []byte("id: ")) {
		return last[i+1+len("id: "):], true
	}
	i := bytes.LastIndex(block, []byte("\nid: "))
	switch {
	case i >= 0:
		i++
	case bytes.HasPrefix(block, []byte("id: ")):
		i = 0
	default:
		return nil, false
	}
	v := block[i+len("id: "):]
	return v[:bytes.IndexByte(v, '\n')], true
}
