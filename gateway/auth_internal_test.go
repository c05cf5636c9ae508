package gateway

import "testing"

func TestRequestWrites(t *testing.T) {
	cases := []struct {
		method, path string
		writes       bool
	}{
		{"GET", "/api/v4/projects/p/packages/ml_models/m/1.0.0/files/a", false},
		{"HEAD", "/api/v4/projects/p/packages/ml_models/m/1.0.0/files/a", false},
		{"PUT", "/api/v4/projects/p/packages/ml_models/m/1.0.0/files/a", true},
		{"DELETE", "/api/v4/projects/p/packages/ml_models/m/1.0.0/files/a", true},
		{"POST", "/api/2.0/mlflow/runs/search", false},
		{"POST", "/api/2.0/mlflow//runs/search/", false},
		{"POST", "/api/v4/projects/team%2Fvision/ml/mlflow/api/2.0/mlflow/experiments/search", false},
		{"POST", "/api/2.0/mlflow/runs/log-metric", true},
		{"POST", "/api/2.0/mlflow/runs/search/../log-metric", true},
		{"POST", "/api/v4/projects/p/packages/ml_models/api/2.0/mlflow/runs/search", true},
		{"POST", "/api/v4/projects/p/x/ml/mlflow/api/2.0/mlflow/runs/search", true},
		{"POST", "/api/2.0/mlflow-artifacts/runs/search", true},
		{"PATCH", "/api/2.0/mlflow/runs/search", true},
		{"OPTIONS", "/api/2.0/mlflow/runs/search", true},
	}
	for _, c := range cases {
		if got := requestWrites(c.method, c.path); got != c.writes {
			t.Errorf("requestWrites(%s %s) = %v, want %v", c.method, c.path, got, c.writes)
		}
	}
	for path, want := range map[string]bool{
		"/api/2.0/mlflow/runs/get":                                      true,
		"/api/2.0/mlflow-artifacts/artifacts/x":                         true,
		"/api/v4/projects/1/ml/mlflow/api/2.0/mlflow/runs/get":          true,
		"/api/v4/projects/1/ml/mlflow/api/2.0/mlflow-artifacts/x":       true,
		"/api/v4/projects/1/packages/ml_models/m/1.0.0/files/a":         false,
		"/api/v4/projects/1/packages/generic/ml_experiment_1/1/api/2.0": false,
		"/health": false,
	} {
		if got := isMLflowPath(path); got != want {
			t.Errorf("isMLflowPath(%s) = %v", path, got)
		}
	}
}
