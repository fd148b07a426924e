// Package web is qqd's web front: the browser client embedded in the
// binary (app/) and, from the gateway, its WebSocket listener.
package web

import (
	"embed"
	"io/fs"
)

//go:embed app
var appFS embed.FS

// App returns the web app's static files (index.html at its root).
func App() fs.FS {
	sub, err := fs.Sub(appFS, "app")
	if err != nil {
		panic(err) // "app" is a valid path: cannot happen
	}
	return sub
}
