package gateway

// registryRPCs serves registered-models/* and model-versions/*: a registered model is a model.
func (s *Server) registryRPCs() []mlflowRPC {
	return nil
}
