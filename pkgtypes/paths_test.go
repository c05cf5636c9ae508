package pkgtypes

import (
	"strings"
	"testing"
)

func TestValidateFilePath(t *testing.T) {
	seg255 := strings.Repeat("s", 255)
	full := strings.Repeat(strings.Repeat("d", 99)+"/", 10) + strings.Repeat("f", 14) // 1014 bytes
	tests := []struct {
		p    string
		ok   bool
		hint string
	}{
		{p: "MLmodel", ok: true},
		{p: "model/MLmodel", ok: true},
		{p: "a/b/c/d.txt", ok: true},
		{p: "model data/weights v2.bin", ok: true},
		{p: "a+b-c_d.e", ok: true},
		{p: ".hidden", ok: true},
		{p: "...", ok: true},
		{p: "a b", ok: true},
		{p: seg255, ok: true},
		{p: seg255 + "/" + seg255, ok: true},
		{p: full, ok: true},
		{p: full + strings.Repeat("f", 10), ok: true},                 // exactly 1024
		{p: full + strings.Repeat("f", 11), hint: "longer than 1024"}, // 1025
		{p: seg255 + "s", hint: "longer than 255"},                    // one segment too long
		{p: "", hint: "empty"},
		{p: "/etc/passwd", hint: "leading '/'"},
		{p: "/", hint: "leading '/'"},
		{p: "a//b", hint: "empty segment"},
		{p: "a/", hint: "empty segment"},
		{p: ".", hint: "'..'"},
		{p: "..", hint: "'..'"},
		{p: "../x", hint: "'..'"},
		{p: "a/../b", hint: "'..'"},
		{p: "a/./b", hint: "'..'"},
		{p: "a\\b", hint: `'\'`},
		{p: "..\\x", hint: `'\'`},
		{p: "a\x00b", hint: "control"},
		{p: "a\nb", hint: "control"},
		{p: "a\tb", hint: "control"},
		{p: "a\x7fb", hint: "control"},
		{p: "a\u0085b", hint: "control"}, // C1 control
		{p: "a\xffb", hint: "UTF-8"},
		{p: " ", hint: "space"},
		{p: "   ", hint: "space"},
		{p: " a", hint: "space"},
		{p: "a ", hint: "space"},
		{p: "a/.. ", hint: "space"},
		{p: "dir /a", hint: "space"},
		{p: "a:b", hint: "':'"},
		{p: "a@b", hint: "'@'"},
		{p: "a%2Fb", hint: "'%'"},
		{p: "a*b", hint: "'*'"},
		{p: "café", hint: "'é'"},
		{p: "a\u202eb", hint: "not allowed"}, // bidi override
	}
	for _, tt := range tests {
		t.Run(tt.p, func(t *testing.T) {
			err := ValidateFilePath(tt.p)
			if tt.ok {
				checkErr(t, err, nil, tt.p)
				return
			}
			checkErr(t, err, ErrInvalidPath, tt.p)
			if !strings.Contains(err.Error(), tt.hint) {
				t.Errorf("ValidateFilePath(%q) = %v, want a hint containing %q", tt.p, err, tt.hint)
			}
		})
	}
}

func TestCleanFilePathPrefix(t *testing.T) {
	tests := []struct {
		p, want string
		ok      bool
	}{
		{"", "", true},
		{"model", "model", true},
		{"model/", "model", true},
		{"a/b/", "a/b", true},
		{"a/b", "a/b", true},
		{"/", "", false},
		{"//", "", false},
		{"a//", "", false},
		{"/a", "", false},
		{"../", "", false},
		{"a/../", "", false},
		{"a\\", "", false},
		{" /", "", false},
	}
	for _, tt := range tests {
		got, err := CleanFilePathPrefix(tt.p)
		want := ErrInvalidPath
		if tt.ok {
			want = nil
		}
		t.Run(tt.p, func(t *testing.T) { checkErr(t, err, want, tt.p) })
		if got != tt.want {
			t.Errorf("CleanFilePathPrefix(%q) = %q, want %q", tt.p, got, tt.want)
		}
	}
}
