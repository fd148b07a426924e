package antispam

import (
	"fmt"
	"time"

	"github.com/qqchat/qq/plugins"
)

// Defaults of the configuration.
const (
	DefaultFloodMaxMessages   = 20
	DefaultFloodWindow        = 10 * time.Second
	DefaultRepeatMaxSameBody  = 3
	DefaultRepeatMaxRecipient = 10
	DefaultRepeatWindow       = 60 * time.Second
	DefaultLinksMaxLinks      = 3
	DefaultLinksWindow        = 60 * time.Second
	DefaultMaxSendersTracked  = 100000
)

// Bounds of the configuration.
const (
	maxLimit          = 10000
	maxWindow         = 24 * time.Hour
	maxSendersTracked = 10_000_000
)

// Config is the configuration of antispam: the "config" section of its
// filter entry in qq.yaml, as JSON. Every key is optional; a nil pointer
// means the default. Unknown keys are errors.
type Config struct {
	Flood  FloodConfig  `json:"flood"`
	Repeat RepeatConfig `json:"repeat"`
	Links  LinksConfig  `json:"links"`
	// MaxSendersTracked bounds the senders kept in memory: 1..10000000,
	// default 100000.
	MaxSendersTracked *int `json:"max_senders_tracked,omitempty"`
}

// FloodConfig limits how many messages a sender may send in a window.
type FloodConfig struct {
	// Enabled turns the rule on or off; default true.
	Enabled *bool `json:"enabled,omitempty"`
	// MaxMessages is the most messages in Window: 1..10000, default 20.
	MaxMessages *int `json:"max_messages,omitempty"`
	// Window is a Go duration, 1ms..24h, default "10s".
	Window *string `json:"window,omitempty"`
}

// RepeatConfig limits how often a sender may send the same body.
type RepeatConfig struct {
	// Enabled turns the rule on or off; default true.
	Enabled *bool `json:"enabled,omitempty"`
	// MaxSameBody is the most times one body may be sent to one
	// recipient in Window: 1..10000, default 3.
	MaxSameBody *int `json:"max_same_body,omitempty"`
	// MaxRecipients is the most distinct recipients one body may be sent
	// to in Window: 1..10000, default 10.
	MaxRecipients *int `json:"max_recipients,omitempty"`
	// Window is a Go duration, 1ms..24h, default "60s".
	Window *string `json:"window,omitempty"`
}

// LinksConfig limits how many messages with links a sender may send.
type LinksConfig struct {
	// Enabled turns the rule on or off; default true.
	Enabled *bool `json:"enabled,omitempty"`
	// MaxLinks is the most messages containing a link in Window:
	// 1..10000, default 3.
	MaxLinks *int `json:"max_links,omitempty"`
	// Window is a Go duration, 1ms..24h, default "60s".
	Window *string `json:"window,omitempty"`
}

// limits is a validated Config with its defaults applied. Windows are in
// milliseconds, like FilterMessage.TS.
type limits struct {
	floodOn  bool
	floodMax int
	floodWin int64

	repeatOn  bool
	sameMax   int
	recipMax  int
	repeatWin int64

	linksOn  bool
	linksMax int
	linksWin int64

	maxSenders int
	maxWin     int64 // the largest enabled window; 0 when all rules are off
}

// parseConfig decodes and validates config. It returns every problem it
// finds, each naming its key.
func parseConfig(config []byte) (limits, []error) {
	var cfg Config
	errs, ok := plugins.DecodeConfig(config, &cfg)
	if !ok {
		return limits{}, errs
	}

	var l limits
	check := func(key string, p *int, def, hi int) int {
		if p == nil {
			return def
		}
		if *p < 1 || *p > hi {
			errs = append(errs, fmt.Errorf("%s: %d out of range 1..%d", key, *p, hi))
		}
		return *p
	}
	window := func(key string, p *string, def time.Duration) int64 {
		if p == nil {
			return def.Milliseconds()
		}
		d, err := time.ParseDuration(*p)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		case d < time.Millisecond || d > maxWindow:
			errs = append(errs, fmt.Errorf("%s: %q out of range 1ms..24h", key, *p))
		}
		return d.Milliseconds()
	}
	on := func(p *bool) bool { return p == nil || *p }

	l.floodOn = on(cfg.Flood.Enabled)
	l.floodMax = check("flood.max_messages", cfg.Flood.MaxMessages, DefaultFloodMaxMessages, maxLimit)
	l.floodWin = window("flood.window", cfg.Flood.Window, DefaultFloodWindow)

	l.repeatOn = on(cfg.Repeat.Enabled)
	l.sameMax = check("repeat.max_same_body", cfg.Repeat.MaxSameBody, DefaultRepeatMaxSameBody, maxLimit)
	l.recipMax = check("repeat.max_recipients", cfg.Repeat.MaxRecipients, DefaultRepeatMaxRecipient, maxLimit)
	l.repeatWin = window("repeat.window", cfg.Repeat.Window, DefaultRepeatWindow)

	l.linksOn = on(cfg.Links.Enabled)
	l.linksMax = check("links.max_links", cfg.Links.MaxLinks, DefaultLinksMaxLinks, maxLimit)
	l.linksWin = window("links.window", cfg.Links.Window, DefaultLinksWindow)

	l.maxSenders = check("max_senders_tracked", cfg.MaxSendersTracked, DefaultMaxSendersTracked, maxSendersTracked)

	if l.floodOn {
		l.maxWin = max(l.maxWin, l.floodWin)
	}
	if l.repeatOn {
		l.maxWin = max(l.maxWin, l.repeatWin)
	}
	if l.linksOn {
		l.maxWin = max(l.maxWin, l.linksWin)
	}
	return l, errs
}
