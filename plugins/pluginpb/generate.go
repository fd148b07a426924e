// Package pluginpb holds the generated protobuf and gRPC code of the qq plugin
// protocol (qqplugin.proto). Only package plugins imports it; plugin authors
// use the Go interfaces of package plugins and never see these types.
package pluginpb

// Regenerate with protoc 3.21.12 (Debian protobuf-compiler),
// protoc-gen-go v1.36.12 and protoc-gen-go-grpc v1.5.1 on PATH:
//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative qqplugin.proto
