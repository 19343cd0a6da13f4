// Command coredns is CoreDNS with only the plugins the tier-2 test cluster
// uses, so that Service names (ingest.<ns>.svc.cluster.local) resolve inside
// pods. Nothing is forwarded: names outside the cluster domain get NXDOMAIN,
// so no query leaves the machine.
package main

import (
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() {
	coremain.Run()
}
