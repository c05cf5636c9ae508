package metadata

import (
	"math"
	"strings"
	"testing"
)

func TestRecordStringHidesSettings(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	s := Record{Setting: &Setting{Name: SettingSigningKey, Value: key}}.String()
	if strings.Contains(s, "MDEy") || strings.Contains(s, string(key)) || !strings.Contains(s, "signing_key") {
		t.Errorf("a setting shows as %s", s)
	}
	nan := Record{Metric: &OwnedMetric{Owner: 1, Metric: Metric{Key: "k", Value: math.NaN()}}}
	if !EqualRecords(nan, nan) || EqualRecords(nan, Record{Metric: &OwnedMetric{Owner: 1, Metric: Metric{Key: "k"}}}) {
		t.Errorf("NaN points compare wrongly")
	}
}
