module example.com/nolinks

go 1.26.8

require github.com/qqchat/qq v0.0.0

// No version of qq is tagged yet: build against a checkout of it, here
// one beside this directory.
replace github.com/qqchat/qq => ../qq
