package plugins_test

import (
	"strings"
	"testing"

	"github.com/qqchat/qq/plugins"
)

func TestDecodeConfig(t *testing.T) {
	type inner struct {
		N int `json:"n"`
	}
	type conf struct {
		Name  string  `json:"name"`
		Items []inner `json:"items"`
	}
	for _, tc := range []struct {
		in     string
		ok     bool
		want   []string // substrings, one per error
		result conf
	}{
		{``, true, nil, conf{}},
		{`{"name":"x","items":[{"n":1}]}`, true, nil, conf{Name: "x", Items: []inner{{N: 1}}}},
		{`{"Name":"x","itms":[],"items":[{"n":1,"m":2}]}`, true, []string{"Name: unknown key", "items[0].m: unknown key", "itms: unknown key"}, conf{}},
		{`{"bogus":1,"name":5}`, true, []string{"bogus: unknown key", "config: json: cannot unmarshal number"}, conf{}},
		{`{"name":`, false, []string{"config:"}, conf{}},
		{`{} {}`, true, []string{"unexpected data"}, conf{}},
	} {
		var c conf
		errs, ok := plugins.DecodeConfig([]byte(tc.in), &c)
		if ok != tc.ok || len(errs) != len(tc.want) {
			t.Errorf("DecodeConfig(%s) = %v, %v; want %d errors, ok %v", tc.in, errs, ok, len(tc.want), tc.ok)
			continue
		}
		for i, w := range tc.want {
			if !strings.Contains(errs[i].Error(), w) {
				t.Errorf("DecodeConfig(%s) error %d = %v, want %q", tc.in, i, errs[i], w)
			}
		}
		if len(tc.want) == 0 && (c.Name != tc.result.Name || len(c.Items) != len(tc.result.Items)) {
			t.Errorf("DecodeConfig(%s) decoded %+v, want %+v", tc.in, c, tc.result)
		}
	}
	// Defaults survive an unknown key: the lenient second decoding
	// starts from them, not from zero.
	c := conf{Name: "default"}
	if errs, ok := plugins.DecodeConfig([]byte(`{"bogus":1}`), &c); !ok || len(errs) != 1 || c.Name != "default" {
		t.Errorf("DecodeConfig with an unknown key: %v, %v; name %q, want the default kept", errs, ok, c.Name)
	}
}
