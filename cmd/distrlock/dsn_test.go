package main

import "testing"

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:secret@h:5432/db":                     "postgres://u:xxxxx@h:5432/db",
		"postgres://u@h/db?password=secret&sslmode=disable": "postgres://u@h/db?password=xxxxx&sslmode=disable",
		"mysql://u:a@h:3306/db?password=b":                  "mysql://u:xxxxx@h:3306/db?password=xxxxx",
		"sqlite:///tmp/locks.db":                            "sqlite:///tmp/locks.db",
		"mysql://root:se%cret@h:3306/db":                    "mysql://root:xxxxx@h:3306/db",
		"postgres://u@h/db?sslpassword=s":                   "postgres://u@h/db?sslpassword=xxxxx",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}
