package httpsse

import (
	"math/rand/v2"
	"time"
)

// DefaultMaxReconnectDelay is the longest a [Client] waits between two reconnection attempts
// unless [MaxReconnectDelay] says otherwise.
const DefaultMaxReconnectDelay = 30 * time.Second

// reconnectDelay returns how long to wait before the next reconnection attempt, after
// failures attempts in a row have failed since the stream last ended (0 for the first
// attempt), with base the reconnection time and ceiling the cap.
//
// The first attempt waits the reconnection time exactly, as EventSource does. After k
// failures the delay is drawn uniformly from [c/2, c], where c = base·2^k capped at ceiling:
// exponential growth, on average 0.75·c, with jitter so that clients that lost the same
// server do not come back in step. It is never shorter than the reconnection time, and a
// reconnection time above the cap is used as it is. A reconnection time under
// minBackoffBase grows from minBackoffBase instead, so that even "retry: 0" backs off.
func reconnectDelay(base, ceiling time.Duration, failures int) time.Duration {
	base = max(base, 0)
	if failures <= 0 {
		return base
	}
	ceiling = max(ceiling, base)
	c := max(base, minBackoffBase)
	for i := 0; i < failures && c < ceiling; i++ {
		if c > ceiling/2 {
			c = ceiling // doubling would pass the cap, or overflow
		} else {
			c *= 2
		}
	}
	c = min(c, ceiling)
	if c <= 0 {
		return 0
	}
	d := c/2 + time.Duration(rand.Int64N(int64(c-c/2)+1))
	return max(d, base)
}

// minBackoffBase is where the growth of the delay starts when the reconnection time is
// shorter: a zero reconnection time reconnects at once the first time, and then backs off
// 1 ms, 2 ms, 4 ms and so on like any other.
const minBackoffBase = time.Millisecond
