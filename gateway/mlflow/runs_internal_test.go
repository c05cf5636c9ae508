package mlflow

import (
	"strings"
	"testing"
)

func TestMLflowRunsKeyValidation(t *testing.T) {
	for _, ok := range []string{"loss", "a/b", "train loss", "mlflow.source.git.commit", "x:y", "a-b_c.d", "größe"} {
		if err := validateKey("metric", ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a*b", "a\\b", "../x", "..x", "a/../b", "a//b", "/a", "a/", ".", "a/./b", "a\nb", strings.Repeat("k", 251)} {
		if err := validateKey("metric", bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
