package rpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// MLflow's JSON is proto3 JSON written by Python: int64 values arrive as numbers or decimal strings,
// doubles as numbers or the strings "NaN", "Infinity", "-Infinity", and GET queries make every value a
// string. These types accept every form the client sends.

// I64 is an optional int64 sent as a number or a decimal string.
type I64 struct {
	V   int64
	Set bool
}

func (x *I64) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	s := string(bytes.Trim(b, `"`))
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		// 1.7e12 style numbers come from some clients for timestamps.
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != math.Trunc(f) || math.Abs(f) > math.MaxInt64 {
			return fmt.Errorf("%q is not an integer", s)
		}
		v = int64(f)
	}
	x.V, x.Set = v, true
	return nil
}

// F64 is a double that may be NaN or infinite on the wire in either direction.
type F64 float64

func (x *F64) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(b, `"`))
	switch s {
	case "NaN", "nan":
		*x = F64(math.NaN())
	case "Infinity", "inf", "+Infinity":
		*x = F64(math.Inf(1))
	case "-Infinity", "-inf":
		*x = F64(math.Inf(-1))
	default:
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		*x = F64(v)
	}
	return nil
}

func (x F64) MarshalJSON() ([]byte, error) {
	v := float64(x)
	switch {
	case math.IsNaN(v):
		return []byte(`"NaN"`), nil
	case math.IsInf(v, 1):
		return []byte(`"Infinity"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Infinity"`), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

// FlexString is a string field that some clients send as a number (experiment_id: 1).
type FlexString string

func (x *FlexString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*x = FlexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return errors.New("want a string")
	}
	*x = FlexString(n.String())
	return nil
}

// Strs is a repeated string field: a JSON array, or a single string (a GET query with one value).
type Strs []string

func (x *Strs) UnmarshalJSON(b []byte) error {
	var one FlexString
	if err := one.UnmarshalJSON(b); err == nil {
		if string(b) != "null" {
			*x = Strs{string(one)}
		}
		return nil
	}
	var many []FlexString
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("want a list of strings")
	}
	out := make(Strs, len(many))
	for i, v := range many {
		out[i] = string(v)
	}
	*x = out
	return nil
}
