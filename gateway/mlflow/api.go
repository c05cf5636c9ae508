// Package mlflow serves MLflow's tracking API over the merged data model: an experiment is a model
// and a run is one of its candidates. It also holds what the registry (gateway/mlflow/registry) shares
// with it: how experiment and run ids resolve, the entity messages, and the rules for keys and tags.
// The RPC machinery is gateway/mlflow/rpc; the mlflow-artifacts proxy is gateway/mlflow/artifactproxy.
package mlflow

import (
	"log/slog"

	"github.com/mlgate/mlgate/gateway/artifact"
	"github.com/mlgate/mlgate/gateway/mlflow/rpc"
	"github.com/mlgate/mlgate/gateway/runquery"
	"github.com/mlgate/mlgate/metadata"
)

// Deps is what the tracking API needs.
type Deps struct {
	Store     metadata.Store
	Artifacts *artifact.Service // deletes a deleted logged model's files, lists its directories
	Log       *slog.Logger
}

// Tracking serves experiments/*, runs/*, metrics/* and logged-models/*.
type Tracking struct {
	store     metadata.Store
	artifacts *artifact.Service
	log       *slog.Logger
	search    *runquery.Engine
}

// New builds the tracking API.
func New(d Deps) *Tracking {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &Tracking{store: d.Store, artifacts: d.Artifacts, log: d.Log, search: &runquery.Engine{Store: d.Store}}
}

// Routes is the tracking API's part of the RPC table.
func (s *Tracking) Routes() []rpc.Route {
	var rpcs []rpc.Route
	for _, area := range [][]rpc.Route{s.experimentRPCs(), s.runRPCs(), s.searchRPCs(), s.loggedModelRPCs()} {
		rpcs = append(rpcs, area...)
	}
	return rpcs
}
