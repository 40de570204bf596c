package cni

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cut"
)

// One spelling per key. encoding/json matches a key to a field ignoring case and
// takes the last of keys that match the same field, so that {"deviceID": A,
// "deviceId": B} loads B: Multus injects the pod's VF as "deviceID" and re-marshals
// the config sorted, which puts a NAD's "deviceId" after it. checkKeys refuses
// both ways in which a config can mean one thing to its reader and another to the
// plugin.

// maxKeyDepth is encoding/json's own nesting limit: Decode refuses deeper input
// (code 6), so checkKeys need not look further.
const maxKeyDepth = 10000

// keySchema is what the plugin knows of a JSON object that it decodes into a Go
// struct: the struct's keys, and the schema of the objects in a key's value.
type keySchema struct {
	keys []string
	sub  map[string]*keySchema
}

// netConfKeys is the schema of the NetConf, derived from the json tags of the
// structs Load decodes, so that a new field is covered as soon as it is declared.
var netConfKeys = sync.OnceValue(func() *keySchema {
	s := schemaOf(reflect.TypeFor[NetConf](), nil)
	// Kept as raw JSON by NetConf, and decoded by Load into these.
	s.sub["ipam"] = schemaOf(reflect.TypeFor[ipamConf](), nil)
	s.sub["runtimeConfig"] = schemaOf(reflect.TypeFor[RuntimeConfig](), nil)
	// The GC lists are written by the runtime (libcni replaces the whole value, so
	// a NAD cannot reach inside them), and a GC refused over the runtime's spelling
	// would keep every stale attachment: only the duplicate rule applies there, as
	// it does in "args" and "prevResult", which Load never decodes.
	delete(s.sub, "cni.dev/valid-attachments")
	delete(s.sub, "cni.dev/attachments")
	return s
})

// schemaOf returns the keys of struct type t as encoding/json names them, with the
// schema of every field that holds a struct, a pointer to one, or a slice or an
// array of them. path holds the types being walked, against recursive types.
func schemaOf(t reflect.Type, path []reflect.Type) *keySchema {
	s := &keySchema{sub: map[string]*keySchema{}}
	path = append(path, t)
	for _, f := range reflect.VisibleFields(t) {
		tag := f.Tag.Get("json")
		if !f.IsExported() || tag == "-" || (f.Anonymous && tag == "" && indirect(f.Type).Kind() == reflect.Struct) {
			continue // unexported, ignored, or an embedded struct whose fields are visible
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		s.keys = append(s.keys, name)
		if et := structElem(f.Type); et != nil && !slices.Contains(path, et) {
			s.sub[name] = schemaOf(et, path)
		}
	}
	return s
}

// structElem returns the struct type that a value of type t holds, through
// pointers, slices and arrays; nil for any other type (json.RawMessage is bytes).
// A map's keys are data.
func structElem(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	return t
}

// indirect is the type a pointer type points to; t itself for any other type.
func indirect(t reflect.Type) reflect.Type {
	if t.Kind() == reflect.Pointer {
		return t.Elem()
	}
	return t
}

// keyFrame is an object or an array that checkKeys is inside.
type keyFrame struct {
	object  bool
	wantKey bool            // an object's next token is a key
	key     string          // an object's key whose value comes next
	seen    map[string]bool // an object's keys so far
	schema  *keySchema      // an object's schema, an array's elements'; nil: unknown
	where   string          // for messages: the network config, or its top-level key
}

// checkKeys refuses a key given twice in one object, anywhere in the config, and a
// key that matches one of the plugin's keys only when case is ignored, in the
// objects the plugin decodes. It walks the tokens of the first JSON value with a
// stack of its own, so that nesting costs no Go stack. Input that is not JSON, or
// nests deeper than maxKeyDepth, passes: Decode reports it.
func checkKeys(stdin []byte, root *keySchema) error {
	dec := json.NewDecoder(bytes.NewReader(stdin))
	var stack []*keyFrame
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		var top *keyFrame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok {
			if d == '}' || d == ']' {
				stack = stack[:len(stack)-1]
				if len(stack) == 0 {
					return nil
				}
				if parent := stack[len(stack)-1]; parent.object {
					parent.wantKey = true
				}
				continue
			}
			if len(stack) >= maxKeyDepth {
				return nil
			}
			stack = append(stack, childFrame(top, len(stack) == 1, d == '{', root))
			continue
		}
		switch {
		case top == nil:
			return nil // a scalar document: Decode refuses it
		case top.object && top.wantKey:
			k, _ := tok.(string) // a key is a string, or Token fails
			if err := top.onKey(k); err != nil {
				return err
			}
		case top.object:
			top.wantKey = true // a scalar value
		}
	}
}

// childFrame is the frame of an object or array that opens inside parent: nil at
// the top, the top-level value itself when inTop.
func childFrame(parent *keyFrame, inTop, object bool, root *keySchema) *keyFrame {
	f := &keyFrame{object: object, wantKey: object}
	switch {
	case parent == nil:
		f.where = "the network config"
		if object {
			f.schema = root
		}
	case parent.object:
		f.where = parent.where
		if inTop {
			f.where = cut.Quote(parent.key)
		}
		if parent.schema != nil {
			f.schema = parent.schema.sub[parent.key]
		}
	default:
		f.where, f.schema = parent.where, parent.schema
	}
	return f
}

// onKey checks the key k of the object f, and records it.
func (f *keyFrame) onKey(k string) error {
	if f.seen[k] {
		return configError("key %q appears twice in %s: give it once", cut.Value(k), f.where)
	}
	if f.seen == nil {
		f.seen = map[string]bool{}
	}
	f.seen[k] = true
	if f.schema != nil {
		for _, known := range f.schema.keys {
			if k != known && strings.EqualFold(k, known) {
				return configError("key %q in %s differs from the plugin's key %q only in case: spell it as the plugin does, or remove it", cut.Value(k), f.where, known)
			}
		}
	}
	f.key, f.wantKey = k, false
	return nil
}
