package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestH2Reader reads a streamed response with the raw HTTP/2 reader, over TLS and over h2c,
// through more than one flow-control refresh, and sees the stream's end.
func TestH2Reader(t *testing.T) {
	chunk := strings.Repeat("x", 16<<10)
	const chunks = 3 * h2WindowRefresh / (16 << 10) // past three WINDOW_UPDATEs
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			http.Error(w, "want HTTP/2, got "+r.Proto, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range chunks {
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
			if i%64 == 0 {
				w.(http.Flusher).Flush()
			}
		}
	})
	for _, useTLS := range []bool{true, false} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			ts := httptest.NewUnstartedServer(handler)
			if useTLS {
				ts.EnableHTTP2 = true
				ts.StartTLS()
			} else {
				ts.Config.Protocols = new(http.Protocols)
				ts.Config.Protocols.SetUnencryptedHTTP2(true)
				ts.Start()
			}
			t.Cleanup(ts.Close)
			h, err := dialH2Raw(ts.Listener.Addr().String(), "/events", useTLS, 64<<10)
			if err != nil {
				t.Fatalf("dialH2Raw: %v", err)
			}
			defer h.conn.Close()
			n := 0
			err = h.run(func(p []byte) { n += len(p) })
			if !errors.Is(err, io.EOF) {
				t.Fatalf("run = %v, want io.EOF", err)
			}
			if want := chunks * len(chunk); n != want {
				t.Errorf("read %d bytes, want %d", n, want)
			}
		})
	}
}
