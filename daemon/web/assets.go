package web

import (
	"embed"
	"io/fs"
)

// appFiles is the web app: index.html and the files it loads, served
// from the binary. No build step: the files are what the browser runs.
//
//go:embed app
var appFiles embed.FS

// App returns the embedded web app, rooted at its directory.
func App() fs.FS {
	sub, err := fs.Sub(appFiles, "app")
	if err != nil {
		panic("web: embedded app: " + err.Error()) // "app" is a valid path
	}
	return sub
}
