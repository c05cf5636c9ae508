package artifact_test

import (
	"testing"

	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
)

// The whole gateway is the fixture: these tests go through the routes, middleware and error table that
// serve the surface in production.
type testEnv = gatewaytest.Env

func newTestEnv(t testing.TB, cfg gateway.Config) *testEnv { return gatewaytest.New(t, cfg) }

var wantStatus = gatewaytest.WantStatus
