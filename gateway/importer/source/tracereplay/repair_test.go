package tracereplay

import "testing"

func TestRepair(t *testing.T) {
	for in, want := range map[string]string{
		`{"a": [1, 2, {"b": "c"}, {"d": "e`:                                    `{"a": [1, 2, {"b": "c"}, {}]}`,
		`{"run": {"info": {"id": "x"}, "data": {"metrics": [{"key": "k", "val`: `{"run": {"info": {"id": "x"}, "data": {"metrics": [{"key": "k"}]}}}`,
		`{"a": 1, "b`: `{"a": 1}`,
		`{"a": `:      `{}`,
		`{"a": "b"}`:  `{"a": "b"}`,
	} {
		got, ok := Repair(in)
		if !ok || string(got) != want {
			t.Errorf("Repair(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	if _, ok := Repair(`"abc`); ok {
		t.Error("a cut string repaired")
	}
}
