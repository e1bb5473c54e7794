module github.com/reiver/go-httpsse/bench

go 1.26

replace github.com/reiver/go-httpsse => ../

require (
	github.com/launchdarkly/eventsource v1.11.0
	github.com/r3labs/sse/v2 v2.10.0
	github.com/tmaxmax/go-sse v0.12.0
	gopkg.in/cenkalti/backoff.v1 v1.1.0
)

require (
	github.com/reiver/go-httpsse v0.0.0-00010101000000-000000000000
	golang.org/x/net v0.57.0
	golang.org/x/text v0.40.0 // indirect
)
