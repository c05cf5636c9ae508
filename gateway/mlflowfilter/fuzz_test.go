package mlflowfilter

import (
	"errors"
	"reflect"
	"testing"
)

func FuzzParseRunFilter(f *testing.F) {
	for _, s := range []string{
		"", "tags.wf_id = '5f1b44611b' and metrics.acc > 0.6",
		"tags.wf_id = '5f1b44611b' and params.alpha = '0.5'",
		"name = 'x' AND tag.`mlflow.prompt.is_prompt` != 'true'",
		"attributes.run_id NOT IN ('a', \"b'c\")", "metrics.`a b` >= -1.5e-3",
		"tags.\"x`y\" ILIKE '%'", "status = 'RUNNING' OR status = 'FAILED'",
		"metrics.m > 1e999", "start_time < .5",
		"name = 'model' AND model_type = 'agent'", "creation_time > 5", "metrics.acc >= 0.7",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, parse := range []func(string) (Filter, error){
			ParseRunFilter, ParseModelFilter, ParseExperimentFilter, ParseVersionFilter, ParseLoggedModelFilter,
		} {
			got, err := parse(s)
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("%q: error does not wrap ErrInvalid: %v", s, err)
				}
				continue
			}
			again, err := parse(got.String())
			if err != nil {
				t.Fatalf("%q: String form %q rejected: %v", s, got.String(), err)
			}
			if !reflect.DeepEqual(again, got) {
				t.Fatalf("%q: String form %q re-parsed as %#v, want %#v", s, got.String(), again, got)
			}
		}
		_, _ = ParseRunOrderBy([]string{s})
		_, _ = ParseModelOrderBy([]string{s})
		if ob, err := ParseLoggedModelOrderKey(s); err == nil {
			if again, err := ParseLoggedModelOrderKey(ob.String()); err != nil || again.Entity != ob.Entity || again.Key != ob.Key {
				t.Fatalf("%q: order key %v does not round-trip: %v, %v", s, ob, again, err)
			}
		} else if !errors.Is(err, ErrInvalid) {
			t.Fatalf("%q: order key error does not wrap ErrInvalid: %v", s, err)
		}
	})
}
