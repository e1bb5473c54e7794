package redisstream

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestClusterClient serves streams through a Redis Cluster of three masters, with a
// ClusterClient: streams whose names share a hash tag, so that one XREAD reads them all.
func TestClusterClient(t *testing.T) {
	requireRedis(t)
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli is not installed (Debian: redis-tools)")
	}
	var addrs []string
	for range 3 {
		r := startRedis(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
		addrs = append(addrs, r.addr)
	}
	out, err := exec.Command(cli, append([]string{"--cluster", "create"}, append(addrs, "--cluster-replicas", "0", "--cluster-yes")...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer client.Close()
	ctx := context.Background()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		info, err := client.ClusterInfo(ctx).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") && client.Set(ctx, "{t}:probe", "x", 0).Err() == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster is not ready: %v %q", err, info)
		}
	}

	topics := NewTopics(client, "{t}:")
	defer topics.Close()
	url := serve(t, topicsHandler(topics))
	var subs []*subscriber
	for i := range 3 {
		subs = append(subs, subscribe(t, fmt.Sprintf("%s/room%d", url, i), ""))
	}
	for i := range 3 {
		if err := publishN(topics.Route(fmt.Sprint("room", i)), "", fmt.Sprint("room", i), 4); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range subs {
		checkSame(t, fmt.Sprint("subscriber of room", i), s.waitFor(t, 4, 10*time.Second), streamEvents(t, client, fmt.Sprint("{t}:room", i)))
	}
	// A returning subscriber gets what it missed.
	first := streamEvents(t, client, "{t}:room0")[0].id
	s := subscribe(t, url+"/room0", first)
	checkSame(t, "returning subscriber", s.waitFor(t, 3, 10*time.Second), streamEvents(t, client, "{t}:room0")[1:])
}
