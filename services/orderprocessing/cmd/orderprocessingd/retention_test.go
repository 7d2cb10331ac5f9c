package main

import (
	"errors"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/process"
)

// TestValidateRetention (issue 15, item 8): each retention flag is 0
// (keep) or at least a minute, and -purge-every at least a second.
func TestValidateRetention(t *testing.T) {
	t.Parallel()
	ok := Config{Retention: process.Retention{Keep: 720 * time.Hour, Every: 10 * time.Minute}, SealedTokenRetention: 24 * time.Hour}
	for _, tc := range []struct {
		name    string
		mod     func(*Config)
		wantErr bool
	}{
		{"defaults", func(*Config) {}, false},
		{"everything kept", func(c *Config) { c.Retention.Keep, c.SealedTokenRetention, c.OrderRetention = 0, 0, 0 }, false},
		{"orders kept a year", func(c *Config) { c.OrderRetention = 365 * 24 * time.Hour }, false},
		{"sealed tokens 10s", func(c *Config) { c.SealedTokenRetention = 10 * time.Second }, true},
		{"orders negative", func(c *Config) { c.OrderRetention = -time.Hour }, true},
		{"retention 1s", func(c *Config) { c.Retention.Keep = time.Second }, true},
		{"purge every 0", func(c *Config) { c.Retention.Every = 0 }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := ok
			tc.mod(&c)
			if err := validateRetention(c); (err != nil) != tc.wantErr || (err != nil && !errors.Is(err, process.ErrRetention)) {
				t.Fatalf("validateRetention = %v, want error %v", err, tc.wantErr)
			}
		})
	}
}
