package registry_test

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
	"github.com/mlgate/mlgate/gateway/mlflow/message"
	"github.com/mlgate/mlgate/metadata"
)

// TestRegistryConcurrentAutomaticVersions: 16 clients create versions of one model at once, none naming
// a semver. Each version's semver is chosen and taken in the same transaction, so all 16 succeed with
// distinct, gap-free version numbers and semvers, whether the gateway bumps (mlgate.semver_bump) or the
// store picks the next minor.
func TestRegistryConcurrentAutomaticVersions(t *testing.T) {
	for _, tc := range []struct {
		bump string // "" leaves the tag unset: the store's default, the next minor
		want func(i int) string
	}{
		{"patch", func(i int) string { return fmt.Sprintf("1.0.%d", i) }},
		{"major", func(i int) string { return fmt.Sprintf("%d.0.0", i+1) }},
		{"", func(i int) string { return fmt.Sprintf("1.%d.0", i) }},
	} {
		t.Run("bump="+tc.bump, func(t *testing.T) {
			env := gatewaytest.New(t, gateway.Config{})
			base := env.Srv.URL
			tags := ""
			if tc.bump != "" {
				tags = `, "tags": [{"key": "mlgate.semver_bump", "value": "` + tc.bump + `"}]`
			}
			gatewaytest.WantStatus(t, env.MLflowPost(base, "registered-models/create", `{"name": "m"`+tags+`}`), http.StatusOK)
			r := env.MLflowPost(base, "runs/create", `{"experiment_id": "1"}`)
			gatewaytest.WantStatus(t, r, http.StatusOK)
			var run struct{ Run message.Run }
			r.JSON(t, &run)
			body := `{"name": "m", "source": "runs:/` + run.Run.Info.RunID + `", "run_id": "` + run.Run.Info.RunID + `"}`

			const clients = 16
			start := make(chan struct{})
			var wg sync.WaitGroup
			errs := make(chan string, clients)
			for range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					resp, err := env.Srv.Client().Post(base+"/api/2.0/mlflow/model-versions/create", "application/json", strings.NewReader(body))
					if err != nil {
						errs <- err.Error()
						return
					}
					defer resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b, _ := io.ReadAll(resp.Body)
						errs <- fmt.Sprintf("%d %s", resp.StatusCode, b)
					}
				}()
			}
			close(start)
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Errorf("create: %s", e)
			}

			var got struct {
				ModelVersions []message.ModelVersion `json:"model_versions"`
			}
			r = env.Get(base + "/api/2.0/mlflow/model-versions/search?filter=name%3D%27m%27&max_results=100")
			gatewaytest.WantStatus(t, r, http.StatusOK)
			r.JSON(t, &got)
			pairs := map[int]string{}
			for _, v := range got.ModelVersions {
				seq, err := strconv.Atoi(v.Version)
				if err != nil {
					t.Fatalf("version %q", v.Version)
				}
				pairs[seq] = semverTag(v.Tags)
			}
			var want, have []string
			for i := range clients {
				want = append(want, fmt.Sprintf("%d=%s", i+1, tc.want(i)))
				have = append(have, fmt.Sprintf("%d=%s", i+1, pairs[i+1]))
			}
			if len(pairs) != clients || !slices.Equal(have, want) {
				t.Fatalf("%d versions %v, want %v", len(pairs), have, want)
			}
		})
	}
}

func semverTag(tags []metadata.Tag) string {
	for _, t := range tags {
		if t.Key == "mlgate.semver" {
			return t.Value
		}
	}
	return ""
}
