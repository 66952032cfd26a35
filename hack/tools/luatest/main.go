// Command luatest runs Argo CD resource customizations (health.lua, actions/discovery.lua,
// actions/<action>/action.lua) against their fixtures (health_test.yaml,
// actions/action_test.yaml, testdata/*.yaml) in Argo CD's format, with gopher-lua set up
// the way Argo CD runs scripts from argocd-cm. Dev/test tooling only; see
// docs/argocd.md.
//
//	luatest [-now TIME] [-json] [-argocd-cm FILE] DIR...
//	    DIR is resource_customizations/<group>/<Kind>. Runs every fixture; prints one
//	    line per case and a readable diff for each mismatch; exit status 1 when any
//	    case fails, 2 when the fixtures or scripts cannot be read. With -argocd-cm the
//	    scripts come from that argocd-cm ConfigMap (patch) instead of DIR's .lua files,
//	    so what users install is what is tested. -json prints a report on stdout.
//
//	luatest eval -kind health|discovery|action -script FILE [-now TIME] < objects.json
//	    Runs one script on each object of a JSON array; prints a JSON array of
//	    {"result": ..., "patch": ..., "error": ...}.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// DefaultNow is the clock fixtures are written against (os.date/os.time see it).
const DefaultNow = "2026-01-02T03:04:05Z"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "eval" {
		os.Exit(evalMain(os.Args[2:]))
	}
	os.Exit(runMain(os.Args[1:]))
}

func parseClock(value string) (Clock, error) {
	now, err := time.Parse(time.RFC3339, value)
	if err != nil {
		return Clock{}, fmt.Errorf("-now %q: %w", value, err)
	}
	return Clock{Now: now, Local: luatestLocal}, nil
}

// ---- fixtures ---------------------------------------------------------------------

type healthTests struct {
	Tests []struct {
		HealthStatus Health `json:"healthStatus"`
		InputPath    string `json:"inputPath"`
	} `json:"tests"`
}

type actionTests struct {
	DiscoveryTests []struct {
		InputPath string   `json:"inputPath"`
		Result    []Action `json:"result"`
	} `json:"discoveryTests"`
	ActionTests []struct {
		Action               string            `json:"action"`
		InputPath            string            `json:"inputPath"`
		ExpectedOutputPath   string            `json:"expectedOutputPath"`
		ExpectedErrorMessage string            `json:"expectedErrorMessage"`
		Parameters           map[string]string `json:"parameters"`
	} `json:"actionTests"`
}

// Scripts are the Lua sources of one resource kind.
type Scripts struct {
	Origin    string
	Health    string
	Discovery string
	Actions   map[string]string
}

func scriptsFromDir(dir string) (Scripts, error) {
	s := Scripts{Origin: dir, Actions: map[string]string{}}
	read := func(path string) (string, error) {
		raw, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return "", nil
		}
		return string(raw), err
	}
	var err error
	if s.Health, err = read(filepath.Join(dir, "health.lua")); err != nil {
		return s, err
	}
	if s.Discovery, err = read(filepath.Join(dir, "actions", "discovery.lua")); err != nil {
		return s, err
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "actions", "*", "action.lua"))
	for _, m := range matches {
		if s.Actions[filepath.Base(filepath.Dir(m))], err = read(m); err != nil {
			return s, err
		}
	}
	return s, nil
}

// scriptsFromConfigMap reads resource.customizations.{health,actions}.<group>_<Kind>.
func scriptsFromConfigMap(path, dir string) (Scripts, error) {
	abs, _ := filepath.Abs(dir)
	key := filepath.Base(filepath.Dir(abs)) + "_" + filepath.Base(abs)
	s := Scripts{Origin: path + " (" + key + ")", Actions: map[string]string{}}
	raw, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(raw, &cm); err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	s.Health = cm.Data["resource.customizations.health."+key]
	if actions, ok := cm.Data["resource.customizations.actions."+key]; ok {
		var parsed struct {
			Discovery   string `json:"discovery.lua"`
			Definitions []struct {
				Name      string `json:"name"`
				ActionLua string `json:"action.lua"`
			} `json:"definitions"`
		}
		if err := yaml.UnmarshalStrict([]byte(actions), &parsed); err != nil {
			return s, fmt.Errorf("%s: resource.customizations.actions.%s: %w", path, key, err)
		}
		s.Discovery = parsed.Discovery
		for _, d := range parsed.Definitions {
			s.Actions[d.Name] = d.ActionLua
		}
	}
	if s.Health == "" && s.Discovery == "" {
		return s, fmt.Errorf("%s has neither resource.customizations.health.%s nor resource.customizations.actions.%s", path, key, key)
	}
	return s, nil
}

func readObject(path string) (map[string]any, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	if err := yaml.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if obj == nil {
		return nil, fmt.Errorf("%s: empty document", path)
	}
	return obj, nil
}

func readStrict(path string, into any) (bool, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := yaml.UnmarshalStrict(raw, into); err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	return true, nil
}

// ---- running ----------------------------------------------------------------------

// Case is one fixture entry and what came out of the script.
type Case struct {
	Suite     string         `json:"suite"` // health, discovery or action
	Fixture   string         `json:"fixture"`
	InputPath string         `json:"inputPath"`
	Action    string         `json:"action,omitempty"`
	OK        bool           `json:"ok"`
	Expected  any            `json:"expected,omitempty"`
	Actual    any            `json:"actual,omitempty"`
	Patch     map[string]any `json:"patch,omitempty"`
	Diff      []string       `json:"diff,omitempty"`
	Error     string         `json:"error,omitempty"`
}

func (c *Case) compare(expected, actual any) {
	c.Expected, c.Actual = normalize(expected), normalize(actual)
	c.Diff = diffValues("", c.Expected, c.Actual)
	c.OK = len(c.Diff) == 0
}

func runDir(dir string, scripts Scripts, sb Sandbox) ([]Case, error) {
	var cases []Case
	var ht healthTests
	healthFile := filepath.Join(dir, "health_test.yaml")
	found, err := readStrict(healthFile, &ht)
	if err != nil {
		return nil, err
	}
	if found && scripts.Health == "" {
		return nil, fmt.Errorf("%s has tests but %s has no health script", healthFile, scripts.Origin)
	}
	for _, t := range ht.Tests {
		c := Case{Suite: "health", Fixture: healthFile, InputPath: t.InputPath, Expected: t.HealthStatus}
		obj, err := readObject(filepath.Join(dir, t.InputPath))
		if err != nil {
			return nil, err
		}
		if h, err := sb.Health(obj, scripts.Health); err != nil {
			c.Error = err.Error()
		} else {
			c.compare(t.HealthStatus, h)
		}
		cases = append(cases, c)
	}

	var at actionTests
	actionsDir := filepath.Join(dir, "actions")
	actionFile := filepath.Join(actionsDir, "action_test.yaml")
	foundActions, err := readStrict(actionFile, &at)
	if err != nil {
		return nil, err
	}
	if !found && !foundActions {
		return nil, fmt.Errorf("%s has neither health_test.yaml nor actions/action_test.yaml", dir)
	}
	for _, t := range at.DiscoveryTests {
		c := Case{Suite: "discovery", Fixture: actionFile, InputPath: t.InputPath}
		obj, err := readObject(filepath.Join(actionsDir, t.InputPath))
		if err != nil {
			return nil, err
		}
		expected := append([]Action{}, t.Result...)
		sort.Slice(expected, func(i, j int) bool { return expected[i].Name < expected[j].Name })
		if scripts.Discovery == "" {
			c.Error = "no discovery script in " + scripts.Origin
		} else if got, err := sb.Discovery(obj, scripts.Discovery); err != nil {
			c.Error = err.Error()
		} else {
			c.compare(expected, got)
		}
		cases = append(cases, c)
	}
	for _, t := range at.ActionTests {
		c := Case{Suite: "action", Fixture: actionFile, InputPath: t.InputPath, Action: t.Action}
		obj, err := readObject(filepath.Join(actionsDir, t.InputPath))
		if err != nil {
			return nil, err
		}
		script, ok := scripts.Actions[t.Action]
		switch {
		case len(t.Parameters) > 0:
			c.Error = "action parameters are not supported by luatest"
		case !ok:
			c.Error = fmt.Sprintf("no action %q in %s", t.Action, scripts.Origin)
		case t.ExpectedErrorMessage != "":
			c.Expected = map[string]string{"error containing": t.ExpectedErrorMessage}
			_, err := sb.Action(obj, script)
			if err == nil {
				c.Diff = []string{fmt.Sprintf("expected an error containing %q, the action succeeded", t.ExpectedErrorMessage)}
			} else if !strings.Contains(err.Error(), t.ExpectedErrorMessage) {
				c.Actual = map[string]string{"error": err.Error()}
				c.Diff = []string{fmt.Sprintf("expected an error containing %q, got %q", t.ExpectedErrorMessage, err.Error())}
			} else {
				c.Actual = map[string]string{"error": err.Error()}
				c.OK = true
			}
		default:
			expected, err := readObject(filepath.Join(actionsDir, t.ExpectedOutputPath))
			if err != nil {
				return nil, err
			}
			if out, err := sb.Action(obj, script); err != nil {
				c.Error = err.Error()
			} else {
				c.compare(expected, out)
				c.Patch = mergePatch(normalize(obj).(map[string]any), normalize(out).(map[string]any))
			}
		}
		cases = append(cases, c)
	}
	return cases, nil
}

func runMain(args []string) int {
	fs := flag.NewFlagSet("luatest", flag.ContinueOnError)
	now := fs.String("now", DefaultNow, "time os.time/os.date return (RFC 3339)")
	asJSON := fs.Bool("json", false, "print a JSON report on stdout")
	cmPath := fs.String("argocd-cm", "", "take the scripts from this argocd-cm ConfigMap instead of the .lua files")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: luatest [-now TIME] [-json] [-argocd-cm FILE] DIR...\n       luatest eval -kind health|discovery|action -script FILE < objects.json")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	clock, err := parseClock(*now)
	if err != nil {
		fmt.Fprintln(os.Stderr, "luatest:", err)
		return 2
	}
	sb := Sandbox{Clock: clock}
	var all []Case
	for _, dir := range fs.Args() {
		var scripts Scripts
		if *cmPath != "" {
			scripts, err = scriptsFromConfigMap(*cmPath, dir)
		} else {
			scripts, err = scriptsFromDir(dir)
		}
		if err == nil {
			var cases []Case
			cases, err = runDir(dir, scripts, sb)
			all = append(all, cases...)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "luatest:", err)
			return 2
		}
	}
	failed := report(os.Stderr, all)
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{"cases": all, "failed": failed, "now": *now})
	}
	if failed > 0 {
		return 1
	}
	return 0
}

func report(w io.Writer, cases []Case) int {
	failed := 0
	for _, c := range cases {
		name := c.Suite
		if c.Action != "" {
			name += " " + c.Action
		}
		if c.OK {
			fmt.Fprintf(w, "ok    %-22s %s\n", name, c.InputPath)
			continue
		}
		failed++
		fmt.Fprintf(w, "FAIL  %-22s %s  (%s)\n", name, c.InputPath, c.Fixture)
		if c.Error != "" {
			fmt.Fprintf(w, "      error: %s\n", c.Error)
		}
		for _, d := range c.Diff {
			fmt.Fprintf(w, "      %s\n", d)
		}
	}
	fmt.Fprintf(w, "luatest: %d cases, %d failed\n", len(cases), failed)
	return failed
}

// ---- eval -------------------------------------------------------------------------

type evalResult struct {
	Result any    `json:"result,omitempty"`
	Patch  any    `json:"patch,omitempty"` // actions only; {} when nothing changes
	Error  string `json:"error,omitempty"`
}

func evalMain(args []string) int {
	fs := flag.NewFlagSet("luatest eval", flag.ContinueOnError)
	kind := fs.String("kind", "", "health, discovery or action")
	scriptPath := fs.String("script", "", "the .lua file")
	now := fs.String("now", DefaultNow, "time os.time/os.date return (RFC 3339)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	clock, err := parseClock(*now)
	if err != nil {
		fmt.Fprintln(os.Stderr, "luatest:", err)
		return 2
	}
	raw, err := os.ReadFile(*scriptPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "luatest:", err)
		return 2
	}
	var objects []map[string]any
	if err := json.NewDecoder(os.Stdin).Decode(&objects); err != nil {
		fmt.Fprintln(os.Stderr, "luatest: stdin must be a JSON array of objects:", err)
		return 2
	}
	sb, script := Sandbox{Clock: clock}, string(raw)
	results := make([]evalResult, 0, len(objects))
	for _, obj := range objects {
		var r evalResult
		var out any
		switch *kind {
		case "health":
			out, err = sb.Health(obj, script)
		case "discovery":
			out, err = sb.Discovery(obj, script)
		case "action":
			var changed map[string]any
			if changed, err = sb.Action(obj, script); err == nil {
				out = changed
				r.Patch = mergePatch(normalize(obj).(map[string]any), normalize(changed).(map[string]any))
			}
		default:
			fmt.Fprintln(os.Stderr, "luatest: -kind must be health, discovery or action")
			return 2
		}
		if err != nil {
			r.Error = err.Error()
		} else {
			r.Result = normalize(out)
		}
		results = append(results, r)
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		return 2
	}
	return 0
}
