//go:build tools

// Package tools pins kube-score, the static checker run on the rendered Helm chart
// (tests/unit/test_chart_lint.py, config in .kube-score.yaml). Dev/test only.
package tools

import (
	_ "github.com/zegl/kube-score/cmd/kube-score"
)
