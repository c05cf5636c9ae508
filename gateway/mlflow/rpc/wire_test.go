package rpc

import (
	"encoding/json"
	"math"
	"testing"
)

func TestMLflowWireTypesAcceptEveryFormTheClientSends(t *testing.T) {
	var in struct {
		A I64        `json:"a"`
		B I64        `json:"b"`
		C I64        `json:"c"`
		D F64        `json:"d"`
		E F64        `json:"e"`
		F F64        `json:"f"`
		G Strs       `json:"g"`
		H Strs       `json:"h"`
		I FlexString `json:"i"`
	}
	body := `{"a": 12, "b": "1795991665321", "c": 1.7e12, "d": "NaN", "e": "-Infinity", "f": 0.25,
		"g": "one", "h": ["x", "y"], "i": 7}`
	if err := json.Unmarshal([]byte(body), &in); err != nil {
		t.Fatal(err)
	}
	if in.A.V != 12 || in.B.V != 1795991665321 || in.C.V != 1.7e12 || !in.A.Set {
		t.Fatalf("ints %+v %+v %+v", in.A, in.B, in.C)
	}
	if !math.IsNaN(float64(in.D)) || !math.IsInf(float64(in.E), -1) || in.F != 0.25 {
		t.Fatalf("floats %v %v %v", in.D, in.E, in.F)
	}
	if len(in.G) != 1 || in.G[0] != "one" || len(in.H) != 2 || in.I != "7" {
		t.Fatalf("strings %v %v %q", in.G, in.H, in.I)
	}
	for _, bad := range []string{`{"a": "x"}`, `{"a": 1.5}`, `{"d": "many"}`, `{"g": [1, {}]}`, `{"i": {}}`} {
		if err := json.Unmarshal([]byte(bad), &in); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	out, err := json.Marshal([]F64{F64(math.NaN()), F64(math.Inf(1)), F64(math.Inf(-1)), 1.5})
	if err != nil || string(out) != `["NaN","Infinity","-Infinity",1.5]` {
		t.Fatalf("marshal: %s %v", out, err)
	}
}
