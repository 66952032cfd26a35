package main

// The os library Argo CD gives scripts: only os.time and os.date, on a clock the
// tests control. Like Argo CD's, os.date understands a fixed set of strftime
// directives (%a %A %b %B %c %d %F %H %I %m %M %p %P %S %w %x %X %y %Y %z %Z and %%);
// any other directive is copied literally, e.g. "%T" stays "%T" (so a script using
// it is caught here, not in production). A leading "!" selects UTC; without it the
// time is in the clock's local zone, which luatest sets to UTC+05:30 so that a
// script forgetting the "!" produces a visibly wrong timestamp.

import (
	"fmt"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Clock is the time os.time/os.date see.
type Clock struct {
	Now   time.Time
	Local *time.Location
}

var luatestLocal = time.FixedZone("LUATEST", 5*3600+30*60)

func (c Clock) now() time.Time { return c.Now.In(c.Local) }

func (c Clock) funcs() map[string]lua.LGFunction {
	return map[string]lua.LGFunction{"time": c.osTime, "date": c.osDate}
}

func (c Clock) openOs(L *lua.LState) int {
	L.Push(L.RegisterModule(lua.OsLibName, c.funcs()))
	return 1
}

func (c Clock) loadOs(L *lua.LState) int {
	L.Push(L.SetFuncs(L.NewTable(), c.funcs()))
	return 1
}

func (c Clock) osTime(L *lua.LState) int {
	if L.GetTop() == 0 {
		L.Push(lua.LNumber(c.now().Unix()))
		return 1
	}
	t := L.CheckTable(1)
	field := func(name string, def int) int {
		if n, ok := t.RawGetString(name).(lua.LNumber); ok {
			return int(n)
		}
		return def
	}
	when := time.Date(field("year", -1), time.Month(field("month", -1)), field("day", -1),
		field("hour", 12), field("min", 0), field("sec", 0), 0, c.Local)
	L.Push(lua.LNumber(when.Unix()))
	return 1
}

func (c Clock) osDate(L *lua.LState) int {
	t := c.now()
	format := "%c"
	if L.GetTop() >= 1 {
		format = L.CheckString(1)
		if strings.HasPrefix(format, "!") {
			t = c.Now.UTC()
			format = strings.TrimLeft(format, "!")
		}
		if L.GetTop() >= 2 { // as in Argo CD: an explicit time is local, even after "!"
			t = time.Unix(L.CheckInt64(2), 0).In(c.Local)
		}
		if strings.HasPrefix(format, "*t") {
			tbl := L.NewTable()
			for k, v := range map[string]int{"year": t.Year(), "month": int(t.Month()), "day": t.Day(), "hour": t.Hour(),
				"min": t.Minute(), "sec": t.Second(), "wday": int(t.Weekday()) + 1, "yday": 0} {
				tbl.RawSetString(k, lua.LNumber(v))
			}
			tbl.RawSetString("isdst", lua.LFalse)
			L.Push(tbl)
			return 1
		}
	}
	L.Push(lua.LString(strftime(t, format)))
	return 1
}

// Go layouts for the directives Argo CD's os.date knows (its %a prints "mon" literally).
var directives = map[byte]string{
	'a': "mon", 'A': "Monday", 'b': "Jan", 'B': "January", 'c': "02 Jan 06 15:04 MST", 'd': "02",
	'F': "2006-01-02", 'H': "15", 'I': "03", 'm': "01", 'M': "04", 'p': "PM", 'P': "pm", 'S': "05",
	'x': "15/04/05", 'X': "15:04:05", 'y': "06", 'Y': "2006", 'z': "-0700", 'Z': "MST",
}

func strftime(t time.Time, format string) string {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		ch := format[i]
		if ch != '%' || i == len(format)-1 {
			b.WriteByte(ch)
			continue
		}
		i++
		d := format[i]
		switch {
		case d == '%':
			b.WriteByte('%')
		case d == 'w':
			fmt.Fprint(&b, int(t.Weekday()))
		case directives[d] != "":
			b.WriteString(t.Format(directives[d]))
		default:
			b.WriteByte('%')
			b.WriteByte(d)
		}
	}
	return b.String()
}
