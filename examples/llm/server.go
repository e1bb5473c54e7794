package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/reiver/go-httpsse"
)

// model is a fake language model that runs on this machine: it answers any prompt with a
// made-up text, one token at a time, as slowly as a real model produces them.
type model struct {
	delay time.Duration // time to produce each token
}

// Generate produces the answer to prompt and calls emit with each token as it is made. It
// stops, returning the error, when emit fails or when ctx is done: a real model is costly
// to run, and nobody is waiting for its answer any more.
func (m model) Generate(ctx context.Context, prompt string, emit func(token string) error) error {
	answer := fmt.Sprintf("You asked: %q. I am a fake model on your own machine, so here is a made-up answer, "+
		"one word at a time: rivers carve the patient stone, and the water always finds its way to the sea.", prompt)
	timer := time.NewTimer(m.delay)
	defer timer.Stop()
	for i, word := range strings.Fields(answer) {
		timer.Reset(m.delay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		if i > 0 {
			word = " " + word // a token carries its leading space, as a real model's do
		}
		if err := emit(word); err != nil {
			return err
		}
	}
	return nil
}

// modelAPI serves the model in the OpenAI chat completions format, which this program's client
// reads: POST /v1/chat/completions with {"model", "messages", "stream": true} is answered with
// an event stream of "data: {chunk}" events, ended by "data: [DONE]". It takes any API key.
type modelAPI struct {
	model model
	// ended, if not nil, is told how each answer ended: the tokens sent, and nil or the
	// error that stopped the model (the client going away, most often).
	ended func(tokens int, err error)
}

// completionChunk is one event of a streamed chat completion.
type completionChunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []chunkChoice `json:"choices"`
}

type chunkChoice struct {
	Index        int        `json:"index"`
	Delta        chunkDelta `json:"delta"`
	FinishReason *string    `json:"finish_reason"`
}

type chunkDelta struct {
	Role    string `json:"role,omitempty"`
	Content string `json:"content,omitempty"`
}

func (a *modelAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/chat/completions" {
		answerError(w, http.StatusNotFound, "invalid_request_error", "unknown URL "+r.URL.Path+": this server has only POST /v1/chat/completions")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		answerError(w, http.StatusMethodNotAllowed, "invalid_request_error", "use POST")
		return
	}
	var req request
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		answerError(w, http.StatusBadRequest, "invalid_request_error", "the body is not a chat completions request: "+err.Error())
		return
	}
	if !req.Stream {
		answerError(w, http.StatusBadRequest, "invalid_request_error", `this model only streams: send "stream": true`)
		return
	}
	if len(req.Messages) == 0 {
		answerError(w, http.StatusBadRequest, "invalid_request_error", "messages is empty")
		return
	}
	prompt := req.Messages[len(req.Messages)-1].Content

	stream, err := httpsse.NewStream(w, r)
	if err != nil { // the response cannot be streamed; nothing was written yet
		answerError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	c := completionChunk{
		ID:      fmt.Sprintf("chatcmpl-%d", time.Now().UnixNano()),
		Object:  "chat.completion.chunk",
		Created: time.Now().Unix(),
		Model:   req.Model,
	}
	send := func(delta chunkDelta, finish *string) error {
		c.Choices = []chunkChoice{{Delta: delta, FinishReason: finish}}
		return stream.PublishEvent(func(w httpsse.EventWriter) error { return httpsse.WriteJSON(w, c) })
	}
	tokens := 0
	// The model stops when the request's context is done, which is when the client goes:
	// its next token is not made, let alone sent.
	err = send(chunkDelta{Role: "assistant"}, nil)
	if err == nil {
		err = a.model.Generate(r.Context(), prompt, func(token string) error {
			if err := send(chunkDelta{Content: token}, nil); err != nil {
				return err
			}
			tokens++
			return nil
		})
	}
	if err == nil {
		stop := "stop"
		err = send(chunkDelta{}, &stop)
	}
	if err == nil {
		err = stream.PublishEvent(func(w httpsse.EventWriter) error { return w.WriteData("[DONE]") })
	}
	if a.ended != nil {
		a.ended(tokens, err)
	}
}

// answerError answers with the API's error body, {"error":{"message":...,"type":...}}.
func answerError(w http.ResponseWriter, status int, kind, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]apiError{"error": {Message: message, Type: kind}})
}
