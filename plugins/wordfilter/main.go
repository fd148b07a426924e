// Command wordfilter is the qqd filter plugin that masks or rejects
// messages containing words and phrases of configured lists. qqd starts
// it as a go-plugin subprocess; it is not meant to be run by hand. The
// behaviour and configuration are those of package
// [github.com/qqchat/qq/plugins/wordfilter/wordfilter]; see README.md.
package main

import (
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/wordfilter/wordfilter"
)

func main() {
	plugins.ServeFilter(wordfilter.New)
}
