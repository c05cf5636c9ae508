// Package backendpb holds the generated Go code of backend.proto, the wire protocol of mlgate's storage
// plugins. The generated files are committed, so building mlgate never needs protoc.
//
// Generated with: protoc 3.21.12 (Debian protobuf-compiler), protoc-gen-go v1.36.12 and
// protoc-gen-go-grpc v1.6.2 (its output needs grpc-go >= 1.64; go.mod pins v1.85.0). To regenerate:
//
//	apt-get install -y protobuf-compiler
//	GOBIN=/tmp/protoc-bin go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//	GOBIN=/tmp/protoc-bin go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
//	PATH=/tmp/protoc-bin:$PATH go generate ./plugins/proto
package backendpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative backend.proto
