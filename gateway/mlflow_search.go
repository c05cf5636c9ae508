package gateway

// searchRPCs serves experiments/search and runs/search.
func (s *Server) searchRPCs() []mlflowRPC {
	return nil
}
