// Command client is the client example of the original README of go-httpsse,
// unchanged but for the URL, which comes from the -url flag. By default it
// reads the shared stream of the demo server (go run ./examples/server).
package main

import (
	"flag"
	"fmt"

	"github.com/reiver/go-httpsse"
)

var urlFlag = flag.String("url", "http://localhost:8080/events", "URL of the event stream to read")

func main() {
	flag.Parse()
	var url string = *urlFlag

	client, err := httpsse.Dial(url)
	if nil != err {
		fmt.Printf("ERROR: had problem dialing %q: %s \n", url, err)
		return
	}
	if nil == client {
		fmt.Println("ERROR: nil client")
		return
	}

	for client.Next() {
		var event httpsse.Event
		err := client.Decode(&event)
		if nil != err {
			fmt.Printf("ERROR: had problem trying to decode the event: %s", err)
			continue
		}

		// You would probably do something useful once you had the event.
		fmt.Println("EVENT:\n", event)
	}
	if err := client.Err(); nil != err {
		fmt.Printf("CLIENT-ERROR: %s", err)
		return
	}
}
