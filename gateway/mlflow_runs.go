package gateway

// runRPCs serves runs/*, metrics/* and logging: a run is a candidate.
func (s *Server) runRPCs() []mlflowRPC {
	return nil
}
