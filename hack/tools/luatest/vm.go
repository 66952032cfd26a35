package main

// The Lua sandbox, set up the way Argo CD runs scripts that come from argocd-cm
// (util/lua in argoproj/argo-cd, UseOpenLibs=false): gopher-lua with only the
// package, base and table libraries plus a "safe" os library (os.time, os.date),
// a one-second deadline, the resource as the global `obj`, and the script's return
// value converted to JSON with layeh.com/gopher-json. No string or math library:
// a script that calls string.format works in a plain Lua REPL and fails in Argo CD,
// so it must fail here too.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
)

// Health is Argo CD's health.HealthStatus as a script returns it.
type Health struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// Action is Argo CD's ResourceAction as discovery.lua describes it.
type Action struct {
	Name        string          `json:"name"`
	Disabled    bool            `json:"disabled"`
	DisplayName string          `json:"displayName,omitempty"`
	IconClass   string          `json:"iconClass,omitempty"`
	Params      json.RawMessage `json:"params,omitempty"`
}

// Health statuses Argo CD accepts from a script; anything else becomes Unknown.
var validHealth = map[string]bool{
	"Healthy": true, "Progressing": true, "Suspended": true, "Degraded": true, "Missing": true, "Unknown": true,
}

const scriptDeadline = time.Second

// Sandbox runs one script against one object.
type Sandbox struct {
	Clock Clock
}

func (s Sandbox) run(obj map[string]any, script string) (lua.LValue, error) {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, s.Clock.openOs},
	} {
		if err := L.CallByParam(lua.P{Fn: L.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return nil, fmt.Errorf("opening %s library: %w", lib.name, err)
		}
	}
	L.PreloadModule(lua.OsLibName, s.Clock.loadOs) // local os = require("os")
	ctx, cancel := context.WithTimeout(context.Background(), scriptDeadline)
	defer cancel()
	L.SetContext(ctx)
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(script); err != nil {
		return nil, err
	}
	return L.Get(-1), nil
}

// toLua mirrors how Argo CD hands an unstructured object to Lua: maps and slices
// become tables, numbers LNumber, null nil.
func toLua(L *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case json.Number:
		return lua.LString(v)
	case []any:
		t := L.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(L, item))
		}
		return t
	case map[string]any:
		t := L.CreateTable(0, len(v))
		for k, item := range v {
			t.RawSetH(lua.LString(k), toLua(L, item))
		}
		return t
	}
	return lua.LNil
}

func encode(value lua.LValue, what string) ([]byte, error) {
	if value.Type() != lua.LTTable {
		return nil, fmt.Errorf("expect table output from Lua script, not %s (%s)", value.Type(), what)
	}
	return luajson.Encode(value)
}

// Health runs health.lua.
func (s Sandbox) Health(obj map[string]any, script string) (Health, error) {
	ret, err := s.run(obj, script)
	if err != nil {
		return Health{}, err
	}
	raw, err := encode(ret, "health")
	if err != nil {
		return Health{}, err
	}
	var h Health
	if err := json.Unmarshal(raw, &h); err != nil {
		return Health{}, fmt.Errorf("health result %s: %w", raw, err)
	}
	if !validHealth[h.Status] {
		return Health{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return h, nil
}

// Discovery runs discovery.lua; the result is sorted by name.
func (s Sandbox) Discovery(obj map[string]any, script string) ([]Action, error) {
	ret, err := s.run(obj, script)
	if err != nil {
		return nil, err
	}
	raw, err := encode(ret, "discovery")
	if err != nil {
		return nil, err
	}
	actions := []Action{}
	if string(raw) == "[]" { // an empty Lua table encodes as an empty array
		return actions, nil
	}
	var byName map[string]json.RawMessage
	if err := json.Unmarshal(raw, &byName); err != nil {
		return nil, fmt.Errorf("discovery must return a table keyed by action name, got %s", raw)
	}
	for name, value := range byName {
		var asList []any
		if json.Unmarshal(value, &asList) == nil { // {} encodes as [] and means "enabled, no details"
			actions = append(actions, Action{Name: name})
			continue
		}
		a := Action{Name: name}
		if err := json.Unmarshal(value, &a); err != nil {
			return nil, fmt.Errorf("action %q: %s is not an action description: %w", name, value, err)
		}
		actions = append(actions, a)
	}
	sort.Slice(actions, func(i, j int) bool { return actions[i].Name < actions[j].Name })
	return actions, nil
}

// Action runs action.lua and returns the object Argo CD would patch the live one to.
func (s Sandbox) Action(obj map[string]any, script string) (map[string]any, error) {
	input, err := deepCopy(obj)
	if err != nil {
		return nil, err
	}
	ret, err := s.run(input, script)
	if err != nil {
		return nil, err
	}
	raw, err := encode(ret, "action")
	if err != nil {
		return nil, err
	}
	if len(raw) > 0 && raw[0] == '[' {
		return nil, errors.New("the action returned a list (Argo CD's multi-resource form); luatest checks single-object actions only")
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("action result %s: %w", raw, err)
	}
	return restoreEmptyMaps(out, obj), nil
}

// restoreEmptyMaps does what Argo CD does to an action's result before patching: Lua
// cannot tell an empty map from an empty list, so wherever the result holds an empty
// list and the original held a map, the original map is put back. (So an action that
// empties a map by deleting its last key has no effect: delete the map instead.)
func restoreEmptyMaps(result, original map[string]any) map[string]any {
	for key, before := range original {
		after, ok := result[key]
		if !ok {
			continue
		}
		switch a := after.(type) {
		case map[string]any:
			if b, ok := before.(map[string]any); ok {
				result[key] = restoreEmptyMaps(a, b)
			}
		case []any:
			switch b := before.(type) {
			case map[string]any:
				if len(a) == 0 {
					result[key] = b
				}
			case []any:
				result[key] = restoreEmptyMapsInList(a, b)
			}
		}
	}
	return result
}

func restoreEmptyMapsInList(result, original []any) []any {
	for i := range result {
		if i >= len(original) {
			break
		}
		switch a := result[i].(type) {
		case map[string]any:
			if b, ok := original[i].(map[string]any); ok {
				result[i] = restoreEmptyMaps(a, b)
			}
		case []any:
			if b, ok := original[i].([]any); ok {
				result[i] = restoreEmptyMapsInList(a, b)
			}
		}
	}
	return result
}

func deepCopy(obj map[string]any) (map[string]any, error) {
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	return out, json.Unmarshal(raw, &out)
}
