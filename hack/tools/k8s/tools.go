//go:build tools

// Package tools pins the Kubernetes control-plane binaries used by the local
// dev/test stack (hack/stack). Nothing here ships in the product.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
