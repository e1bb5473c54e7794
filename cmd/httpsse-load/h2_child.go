package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reiver/go-httpsse"
)

// stream is one subscriber of the h2 scenario, over either protocol: the Decoder on its
// response body, and how to end it.
type stream struct {
	dec   *httpsse.Decoder
	close func()
}

// childH2 is the subscriber process of the h2 scenario. It connects cfg.subscribers
// subscribers over cfg.h2Proto, then answers the parent's commands on standard input:
// "expect K" arms a round whose last event is K ("armed"), and the report "reached" follows
// once every subscriber has received event K; "closing" ("closing") comes before the parent
// closes the Route. Every subscriber checks that it receives 1, 2, 3, ... with nothing
// missing or repeated; "ended" reports, once every stream has ended, how many were exact
// (every event, in order, and none after the last) and how many ended cleanly.
func childH2(cfg config, out *emitter, in *bufio.Scanner) error {
	var errs firstError
	debug.FreeOSMemory()
	rss0 := procStatus("VmRSS")
	var streams []stream
	var failed int
	switch cfg.h2Proto {
	case "h1":
		subs, f := dialMany(cfg.addr, "h1", cfg.subscribers, cfg.dialers, cfg.sourceAddrs, func(int) string { return "" }, &errs)
		for _, s := range subs {
			if s != nil {
				streams = append(streams, stream{dec: s.dec, close: func() { s.close(false) }})
			}
		}
		failed = f
	case "h2", "h2c":
		var err error
		streams, failed, err = dialH2(cfg, &errs)
		if err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown -h2-proto %q", cfg.h2Proto)
	}
	n := len(streams)
	debug.FreeOSMemory()
	rss := int64(procStatus("VmRSS")) - int64(rss0)
	out.emit(report{Kind: "connected", N: n, Failed: failed, Err: errs.String(), Extra: strconv.FormatInt(rss, 10)})

	var (
		mu           sync.Mutex
		target       atomic.Int64 // the last event of the current round; 0 before the first
		round        int          // rounds armed so far
		reached, bad int          // in the current round: subscribers that received target; failed ones (in any round)
		reachedSent  bool
		synced       int
		syncedSent   bool
		ended        int
		clean, reset int
		exact        int
		events       int64
		recvErrs     firstError
		endErrs      firstError  // streams that had every event but did not end cleanly
		closing      atomic.Bool // the parent is about to close the Route
	)
	// progress is called with mu held after any change.
	progress := func() {
		if !syncedSent && synced == n {
			syncedSent = true
			out.emit(report{Kind: "synced", N: n})
		}
		if round > 0 && !reachedSent && reached+bad >= n {
			reachedSent = true
			out.emit(report{Kind: "reached", N: reached, Failed: bad, Err: recvErrs.String()})
		}
		if ended == n {
			out.emit(report{Kind: "ended", N: exact, Failed: bad, Clean: clean, Reset: reset, Events: events, Err: recvErrs.String(), Extra: endErrs.String()})
		}
	}
	for i, s := range streams {
		go func() {
			last := 0
			lastRound := -1 // the round in which this subscriber last received the target
			isSynced, isBad := false, false
			var got int64
			fail := func(err error) {
				if isBad {
					return
				}
				isBad = true
				mu.Lock()
				bad++
				if lastRound == round {
					reached-- // counted as failed instead
				}
				recvErrs.set(fmt.Errorf("subscriber %d: %w", i, err))
				if !isSynced {
					synced++
				}
				progress()
				mu.Unlock()
			}
			var ev httpsse.Event
			for {
				if !s.dec.Next() {
					// Before the parent said "closing", any end is a failure; after it, a
					// stream that has every event is exact however it ended, and the end
					// itself is counted as clean (end of body) or not.
					err := s.dec.Err()
					switch {
					case !closing.Load() && err != nil:
						fail(fmt.Errorf("after event %d, before Close: %w", last, err))
					case !closing.Load():
						fail(fmt.Errorf("stream ended after event %d, before Close", last))
					case int64(last) != target.Load():
						fail(fmt.Errorf("stream ended (error: %v) after event %d, the last published was %d", err, last, target.Load()))
					case err != nil:
						endErrs.set(fmt.Errorf("subscriber %d: after the last event: %w", i, err))
					}
					mu.Lock()
					ended++
					events += got
					if err == nil {
						clean++
					} else {
						reset++
					}
					if !isBad {
						exact++
					}
					progress()
					mu.Unlock()
					s.close()
					return
				}
				if err := s.dec.Decode(&ev); err != nil {
					fail(err)
					continue
				}
				switch ev.EventName() {
				case "sync":
					if !isSynced {
						isSynced = true
						mu.Lock()
						synced++
						progress()
						mu.Unlock()
					}
				case "seq":
					if isBad {
						continue
					}
					data := ev.EventDataCollapsed()
					k, _ := strconv.Atoi(strings.TrimRight(data, "x"))
					if k != last+1 || ev.EventID() != strconv.Itoa(k) {
						if len(data) > 20 {
							data = data[:20] + "..."
						}
						fail(fmt.Errorf("event %q (id %q) after %d", data, ev.EventID(), last))
						continue
					}
					last = k
					got++
					if int64(k) == target.Load() {
						mu.Lock()
						reached++
						lastRound = round
						progress()
						mu.Unlock()
					}
				}
			}
		}()
	}
	if n == 0 {
		return errors.New("no subscriber connected")
	}

	for in.Scan() {
		f := strings.Fields(in.Text())
		switch {
		case len(f) == 1 && f[0] == "closing":
			closing.Store(true)
			out.emit(report{Kind: "closing"})
		case len(f) == 2 && f[0] == "expect":
			k, err := strconv.Atoi(f[1])
			if err != nil {
				return fmt.Errorf("command %q: %w", in.Text(), err)
			}
			mu.Lock()
			round++
			reached, reachedSent = 0, false
			target.Store(int64(k))
			mu.Unlock()
			out.emit(report{Kind: "armed", N: k})
		default:
			return fmt.Errorf("unknown command %q", in.Text())
		}
	}
	return nil // the parent closed standard input: the end
}

// dialH2 opens cfg.subscribers streams over HTTP/2, cfg.h2Streams of them on each
// connection (TLS, or cleartext with prior knowledge for "h2c"): one http.Transport a connection, which may open only one connection
// (MaxConnsPerHost 1). The first stream of each connection is opened alone, so that the
// connection and the server's SETTINGS (its limit of concurrent streams) are in place
// before the others are opened on it; at most cfg.dialers streams are opened at once.
func dialH2(cfg config, errs *firstError) ([]stream, int, error) {
	var p http.Protocols
	url := "https://" + cfg.addr + "/events?role=h2"
	var tlsConfig *tls.Config
	if cfg.h2Proto == "h2c" {
		p.SetUnencryptedHTTP2(true)
		url = "http://" + cfg.addr + "/events?role=h2c"
	} else {
		der, err := base64.StdEncoding.DecodeString(cfg.h2Cert)
		if err != nil {
			return nil, 0, fmt.Errorf("-h2-cert: %w", err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, 0, fmt.Errorf("-h2-cert: %w", err)
		}
		roots := x509.NewCertPool()
		roots.AddCert(cert)
		tlsConfig = &tls.Config{RootCAs: roots}
		p.SetHTTP2(true)
	}

	n := cfg.subscribers
	per := max(cfg.h2Streams, 1)
	subs := make([]*stream, n)
	var failed atomic.Int64
	sem := make(chan struct{}, max(cfg.dialers, 1)) // bounds the streams being opened at once
	var wg sync.WaitGroup
	open := func(client *http.Client, i int) {
		s, err := withRetries(func() (stream, error) { return openH2Stream(client, url) })
		if err != nil {
			failed.Add(1)
			errs.set(fmt.Errorf("subscriber %d: %w", i, err))
			return
		}
		subs[i] = &s
	}
	for first := 0; first < n; first += per {
		client := &http.Client{Transport: &http.Transport{
			TLSClientConfig:     tlsConfig,
			Protocols:           &p,
			ForceAttemptHTTP2:   true,
			MaxConnsPerHost:     1,
			DisableCompression:  true,
			TLSHandshakeTimeout: 30 * time.Second,
		}}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			open(client, first)
			<-sem
			for i := first + 1; i < min(first+per, n); i++ {
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					open(client, i)
				}()
			}
		}()
	}
	wg.Wait()
	var streams []stream
	for _, s := range subs {
		if s != nil {
			streams = append(streams, *s)
		}
	}
	return streams, int(failed.Load()), nil
}

// openH2Stream sends the request for the event stream and returns once the response headers
// are in, having checked that it is a 200 event stream over HTTP/2.
func openH2Stream(client *http.Client, url string) (stream, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		return stream{}, err
	}
	req.Header.Set("Accept", httpsse.ContentType)
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := client.Do(req)
	if err != nil {
		return stream{}, err
	}
	fail := func(err error) (stream, error) {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<10))
		resp.Body.Close()
		return stream{}, err
	}
	if resp.ProtoMajor != 2 {
		return fail(fmt.Errorf("response over %s, want HTTP/2", resp.Proto))
	}
	if resp.StatusCode != http.StatusOK {
		return fail(fmt.Errorf("status %s", resp.Status))
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != httpsse.ContentType {
		return fail(fmt.Errorf("Content-Type %q", resp.Header.Get("Content-Type")))
	}
	return stream{dec: httpsse.NewDecoder(resp.Body), close: func() { resp.Body.Close() }}, nil
}
