package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	mathbig "math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The servers part runs SSE servers that teams deploy instead of a library, each as a process
// of its own, and measures all of them, httpsse included, the same way: subscribers read
// over loopback, every event is published with one HTTP POST over a keep-alive connection, and
// CPU and memory are read from /proc for the server's processes. See docs/performance.md,
// "Against the servers".

// centrifugoVersion is the Centrifugo release that go install builds.
const centrifugoVersion = "v6.9.1"

// serverKind is one server that the servers part can run.
type serverKind struct {
	name string
	// h2c tells whether the server can serve subscribers HTTP/2 in cleartext (prior knowledge);
	// all of them serve HTTP/2 and HTTP/1.1 over TLS.
	h2c bool
	// setup finds or installs the server and returns what start needs (a binary) and a
	// description of the version; an error makes the server "unavailable".
	setup func(cfg *serversConfig) (bin, version string, err error)
	// start runs the server in dir, on fresh ports, for subscribers of the protocol proto
	// (see serversConfig.protos): for h1tls and h2, over TLS (HTTP/2 and HTTP/1.1 offered by
	// ALPN) with a certificate it writes in dir.
	start func(bin, dir string, proto string, cfg *serversConfig) (*serverProc, error)
}

// serverProc is one running server.
type serverProc struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has ended and been waited for
	stderr  *lockedBuffer
	subAddr string // host:port of the subscribers' listener
	subPath string // the request target of a subscription
	subTLS  bool
	// pubURL, pubHeader and pubBody make the POST that publishes one event with this data.
	pubURL    string
	pubHeader http.Header
	pubBody   func(data string) []byte
}

// pid is the server's main process (nginx: its master).
func (p *serverProc) pid() int { return p.cmd.Process.Pid }

func (p *serverProc) stop() {
	if p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// serverKinds are the servers measured, httpsse first.
func serverKinds() []*serverKind {
	return []*serverKind{
		{name: "httpsse", h2c: true, setup: setupHTTPSSE, start: startHTTPSSE},
		{name: "nginx+nchan", h2c: true, setup: setupNchan, start: startNchan},
		{name: "centrifugo", setup: setupCentrifugo, start: startCentrifugo},
		{name: "mercure", setup: setupMercure, start: startMercure},
	}
}

// cacheDir is where the bench keeps what it builds or installs: centrifugo and mercurehub.
func cacheDir() string {
	if d := os.Getenv("BENCH_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "httpsse-bench")
}

// freePort returns a port on 127.0.0.1 that was free a moment ago.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitListening waits until addr accepts connections or the process ends.
func waitListening(p *serverProc, addrs ...string) error {
	deadline := time.Now().Add(20 * time.Second)
	for _, a := range addrs {
		for {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-p.exited:
				return fmt.Errorf("server exited: %s", strings.TrimSpace(lastLines(p.stderr.String(), 5)))
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not listening after 20 s: %s", a, strings.TrimSpace(lastLines(p.stderr.String(), 5)))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

// startProc starts a server's process with its standard error kept for the messages.
func startProc(dir, bin string, args ...string) (*serverProc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	endWithBench(cmd)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	cmd.Stdout = stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &serverProc{cmd: cmd, stderr: stderr, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	return p, nil
}

// lockedBuffer keeps a process's output; the process writes while the bench may read.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (lb *lockedBuffer) Write(p []byte) (int, error) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if lb.b.Len() > 64<<10 { // keep the last messages only
		lb.b.Reset()
	}
	return lb.b.Write(p)
}

func (lb *lockedBuffer) String() string {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return lb.b.String()
}

// writeCert writes a self-signed ECDSA P-256 certificate for 127.0.0.1 and its key to dir as
// cert.pem and key.pem, and returns the certificate's DER bytes.
// tlsListen writes a self-signed certificate to dir and picks a free port for a server's TLS
// listener, returning its address and the certificate's and key's files.
func tlsListen(dir string) (addr, cert, key string, err error) {
	if _, err := writeCert(dir); err != nil {
		return "", "", "", err
	}
	if addr, err = freePort(); err != nil {
		return "", "", "", err
	}
	return addr, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), nil
}

func writeCert(dir string) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: mathbig.NewInt(1),
		Subject:      pkix.Name{CommonName: "httpsse-bench"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return nil, err
	}
	return der, nil
}

// jwtHS256 signs claims with key, as the JWTs that Centrifugo and Mercure accept.
func jwtHS256(key string, claims any) string {
	enc := base64.RawURLEncoding
	cb, _ := json.Marshal(claims)
	s := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(cb)
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(s))
	return s + "." + enc.EncodeToString(m.Sum(nil))
}

func randomKey() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// httpsse: this bench's own binary with -serve-httpsse, a shared Route at /events and a
// publish endpoint (see serveHTTPSSE).
func setupHTTPSSE(*serversConfig) (string, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", "", err
	}
	return exe, "this repository, " + runtime.Version(), nil
}

// usesTLS tells whether subscribers of proto connect over TLS.
func usesTLS(proto string) bool { return proto == "h1tls" || proto == "h2" }

func startHTTPSSE(bin, dir string, proto string, _ *serversConfig) (*serverProc, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	args := []string{"-serve-httpsse", "-serve-addr", addr}
	if proto == "h2c" {
		args = append(args, "-serve-h2c")
	}
	subAddr, tls := addr, usesTLS(proto)
	if tls {
		var cert, key string
		if subAddr, cert, key, err = tlsListen(dir); err != nil {
			return nil, err
		}
		args = append(args, "-serve-tls-addr", subAddr, "-serve-cert", cert, "-serve-key", key)
	}
	p, err := startProc(dir, bin, args...)
	if err != nil {
		return nil, err
	}
	p.subAddr, p.subPath, p.subTLS = subAddr, "/events", tls
	p.pubURL = "http://" + addr + "/publish"
	p.pubHeader = http.Header{"Content-Type": {"text/plain"}}
	p.pubBody = func(data string) []byte { return []byte(data) }
	if err := waitListening(p, addr, subAddr); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// nginx with Debian's libnginx-mod-nchan.
const nchanModule = "/usr/lib/nginx/modules/ngx_nchan_module.so"

func setupNchan(cfg *serversConfig) (string, string, error) {
	find := func() string {
		if p, err := exec.LookPath("nginx"); err == nil {
			return p
		}
		if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
			return "/usr/sbin/nginx"
		}
		return ""
	}
	bin := find()
	_, modErr := os.Stat(nchanModule)
	if bin == "" || modErr != nil {
		if !cfg.install {
			return "", "", errors.New("nginx or " + nchanModule + " not installed (and -servers-install=false)")
		}
		if err := aptInstall("nginx", "libnginx-mod-nchan"); err != nil {
			return "", "", err
		}
		if bin = find(); bin == "" {
			return "", "", errors.New("nginx not found after apt-get install")
		}
		if _, err := os.Stat(nchanModule); err != nil {
			return "", "", fmt.Errorf("after apt-get install: %w", err)
		}
	}
	v := "nginx"
	if out, err := exec.Command(bin, "-v").CombinedOutput(); err == nil {
		v = strings.TrimPrefix(strings.TrimSpace(string(out)), "nginx version: ")
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", "libnginx-mod-nchan").Output(); err == nil {
		v += ", libnginx-mod-nchan " + string(out)
	}
	return bin, v, nil
}

// aptInstall installs Debian packages, then stops the nginx service that the package starts,
// so that only the bench's own nginx runs.
func aptInstall(pkgs ...string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s not installed, and installing needs root: apt-get install %s", strings.Join(pkgs, ", "), strings.Join(pkgs, " "))
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("%s not installed, and there is no apt-get", strings.Join(pkgs, ", "))
	}
	fmt.Fprintf(os.Stderr, "bench: apt-get install %s\n", strings.Join(pkgs, " "))
	cmd := exec.Command("apt-get", append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if _, err := cmd.CombinedOutput(); err != nil {
		// The package lists may be missing on a fresh machine: update once and try again.
		if up, uerr := exec.Command("apt-get", "update").CombinedOutput(); uerr != nil {
			return fmt.Errorf("apt-get update: %v: %s", uerr, lastLines(string(up), 3))
		}
		cmd = exec.Command("apt-get", append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get install %s: %v: %s", strings.Join(pkgs, " "), err, lastLines(string(out), 3))
		}
	}
	_ = exec.Command("service", "nginx", "stop").Run()
	return nil
}

func startNchan(bin, dir string, proto string, cfg *serversConfig) (*serverProc, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	subAddr, tlsConf, tls := addr, "", usesTLS(proto)
	switch {
	case tls:
		var cert, key string
		if subAddr, cert, key, err = tlsListen(dir); err != nil {
			return nil, err
		}
		tlsConf = fmt.Sprintf("    listen %s ssl http2;\n    ssl_certificate %s;\n    ssl_certificate_key %s;\n    http2_max_concurrent_streams 1000;\n",
			subAddr, cert, key)
	case proto == "h2c":
		// nginx 1.22: a listener with http2 and no ssl speaks HTTP/2 with prior knowledge only.
		if subAddr, err = freePort(); err != nil {
			return nil, err
		}
		tlsConf = fmt.Sprintf("    listen %s http2;\n    http2_max_concurrent_streams 1000;\n", subAddr)
	}
	conf := fmt.Sprintf(`load_module %s;
daemon off;
master_process on;
worker_processes %s;
worker_rlimit_nofile %d;
pid %s/nginx.pid;
error_log %s/error.log warn;
%s
events {
  worker_connections %d;
}
http {
  access_log off;
  client_body_temp_path %s/body;
  proxy_temp_path %s/proxy;
  fastcgi_temp_path %s/fastcgi;
  uwsgi_temp_path %s/uwsgi;
  scgi_temp_path %s/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  nchan_shared_memory_size 256m;
  server {
    listen %s;
%s
    location = /sub {
      nchan_subscriber eventsource;
      nchan_channel_id bench;
      nchan_subscriber_first_message newest;
    }
    location = /pub {
      nchan_publisher http;
      nchan_channel_id bench;
      nchan_message_buffer_length 1000;
      nchan_message_timeout 10m;
    }
  }
}
`, nchanModule, cfg.nginxWorkers, raiseOpenFiles(), dir, dir, userDirective(), raiseOpenFiles(), dir, dir, dir, dir, dir, addr, tlsConf)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	p, err := startProc(dir, bin, "-p", dir, "-c", path, "-e", filepath.Join(dir, "error.log"))
	if err != nil {
		return nil, err
	}
	p.subAddr, p.subPath, p.subTLS = subAddr, "/sub", tls
	p.pubURL = "http://" + addr + "/pub"
	p.pubHeader = http.Header{"Content-Type": {"text/plain"}}
	p.pubBody = func(data string) []byte { return []byte(data) }
	if err := waitListening(p, addr, subAddr); err != nil {
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		p.stop()
		return nil, fmt.Errorf("%w; error.log: %s", err, lastLines(string(b), 3))
	}
	return p, nil
}

// userDirective keeps nginx's workers as the bench's user when the bench runs as root, so that
// they can use the temporary directory (nginx would switch them to nobody).
func userDirective() string {
	if os.Geteuid() == 0 {
		return "user root;"
	}
	return ""
}

// Centrifugo v6: go install into the cache; unidirectional SSE (uni_sse) for subscribers, each
// with a connection JWT that subscribes it to the channel "bench" (the channels claim: a
// server-side subscription); the HTTP API's publish with an API key.
func setupCentrifugo(cfg *serversConfig) (string, string, error) {
	bin := filepath.Join(cacheDir(), "bin", "centrifugo-"+centrifugoVersion)
	if _, err := os.Stat(bin); err == nil {
		return bin, "github.com/centrifugal/centrifugo/v6 " + centrifugoVersion, nil
	}
	if !cfg.install {
		return "", "", errors.New(bin + " not built (and -servers-install=false)")
	}
	gobin, err := os.MkdirTemp("", "centrifugo-gobin")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(gobin)
	fmt.Fprintf(os.Stderr, "bench: go install github.com/centrifugal/centrifugo/v6@%s (a few minutes, once)\n", centrifugoVersion)
	cmd := exec.Command("go", "install", "github.com/centrifugal/centrifugo/v6@"+centrifugoVersion)
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOBIN="+gobin, "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("go install centrifugo: %v: %s", err, lastLines(string(out), 3))
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", "", err
	}
	if err := os.Rename(filepath.Join(gobin, "centrifugo"), bin); err != nil {
		return "", "", err
	}
	return bin, "github.com/centrifugal/centrifugo/v6 " + centrifugoVersion, nil
}

func startCentrifugo(bin, dir string, proto string, _ *serversConfig) (*serverProc, error) {
	tls := usesTLS(proto)
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(addr)
	portN, _ := strconv.Atoi(port)
	apiKey, tokenKey := randomKey(), randomKey()
	httpServer := map[string]any{"address": host, "port": portN}
	scheme := "http"
	if tls {
		if _, err := writeCert(dir); err != nil {
			return nil, err
		}
		httpServer["tls"] = map[string]any{"enabled": true, "cert_pem": filepath.Join(dir, "cert.pem"), "key_pem": filepath.Join(dir, "key.pem")}
		scheme = "https"
	}
	conf := map[string]any{
		"http_server": httpServer,
		"log":         map[string]any{"level": "error"},
		"client": map[string]any{
			"token":           map[string]any{"hmac_secret_key": tokenKey},
			"allowed_origins": []string{"*"},
		},
		"uni_sse":  map[string]any{"enabled": true},
		"http_api": map[string]any{"key": apiKey},
	}
	b, _ := json.MarshalIndent(conf, "", "  ")
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return nil, err
	}
	p, err := startProc(dir, bin, "--config", path)
	if err != nil {
		return nil, err
	}
	token := jwtHS256(tokenKey, map[string]any{"sub": "bench", "channels": []string{"bench"}, "exp": time.Now().Add(24 * time.Hour).Unix()})
	connect, _ := json.Marshal(map[string]any{"token": token})
	p.subAddr, p.subPath, p.subTLS = addr, "/connection/uni_sse?cf_connect="+url.QueryEscape(string(connect)), tls
	p.pubURL = scheme + "://" + addr + "/api/publish"
	p.pubHeader = http.Header{"Content-Type": {"application/json"}, "X-API-Key": {apiKey}}
	p.pubBody = func(data string) []byte {
		return []byte(`{"channel":"bench","data":` + data + `}`)
	}
	if err := waitListening(p, addr); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// Mercure: bench/mercurehub, a module of its own, built into the cache.
func setupMercure(cfg *serversConfig) (string, string, error) {
	src := benchSourceDir()
	if src == "" {
		return "", "", errors.New("bench's source directory not found (run from bench/): mercurehub is built from bench/mercurehub")
	}
	bin := filepath.Join(cacheDir(), "bin", "mercurehub")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", "", err
	}
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Join(src, "mercurehub")
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("go build mercurehub: %v: %s", err, lastLines(string(out), 3))
	}
	v := "github.com/dunglas/mercure"
	if out, err := exec.Command("go", "version", "-m", bin).Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			f := strings.Fields(l)
			if len(f) >= 3 && f[0] == "dep" && f[1] == "github.com/dunglas/mercure" {
				v += " " + f[2]
			}
		}
	}
	_ = cfg
	return bin, v + ", local transport", nil
}

// benchSourceDir is the directory of bench's source: the working directory when it has
// mercurehub/, else the directory this file was compiled from.
func benchSourceDir() string {
	if _, err := os.Stat("mercurehub/go.mod"); err == nil {
		wd, _ := os.Getwd()
		return wd
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		d := filepath.Dir(file)
		if _, err := os.Stat(filepath.Join(d, "mercurehub", "go.mod")); err == nil {
			return d
		}
	}
	return ""
}

func startMercure(bin, dir string, proto string, _ *serversConfig) (*serverProc, error) {
	tls := usesTLS(proto)
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	key := randomKey()
	args := []string{"-addr", addr, "-key", key}
	subAddr := addr
	if tls {
		var cert, keyFile string
		if subAddr, cert, keyFile, err = tlsListen(dir); err != nil {
			return nil, err
		}
		args = append(args, "-tls-addr", subAddr, "-cert", cert, "-keyfile", keyFile)
	}
	p, err := startProc(dir, bin, args...)
	if err != nil {
		return nil, err
	}
	p.subAddr, p.subPath, p.subTLS = subAddr, "/.well-known/mercure?topic=bench", tls
	p.pubURL = "http://" + addr + "/.well-known/mercure"
	jwt := jwtHS256(key, map[string]any{"mercure": map[string]any{"publish": []string{"*"}}})
	p.pubHeader = http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Authorization": {"Bearer " + jwt}}
	p.pubBody = func(data string) []byte {
		return []byte(url.Values{"topic": {"bench"}, "data": {data}}.Encode())
	}
	if err := waitListening(p, addr, subAddr); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// publisher is one keep-alive connection that publishes events with POSTs.
type publisher struct {
	client *http.Client
	p      *serverProc
}

func newPublisher(p *serverProc, certDER []byte) *publisher {
	tr := &http.Transport{
		MaxIdleConnsPerHost: 1,
		MaxConnsPerHost:     1,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
		TLSClientConfig:     clientTLS(certDER),
	}
	return &publisher{client: &http.Client{Transport: tr, Timeout: 30 * time.Second}, p: p}
}

func (pb *publisher) publish(data string) error {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, pb.p.pubURL, bytes.NewReader(pb.p.pubBody(data)))
	if err != nil {
		return err
	}
	req.Header = pb.p.pubHeader.Clone()
	resp, err := pb.client.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("publish: %s: %q", resp.Status, shortString(string(body)))
	}
	if bytes.Contains(body, []byte(`"error"`)) { // Centrifugo's API answers 200 with an error object
		return fmt.Errorf("publish: %q", shortString(string(body)))
	}
	return nil
}

func (pb *publisher) close() { pb.client.CloseIdleConnections() }

// procStats are the CPU time and resident memory of a process and its descendants (nginx: the
// master and its workers), from /proc.
type procStats struct {
	cpu time.Duration
	rss int64 // bytes
}

// readProcStats reads pid's and its descendants' utime+stime (/proc/PID/stat) and VmRSS
// (/proc/PID/status).
func readProcStats(pid int) (procStats, error) {
	pids := []int{pid}
	// Descendants: one pass over /proc is enough for nginx's two levels, repeated until
	// nothing new is found.
	for changed := true; changed; {
		changed = false
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			n, err := strconv.Atoi(e.Name())
			if err != nil || containsInt(pids, n) {
				continue
			}
			b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
			if err != nil {
				continue
			}
			f := statFields(b)
			if len(f) > 2 {
				if pp, _ := strconv.Atoi(f[1]); containsInt(pids, pp) {
					pids = append(pids, n)
					changed = true
				}
			}
		}
	}
	var st procStats
	for i, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			if i == 0 {
				return st, err
			}
			continue
		}
		f := statFields(b)
		if len(f) < 13 {
			return st, fmt.Errorf("/proc/%d/stat: %d fields", p, len(f))
		}
		// After the command: state(0) ppid(1) ... utime(11) stime(12), in clock ticks of
		// 1/100 s (USER_HZ on Linux).
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		stt, _ := strconv.ParseInt(f[12], 10, 64)
		st.cpu += time.Duration(ut+stt) * 10 * time.Millisecond
		s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(s), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				st.rss += kb << 10
			}
		}
	}
	return st, nil
}

// statFields returns the fields of /proc/PID/stat after the command name (which may hold
// spaces), starting with the state.
func statFields(b []byte) []string {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// loadAverage is /proc/loadavg's first three figures.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
