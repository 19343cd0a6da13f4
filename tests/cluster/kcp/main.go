// Command kcp is a multi-call binary holding the Kubernetes control-plane
// components the test suite runs as separate OS processes.
//
// One binary instead of four shares the compilation of client-go, apiserver
// and their dependencies, which roughly halves a cold build. The component
// is chosen by the first argument (`kcp kube-apiserver --flags...`) or by
// the name the binary is invoked under (a symlink named `etcd`).
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	kubectl "k8s.io/kubectl/pkg/cmd"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	name := filepath.Base(os.Args[0])
	args := os.Args
	if name == "kcp" {
		if len(os.Args) < 2 {
			fmt.Fprintln(os.Stderr, "usage: kcp etcd|kube-apiserver|kube-controller-manager|kubectl [flags]")
			os.Exit(2)
		}
		name = os.Args[1]
		args = os.Args[1:]
	}
	os.Args = args
	switch name {
	case "etcd":
		etcdmain.Main(args)
	case "kube-apiserver":
		os.Exit(cli.Run(apiserver.NewAPIServerCommand()))
	case "kube-controller-manager":
		os.Exit(cli.Run(controllermanager.NewControllerManagerCommand()))
	case "kubectl":
		os.Exit(cli.Run(kubectl.NewDefaultKubectlCommand()))
	default:
		fmt.Fprintf(os.Stderr, "kcp: unknown component %q\n", name)
		os.Exit(2)
	}
}
