//go:build tools

// Package tools pins the real helm CLI that this module builds for simfleet's tests.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
