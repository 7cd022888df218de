//go:build tools

// Package tools pins the Kubernetes commands this module builds for simfleet's tests.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
