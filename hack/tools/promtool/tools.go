//go:build tools

// Package tools pins promtool, used by tests/unit/test_alerts.py to check and
// unit-test the chart's alerting rules. Dev/test infrastructure only.
package tools

import _ "github.com/prometheus/prometheus/cmd/promtool"
