package tracereplay

import (
	"encoding/json"
	"io"
	"strings"
)

var ioEOF = io.EOF

// Repair turns the prefix of a cut JSON document into valid JSON: it keeps every value that is
// complete in the prefix and closes the objects and arrays still open at the last such value.
// ok is false when not even the outermost container opened.
func Repair(prefix string) (json.RawMessage, bool) {
	dec := json.NewDecoder(strings.NewReader(prefix))
	type frame struct{ obj, expectKey bool }
	var stack []frame
	cut, closers := -1, ""
	snapshot := func() {
		cut = int(dec.InputOffset())
		var b strings.Builder
		for i := len(stack) - 1; i >= 0; i-- {
			if stack[i].obj {
				b.WriteByte('}')
			} else {
				b.WriteByte(']')
			}
		}
		closers = b.String()
	}
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].obj {
			stack[n-1].expectKey = true
		}
		snapshot()
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				if n := len(stack); n > 0 && stack[n-1].obj {
					stack[n-1].expectKey = false
				}
				stack = append(stack, frame{obj: true, expectKey: true})
				snapshot()
			case '[':
				if n := len(stack); n > 0 && stack[n-1].obj {
					stack[n-1].expectKey = false
				}
				stack = append(stack, frame{})
				snapshot()
			default:
				stack = stack[:len(stack)-1]
				valueDone()
			}
		default:
			if n := len(stack); n > 0 && stack[n-1].obj && stack[n-1].expectKey {
				stack[n-1].expectKey = false // a key: the member is not complete yet
				continue
			}
			valueDone()
		}
	}
	if cut < 0 {
		return nil, false
	}
	out := json.RawMessage(prefix[:cut] + closers)
	if !json.Valid(out) {
		return nil, false
	}
	return out, true
}
