package tpm

import "github.com/google/go-tpm/tpm2"

// UseECCEK makes t use the TCG default ECC P-256 endorsement key, as on a
// TPM without RSA.
func UseECCEK(t *TPM) { t.ekTemplates = []tpm2.TPMTPublic{tpm2.ECCEKTemplate} }
