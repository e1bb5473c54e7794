package httpsse

import (
	"testing"
	"time"
)

func TestReconnectDelayFirstAttemptExact(t *testing.T) {
	for _, base := range []time.Duration{0, time.Millisecond, 3 * time.Second, time.Minute} {
		for _, ceiling := range []time.Duration{0, time.Second, DefaultMaxReconnectDelay} {
			if got := reconnectDelay(base, ceiling, 0); got != base {
				t.Errorf("reconnectDelay(%v, %v, 0) = %v, want %v", base, ceiling, got, base)
			}
		}
	}
}

func TestReconnectDelayBounds(t *testing.T) {
	tests := []struct {
		base, ceiling time.Duration
		failures      int
		lo, hi        time.Duration
	}{
		{time.Second, 30 * time.Second, 1, time.Second, 2 * time.Second},
		{time.Second, 30 * time.Second, 2, 2 * time.Second, 4 * time.Second},
		{time.Second, 30 * time.Second, 3, 4 * time.Second, 8 * time.Second},
		{time.Second, 30 * time.Second, 4, 8 * time.Second, 16 * time.Second},
		{time.Second, 30 * time.Second, 5, 15 * time.Second, 30 * time.Second}, // capped: c = 30 s
		{time.Second, 30 * time.Second, 1000, 15 * time.Second, 30 * time.Second},
		{3 * time.Second, 30 * time.Second, 1, 3 * time.Second, 6 * time.Second},
		// A zero reconnection time grows from 1 ms.
		{0, 30 * time.Second, 1, time.Millisecond, 2 * time.Millisecond},
		{0, 30 * time.Second, 10, 512 * time.Millisecond, 1024 * time.Millisecond},
		// A reconnection time above the cap is used as it is.
		{time.Minute, 30 * time.Second, 3, time.Minute, time.Minute},
		// No cap (zero): no backoff, every attempt waits the reconnection time.
		{time.Second, 0, 1, time.Second, time.Second},
		{time.Second, 0, 50, time.Second, time.Second},
		{0, 0, 50, 0, 0},
		// The cap close to the base: never below the base.
		{time.Second, 1500 * time.Millisecond, 9, time.Second, 1500 * time.Millisecond},
		// Huge values neither overflow nor go negative.
		{time.Duration(1<<62 + 1), time.Duration(1<<63 - 1), 70, time.Duration(1<<62 + 1), time.Duration(1<<63 - 1)},
		{time.Second, time.Duration(1<<63 - 1), 200, time.Duration(1<<63-1) / 2, time.Duration(1<<63 - 1)},
	}
	for _, tt := range tests {
		for range 200 {
			got := reconnectDelay(tt.base, tt.ceiling, tt.failures)
			if got < tt.lo || got > tt.hi {
				t.Errorf("reconnectDelay(%v, %v, %d) = %v, want between %v and %v", tt.base, tt.ceiling, tt.failures, got, tt.lo, tt.hi)
				break
			}
		}
	}
}

// Each failure in a row waits longer on average: 0.75 × base × 2^k until the cap.
func TestReconnectDelayGrowsOnAverage(t *testing.T) {
	const n = 2000
	base := 100 * time.Millisecond
	prev := time.Duration(0)
	for k := 1; k <= 8; k++ {
		var sum time.Duration
		for range n {
			sum += reconnectDelay(base, time.Hour, k)
		}
		mean := sum / n
		want := time.Duration(0.75 * float64(base) * float64(int(1)<<k))
		// The mean of n uniform draws on [c/2, c] is within 0.02c of 0.75c far beyond any
		// chance of a false failure (its standard deviation is 0.0032c).
		if diff := mean - want; diff < -want/30 || diff > want/30 {
			t.Errorf("mean reconnectDelay(%v, 1h, %d) over %d draws = %v, want about %v", base, k, n, mean, want)
		}
		if mean <= prev {
			t.Errorf("mean delay after %d failures %v, not longer than after %d: %v", k, mean, k-1, prev)
		}
		prev = mean
	}
}

// Clients that lost the same server do not come back in step.
func TestReconnectDelayJitter(t *testing.T) {
	seen := map[time.Duration]bool{}
	for range 100 {
		seen[reconnectDelay(3*time.Second, DefaultMaxReconnectDelay, 2)] = true
	}
	if len(seen) < 90 {
		t.Errorf("100 draws of reconnectDelay(3s, 30s, 2) gave %d different delays, want nearly all different", len(seen))
	}
	seen = map[time.Duration]bool{}
	for range 100 {
		seen[reconnectDelay(3*time.Second, DefaultMaxReconnectDelay, 100)] = true // at the cap
	}
	if len(seen) < 90 {
		t.Errorf("100 draws at the cap gave %d different delays, want nearly all different", len(seen))
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-5", 0},
		{"120", 2 * time.Minute},
		{"99999999999999999", time.Duration(1<<63-1) / time.Second * time.Second},
		{"soon", 0},
		{"1.5", 0},
		{now.Add(90 * time.Second).Format(http1123), 90 * time.Second},
		{now.Add(-time.Hour).Format(http1123), 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

const http1123 = "Mon, 02 Jan 2006 15:04:05 GMT"
