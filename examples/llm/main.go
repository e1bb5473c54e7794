// Command llm streams a chat completion from an OpenAI-style API (OpenAI, or any server that
// speaks its chat completions format) and prints the text as it arrives:
//
//	OPENAI_API_KEY=sk-... go run ./examples/llm -model gpt-4o-mini "Write a haiku about rivers"
//
// The API answers a POST with a JSON body and an Authorization header with an event stream of
// "data: {...}" chunks, ended by "data: [DONE]". An error (a wrong key, a rate limit, a
// server error) is an HTTP status with a JSON body, {"error":{"message":...}}, whose message
// this program prints.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
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

// run parses the command line and streams the completion to out.
func run(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	flags := flag.NewFlagSet("llm", flag.ContinueOnError)
	url := flags.String("url", "https://api.openai.com/v1/chat/completions", "chat completions endpoint")
	model := flags.String("model", "gpt-4o-mini", "model name")
	if err := flags.Parse(args); err != nil {
		return err
	}
	prompt := strings.Join(flags.Args(), " ")
	if prompt == "" {
		return errors.New("llm: no prompt (usage: llm [-url URL] [-model MODEL] prompt)")
	}
	key := getenv("OPENAI_API_KEY")
	if key == "" {
		return errors.New("llm: set OPENAI_API_KEY")
	}
	if err := complete(ctx, http.DefaultClient, *url, key, *model, prompt, out); err != nil {
		return err
	}
	_, err := io.WriteString(out, "\n")
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
