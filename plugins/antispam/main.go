// Command antispam is the qqd filter plugin that rejects flooding,
// repeated and broadcast messages, and bursts of links, counting each
// sender's recent messages in memory. qqd starts it as a go-plugin
// subprocess; it is not meant to be run by hand. The behaviour and
// configuration are those of package
// [github.com/qqchat/qq/plugins/antispam/antispam]; see README.md.
package main

import (
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/antispam/antispam"
)

func main() {
	plugins.ServeFilter(antispam.New)
}
