// Package domain holds the Identity rules: users with argon2id password
// hashes, sessions (refresh-token families) whose refresh tokens rotate on
// every use, and the failed-login counter that throttles password guessing.
//
// It is pure: no I/O beyond crypto/rand, no Connect codes. Errors are
// sentinels the ports map.
package domain

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinel errors. Wrap them with %w to add detail for logs; the ports map
// each to a Connect code in one place.
var (
	// ErrInvalidArgument reports a malformed request (InvalidArgument).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrInvalidCredentials reports a wrong password, an unknown user, or a
	// refresh token that is unknown, expired, revoked or reused
	// (Unauthenticated). Its text is the whole client message, the same for
	// every cause, so that it cannot be used to probe accounts: return it
	// unwrapped.
	ErrInvalidCredentials = errors.New("invalid credentials")
	// ErrTooManyAttempts reports a user name with too many failed logins in
	// the lockout window (ResourceExhausted).
	ErrTooManyAttempts = errors.New("too many failed logins; try again later")
	// ErrNotFound reports an unknown user, session or refresh token. The app
	// turns it into ErrInvalidCredentials before it reaches a client.
	ErrNotFound = errors.New("not found")
	// ErrReused reports a refresh token that was already rotated: Rotate
	// returns it when another request used the token first.
	ErrReused = errors.New("refresh token already used")
)

// Limits of the credentials a request may carry, checked before any lookup.
const (
	MaxUsernameLen     = 64
	MaxPasswordLen     = 256
	MaxRefreshTokenLen = 256
)

// Lifetimes and windows. See the package documentation of identity for
// why each has its value.
const (
	// RefreshTokenLifetime is how long a refresh token stays valid unused.
	// Each rotation issues a fresh one, so an active session slides.
	RefreshTokenLifetime = 7 * 24 * time.Hour
	// SessionLifetime bounds a session however often it is refreshed: after
	// it the user logs in again.
	SessionLifetime = 30 * 24 * time.Hour
	// RetryWindow is how long after a Refresh (or a Login) a retry with the
	// same idempotency key gets the same result instead of counting as reuse.
	RetryWindow = 60 * time.Second
	// MaxFailedLogins is the number of failed logins for one user name after
	// which further attempts are refused until the window has passed.
	MaxFailedLogins = 5
	// LockoutWindow is the fixed window, from the first failure, in which
	// MaxFailedLogins failures lock the user name.
	LockoutWindow = 15 * time.Minute
)

// User is an account.
type User struct {
	ID           string // "usr_..."
	Username     string // lower case
	DisplayName  string
	PasswordHash string // PHC string, see HashPassword
	Scopes       []string
	CreatedAt    time.Time
}

// NormalizeUsername returns the canonical form of a user name (trimmed,
// lower case) or ErrInvalidArgument.
func NormalizeUsername(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" || utf8.RuneCountInString(s) > MaxUsernameLen || !utf8.ValidString(s) {
		return "", fmt.Errorf("%w: username must be 1 to %d characters", ErrInvalidArgument, MaxUsernameLen)
	}
	for _, r := range s {
		if r < 0x21 || r == 0x7f {
			return "", fmt.Errorf("%w: username must not contain spaces or control characters", ErrInvalidArgument)
		}
	}
	return s, nil
}

// CheckPassword checks a password's length.
func CheckPassword(p string) error {
	if p == "" || len(p) > MaxPasswordLen {
		return fmt.Errorf("%w: password must be 1 to %d bytes", ErrInvalidArgument, MaxPasswordLen)
	}
	return nil
}

// Session is one login: a family of refresh tokens, each replacing the one
// before. Revoking it ends every token of the family.
type Session struct {
	ID           string // "ses_..."
	UserID       string
	CreatedAt    time.Time
	ExpiresAt    time.Time // CreatedAt + SessionLifetime
	RevokedAt    time.Time // zero while active
	RevokeReason string
	// LoginKey is the idempotency key of the Login that created it, and
	// SealedLogin that Login's result, encrypted, kept for RetryWindow.
	LoginKey    string
	SealedLogin string
}

// Active reports whether the session may still be refreshed at now.
func (s Session) Active(now time.Time) bool {
	return s.RevokedAt.IsZero() && now.Before(s.ExpiresAt)
}

// RefreshToken is the stored form of a refresh token: its SHA-256 only.
type RefreshToken struct {
	Hash      string // hex SHA-256 of the token
	SessionID string
	IssuedAt  time.Time
	ExpiresAt time.Time
	// UsedAt is when a Refresh rotated the token; zero while current.
	UsedAt time.Time
	// IdempotencyKey is the key of the Refresh that rotated it, and
	// SealedResult that Refresh's result, encrypted, kept for RetryWindow.
	IdempotencyKey string
	SealedResult   string
}

// refreshTokenPrefix marks tokenrelay refresh tokens, so that secret
// scanners and humans recognise one.
const refreshTokenPrefix = "rt_"

// NewRefreshToken returns a fresh opaque refresh token: 256 bits from
// crypto/rand, base64url, and its hash.
func NewRefreshToken() (raw, hash string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	raw = refreshTokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return raw, HashRefreshToken(raw)
}

// HashRefreshToken returns the hex SHA-256 under which a refresh token is
// stored. A fast hash is enough: the token has 256 bits of entropy, so it
// cannot be guessed from its hash.
func HashRefreshToken(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return hex.EncodeToString(sum[:])
}

// CheckRefreshToken checks a presented refresh token's shape.
func CheckRefreshToken(raw string) error {
	if raw == "" || len(raw) > MaxRefreshTokenLen {
		return fmt.Errorf("%w: refresh_token must be 1 to %d bytes", ErrInvalidArgument, MaxRefreshTokenLen)
	}
	return nil
}

// Repository keeps users, sessions, refresh tokens and failed-login
// counters. Every method is atomic.
type Repository interface {
	// CreateUser stores u unless a user with its name exists; it returns
	// the stored user and whether it was created.
	CreateUser(ctx context.Context, u User) (stored User, created bool, err error)
	// UserByName returns the user with a normalized name, or ErrNotFound.
	UserByName(ctx context.Context, username string) (User, error)
	// UserByID returns a user, or ErrNotFound.
	UserByID(ctx context.Context, id string) (User, error)

	// CreateSession stores a new session with its first refresh token. A
	// login key (s.LoginKey, when not empty) opens one session per user:
	// when a session of the user created at or after since with the key
	// still keeps its sealed result, CreateSession stores nothing and
	// returns that session, created false (a concurrent retry of the Login
	// opened it); sessions with the key that are older or whose result was
	// forgotten give the key up.
	CreateSession(ctx context.Context, s Session, first RefreshToken, since time.Time) (stored Session, created bool, err error)
	// SessionByLoginKey returns the user's newest session created by a
	// Login with key at or after since, or ErrNotFound.
	SessionByLoginKey(ctx context.Context, userID, key string, since time.Time) (Session, error)
	// RefreshToken returns a stored token and its session, or ErrNotFound.
	RefreshToken(ctx context.Context, hash string) (RefreshToken, Session, error)
	// Rotate marks the current token oldHash used (with the Refresh's key
	// and sealed result) and stores next in its session, in one
	// transaction, only if oldHash is still unused: otherwise nothing
	// changes and it returns ErrReused with the stored old token (an
	// unknown hash is ErrNotFound).
	Rotate(ctx context.Context, oldHash string, next RefreshToken, key, sealed string, now time.Time) (RefreshToken, error)
	// RevokeSession revokes a session and forgets its sealed results.
	// Revoking a revoked session changes nothing.
	RevokeSession(ctx context.Context, sessionID, reason string, now time.Time) error
	// PurgeSealed forgets sealed results older than before: past the retry
	// window nothing needs them, so no refresh token outlives it encrypted.
	PurgeSealed(ctx context.Context, before time.Time) error

	// LoginFailures returns the failures recorded for a user name in the
	// window that started after since.
	LoginFailures(ctx context.Context, username string, since time.Time) (int, error)
	// RecordLoginFailure counts a failure at now and returns the count in
	// the current window; a window that started at or before since is
	// restarted at now.
	RecordLoginFailure(ctx context.Context, username string, now, since time.Time) (int, error)
	// ResetLoginFailures clears the counter after a successful login.
	ResetLoginFailures(ctx context.Context, username string) error
}
