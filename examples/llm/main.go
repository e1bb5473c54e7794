// Command llm streams a chat completion from an OpenAI-style API (OpenAI, or any server that
// speaks its chat completions format) and prints the text as it arrives:
//
//	OPENAI_API_KEY=sk-... go run ./examples/llm -model gpt-4o-mini "Write a haiku about rivers"
//
// The API answers a POST with a JSON body and an Authorization header with an event stream of
// "data: {...}" chunks, ended by "data: [DONE]". An error (a wrong key, a rate limit, a
// server error) is an HTTP status with a JSON body, {"error":{"message":...}}, whose message
// this program prints.
//
// It also holds the other side: a fake model, local and free, served in the same format by a
// handler that streams its tokens with [httpsse.NewStream] and stops the model when the
// client goes away (server.go). With -local the program starts it on a loopback port and
// reads the answer from it; with -serve it only serves it, for curl or for another run:
//
//	go run ./examples/llm -local "Write a haiku about rivers"
//	go run ./examples/llm -serve localhost:8081
//	curl -N localhost:8081/v1/chat/completions -d '{"stream":true,"messages":[{"role":"user","content":"hi"}]}'
//	OPENAI_API_KEY=any go run ./examples/llm -url http://localhost:8081/v1/chat/completions hi
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/reiver/go-httpsse"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run parses the command line and streams the completion to out, or, with -serve, serves
// the fake model until ctx is done.
func run(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	flags := flag.NewFlagSet("llm", flag.ContinueOnError)
	url := flags.String("url", "https://api.openai.com/v1/chat/completions", "chat completions endpoint")
	model := flags.String("model", "gpt-4o-mini", "model name")
	local := flags.Bool("local", false, "ask the built-in fake model, served on a loopback port, instead of -url")
	serve := flags.String("serve", "", "only serve the built-in fake model's API on this address, such as localhost:8081")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *serve != "" {
		return serveModel(ctx, *serve, out)
	}
	prompt := strings.Join(flags.Args(), " ")
	if prompt == "" && *local {
		prompt = defaultPrompt
	}
	if prompt == "" {
		return errors.New("llm: no prompt (usage: llm [-local] [-url URL] [-model MODEL] prompt, or llm -serve ADDR)")
	}
	key := getenv("OPENAI_API_KEY")
	if *local {
		localURL, stop, err := startModel()
		if err != nil {
			return err
		}
		defer stop()
		*url = localURL
		if key == "" {
			key = "local" // the fake model takes any key
		}
	}
	if key == "" {
		return errors.New("llm: set OPENAI_API_KEY, or add -local to ask the built-in fake model")
	}
	if err := complete(ctx, http.DefaultClient, *url, key, *model, prompt, out); err != nil {
		return err
	}
	_, err := io.WriteString(out, "\n")
	return err
}

// defaultPrompt is what -local asks when the command line has no prompt.
const defaultPrompt = "Write a haiku about rivers"

// tokenDelay is how long the fake model takes to make each token.
var tokenDelay = 40 * time.Millisecond

// startModel serves the fake model on a loopback port, and returns the URL of its chat
// completions endpoint and a function that stops it.
func startModel() (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("llm: starting the local model: %w", err)
	}
	srv := &http.Server{Handler: &modelAPI{model: model{delay: tokenDelay}}, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()
	stop = func() {
		srv.Close()
		<-served
	}
	return "http://" + ln.Addr().String() + "/v1/chat/completions", stop, nil
}

// serveModel serves the fake model's API on addr until ctx is done, and reports how each
// answer ended. Every request's context is ctx's child, so that on Ctrl-C the models stop,
// their streams end and Shutdown returns at once.
func serveModel(ctx context.Context, addr string, out io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("llm: cannot serve the fake model: %w", err)
	}
	var mu sync.Mutex
	report := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, format+"\n", args...)
	}
	a := &modelAPI{model: model{delay: tokenDelay}, ended: func(tokens int, err error) {
		if err != nil {
			report("answer stopped after %d tokens: %v", tokens, err)
		} else {
			report("answer sent: %d tokens", tokens)
		}
	}}
	srv := &http.Server{
		Handler:           a,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      10 * time.Second, // does not cut the streams: NewStream lifts it
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	report("the fake model answers at http://%s/v1/chat/completions (Ctrl-C stops it)", ln.Addr())
	select {
	case err := <-served:
		return fmt.Errorf("llm: serving the fake model: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	<-served
	return err
}

// request is the body of a chat completions request.
type request struct {
	Model    string    `json:"model"`
	Messages []message `json:"messages"`
	Stream   bool      `json:"stream"`
}

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// chunk is one event of the stream: a piece of the answer, or an error that happened after
// the stream began.
type chunk struct {
	Choices []struct {
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
	} `json:"choices"`
	Error *apiError `json:"error"`
}

// apiError is the "error" object of the API's error bodies and chunks.
type apiError struct {
	Message string `json:"message"`
	Type    string `json:"type"`
}

// complete sends prompt to the chat completions endpoint at url and writes the answer's text
// to out as it arrives.
func complete(ctx context.Context, client *http.Client, url, key, model, prompt string, out io.Writer) error {
	body, err := json.Marshal(request{
		Model:    model,
		Messages: []message{{Role: "user", Content: prompt}},
		Stream:   true,
	})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")

	// A POST is never sent again by reconnection (that would pay for the prompt twice), so
	// the stream ends with its connection. IdleTimeout notices a connection gone silent.
	stream, err := httpsse.DialRequest(req, httpsse.HTTPClient(client), httpsse.IdleTimeout(2*time.Minute))
	if err != nil {
		return describe(err)
	}
	defer stream.Close()

	for event, err := range httpsse.Events(stream) {
		if err != nil {
			return fmt.Errorf("llm: reading the answer: %w", err)
		}
		if event.EventDataCollapsed() == "[DONE]" {
			return nil
		}
		var c chunk
		if err := event.DecodeJSON(&c); err != nil {
			return fmt.Errorf("llm: %w", err)
		}
		if c.Error != nil {
			return fmt.Errorf("llm: the API failed while answering: %s", c.Error.Message)
		}
		for _, choice := range c.Choices {
			if _, err := io.WriteString(out, choice.Delta.Content); err != nil {
				return err
			}
		}
	}
	return errors.New("llm: the answer ended before [DONE]")
}

// describe turns an error response into the API's own message, with the status and, for a
// rate limit, how long to wait.
func describe(err error) error {
	var re *httpsse.ResponseError
	if !errors.As(err, &re) {
		return fmt.Errorf("llm: %w", err)
	}
	var body struct {
		Error apiError `json:"error"`
	}
	if json.Unmarshal(re.Body, &body) != nil || body.Error.Message == "" {
		return fmt.Errorf("llm: %w", err) // not the API's JSON: show what came
	}
	msg := fmt.Sprintf("llm: %s: %s", re.Status, body.Error.Message)
	if wait := re.Header.Get("Retry-After"); wait != "" {
		msg += fmt.Sprintf(" (retry after %s s)", wait)
	}
	return &statusError{msg: msg, err: err}
}

// statusError is the API's message, wrapping the *httpsse.ResponseError it came in.
type statusError struct {
	msg string
	err error
}

func (e *statusError) Error() string { return e.msg }
func (e *statusError) Unwrap() error { return e.err }
