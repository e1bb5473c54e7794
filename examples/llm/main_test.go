package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reiver/go-httpsse"
)

// api is a local server that speaks the OpenAI chat completions format: it checks the request
// as the real API does (POST, bearer key, JSON body asking for a stream) and answers with the
// chunks of answer, or with the error its test asks for.
type api struct {
	t        *testing.T
	answer   []string // the content pieces
	respond  func(w http.ResponseWriter, r *http.Request) bool
	requests atomic.Int32
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.requests.Add(1)
	if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
		http.NotFound(w, r)
		return
	}
	if r.Header.Get("Authorization") != "Bearer sk-test" {
		writeError(w, http.StatusUnauthorized, `{
    "error": {
        "message": "Incorrect API key provided: sk-wrong. You can find your API key at https://platform.openai.com/account/api-keys.",
        "type": "invalid_request_error",
        "param": null,
        "code": "invalid_api_key"
    }
}`)
		return
	}
	var req request
	if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&req) != nil ||
		!req.Stream || req.Model != "gpt-test" || len(req.Messages) != 1 || req.Messages[0].Role != "user" || req.Messages[0].Content != "Say hello" {
		a.t.Errorf("request body = %+v, want a streamed chat completion of \"Say hello\"", req)
		writeError(w, http.StatusBadRequest, `{"error":{"message":"bad request","type":"invalid_request_error"}}`)
		return
	}
	if accept := r.Header.Get("Accept"); accept != httpsse.ContentType {
		a.t.Errorf("Accept = %q, want %q", accept, httpsse.ContentType)
	}
	if a.respond != nil && a.respond(w, r) {
		return
	}
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	rc := http.NewResponseController(w)
	first := `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-test","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}`
	io.WriteString(w, "data: "+first+"\n\n")
	rc.Flush()
	for _, piece := range a.answer {
		b, _ := json.Marshal(piece)
		io.WriteString(w, `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-test","choices":[{"index":0,"delta":{"content":`+string(b)+`},"logprobs":null,"finish_reason":null}]}`+"\n\n")
		rc.Flush()
	}
	io.WriteString(w, `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-test","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}`+"\n\n")
	io.WriteString(w, "data: [DONE]\n\n")
}

func writeError(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func start(t *testing.T, a *api) string {
	t.Helper()
	a.t = t
	ts := httptest.NewServer(a)
	t.Cleanup(ts.Close)
	t.Cleanup(http.DefaultTransport.(*http.Transport).CloseIdleConnections)
	return ts.URL + "/v1/chat/completions"
}

func getenv(key string) func(string) string {
	return func(name string) string {
		if name == "OPENAI_API_KEY" {
			return key
		}
		return ""
	}
}

func TestStream(t *testing.T) {
	url := start(t, &api{answer: []string{"Hel", "lo", ", wor", "ld! é\n"}})
	var out strings.Builder
	if err := run(context.Background(), []string{"-url", url, "-model", "gpt-test", "Say", "hello"}, getenv("sk-test"), &out); err != nil {
		t.Fatalf("run error: %v", err)
	}
	if got, want := out.String(), "Hello, world! é\n\n"; got != want {
		t.Errorf("output = %q, want %q", got, want)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name    string
		key     string
		respond func(w http.ResponseWriter, r *http.Request) bool
		want    string // the whole message
		status  int    // 0: not a status error
	}{
		{
			name:   "401 wrong key",
			key:    "sk-wrong",
			want:   "llm: 401 Unauthorized: Incorrect API key provided: sk-wrong. You can find your API key at https://platform.openai.com/account/api-keys.",
			status: http.StatusUnauthorized,
		},
		{
			name: "429 rate limit",
			key:  "sk-test",
			respond: func(w http.ResponseWriter, r *http.Request) bool {
				w.Header().Set("Retry-After", "20")
				writeError(w, http.StatusTooManyRequests, `{"error":{"message":"Rate limit reached for gpt-test in organization org-1 on requests per min (RPM): Limit 3, Used 3, Requested 1.","type":"requests","param":null,"code":"rate_limit_exceeded"}}`)
				return true
			},
			want:   "llm: 429 Too Many Requests: Rate limit reached for gpt-test in organization org-1 on requests per min (RPM): Limit 3, Used 3, Requested 1. (retry after 20 s)",
			status: http.StatusTooManyRequests,
		},
		{
			name: "500 server error",
			key:  "sk-test",
			respond: func(w http.ResponseWriter, r *http.Request) bool {
				writeError(w, http.StatusInternalServerError, `{"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}`)
				return true
			},
			want:   "llm: 500 Internal Server Error: The server had an error while processing your request. Sorry about that!",
			status: http.StatusInternalServerError,
		},
		{
			name: "502 from a proxy, not JSON",
			key:  "sk-test",
			respond: func(w http.ResponseWriter, r *http.Request) bool {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(http.StatusBadGateway)
				io.WriteString(w, "<html>\n<body>upstream connect error</body>\n</html>\n")
				return true
			},
			want:   `llm: httpsse: unexpected status "502 Bad Gateway", want "200 OK": <html> <body>upstream connect error</body> </html>`,
			status: http.StatusBadGateway,
		},
		{
			name: "error in the stream",
			key:  "sk-test",
			respond: func(w http.ResponseWriter, r *http.Request) bool {
				w.Header().Set("Content-Type", "text/event-stream")
				io.WriteString(w, "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n")
				io.WriteString(w, "data: {\"error\":{\"message\":\"The model is overloaded.\",\"type\":\"server_error\"}}\n\n")
				return true
			},
			want: "llm: the API failed while answering: The model is overloaded.",
		},
		{
			name: "stream cut before [DONE]",
			key:  "sk-test",
			respond: func(w http.ResponseWriter, r *http.Request) bool {
				w.Header().Set("Content-Type", "text/event-stream")
				io.WriteString(w, "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n")
				return true
			},
			want: "llm: the answer ended before [DONE]",
		},
		{
			name: "not JSON",
			key:  "sk-test",
			respond: func(w http.ResponseWriter, r *http.Request) bool {
				w.Header().Set("Content-Type", "text/event-stream")
				io.WriteString(w, "data: {oops\n\n")
				return true
			},
			want: "llm: httpsse: decoding event data as JSON: invalid character 'o' looking for beginning of object key string",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &api{answer: []string{"never"}, respond: tt.respond}
			url := start(t, a)
			var out strings.Builder
			err := run(context.Background(), []string{"-url", url, "-model", "gpt-test", "Say hello"}, getenv(tt.key), &out)
			if err == nil || err.Error() != tt.want {
				t.Errorf("run error = %v\nwant %s", err, tt.want)
			}
			var re *httpsse.ResponseError
			if tt.status != 0 && (!errors.As(err, &re) || re.StatusCode != tt.status) {
				t.Errorf("run error = %v, want it to wrap a *httpsse.ResponseError with status %d", err, tt.status)
			}
			if n := a.requests.Load(); n != 1 {
				t.Errorf("the API got %d requests, want 1 (a POST is never sent again)", n)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	if err := run(context.Background(), nil, getenv("sk-test"), io.Discard); err == nil || !strings.Contains(err.Error(), "no prompt") {
		t.Errorf("run without a prompt: error = %v, want usage", err)
	}
	if err := run(context.Background(), []string{"hi"}, getenv(""), io.Discard); err == nil || !strings.Contains(err.Error(), "OPENAI_API_KEY") {
		t.Errorf("run without a key: error = %v, want it to name OPENAI_API_KEY", err)
	}
}

// Canceling the context (Ctrl-C) stops a stream in the middle.
func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	a := &api{respond: func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n")
		http.NewResponseController(w).Flush()
		cancel()
		<-r.Context().Done() // the client goes away, rather than the stream ending
		return true
	}}
	url := start(t, a)
	err := run(ctx, []string{"-url", url, "-model", "gpt-test", "Say hello"}, getenv("sk-test"), io.Discard)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("run error = %v, want context.Canceled", err)
	}
}

// -local starts the fake model on a loopback port and streams its answer, with no API key.
func TestLocal(t *testing.T) {
	defer func(d time.Duration) { tokenDelay = d }(tokenDelay)
	tokenDelay = time.Millisecond
	var out strings.Builder
	if err := run(context.Background(), []string{"-local", "Say", "hello"}, getenv(""), &out); err != nil {
		t.Fatalf("run -local error: %v", err)
	}
	want := `You asked: "Say hello". I am a fake model on your own machine, so here is a made-up answer, ` +
		"one word at a time: rivers carve the patient stone, and the water always finds its way to the sea.\n"
	if got := out.String(); got != want {
		t.Errorf("output = %q, want %q", got, want)
	}
	out.Reset()
	if err := run(context.Background(), []string{"-local"}, getenv(""), &out); err != nil || !strings.Contains(out.String(), defaultPrompt) {
		t.Errorf("run -local with no prompt = %v, output %q; want the answer to %q", err, out.String(), defaultPrompt)
	}
}

// startModelAPI serves the fake model on a test server; ended receives how each answer ended.
func startModelAPI(t *testing.T, delay time.Duration) (url string, ended chan endedAnswer) {
	t.Helper()
	ended = make(chan endedAnswer, 1)
	ts := httptest.NewServer(&modelAPI{model: model{delay: delay}, ended: func(tokens int, err error) {
		ended <- endedAnswer{tokens, err}
	}})
	t.Cleanup(ts.Close)
	t.Cleanup(http.DefaultTransport.(*http.Transport).CloseIdleConnections)
	return ts.URL + "/v1/chat/completions", ended
}

type endedAnswer struct {
	tokens int
	err    error
}

// cancelOnWrite cancels a context at its first write of text: the reader goes away after one token.
type cancelOnWrite struct {
	cancel context.CancelFunc
	got    strings.Builder
}

func (w *cancelOnWrite) Write(p []byte) (int, error) {
	if len(p) > 0 {
		w.cancel()
	}
	return w.got.Write(p)
}

// When the client goes away in the middle of an answer, the model stops generating at once,
// and the handler returns.
func TestModelStopsWhenClientGoes(t *testing.T) {
	url, ended := startModelAPI(t, 20*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &cancelOnWrite{cancel: cancel}
	err := complete(ctx, http.DefaultClient, url, "any", "fake", "Say hello", out)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("complete = %v, want context.Canceled", err)
	}
	if out.got.String() != "You" {
		t.Errorf("the client read %q, want the first token, \"You\"", out.got.String())
	}
	select {
	case e := <-ended:
		// The answer has 38 tokens; the model stops within a token or two of the client leaving.
		if e.tokens > 3 {
			t.Errorf("the model sent %d tokens, want it to stop after the first", e.tokens)
		}
		if !errors.Is(e.err, context.Canceled) && !errors.Is(e.err, httpsse.ErrClosed) {
			t.Errorf("the answer ended with %v, want the client's going away", e.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler did not return after the client went away")
	}
}

// The fake model's API answers requests it cannot serve as the real one does: a status and
// {"error":{"message":...}}, which the client turns into its message.
func TestModelAPIErrors(t *testing.T) {
	url, _ := startModelAPI(t, time.Millisecond)
	tests := []struct {
		name, method, url, body string
		status                  int
		message                 string
	}{
		{"GET", http.MethodGet, url, "", http.StatusMethodNotAllowed, "use POST"},
		{"not JSON", http.MethodPost, url, "{", http.StatusBadRequest, "the body is not a chat completions request: unexpected EOF"},
		{"not streamed", http.MethodPost, url, `{"messages":[{"role":"user","content":"hi"}]}`, http.StatusBadRequest, `this model only streams: send "stream": true`},
		{"no messages", http.MethodPost, url, `{"stream":true}`, http.StatusBadRequest, "messages is empty"},
		{"unknown path", http.MethodPost, strings.TrimSuffix(url, "/chat/completions"), `{}`, http.StatusNotFound, "unknown URL /v1: this server has only POST /v1/chat/completions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, tt.url, strings.NewReader(tt.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct{ Error apiError }
			json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tt.status || body.Error.Message != tt.message {
				t.Errorf("%s %s = %d %q, want %d %q", tt.method, tt.url, resp.StatusCode, body.Error.Message, tt.status, tt.message)
			}
		})
	}
}

// lockedBuilder is a strings.Builder for a writer in another goroutine.
type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (lb *lockedBuilder) Write(p []byte) (int, error) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return lb.b.Write(p)
}

func (lb *lockedBuilder) String() string {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return lb.b.String()
}

// -serve serves the fake model until the context is done, and another run reads from it.
func TestServe(t *testing.T) {
	defer func(d time.Duration) { tokenDelay = d }(tokenDelay)
	tokenDelay = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := &lockedBuilder{}
	served := make(chan error, 1)
	go func() { served <- run(ctx, []string{"-serve", "127.0.0.1:0"}, getenv(""), log) }()
	var url string
	for deadline := time.Now().Add(5 * time.Second); url == ""; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("-serve printed %q, want its URL", log.String())
		}
		for _, f := range strings.Fields(log.String()) {
			if strings.HasPrefix(f, "http://") {
				url = f
			}
		}
	}
	var out strings.Builder
	if err := run(context.Background(), []string{"-url", url, "hi"}, getenv("any"), &out); err != nil {
		t.Fatalf("run against -serve: %v", err)
	}
	if !strings.HasPrefix(out.String(), `You asked: "hi".`) {
		t.Errorf("output = %q", out.String())
	}
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("run -serve = %v after Ctrl-C, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("-serve did not stop when its context was done")
	}
	if !strings.Contains(log.String(), "answer sent: 38 tokens") {
		t.Errorf("-serve printed %q, want a line for the answer", log.String())
	}
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}
