package storetest

import (
	"fmt"
	"math"
	"strings"

	"github.com/mlgate/mlgate/metadata"
)

type (
	params  = []metadata.Param
	metrics = []metadata.Metric
	tags    = []metadata.Tag
)

func (f *fx) runFixture() *metadata.Candidate {
	f.Helper()
	p := f.project("p")
	return f.candidate(f.model(p.ID, "m", ""), metadata.Candidate{})
}

func sameMetric(a, b metadata.Metric) bool {
	sameValue := a.Value == b.Value || math.IsNaN(a.Value) && math.IsNaN(b.Value)
	return a.Key == b.Key && a.Step == b.Step && a.Timestamp == b.Timestamp && sameValue
}

var runDataTests = []test{
	{"ParamsImmutable", func(f *fx) {
		c := f.runFixture()
		f.log(c.ID, params{{Key: "lr", Value: "0.1"}}, nil, nil)
		f.log(c.ID, params{{Key: "lr", Value: "0.1"}, {Key: "lr", Value: "0.1"}}, nil, nil)
		err := f.s.LogBatch(f.ctx, c.ID, params{{Key: "lr", Value: "0.2"}}, nil, nil)
		f.wantErr("changed param", err, metadata.ErrInvalid)
		// All or nothing: the conflict discards the new param, metric and tag of the same batch.
		err = f.s.LogBatch(f.ctx, c.ID, params{{Key: "new", Value: "1"}, {Key: "lr", Value: "0.3"}},
			metrics{{Key: "loss", Value: 1, Timestamp: 1}}, tags{{Key: "t", Value: "v"}})
		f.wantErr("batch with a changed param", err, metadata.ErrInvalid)
		err = f.s.LogBatch(f.ctx, c.ID, params{{Key: "x", Value: "1"}, {Key: "x", Value: "2"}}, nil, nil)
		f.wantErr("conflict inside one batch", err, metadata.ErrInvalid)
		rd := f.runData(c.ID)
		if len(rd.Params) != 1 || rd.Params[0] != (metadata.Param{Key: "lr", Value: "0.1"}) || len(rd.Metrics) != 0 || len(rd.Tags) != 0 {
			f.Errorf("run data after failed batches: %+v", rd)
		}
		f.log(c.ID, params{{Key: "empty", Value: ""}}, nil, nil)
		f.log(c.ID, params{{Key: "empty", Value: ""}}, nil, nil)
		err = f.s.LogBatch(f.ctx, c.ID, params{{Key: "empty", Value: "now set"}}, nil, nil)
		f.wantErr("empty param changed", err, metadata.ErrInvalid)
	}},
	{"Limits", func(f *fx) {
		c := f.runFixture()
		k250, k251 := strings.Repeat("k", 250), strings.Repeat("k", 251)
		f.log(c.ID, params{{Key: k250, Value: strings.Repeat("v", 250)}}, metrics{{Key: k250, Value: 1}},
			tags{{Key: k250, Value: strings.Repeat("v", 5000)}})
		for name, batch := range map[string]struct {
			p params
			m metrics
			t tags
		}{
			"param key":   {p: params{{Key: k251, Value: "v"}}},
			"param value": {p: params{{Key: "k", Value: strings.Repeat("v", 251)}}},
			"empty param": {p: params{{Key: "", Value: "v"}}},
			"metric key":  {m: metrics{{Key: k251}}},
			"empty key":   {m: metrics{{Key: ""}}},
			"NUL in key":  {m: metrics{{Key: "a\x00b"}}},
			"tag key":     {t: tags{{Key: k251}}},
			"tag value":   {t: tags{{Key: "k", Value: strings.Repeat("v", 5001)}}},
			"empty tag":   {t: tags{{Key: ""}}},
		} {
			f.wantErr(name, f.s.LogBatch(f.ctx, c.ID, batch.p, batch.m, batch.t), metadata.ErrInvalid)
		}
		f.wantErr("LogBatch(unknown)", f.s.LogBatch(f.ctx, 999, nil, nil, nil), metadata.ErrNotFound)
		_, err := f.s.RunData(f.ctx, 999)
		f.wantErr("RunData(unknown)", err, metadata.ErrNotFound)
		_, _, err = f.s.MetricHistory(f.ctx, 999, "loss", metadata.Page{})
		f.wantErr("MetricHistory(unknown)", err, metadata.ErrNotFound)
	}},
	{"TagsReplaceByKey", func(f *fx) {
		c := f.runFixture()
		f.log(c.ID, nil, nil, tags{{Key: "b", Value: "2"}, {Key: "a", Value: "1"}})
		f.log(c.ID, nil, nil, tags{{Key: "a", Value: "3"}, {Key: "c", Value: ""}})
		got := fmt.Sprint(f.runData(c.ID).Tags)
		if want := fmt.Sprint(tags{{Key: "a", Value: "3"}, {Key: "b", Value: "2"}, {Key: "c", Value: ""}}); got != want {
			f.Errorf("tags %s, want %s (sorted, replaced by key)", got, want)
		}
	}},
	{"LatestMetricRule", func(f *fx) {
		c := f.runFixture()
		nan, inf := math.NaN(), math.Inf(1)
		cases := []struct {
			key    string
			points metrics
			want   metadata.Metric
		}{
			{"step-wins", metrics{{Step: 2, Timestamp: 100, Value: 1}, {Step: 1, Timestamp: 200, Value: 5}}, metadata.Metric{Step: 2, Timestamp: 100, Value: 1}},
			{"newer-time", metrics{{Step: 1, Timestamp: 200, Value: 0}, {Step: 1, Timestamp: 100, Value: 9}}, metadata.Metric{Step: 1, Timestamp: 200, Value: 0}},
			{"larger-value", metrics{{Step: 1, Timestamp: 1, Value: 1}, {Step: 1, Timestamp: 1, Value: 3}, {Step: 1, Timestamp: 1, Value: 2}}, metadata.Metric{Step: 1, Timestamp: 1, Value: 3}},
			{"nan-then-number", metrics{{Step: 1, Timestamp: 1, Value: nan}, {Step: 1, Timestamp: 1, Value: -inf}}, metadata.Metric{Step: 1, Timestamp: 1, Value: -inf}},
			{"number-then-nan", metrics{{Step: 1, Timestamp: 1, Value: 7}, {Step: 1, Timestamp: 1, Value: nan}}, metadata.Metric{Step: 1, Timestamp: 1, Value: 7}},
			{"nan-alone", metrics{{Step: 0, Timestamp: 5, Value: nan}}, metadata.Metric{Step: 0, Timestamp: 5, Value: nan}},
			{"nan-later-step", metrics{{Step: 1, Timestamp: 1, Value: 7}, {Step: 2, Timestamp: 1, Value: nan}}, metadata.Metric{Step: 2, Timestamp: 1, Value: nan}},
			{"negative-steps", metrics{{Step: -1, Timestamp: 1, Value: 1}, {Step: -5, Timestamp: 9, Value: 2}}, metadata.Metric{Step: -1, Timestamp: 1, Value: 1}},
		}
		var oneBatch metrics
		for i, tc := range cases {
			for _, pt := range tc.points {
				pt.Key = tc.key
				if i%2 == 0 {
					f.log(c.ID, nil, metrics{pt}, nil) // a batch per point
				} else {
					oneBatch = append(oneBatch, pt) // the rule holds inside one batch too
				}
			}
		}
		f.log(c.ID, nil, oneBatch, nil)
		got := f.runData(c.ID).Metrics
		if len(got) != len(cases) {
			f.Fatalf("latest metrics %+v, want %d", got, len(cases))
		}
		byKey := map[string]metadata.Metric{}
		for i, m := range got {
			byKey[m.Key] = m
			if i > 0 && got[i-1].Key >= m.Key {
				f.Errorf("metrics not sorted by key: %q before %q", got[i-1].Key, m.Key)
			}
		}
		for _, tc := range cases {
			tc.want.Key = tc.key
			if !sameMetric(byKey[tc.key], tc.want) {
				f.Errorf("latest %q = %+v, want %+v", tc.key, byKey[tc.key], tc.want)
			}
		}
	}},
	{"DuplicatePoints", func(f *fx) {
		c := f.runFixture()
		pt := metadata.Metric{Key: "loss", Value: 0.5, Timestamp: 100, Step: 1}
		nanPt := metadata.Metric{Key: "loss", Value: math.NaN(), Timestamp: 100, Step: 1}
		f.log(c.ID, nil, metrics{pt, pt, nanPt}, nil)
		f.log(c.ID, nil, metrics{pt, nanPt}, nil)
		f.log(c.ID, nil, metrics{{Key: "loss", Value: 0.25, Timestamp: 100, Step: 1}}, nil)
		hist, next, err := f.s.MetricHistory(f.ctx, c.ID, "loss", metadata.Page{})
		if err != nil || next != "" || len(hist) != 3 {
			f.Fatalf("history %+v, %q, %v; want 3 distinct points", hist, next, err)
		}
		if rd := f.runData(c.ID); len(rd.Metrics) != 1 || rd.Metrics[0].Value != 0.5 {
			f.Errorf("latest %+v, want 0.5", rd.Metrics)
		}
	}},
	{"HistoryOrderAndPaging", func(f *fx) {
		c := f.runFixture()
		in := metrics{
			{Key: "acc", Step: 3, Timestamp: 10, Value: 3},
			{Key: "acc", Step: 1, Timestamp: 20, Value: 1.5},
			{Key: "acc", Step: -2, Timestamp: 99, Value: -2},
			{Key: "acc", Step: 1, Timestamp: 10, Value: 1},
			{Key: "acc", Step: 2, Timestamp: 5, Value: 2},
			{Key: "acc2", Step: 0, Timestamp: 0, Value: 0},
			{Key: "ac", Step: 0, Timestamp: 0, Value: 0},
		}
		f.log(c.ID, nil, in, nil)
		wantVals := []float64{-2, 1, 1.5, 2, 3}
		for _, limit := range []int{0, 1, 2, 5} {
			all, _ := pageAll(f, limit, func(pg metadata.Page) ([]metadata.Metric, string, error) {
				return f.s.MetricHistory(f.ctx, c.ID, "acc", pg)
			})
			var vals []float64
			for _, m := range all {
				vals = append(vals, m.Value)
				if m.Key != "acc" {
					f.Errorf("history of acc has key %q", m.Key)
				}
			}
			if fmt.Sprint(vals) != fmt.Sprint(wantVals) {
				f.Errorf("limit %d: values %v, want %v (by step, then timestamp)", limit, vals, wantVals)
			}
		}
		hist, next, err := f.s.MetricHistory(f.ctx, c.ID, "never", metadata.Page{})
		if err != nil || len(hist) != 0 || next != "" {
			f.Errorf("unknown key: %v %q %v, want an empty history", hist, next, err)
		}
		_, _, err = f.s.MetricHistory(f.ctx, c.ID, "", metadata.Page{})
		f.wantErr("empty key", err, metadata.ErrInvalid)
	}},
}
