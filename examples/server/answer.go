package main

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/reiver/go-httpsse"
)

// maxQuestionLen is the longest question /answer?q= takes, in characters (the page's
// maxlength).
const maxQuestionLen = 200

// answerDelay is the time between two words of an answer, as a model takes to make each
// token. It is a variable so that tests can run it fast.
var answerDelay = 80 * time.Millisecond

// serveAnswer streams a generated answer to the question ?q=, one "word" event per word,
// then a "done" event whose data is the number of words, through httpsse.NewStream: one
// response, written directly, with no Route and no goroutine. It stops making words as soon
// as the page closes its EventSource (the request's context is done, and PublishEvent
// fails), and when the demo is closed.
func (d *demo) serveAnswer(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if q == "" || utf8.RuneCountInString(q) > maxQuestionLen || !utf8.ValidString(q) {
		http.Error(w, fmt.Sprintf("demo: q must be a question of 1 to %d characters", maxQuestionLen), http.StatusBadRequest)
		return
	}
	stream, err := httpsse.NewStream(w, r)
	if err != nil { // the response cannot be streamed; nothing was written yet
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	words := answerWords(q)
	timer := time.NewTimer(answerDelay)
	defer timer.Stop()
	for i, word := range words {
		if i > 0 {
			timer.Reset(answerDelay)
			select {
			case <-timer.C:
			case <-r.Context().Done():
				return
			case <-d.ctx.Done():
				return
			}
			word = " " + word
		}
		err := stream.PublishEvent(func(ew httpsse.EventWriter) error {
			ew.WriteEvent("word")
			return ew.WriteData(word)
		})
		if err != nil {
			return // the page has gone
		}
	}
	// Without this event the page could not tell the end of the answer from a broken
	// connection, and EventSource would ask again.
	stream.PublishEvent(func(ew httpsse.EventWriter) error {
		ew.WriteEvent("done")
		return ew.WriteData(strconv.Itoa(len(words)))
	})
}

// answerWords makes up the answer to q, as words.
func answerWords(q string) []string {
	return strings.Fields(fmt.Sprintf("You asked: “%s”. This answer is made up on the server and sent word by word "+
		"through httpsse.NewStream: one PublishEvent per word, each flushed at once, with no Route and no goroutine. "+
		"Press Stop and the browser closes its EventSource; the request's context ends, and the server stops writing.", q))
}
