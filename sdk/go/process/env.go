package process

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// EnvInt is Env for an integer (strconv.Atoi). An unparsable value gives
// def here, and makes CheckEnv, and so Main, refuse to start.
func EnvInt(key string, def int) int {
	return envValue(key, def, parseInt)
}

// EnvBool is Env for a boolean (strconv.ParseBool: 1, t, true, 0, f,
// false, ...). An unparsable value gives def here, and makes CheckEnv, and
// so Main, refuse to start.
func EnvBool(key string, def bool) bool {
	return envValue(key, def, parseBool)
}

// EnvDuration is Env for a duration (time.ParseDuration: 10s, 2m, 1h30m).
// An unparsable value gives def here, and makes CheckEnv, and so Main,
// refuse to start.
func EnvDuration(key string, def time.Duration) time.Duration {
	return envValue(key, def, parseDuration)
}

// EnvLevel is Env for a log level (DEBUG, INFO, WARN or ERROR, as
// slog.Level.UnmarshalText reads them). An unparsable value gives def here,
// and makes CheckEnv, and so Main, refuse to start.
func EnvLevel(key string, def slog.Level) slog.Level {
	return envValue(key, def, parseLevel)
}

// envChecks holds the variables the typed Env helpers have read, each with
// a check of its value: CheckEnv reads them again. The helpers run while
// flags are defined, whose defaults cannot fail; the process fails once
// they are parsed (Main). It is process-wide, as the environment is.
var envChecks sync.Map // variable name -> func(string) error

// envValue reads key with parse, noting key for CheckEnv.
func envValue[T any](key string, def T, parse func(string) (T, error)) T {
	envChecks.Store(key, func(s string) error { _, err := parse(s); return err })
	s := os.Getenv(key)
	if s == "" {
		return def
	}
	if v, err := parse(s); err == nil {
		return v
	}
	return def
}

// CheckEnv returns an error naming every variable read by EnvInt, EnvBool,
// EnvDuration or EnvLevel (every flag's default of the service binaries)
// that is set to a value it cannot take, with the value (numbers,
// durations, booleans and levels are no secrets) and what was expected;
// nil when every such variable is unset, empty or valid. A flag given on
// the command line does not excuse its variable: a typo in the environment
// is fixed, not shadowed. Main calls it before running.
func CheckEnv() error {
	var errs []error
	envChecks.Range(func(k, check any) bool {
		key := k.(string)
		if v := os.Getenv(key); v != "" {
			if err := check.(func(string) error)(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", key, truncate(v, 64), err))
			}
		}
		return true
	})
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("invalid environment: %w", errors.Join(errs...))
}

// The errors of the Env helpers' parsers: what was expected, never the
// value (CheckEnv quotes it, bounded).
var (
	errNotInt      = errors.New("want an integer")
	errNotBool     = errors.New("want true or false")
	errNotDuration = errors.New("want a duration such as 500ms, 10s, 2m or 1h")
	errNotLevel    = errors.New("want DEBUG, INFO, WARN or ERROR")
)

func parseInt(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, errNotInt
	}
	return n, nil
}

func parseBool(s string) (bool, error) {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, errNotBool
	}
	return b, nil
}

func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errNotDuration
	}
	return d, nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, errNotLevel
	}
	return l, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
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
