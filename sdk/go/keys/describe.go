package keys

import "time"

// Key roles in a Ring, as KeyInfo.Role reports them.
const (
	// RoleCurrent is the key that signs now.
	RoleCurrent = "current"
	// RoleNext is published but signs nothing until Rotate promotes it.
	RoleNext = "next"
	// RoleRetired signed before the last rotations and stays published
	// until RetireUntil, so that the tokens it signed keep verifying.
	RoleRetired = "retired"
)

// KeyInfo describes one key of a Ring without any private material, for
// operators' listings.
type KeyInfo struct {
	KID       string
	Algorithm string // EdDSA or ES256
	Role      string // RoleCurrent, RoleNext or RoleRetired
	// Created is when the ring generated the key (zero for keys of a ring
	// file written without it).
	Created time.Time
	// RetireUntil is when a retired key stops being published; zero for
	// the current and next keys.
	RetireUntil time.Time
}

// Describe returns the ring's published keys: the current key, the next key,
// then retired keys whose retention has not ended, in that order.
func (r *Ring) Describe() []KeyInfo {
	v := r.snapshot()
	info := func(role string, k *ringKey) KeyInfo {
		return KeyInfo{KID: k.priv.KID(), Algorithm: k.priv.Algorithm(), Role: role, Created: k.created, RetireUntil: k.retireUntil}
	}
	out := []KeyInfo{info(RoleCurrent, v.current), info(RoleNext, v.next)}
	for _, k := range v.retired {
		out = append(out, info(RoleRetired, k))
	}
	return out
}
