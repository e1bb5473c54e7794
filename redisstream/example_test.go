package redisstream_test

import (
	"log"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"
	httpsse "github.com/reiver/go-httpsse"
	"github.com/reiver/go-httpsse/redisstream"
)

// Every instance of the program runs the same code: an event published by any of them
// reaches the subscribers of all, and a subscriber may reconnect to any of them.
func ExampleNewRoute() {
	client := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	defer client.Close()

	route := redisstream.NewRoute(client, "news")
	defer route.Close()
	hb := httpsse.HeartBeat(15*time.Second, route) // to this instance's subscribers only
	defer hb.Close()

	http.Handle("GET /news", route)
	http.HandleFunc("POST /news", func(w http.ResponseWriter, req *http.Request) {
		err := route.PublishEvent(func(w httpsse.EventWriter) error {
			_ = w.WriteEvent("headline")
			return w.WriteData(req.FormValue("headline"))
		})
		if err != nil { // Redis unreachable: nothing was sent
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	})
	log.Fatal(http.ListenAndServe(":8080", nil))
}

// One stream per room, all read over one connection per process.
func ExampleNewTopics() {
	client := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	defer client.Close()

	rooms := redisstream.NewTopics(client, "chat:")
	defer rooms.Close()

	http.HandleFunc("GET /rooms/{room}", func(w http.ResponseWriter, req *http.Request) {
		rooms.Route(req.PathValue("room")).ServeHTTP(w, req)
	})
	http.HandleFunc("POST /rooms/{room}", func(w http.ResponseWriter, req *http.Request) {
		err := rooms.Route(req.PathValue("room")).PublishEvent(func(w httpsse.EventWriter) error {
			return w.WriteData(req.FormValue("message"))
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	})
	log.Fatal(http.ListenAndServe(":8080", nil))
}
