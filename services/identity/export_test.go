package identity

import (
	"time"

	"github.com/tokenrelay/tokenrelay/services/identity/internal/domain"
)

// ForTest makes cfg hash with cheap argon2id parameters (the race detector
// makes the real ones slow) and, when now is not nil, read time from now.
func ForTest(cfg Config, now func() time.Time) Config {
	cfg.hashParams = &domain.HashParams{Time: 1, MemoryKiB: 256, Threads: 1, SaltLen: 16, KeyLen: 32}
	cfg.now = now
	return cfg
}
