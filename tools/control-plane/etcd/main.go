// Command etcd is upstream etcd's server main, built at the version that the pinned Kubernetes
// release requires, for simfleet's tests only (Debian's etcd 3.4 lacks RequestWatchProgress).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
