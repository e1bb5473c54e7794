package httpsse_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	"github.com/reiver/go-httpsse"
)

// A shared Route mounted on a server sends every event to every subscriber.
func ExampleRoute() {
	route := httpsse.NewRoute()
	server := httptest.NewServer(route)
	defer server.Close()
	defer route.Close()

	go func() {
		// PublishEvent waits for the first subscriber, so these events are not lost.
		for _, city := range []string{"Vancouver", "Tehran"} {
			route.PublishEvent(func(w httpsse.EventWriter) error {
				w.WriteEvent("city")
				return w.WriteData(city)
			})
		}
	}()

	client, err := httpsse.Dial(server.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()
	for i := 0; i < 2 && client.Next(); i++ {
		var event httpsse.Event
		if err := client.Decode(&event); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(event.EventName(), event.EventDataCollapsed())
	}
	// Output:
	// city Vancouver
	// city Tehran
}

// Each PublishEvent call is one event; if the function fails, or any write in it failed,
// nothing of the event is sent.
func ExampleRoute_PublishEvent() {
	route := httpsse.NewRoute()
	server := httptest.NewServer(route)
	defer server.Close()

	client, err := httpsse.Dial(server.URL, httpsse.Reconnect(false))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()

	err = route.PublishEvent(func(w httpsse.EventWriter) error {
		w.WriteData("this event is not sent")
		return w.WriteID("no\nline breaks in an id")
	})
	fmt.Println(err)

	route.PublishEvent(func(w httpsse.EventWriter) error {
		w.WriteID("42")
		w.WriteRetry(5 * time.Second)
		return w.WriteData("line one\nline two")
	})
	route.Close() // ends the stream cleanly after what was published

	for client.Next() {
		var event httpsse.Event
		client.Decode(&event)
		fmt.Printf("%q\n", event.EventData())
	}
	fmt.Println(client.Err())
	// Output:
	// httpsse: id field contains '\n' at byte 2
	// ["line one" "line two"]
	// <nil>
}

// A Decoder parses any stream, such as the body of a response to a request of your own.
func ExampleNewDecoder() {
	stream := "retry: 10000\n" +
		": a comment\n" +
		"event: add\r\n" +
		"id: 1\r\n" +
		"data: 73857293\r\n" +
		"\r\n" +
		"data: second\n" +
		"data:  line\n" +
		"\n" +
		"data: not terminated, so not dispatched"

	decoder := httpsse.NewDecoder(strings.NewReader(stream))
	for decoder.Next() {
		var event httpsse.Event
		decoder.Decode(&event)
		fmt.Printf("name=%q id=%q data=%q\n", event.EventName(), event.EventID(), event.EventDataCollapsed())
	}
	fmt.Println(decoder.Err())
	// Output:
	// name="add" id="1" data="73857293"
	// name="" id="1" data="second\n line"
	// <nil>
}

func ExampleEvent_String() {
	var event httpsse.Event
	event.SetEventName("status")
	event.SetEventID("7")
	event.AppendEventDatum("Hello")
	event.AppendEventDatum("world!")
	fmt.Print(event.String())
	// Output:
	// event: status
	// id: 7
	// data: Hello
	// data: world!
}

// A heartbeat keeps an idle stream open through proxies; close it, or the Route, to stop it.
func ExampleHeartBeat() {
	route := httpsse.NewRoute()
	heartbeat := httpsse.HeartBeat(15*time.Second, route)
	defer heartbeat.Close()
	http.Handle("/events", route)
}

// LLM APIs stream events in answer to a POST with an Authorization header. DialRequest takes
// such a request; it is not sent again on reconnection unless ReconnectNonGET(true) is given.
func ExampleDialRequest() {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "data: {\"token\":\"Hel\"}\n\ndata: {\"token\":\"lo\"}\n\ndata: [DONE]\n\n")
	}))
	defer server.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, server.URL, strings.NewReader(`{"prompt":"Hello"}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	req.Header.Set("Authorization", "Bearer secret")
	req.Header.Set("Content-Type", "application/json")

	client, err := httpsse.DialRequest(req, httpsse.HTTPClient(server.Client()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()
	for client.Next() {
		var event httpsse.Event
		client.Decode(&event)
		fmt.Println(event.EventDataCollapsed())
	}
	fmt.Println(client.Err())
	// Output:
	// {"token":"Hel"}
	// {"token":"lo"}
	// [DONE]
	// <nil>
}

// Events turns a Client, or a Decoder, into a range loop; the stream's error, if any, comes
// last.
func ExampleEvents() {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: greeting\ndata: hello\n\nid: 2\ndata: world\n\n")
	}))
	defer server.Close()

	client, err := httpsse.Dial(server.URL, httpsse.Reconnect(false))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()
	for event, err := range httpsse.Events(client) {
		if err != nil {
			fmt.Println("error:", err)
			break
		}
		fmt.Printf("name=%q id=%q data=%q\n", event.EventName(), event.EventID(), event.EventDataCollapsed())
	}
	// Output:
	// name="greeting" id="" data="hello"
	// name="" id="2" data="world"
}

// WriteJSON publishes a value as an event's data; Event.DecodeJSON reads it back.
func ExampleWriteJSON() {
	type Price struct {
		Symbol string
		Cents  int
	}
	route := httpsse.NewRoute()
	server := httptest.NewServer(route)
	defer server.Close()
	defer route.Close()

	go route.PublishEvent(func(w httpsse.EventWriter) error {
		w.WriteEvent("price")
		return httpsse.WriteJSON(w, Price{"ACME", 1250})
	})

	client, err := httpsse.Dial(server.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()
	for event, err := range httpsse.Events(client) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Print(event.String())
		var p Price
		if err := event.DecodeJSON(&p); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%+v\n", p)
		break
	}
	// Output:
	// event: price
	// data: {"Symbol":"ACME","Cents":1250}
	//
	// {Symbol:ACME Cents:1250}
}

// A ResponseError carries the start of the body, where an API says what was wrong.
func ExampleResponseError() {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":{"message":"Incorrect API key provided","code":"invalid_api_key"}}`)
	}))
	defer server.Close()

	_, err := httpsse.Dial(server.URL)
	fmt.Println(err)
	var re *httpsse.ResponseError
	if errors.As(err, &re) {
		var body struct{ Error struct{ Message string } }
		json.Unmarshal(re.Body, &body)
		fmt.Println(re.StatusCode, body.Error.Message)
	}
	// Output:
	// httpsse: unexpected status "401 Unauthorized", want "200 OK": {"error":{"message":"Incorrect API key provided","code":"invalid_api_key"}}
	// 401 Incorrect API key provided
}

// OnReconnect reports each reconnection: what ended the connection and how long the Client
// waits. The first reconnection after a stream ends waits the reconnection time exactly;
// further failed attempts in a row back off, with jitter, up to MaxReconnectDelay.
func ExampleOnReconnect() {
	var requests atomic.Int32
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) > 1 {
			w.WriteHeader(http.StatusNoContent) // stop reconnecting
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "retry: 10\ndata: the only event\n\n")
	}))
	defer server.Close()

	client, err := httpsse.Dial(server.URL,
		httpsse.IdleTimeout(time.Minute),
		httpsse.MaxReconnectDelay(10*time.Second),
		httpsse.OnReconnect(func(err error, delay time.Duration) {
			fmt.Printf("reconnecting in %v after: %v\n", delay, err)
		}),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()
	for event, err := range httpsse.Events(client) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(event.EventDataCollapsed())
	}
	fmt.Println("done")
	// Output:
	// the only event
	// reconnecting in 10ms after: EOF
	// done
}

func ExampleRoute_perRequest() {
	handler := func(w http.ResponseWriter, r *http.Request) {
		route := httpsse.NewRoute()
		defer route.Close() // also ends the publishing loop below

		go func() {
			for i := 1; ; i++ {
				err := route.PublishEvent(func(w httpsse.EventWriter) error {
					w.WriteEvent("status")
					w.WriteID(fmt.Sprintf("status-%d", i))
					return w.WriteData("Hello world!")
				})
				if errors.Is(err, httpsse.ErrClosed) {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()

		route.ServeHTTP(w, r) // returns when the client goes away
	}
	server := httptest.NewServer(http.HandlerFunc(handler))
	defer server.Close()

	client, err := httpsse.Dial(server.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()
	for i := 0; i < 3 && client.Next(); i++ {
		var event httpsse.Event
		client.Decode(&event)
		fmt.Println(event.EventName(), event.EventID(), event.EventDataCollapsed())
	}
	// Output:
	// status status-1 Hello world!
	// status status-2 Hello world!
	// status status-3 Hello world!
}

func ExampleRoute_shared() {
	route := httpsse.NewRoute()
	server := httptest.NewUnstartedServer(route)
	server.Config.RegisterOnShutdown(func() { route.Close() })
	server.Start()
	defer server.Close()

	var clients []httpsse.Client
	for range 2 {
		// Dial returns once the headers are in, so both are subscribed before the publish.
		client, err := httpsse.Dial(server.URL, httpsse.Reconnect(false))
		if err != nil {
			fmt.Println(err)
			return
		}
		defer client.Close()
		clients = append(clients, client)
	}
	for _, price := range []string{"42.17", "42.20"} {
		route.PublishEvent(func(w httpsse.EventWriter) error {
			w.WriteEvent("price")
			return w.WriteData(price)
		})
	}
	route.Close()

	for i, client := range clients {
		for client.Next() {
			var event httpsse.Event
			client.Decode(&event)
			fmt.Println("subscriber", i, event.EventName(), event.EventDataCollapsed())
		}
		fmt.Println("subscriber", i, "ended:", client.Err())
	}
	// Output:
	// subscriber 0 price 42.17
	// subscriber 0 price 42.20
	// subscriber 0 ended: <nil>
	// subscriber 1 price 42.17
	// subscriber 1 price 42.20
	// subscriber 1 ended: <nil>
}

func ExampleDial() {
	route := httpsse.NewRoute()
	server := httptest.NewServer(route)
	defer server.Close()

	client, err := httpsse.Dial(server.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()
	go route.PublishEvent(func(w httpsse.EventWriter) error {
		w.WriteID("1")
		return w.WriteData("first line\nsecond line")
	})
	if client.Next() {
		var event httpsse.Event
		client.Decode(&event)
		fmt.Printf("id %s, data %q\n", event.EventID(), event.EventData())
	}

	route.Close()
	_, err = httpsse.Dial(server.URL)
	fmt.Println(err)
	var respErr *httpsse.ResponseError
	if errors.As(err, &respErr) {
		fmt.Println(respErr.StatusCode)
	}
	// Output:
	// id 1, data ["first line" "second line"]
	// httpsse: unexpected status "204 No Content", want "200 OK"
	// 204
}

func ExampleReplay() {
	route := httpsse.NewRoute(httpsse.Replay(100), httpsse.WaitForSubscriber(false))
	server := httptest.NewServer(route)
	defer server.Close()
	defer route.Close()

	publish := func(id, data string) {
		route.PublishEvent(func(w httpsse.EventWriter) error {
			w.WriteID(id)
			return w.WriteData(data)
		})
	}
	publish("1", "one")
	publish("2", "two")
	publish("3", "three")

	dial := func(lastEventID string) httpsse.Client {
		req, _ := http.NewRequest(http.MethodGet, server.URL, nil)
		req.Header.Set("Last-Event-ID", lastEventID)
		client, err := httpsse.DialRequest(req, httpsse.Reconnect(false))
		if err != nil {
			panic(err) // the server above answers 200 with an event stream
		}
		return client
	}
	show := func(client httpsse.Client, n int) {
		for i := 0; i < n && client.Next(); i++ {
			var event httpsse.Event
			client.Decode(&event)
			fmt.Printf("%q id %s: %s\n", event.EventName(), event.EventID(), event.EventDataCollapsed())
		}
	}

	back := dial("1") // saw event 1, then lost its connection
	defer back.Close()
	publish("4", "four") // live
	show(back, 3)

	lost := dial("an ID from before a restart")
	defer lost.Close()
	publish("5", "five")
	show(lost, 2)
	// Output:
	// "" id 2: two
	// "" id 3: three
	// "" id 4: four
	// "gap" id 4: an ID from before a restart
	// "" id 5: five
}

func ExampleNewTopics() {
	topics := httpsse.NewTopics()
	defer topics.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /rooms/{room}", func(w http.ResponseWriter, r *http.Request) {
		topics.Route(r.PathValue("room")).ServeHTTP(w, r)
	})
	server := httptest.NewServer(mux)
	defer server.Close()

	say := func(room, text string) {
		// Never waits: with nobody in the room, the event goes nowhere.
		topics.Route(room).PublishEvent(func(w httpsse.EventWriter) error {
			w.WriteEvent(room)
			return w.WriteData(text)
		})
	}
	say("lobby", "nobody hears this")

	client, err := httpsse.Dial(server.URL+"/rooms/lobby", httpsse.Reconnect(false))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()
	say("kitchen", "another room")
	say("lobby", "hello, lobby")

	if client.Next() {
		var event httpsse.Event
		client.Decode(&event)
		fmt.Println(event.EventName(), event.EventDataCollapsed())
	}
	// Output:
	// lobby hello, lobby
}

// A handler streams its own answer, one token per event, with no Route: NewStream sends the
// headers, and each PublishEvent writes and flushes one event. Once the client has gone,
// PublishEvent fails, and the handler stops producing tokens.
func ExampleNewStream() {
	handler := func(w http.ResponseWriter, r *http.Request) {
		stream, err := httpsse.NewStream(w, r)
		if err != nil { // the response cannot be streamed; nothing was written
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		for _, token := range []string{"Rivers", " run", " to", " the", " sea"} {
			err := stream.PublishEvent(func(w httpsse.EventWriter) error {
				w.WriteEvent("token")
				return w.WriteData(token)
			})
			if err != nil {
				return // the client has gone (errors.Is(err, httpsse.ErrClosed))
			}
		}
		stream.PublishEvent(func(w httpsse.EventWriter) error {
			w.WriteEvent("done")
			return w.WriteData("")
		})
	}
	server := httptest.NewServer(http.HandlerFunc(handler))
	defer server.Close()

	client, err := httpsse.Dial(server.URL, httpsse.Reconnect(false))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()
	var answer strings.Builder
	for event, err := range httpsse.Events(client) {
		if err != nil {
			fmt.Println(err)
			return
		}
		if event.EventName() == "done" {
			break
		}
		fmt.Printf("%s %q\n", event.EventName(), event.EventDataCollapsed())
		answer.WriteString(event.EventDataCollapsed())
	}
	fmt.Println(answer.String())
	// Output:
	// token "Rivers"
	// token " run"
	// token " to"
	// token " the"
	// token " sea"
	// Rivers run to the sea
}

func ExampleNewListener() {
	route := httpsse.NewRoute()
	mux := http.NewServeMux()
	mux.Handle("GET /events", route)
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "the page")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	srv.RegisterOnShutdown(func() { route.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	go srv.Serve(httpsse.NewListener(ln, srv))
	url := "http://" + ln.Addr().String()

	// The page: net/http serves it.
	resp, err := http.Get(url + "/")
	if err != nil {
		fmt.Println(err)
		return
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(page))

	// The stream: the listener serves it (Dial sends Accept: text/event-stream).
	client, err := httpsse.Dial(url+"/events", httpsse.Reconnect(false))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()
	route.PublishEvent(func(w httpsse.EventWriter) error { return w.WriteData("hello") })

	// Shutdown closes the Route, which sends what was published and ends the stream cleanly.
	srv.Shutdown(context.Background())
	for event, err := range httpsse.Events(client) {
		if err != nil {
			fmt.Println(err)
			break
		}
		fmt.Println(event.EventDataCollapsed())
	}
	fmt.Println("ended:", client.Err())
	// Output:
	// the page
	// hello
	// ended: <nil>
}
