// Package attest is the server's TPM 2.0 attestation verifier.
//
// It appraises what devices send (internal/api's TPMEnrollment and
// Evidence) with github.com/google/go-attestation doing the TPM
// cryptography:
//
//   - Enrolment: VerifyEnrollment checks the EK (and its certificate chain
//     and TPM subjectAltName), the AK's creation by a TPM, and the device
//     key's certification by the AK; Enrollment.Challenge makes the
//     credential activation that proves the AK shares a TPM with the EK.
//   - Attestation: Verify checks a quote against the nonce the server
//     issued, replays the measured-boot event log and the IMA list against
//     the quoted PCRs, reads Secure Boot from the log, and compares PCRs
//     and files with the approved reference values (Policy). The Result is
//     an AR4SI trust vector with a status and a list of problems, in
//     words.
//   - Results: SignEAR and VerifyEAR make and check EAT Attestation
//     Results (JWT, ES256); JWKS publishes the keys.
//   - Reference values: ReferenceManifest is what makers publish per
//     release; CaptureReference takes an admin-approved baseline from a
//     verified result.
//
// Every function is safe for concurrent use; a Policy must not be
// modified while in use. Verify keeps bounded caches, keyed by content, of
// parsed AK public areas, event logs, replayed IMA lists and Secure Boot
// states, since devices send the same logs attestation after attestation
// and a fleet boots the same few configurations. Package softtpm is a software TPM producing the
// same encodings, for simulations and tests.
package attest
