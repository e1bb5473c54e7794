package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Reader is the HTTP/2 counterpart of rawReader: one connection of its own (TLS with ALPN
// "h2", or cleartext with prior knowledge, h2c), one stream, frames read by golang.org/x/net's
// Framer in the subscriber's goroutine, and the DATA frames' payloads handed on as they come.
// It does what a browser's HTTP/2 stack does for one EventSource on a connection of its own
// (settings, acknowledgements, flow control), but not in net/http's client, whose connection
// goroutine and body pipe cost about as much CPU as the server's whole HTTP/2 write path.
type h2Reader struct {
	conn     net.Conn
	bw       *bufio.Writer
	fr       *http2.Framer
	unsent   uint32 // bytes consumed that no WINDOW_UPDATE has given back yet
	streamID uint32
	frames   *atomic.Int64 // when not nil, counts the DATA frames with data: one per flush
}

// h2Window is the flow-control window that the reader gives the server, for its stream and
// its connection: 1 GiB, so that a WINDOW_UPDATE goes out once per h2WindowRefresh bytes.
const (
	h2Window        = 1 << 30
	h2WindowRefresh = 16 << 20
)

// dialH2Raw connects to addr, over TLS when useTLS (else h2c with prior knowledge), and sends
// the request for path. The response is read by run.
func dialH2Raw(addr, path string, useTLS bool, bufSize int) (*h2Reader, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if useTLS {
		cfg := clientTLS(nil)
		cfg.NextProtos = []string{http2.NextProtoTLS}
		tc := tls.Client(conn, cfg)
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return nil, err
		}
		_ = tc.SetDeadline(time.Time{})
		if p := tc.ConnectionState().NegotiatedProtocol; p != http2.NextProtoTLS {
			conn.Close()
			return nil, fmt.Errorf("ALPN chose %q, want h2", p)
		}
		conn, scheme = tc, "https"
	}
	h := &h2Reader{conn: conn, bw: bufio.NewWriterSize(conn, 4<<10), streamID: 1}
	h.fr = http2.NewFramer(h.bw, bufio.NewReaderSize(conn, bufSize))
	h.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{
		{":method", "GET"}, {":scheme", scheme}, {":authority", addr}, {":path", path},
		{"accept", "text/event-stream"}, {"cache-control", "no-cache"},
	} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	_, _ = io.WriteString(h.bw, http2.ClientPreface)
	err = errors.Join(
		h.fr.WriteSettings(http2.Setting{ID: http2.SettingEnablePush, Val: 0}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2Window}),
		h.fr.WriteWindowUpdate(0, h2Window-65535), // the connection's window starts at 65,535
		h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: h.streamID, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}),
		h.bw.Flush(),
	)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return h, nil
}

// run reads the response to its end, calling onData with each DATA frame's payload.
func (h *h2Reader) run(onData func([]byte)) error {
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			return err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if err := h.reply(h.fr.WriteSettingsAck()); err != nil {
					return err
				}
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				if err := h.reply(h.fr.WritePing(true, f.Data)); err != nil {
					return err
				}
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID != h.streamID {
				continue
			}
			if s := f.PseudoValue("status"); s != "" && s != "200" {
				return fmt.Errorf("%w: status %s", errBadResponse, s)
			}
			if f.StreamEnded() {
				return io.EOF
			}
		case *http2.DataFrame:
			if f.StreamID != h.streamID {
				continue
			}
			if p := f.Data(); len(p) > 0 {
				if h.frames != nil {
					h.frames.Add(1)
				}
				onData(p) // valid until the next ReadFrame
			}
			if f.StreamEnded() {
				return io.EOF
			}
			if h.unsent += f.Length; h.unsent >= h2WindowRefresh {
				err := errors.Join(h.fr.WriteWindowUpdate(0, h.unsent), h.fr.WriteWindowUpdate(h.streamID, h.unsent))
				h.unsent = 0
				if err := h.reply(err); err != nil {
					return err
				}
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == h.streamID {
				return fmt.Errorf("stream reset: %v", f.ErrCode)
			}
		case *http2.GoAwayFrame:
			if f.LastStreamID < h.streamID || f.ErrCode != http2.ErrCodeNo {
				return fmt.Errorf("GOAWAY: %v", f.ErrCode)
			}
		}
	}
}

// reply flushes what a frame written after err put in the buffer.
func (h *h2Reader) reply(err error) error {
	if err != nil {
		return err
	}
	return h.bw.Flush()
}
