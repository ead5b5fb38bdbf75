// Package pki holds Bulwark's certificate authority and the cryptography
// around it: the key-encryption key (KEK) that seals secrets at rest, the
// device CA that issues mutual-TLS client certificates to enrolled devices
// and TLS server certificates to the control plane, validating decoding of
// certificate signing requests received from devices, and verification of
// the device certificates presented back to the server.
//
// All keys and serial numbers come from crypto/rand. New CA and server keys
// are ECDSA P-256.
//
// KEK is an immutable value and CA is immutable after construction (NewCA or
// LoadCA); both are safe for concurrent use by multiple goroutines. Callers
// must not modify the exported fields of a CA.
package pki
