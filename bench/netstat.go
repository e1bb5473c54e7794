package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// tcpCounters are the kernel's TCP counters that tell a stalled stream's cause, read from
// /proc/net/netstat (TcpExt) and /proc/net/snmp (Tcp). They count for the whole machine, so a
// difference over a run includes whatever else ran meanwhile.
type tcpCounters map[string]int64

// watchedCounters are the counters that printed runs show, in order.
var watchedCounters = []string{"TCPToZeroWindowAdv", "TCPWantZeroWindowAdv", "TCPTimeouts", "TCPLossProbes", "TCPDSACKRecv", "RetransSegs", "PruneCalled", "TCPBacklogDrop", "TCPWinProbe", "TCPSpuriousRTOs", "DelayedACKs", "TCPFromZeroWindowAdv", "TCPZeroWindowDrop", "TCPRcvQDrop", "TCPOFOQueue"}

// readTCPCounters returns the current counters, or nil where /proc/net is not there.
func readTCPCounters() tcpCounters {
	c := tcpCounters{}
	for _, path := range []string{"/proc/net/netstat", "/proc/net/snmp"} {
		f, err := os.Open(path)
		if err != nil {
			return nil
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		var names []string
		for sc.Scan() {
			prefix, rest, _ := strings.Cut(sc.Text(), ": ")
			if prefix != "TcpExt" && prefix != "Tcp" {
				continue
			}
			fields := strings.Fields(rest)
			if names == nil || len(names) != len(fields) || fields[0] == names[0] {
				names = fields
				continue
			}
			for i, v := range fields {
				n, _ := strconv.ParseInt(v, 10, 64)
				c[names[i]] = n
			}
			names = nil
		}
		f.Close()
	}
	return c
}

// since returns the counters' growth from before to c.
func (c tcpCounters) since(before tcpCounters) tcpCounters {
	d := tcpCounters{}
	for k, v := range c {
		d[k] = v - before[k]
	}
	return d
}

// String shows the watched counters that are not zero.
func (c tcpCounters) String() string {
	var b strings.Builder
	for _, k := range watchedCounters {
		if c[k] != 0 {
			fmt.Fprintf(&b, " %s=%d", k, c[k])
		}
	}
	if b.Len() == 0 {
		return " none"
	}
	return b.String()
}
