package client_test

import (
	"context"
	"log"
	"net"
	"os"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
)

// exampleServer runs a real qqd in process for the package examples: the
// default configuration on 127.0.0.1:0, with the sqlite storage in a
// temporary directory. It returns the server's address and a function
// that stops the server and removes its data. It stops the program if the
// server cannot start, as an example has no *testing.T to fail.
func exampleServer() (addr string, stop func()) {
	dir, err := os.MkdirTemp("", "qq-client-example-")
	if err != nil {
		log.Fatalf("example server: %v", err)
	}
	cfg := config.Default()
	cfg.Listen, cfg.DataDir = "127.0.0.1:0", dir
	opts, err := sqlitestore.ParseConfig(plugins.Env{DataDir: dir}, nil)
	if err != nil {
		log.Fatalf("example server: %v", err)
	}
	st, err := sqlitestore.Open(context.Background(), opts)
	if err != nil {
		log.Fatalf("example server: %v", err)
	}
	d, err := daemon.New(cfg, daemon.Deps{Storage: st, Version: "0.0.0-example", PasswordParams: &daemontest.FastPasswords})
	if err != nil {
		log.Fatalf("example server: %v", err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		log.Fatalf("example server: listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- d.Serve(ln) }()
	return ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), daemontest.Timeout)
		defer cancel()
		if err := d.Shutdown(ctx); err != nil {
			log.Printf("example server: shutdown: %v", err)
		}
		<-served
		if err := st.Close(); err != nil {
			log.Printf("example server: close storage: %v", err)
		}
		os.RemoveAll(dir)
	}
}
