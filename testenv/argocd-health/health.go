package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Health is what a health check returns and Argo CD shows.
type Health struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

// The statuses Argo CD accepts from a Lua check; any other becomes Unknown.
var validStatuses = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true, "Missing": true,
}

// invalidStatus is Argo CD's message for a status it does not know.
const invalidStatus = "Lua returned an invalid health status"

// Evaluate runs script on object as Argo CD runs a custom health check (util/lua in Argo CD):
// a fresh state without the standard libraries but package, base and table (Argo CD's
// `useOpenLibs` off, its default for argocd-cm checks), a one-second deadline, the object as
// the global `obj`, and the table the script returns read as the health. A script error, a
// result that is not a table or a status or message that is not a string is an error (Argo CD
// then shows the resource's health as Unknown with the error).
func Evaluate(script string, object map[string]any) (Health, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return Health{}, fmt.Errorf("opening the %s library: %w", lib.name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, object))
	if err := l.DoString(script); err != nil {
		return Health{}, err
	}
	returned := l.Get(-1)
	table, ok := returned.(*lua.LTable)
	if !ok {
		return Health{}, fmt.Errorf("expect table output from Lua script, not %s", returned.Type())
	}
	var health Health
	for field, into := range map[string]*string{"status": &health.Status, "message": &health.Message} {
		switch value := table.RawGetString(field).(type) {
		case *lua.LNilType:
		case lua.LString:
			*into = string(value)
		default:
			return Health{}, fmt.Errorf("the returned %s is a %s, not a string", field, value.Type())
		}
	}
	if !validStatuses[health.Status] {
		return Health{Status: "Unknown", Message: invalidStatus}, nil
	}
	return health, nil
}

// toLua converts a JSON value as Argo CD's decodeValue converts an unstructured object's:
// objects to tables by key, arrays to sequences, numbers to Lua numbers.
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case []any:
		array := l.CreateTable(len(v), 0)
		for _, item := range v {
			array.Append(toLua(l, item))
		}
		return array
	case map[string]any:
		table := l.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetH(lua.LString(key), toLua(l, item))
		}
		return table
	}
	return lua.LNil
}

// decodeObjects reads a stream of JSON objects as Kubernetes' unstructured decoding does:
// integers become int64, other numbers float64.
func decodeObjects(r io.Reader) ([]map[string]any, error) {
	decoder := json.NewDecoder(r)
	decoder.UseNumber()
	var objects []map[string]any
	for {
		var object map[string]any
		err := decoder.Decode(&object)
		if errors.Is(err, io.EOF) {
			return objects, nil
		}
		if err != nil {
			return nil, fmt.Errorf("object %d: %w", len(objects)+1, err)
		}
		converted, err := numbers(object)
		if err != nil {
			return nil, fmt.Errorf("object %d: %w", len(objects)+1, err)
		}
		objects = append(objects, converted.(map[string]any))
	}
}

// numbers replaces every json.Number in value by an int64 or a float64.
func numbers(value any) (any, error) {
	switch v := value.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(v.String(), 10, 64); err == nil {
			return i, nil
		}
		return v.Float64()
	case []any:
		for i := range v {
			n, err := numbers(v[i])
			if err != nil {
				return nil, err
			}
			v[i] = n
		}
	case map[string]any:
		for key := range v {
			n, err := numbers(v[key])
			if err != nil {
				return nil, err
			}
			v[key] = n
		}
	}
	return value, nil
}

// evaluateAll evaluates script on every object of input and writes one JSON line of Health
// per object to out.
func evaluateAll(script string, input io.Reader, out io.Writer) error {
	objects, err := decodeObjects(input)
	if err != nil {
		return err
	}
	var buffer bytes.Buffer
	encoder := json.NewEncoder(&buffer)
	for i, object := range objects {
		health, err := Evaluate(script, object)
		if err != nil {
			return fmt.Errorf("object %d: %w", i+1, err)
		}
		if err := encoder.Encode(health); err != nil {
			return err
		}
	}
	_, err = out.Write(buffer.Bytes())
	return err
}
