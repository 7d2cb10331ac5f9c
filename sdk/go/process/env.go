package process

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// Env returns the environment variable key, or def when it is unset or
// empty.
func Env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// EnvInt is Env for an integer; an unparsable value gives def.
func EnvInt(key string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(key)); err == nil {
		return n
	}
	return def
}

// EnvBool is Env for a boolean (strconv.ParseBool); an unparsable value
// gives def.
func EnvBool(key string, def bool) bool {
	if b, err := strconv.ParseBool(os.Getenv(key)); err == nil {
		return b
	}
	return def
}

// EnvDuration is Env for a duration (time.ParseDuration); an unparsable
// value gives def.
func EnvDuration(key string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(key)); err == nil {
		return d
	}
	return def
}

// List is a flag.Value for a comma-separated list, also accepting the flag
// repeated.
type List []string

func (l *List) String() string { return strings.Join(*l, ",") }

// Set implements flag.Value.
func (l *List) Set(v string) error {
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
