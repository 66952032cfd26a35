package main

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// normalize turns any JSON-able value into plain JSON types (float64 numbers,
// map[string]any, []any), so a YAML fixture and a Lua result compare by value.
func normalize(v any) any {
	raw, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if err := json.Unmarshal(raw, &out); err != nil {
		return v
	}
	return out
}

// diffValues lists, one line per differing path, what was expected and what came out.
func diffValues(path string, expected, actual any) []string {
	if reflect.DeepEqual(expected, actual) {
		return nil
	}
	em, eIsMap := expected.(map[string]any)
	am, aIsMap := actual.(map[string]any)
	if eIsMap && aIsMap {
		var out []string
		for _, k := range unionKeys(em, am) {
			sub := path + "." + k
			if strings.ContainsAny(k, "./") {
				sub = path + "[" + strconv.Quote(k) + "]"
			}
			ev, eok := em[k]
			av, aok := am[k]
			switch {
			case !aok:
				out = append(out, fmt.Sprintf("%s: missing, expected %s", sub, show(ev)))
			case !eok:
				out = append(out, fmt.Sprintf("%s: unexpected %s", sub, show(av)))
			default:
				out = append(out, diffValues(sub, ev, av)...)
			}
		}
		return out
	}
	el, eIsList := expected.([]any)
	al, aIsList := actual.([]any)
	if eIsList && aIsList && len(el) == len(al) {
		var out []string
		for i := range el {
			out = append(out, diffValues(fmt.Sprintf("%s[%d]", path, i), el[i], al[i])...)
		}
		return out
	}
	return []string{fmt.Sprintf("%s: expected %s, got %s", orRoot(path), show(expected), show(actual))}
}

func orRoot(path string) string {
	if path == "" {
		return "(root)"
	}
	return path
}

func unionKeys(a, b map[string]any) []string {
	seen := map[string]bool{}
	for k := range a {
		seen[k] = true
	}
	for k := range b {
		seen[k] = true
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func show(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	s := string(raw)
	if len(s) > 200 {
		s = s[:197] + "..."
	}
	return s
}

// mergePatch is the RFC 7386 JSON merge patch from `from` to `to`: what Argo CD
// sends to the API server after an action (removed keys become null).
func mergePatch(from, to map[string]any) map[string]any {
	patch := map[string]any{}
	for k, before := range from {
		after, ok := to[k]
		if !ok {
			patch[k] = nil
			continue
		}
		bm, bIsMap := before.(map[string]any)
		am, aIsMap := after.(map[string]any)
		if bIsMap && aIsMap {
			if sub := mergePatch(bm, am); len(sub) > 0 {
				patch[k] = sub
			}
			continue
		}
		if !reflect.DeepEqual(before, after) {
			patch[k] = after
		}
	}
	for k, after := range to {
		if _, ok := from[k]; !ok {
			patch[k] = after
		}
	}
	return patch
}
