package redistest

import (
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster is a Redis Cluster made with redis-cli --cluster create: masters
// only ([StartCluster]) or masters with replicas
// ([StartClusterWithReplicas]).
type Cluster struct {
	// Nodes are its servers, masters and replicas; Nodes[i].Addr are the
	// seed addresses.
	Nodes []*Server

	t        testing.TB
	masters  []*Server
	replicas []*Server
}

// Masters returns the nodes that were masters when the cluster was made.
func (c *Cluster) Masters() []*Server { return c.masters }

// Replicas returns the nodes that were replicas when the cluster was made
// (none for [StartCluster]). Stopping one ([Server.Stop]) leaves every slot
// served: the cluster stays ok.
func (c *Cluster) Replicas() []*Server { return c.replicas }

// Addrs returns the nodes' addresses.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr
	}
	return addrs
}

// StartCluster starts a Cluster of n masters (at least 3) and waits until
// every node reports cluster_state:ok.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return startCluster(t, n, 0)
}

// StartClusterWithReplicas starts a Cluster of masters (at least 3) with
// replicas replicas each, and waits until every node reports
// cluster_state:ok and every replica is in sync with its master.
func StartClusterWithReplicas(t testing.TB, masters, replicas int) *Cluster {
	t.Helper()
	return startCluster(t, masters, replicas)
}

func startCluster(t testing.TB, masters, replicas int) *Cluster {
	t.Helper()
	Require(t, "redis-server", "redis-cli")
	c := &Cluster{t: t}
	for range masters * (1 + replicas) {
		c.Nodes = append(c.Nodes, c.startNode())
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	out, err := exec.Command("redis-cli", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.waitOK()
	for _, n := range c.Nodes {
		if strings.HasPrefix(n.Do("ROLE"), "master\n") {
			c.masters = append(c.masters, n)
		} else {
			c.replicas = append(c.replicas, n)
		}
	}
	if len(c.masters) != masters || len(c.replicas) != masters*replicas {
		t.Fatalf("redis-cli --cluster create made %d masters and %d replicas, want %d and %d",
			len(c.masters), len(c.replicas), masters, masters*replicas)
	}
	if replicas > 0 {
		c.waitReplicasOnline()
	}
	return c
}

// waitReplicasOnline makes the replicas look as they do in production: a
// replica that has replicated nothing yet is reported with health "loading"
// by CLUSTER SHARDS, and clients such as rueidis leave it out of their
// topology. A FLUSHALL on each (empty) master moves the replication offsets
// on; then it waits until every node reports every replica online.
func (c *Cluster) waitReplicasOnline() {
	c.t.Helper()
	for _, m := range c.masters {
		m.Do("FLUSHALL")
	}
	c.waitEveryNode("cluster replicas were not all reported online within 30s", func(n *Server) bool {
		shards, err := Do(n.Addr, nil, "CLUSTER", "SHARDS")
		return err == nil && strings.Count(shards, "\nhealth\nonline") == len(c.Nodes)
	})
}

// waitEveryNode waits, up to 30s, until ok holds for every node, and fails
// the test with msg otherwise.
func (c *Cluster) waitEveryNode(msg string, ok func(*Server) bool) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !all(c.Nodes, ok) {
		if time.Now().After(deadline) {
			c.t.Fatal(msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func all(nodes []*Server, ok func(*Server) bool) bool {
	for _, n := range nodes {
		if !ok(n) {
			return false
		}
	}
	return true
}

func (c *Cluster) startNode() *Server {
	c.t.Helper()
	dir := shortTempDir(c.t)
	s := &Server{t: c.t, Dir: dir, Socket: filepath.Join(dir, "redis.sock")}
	var err error
	for range 5 {
		var port int
		if port, err = freePort(10000); err != nil {
			c.t.Fatal(err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.args = []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", dir, "--unixsocket", s.Socket, "--logfile", filepath.Join(dir, "redis.log"),
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "3000",
		}
		if err = s.start(); err == nil {
			c.t.Cleanup(s.Stop)
			return s
		}
	}
	c.t.Fatalf("cluster node did not start: %v", err)
	return nil
}

// AddNode starts one more master, joins it to the cluster and moves
// slots to it with redis-cli --cluster rebalance, as an operator growing the
// cluster would.
func (c *Cluster) AddNode() *Server {
	c.t.Helper()
	s := c.startNode()
	if out, err := exec.Command("redis-cli", "--cluster", "add-node", s.Addr, c.Nodes[0].Addr).CombinedOutput(); err != nil {
		c.t.Fatalf("redis-cli --cluster add-node: %v\n%s", err, out)
	}
	c.Nodes = append(c.Nodes, s)
	c.masters = append(c.masters, s)
	c.waitOK()
	out, err := exec.Command("redis-cli", "--cluster", "rebalance", c.Nodes[0].Addr,
		"--cluster-use-empty-masters", "--cluster-yes").CombinedOutput()
	if err != nil {
		c.t.Fatalf("redis-cli --cluster rebalance: %v\n%s", err, out)
	}
	c.waitOK()
	return s
}

func (c *Cluster) waitOK() {
	c.t.Helper()
	// Every node must see the cluster as ok and know every other node
	// (gossip takes a moment after add-node), and every replica must be
	// connected to its master.
	c.waitEveryNode("cluster did not reach cluster_state:ok within 30s", func(n *Server) bool {
		info, err := Do(n.Addr, nil, "CLUSTER", "INFO")
		if err != nil || !strings.Contains(info, "cluster_state:ok") ||
			!strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(len(c.Nodes))+"\r") {
			return false
		}
		role, err := Do(n.Addr, nil, "ROLE")
		return err == nil && !(strings.HasPrefix(role, "slave\n") && !strings.Contains(role, "\nconnected\n"))
	})
}
