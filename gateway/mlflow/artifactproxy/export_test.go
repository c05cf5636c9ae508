package artifactproxy

import "github.com/mlgate/mlgate/gateway/signing"

// Test hooks: the refusal tests forge part URLs and look inside upload ids, with the signing secret the
// test gave the gateway.

// MPUPartSig signs a part URL as mpu/create does under secret.
func MPUPartSig(secret *signing.Secret, token string, n int, exp int64) string {
	return newMPUKeys(secret).partSig(token, n, exp)
}

// OpenMPUToken decodes an upload id sealed under secret into the blob key and backend upload id it carries.
func OpenMPUToken(secret *signing.Secret, s string) (key, upload string, err error) {
	t, err := newMPUKeys(secret).open(s)
	return t.Key, t.Upload, err
}
